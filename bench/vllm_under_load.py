"""Real vLLM under Poisson load, on every model swept: measured TTFT/ITL p90 against the capacity model
and the simulator, and the measured saturation rate against the model's (issue 10, item 7).

Part 4 of bench/fidelity.py (``part_vllm_load``) on several sweeps at once. Each sweep is a
``load_sweep.csv`` of the profiler (``planner profile --rates-by-isl``: open loop, seeded, per-request
rows) taken on one real vLLM 0.26.0 mixed replica; the laws are fitted on the profile named with it.
The one constant of the comparison, the frontend's delay per running request
(``planner.simulate.steptime.FRONTEND_MS_PER_RUNNING``), was fitted on llama-3.1-8b at ISL 1024: every
other sweep (other models, ISL 4096) is held out of it, and the held-out rows are reported apart.

    .venv/bin/python bench/vllm_under_load.py                         # every committed sweep
    .venv/bin/python bench/vllm_under_load.py --sweep SWEEP.csv[=PROFILE_DIR] ... [--no-grid]   # no grids off the points

Goal (issue 10): p90 within 15% below saturation; the saturation rate within 10%.
Last line: ``RESULT sweeps=<n> points=<below saturation> ttft_p90_model_mape_pct=... itl_p90_model_mape_pct=...
ttft_p90_sim_mape_pct=... itl_p90_sim_mape_pct=... heldout_ttft_p90_model_mape_pct=... heldout_itl_p90_model_mape_pct=...
steady_ttft_p90_model_vs_sim_mape_pct=... steady_itl_p90_model_vs_sim_mape_pct=... saturation_err_pct=<mean over the
ISLs that saturated> saturation_worst_pct=... saturation_steady_isls=<of those, the ISLs whose first saturated sample
spans >= fidelity.STEADY_SAMPLE_S: a steady-state reading> saturation_steady_err_pct=... saturation_steady_worst_pct=...
unsaturated_below_model=<ISLs whose busiest sample kept up above the model's
saturation rate> unsaturated_below_model_replay_too=<of those, where the simulator replaying that sample with the same
laws kept up too: the sample cannot tell>`` (``*_sim_*``: the simulator replaying each sample's arrivals;
``heldout_*``: every row but the constant's tuning rows, llama-3.1-8b ISL 1024; ``steady_*``: the capacity model
against the simulator in steady state at the same rates, see STEADY_REQUESTS; ``reachable_*``: the capacity model
against the measured p90 on the points whose sample could reach the steady state, see RELAX_SHARE, with
``reachable_points``; ``band_*``: the capacity model against the median p90 that n Poisson requests from an empty
replica give in the simulator, its error without the sample's luck, and ``*_in_band_pct``: the share of points
whose measured p90 lies within that chance band's 5-95%, both from bench/fidelity.py's part 4;
``grid_*``: the capacity model against the steady-state simulator off the measured points, each swept profile's
laws at the lengths and loads of GRID_ISL/GRID_OSL/GRID_LOADS, its own error apart from real vLLM; ``grid_long_*``:
the same at long prompts (GRID_LONG_*), with the signed mean (``*_bias_pct``: negative, the model below the simulator);
``stalled_samples``: samples below saturation whose p90 is a server-wide pause, see STALL_MIN_GAP_S, listed in
their own table and kept in every figure above; ``settled_*``: the points whose sample followed a settle window
(`planner profile --rate-settle-s`: the replica in its steady state when the sample began, the steady state the
capacity model predicts), the capacity model's and the replay's p90 MAPE there and the share inside the chance band,
which then draws the settle window's arrivals too).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_input import not_found  # noqa: E402
from fidelity import (  # noqa: E402
    PERCENTILE,
    LoadPoint,
    P90Bias,
    Saturation,
    _mixed_sim,
    model_saturation_rps,
    part_vllm_load,
    read_load_sweep,
    saturation,
)

from planner.io.catalog import Catalog  # noqa: E402
from planner.io.errors import PlannerError  # noqa: E402
from planner.io.validate import check_laws_identifiable  # noqa: E402
from planner.perf.heldout import use_byo_catalog_unless_set  # noqa: E402
from planner.perf.laws import VariantPerf, fit_profile  # noqa: E402
from planner.perf.profiledata import load_profile, read_meta  # noqa: E402
from planner.planning import capacity  # noqa: E402
from planner.planning.lengths import draw_prompt_lengths  # noqa: E402
from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING  # noqa: E402

# The sweep the frontend constant was fitted on (its ISL-1024 rows): laws.FRONTEND_MS_PER_RUNNING's source.
TUNING_SWEEP = ROOT / "profiles" / "data" / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm" / "load_sweep.csv"
# Sweeps kept outside profiles/data (past saturation; a held-out model whose profile is a session's run) and
# the profile of the swept replica.
EXTRA_SWEEPS: tuple[tuple[str, str], ...] = (
    ("profiles/runs/2026-12-02-s2/llama-3.1-8b-loadsat/load_sweep.csv", "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-03-s7/qwen3-32b/H200-141GB/tp1-loadsat/vllm/load_sweep.csv", "profiles/data/qwen3-32b/H200-141GB/tp1/vllm"),
    # The MoE's s7 sweep is not here: vLLM compiled fused-MoE kernels during its first rates (jit_monitor
    # warnings, s7 README); s8 measured it again after the profiler's warm-ups, in two server launches.
    ("profiles/runs/2026-12-03-s8/qwen3-30b-a3b/H200-141GB/tp1-warm/vllm/load_sweep.csv",
     "profiles/data/qwen3-30b-a3b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-03-s8/launch2/qwen3-30b-a3b/H200-141GB/tp1-warm/vllm/load_sweep.csv",
     "profiles/data/qwen3-30b-a3b/H200-141GB/tp1/vllm"),
    # s15: the same rates with the warm-up at both ends of each ISL's rates (rate_warmup_ends): the ~2-s
    # stall both s8 launches had at 8 rps (vLLM compiling kernels for low-rate step shapes) is gone.
    ("profiles/runs/2026-12-04-s15/qwen3-30b-a3b/H200-141GB/tp1-warm2/vllm/load_sweep.csv",
     "profiles/data/qwen3-30b-a3b/H200-141GB/tp1/vllm"),
    # Steady state near saturation: 60 s of arrivals per rate (the others: 12 s).
    ("profiles/runs/2026-12-03-s8/llama-3.1-8b/H200-141GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-03-s7/llama-3.2-3b/H200-141GB/tp1-loadsat/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s7/llama-3.2-3b-profile"),
    # Models imported from their config.json (examples/byo-model; their catalog is set as PLANNER_CATALOG when none
    # is): held out of every choice, measured after the laws, the simulator and the constants were fixed.
    ("profiles/runs/2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-03-s12/mixtral-8x7b/H200-141GB/tp1-loadsat/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s12/mixtral-8x7b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-03-s14/qwen2.5-14b/H200-141GB/tp1/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s14/qwen2.5-14b/H200-141GB/tp1/vllm"),
    # s16: the MoEs served with CUDA graphs captured to 4,096 tokens (planner/perf/graphs.py), each set against the
    # laws of its own graphs-to-4k profile: qwen3-30b-a3b in two launches (s15's rates), qwen1.5-moe held out.
    ("profiles/runs/2026-12-04-s16/qwen3-30b-a3b/H200-141GB/tp1-graphs4k/vllm/load_sweep.csv",
     "profiles/runs/2026-12-04-s16/qwen3-30b-a3b/H200-141GB/tp1-graphs4k/vllm"),
    ("profiles/runs/2026-12-04-s16/qwen3-30b-a3b/H200-141GB/tp1-graphs4k-loadsat/vllm/load_sweep.csv",
     "profiles/runs/2026-12-04-s16/qwen3-30b-a3b/H200-141GB/tp1-graphs4k/vllm"),
    ("profiles/runs/2026-12-04-s16/qwen1.5-moe-a2.7b/H200-141GB/tp1-graphs4k-loadsat/vllm/load_sweep.csv",
     "profiles/runs/2026-12-04-s16/qwen1.5-moe-a2.7b/H200-141GB/tp1-graphs4k/vllm"),
    # s17: the steady state, 60 s of arrivals per rate at 50/70/85% of the laws' saturation, on two held-out models
    # (qwen1.5-moe with s16's graphs, mistral-nemo-12b) and on llama-3.1-8b at ISL 1024 (s8 measured its ISL 4096).
    ("profiles/runs/2026-12-04-s17/qwen1.5-moe-a2.7b/H200-141GB/tp1-graphs4k-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-04-s16/qwen1.5-moe-a2.7b/H200-141GB/tp1-graphs4k/vllm"),
    ("profiles/runs/2026-12-04-s17/mistral-nemo-12b/H200-141GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-04-s17/llama-3.1-8b/H200-141GB/tp1-steady1k/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    # s20 (stop 32), a minute per rate, measured after every law and constant was fixed: llama-3.1-8b under the Azure
    # conversation trace's prompt spread (squared CV 0.66); the engine account at ISL 1,024 and 4,096; and with its KV
    # cache cut to 65,536 tokens at OSL 256, equal outputs and outputs of squared CV 1 (swept_replica reads the cut
    # cache from the sweep's meta.yaml; bench/vllm_kv_outputs.py sets the cache itself against the planner's check).
    ("profiles/runs/2026-12-05-s20/llama-3.1-8b/H200-141GB/tp1-spread/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-05-s20/llama-3.1-8b/H200-141GB/tp1-acct/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-05-s20/llama-3.1-8b/H200-141GB/tp1-kv64k/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-05-s20/llama-3.1-8b/H200-141GB/tp1-kv64k-oslspread/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"),
    # s21 (stop 36), 90 s per rate: mistral-nemo-12b with its KV cache cut to 98,304 tokens at ISL 2,048 / OSL 512,
    # equal outputs and outputs of squared CV 1 (bench/vllm_kv_outputs.py's held-out pair).
    ("profiles/runs/2026-12-05-s21/mistral-nemo-12b/H200-141GB/tp1-kv96k/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm"),
    ("profiles/runs/2026-12-05-s21/mistral-nemo-12b/H200-141GB/tp1-kv96k-oslspread/vllm/load_sweep.csv",
     "profiles/runs/2026-12-03-s12/mistral-nemo-12b/H200-141GB/tp1/vllm"),
    # h2 (stop 38), 20 s per rate on the lent H100: qwen3-14b with FP8 weights, a model, card and weight type no
    # constant was fitted on (rates chosen before its laws were known; its profile from the same session).
    ("profiles/runs/2026-12-05-h2/qwen3-14b/H100-SXM-80GB/tp1-fp8-load/vllm/load_sweep.csv",
     "profiles/runs/2026-12-05-h2/qwen3-14b/H100-SXM-80GB/tp1-fp8/vllm"),
    # v3 (stop 41), 20 s per rate on the lent H100: qwen2.5-14b bf16 (in HELD_OUT_SET; s14's rates, chosen on the H200
    # before this card's laws were known; its profile from the same launch).
    ("profiles/runs/2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm"),
    # h6 (stop 42, rule H6), 20 s per rate on the lent H100: qwen3-14b bf16 (in HELD_OUT_SET), rates 0.35-1.2 of the
    # capacity model's saturation on plan h5's profile of it (a separate launch, the same card type), set before the sweep.
    ("profiles/runs/2026-12-06-h6/qwen3-14b/H100-SXM-80GB/tp1-load/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h5/qwen3-14b/H100-SXM-80GB/tp1/vllm"),
    # h8 (stop 43, rule H8 written at stop 42 before it ran), 60 s per rate on the lent H100: the same variant at ISL
    # 4,096 around the model's saturation (0.85-1.15 of 4.10 req/s), the steady state h6's 20-s samples could not reach.
    ("profiles/runs/2026-12-06-h8/qwen3-14b/H100-SXM-80GB/tp1-steady4k/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h5/qwen3-14b/H100-SXM-80GB/tp1/vllm"),
    # h9 (stop 44, rule H9 written before it ran), 20 s per rate on the lent H100: the held-out mistral-nemo-12b bf16
    # (imported), h6's design, rates 0.35-1.2 of the capacity model's saturation on plan h4's profile of it.
    ("profiles/runs/2026-12-06-h9/mistral-nemo-12b/H100-SXM-80GB/tp1-load/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1/vllm"),
    # h10 (stop 44, rule H10 written before it ran), 60 s per rate on the lent H100: the held-out qwen2.5-14b at ISL
    # 4,096 around the model's saturation (0.95-1.32 of 4.02 req/s), where v3's 20-s samples had put it 12% low.
    ("profiles/runs/2026-12-06-h10/qwen2.5-14b/H100-SXM-80GB/tp1-steady4k/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm"),
    # h11 (stop 44, rule H11 written before it ran), 50 s per rate on the lent H100: the held-out llama-3.2-3b at ISL
    # 4,096 at 0.95 / 1.07 of the model's 14.94 req/s (the third rate not sent: the profiler's 2-s TTFT stop).
    ("profiles/runs/2026-12-06-h11/llama-3.2-3b/H100-SXM-80GB/tp1-steady4k/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h3/llama-3.2-3b/H100-SXM-80GB/tp1/vllm"),
    # h12 (stop 45, rule H12 written before it ran), on the lent H100: the steady state on fresh arrivals (seeds 4500 /
    # 4600; every sweep above drew seed k at each ISL's k-th rate), 20 s of settle arrivals kept out of each 70-s
    # sample, at 0.5 / 0.8 (ISL 1,024) and 0.5 (ISL 4,096) of the model's saturation: the held-out qwen3-14b and
    # mistral-nemo-12b (the settled_* RESULT fields).
    ("profiles/runs/2026-12-06-h12/qwen3-14b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h5/qwen3-14b/H100-SXM-80GB/tp1/vllm"),
    ("profiles/runs/2026-12-06-h12/mistral-nemo-12b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1/vllm"),
    # h13 (stop 45, rule H13 written before it ran): h12's design on llama-3.1-8b on the H100 (seed 4700).
    ("profiles/runs/2026-12-06-h13/llama-3.1-8b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/data/llama-3.1-8b/H100-SXM-80GB/tp1/vllm"),
    # h16 (stop 46, rule H16 written before it ran): the settled design on the MoE qwen3-30b-a3b on the H100 (default
    # fused-MoE tiles), ISL 1,024 at 0.5 / 0.8 of its laws' saturation, seed 4800: rule A46's held-out points.
    ("profiles/runs/2026-12-06-h16/qwen3-30b-a3b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/data/qwen3-30b-a3b/H100-SXM-80GB/tp1/vllm"),
    # h16's second variant (stop 47, rule H16 / 47-GPU written before it ran; run folder 2026-12-06-h16b): qwen2.5-14b
    # settled on the H100 at ISL 1,024, 8.37 / 13.4 req/s (0.5 / 0.8 of plan v3's laws), seed 5100; its ISL-4,096
    # rate did not run (the call's time limit); rule A46's second held-out model, laws of plan v3's profile.
    ("profiles/runs/2026-12-06-h16b/qwen2.5-14b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm"),
    # h17 (stop 48, rule 48-GPU written before it ran): the same held-out qwen2.5-14b settled at ISL 4,096, 2.01 / 3.22
    # req/s (0.5 / 0.8 of plan v3's 4.02), seed 6100: the long-prompt rate h16b could not reach.
    ("profiles/runs/2026-12-06-h17/qwen2.5-14b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-v3/qwen2.5-14b/H100-SXM-80GB/tp1/vllm"),
    # h18 (stop 52, rule 48-GPU-b written at stop 48 before it ran): the held-out mistral-nemo-12b settled at ISL
    # 4,096, 3.26 / 4.01 req/s (0.65 / 0.8 of plan h4's laws' 5.01), seed 6200; laws of plan h4's profile.
    ("profiles/runs/2026-12-07-h18/mistral-nemo-12b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1/vllm"),
    # h19 (stop 53, rule 53-GPU-b written before it ran): h18 again with fresh seeds (6300), whether h18's closed-form
    # TTFT miss reproduces on new arrivals.
    ("profiles/runs/2026-12-07-h19/mistral-nemo-12b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1/vllm"),
    # h20 (stop 54, rule 54-GPU-b written before it ran): h19 again with fresh seeds (6400), whether h19's closed-form
    # ITL over-read reproduces on new arrivals.
    ("profiles/runs/2026-12-07-h20/mistral-nemo-12b/H100-SXM-80GB/tp1-steady/vllm/load_sweep.csv",
     "profiles/runs/2026-12-06-h4/mistral-nemo-12b/H100-SXM-80GB/tp1/vllm"),
)
GOAL_P90_PCT = 15.0
# The capacity model predicts the steady state; a 12-s sample from an empty replica does not reach it near
# saturation (the queue has no time to build). The model is therefore also set against the simulator in steady
# state at the same rate: STEADY_REQUESTS Poisson arrivals, the first STEADY_WARMUP share dropped, the median
# p90 of STEADY_SEEDS seeds (the closed form's own error, apart from the samples' transients).
STEADY_REQUESTS = 2000
STEADY_WARMUP = 0.2
STEADY_SEEDS = 3
GOAL_SATURATION_PCT = 10.0


def default_sweeps() -> list[tuple[Path, Path]]:
    """Every load_sweep.csv under profiles/data (profile: its own folder) and the EXTRA_SWEEPS present."""
    found = [(p, p.parent) for p in sorted((ROOT / "profiles" / "data").rglob("load_sweep.csv"))]
    found += [(ROOT / s, ROOT / d) for s, d in EXTRA_SWEEPS if (ROOT / s).is_file()]
    return found


def swept_replica(perf: VariantPerf, sweep: Path) -> VariantPerf:
    """The profile's laws with the swept server's own KV cache: a sweep run with its cache cut (plan s20's
    ``--num-gpu-blocks-override 4096``, so that the cache binds) states it in the meta.yaml beside it; every
    other sweep's server holds the profile's."""
    meta = sweep.parent / "meta.yaml"
    if not meta.is_file():
        return perf
    kv = read_meta(meta).kv_capacity_tokens
    return perf if kv == perf.kv_capacity_tokens else dataclasses.replace(perf, kv_capacity_tokens=kv)


def parse_sweep(arg: str) -> tuple[Path, Path]:
    """`SWEEP.csv[=PROFILE_DIR]`, checked before any work (exit 2 naming the file)."""
    sweep, _, prof = arg.partition("=")
    sp = Path(sweep)
    pd_ = Path(prof) if prof else sp.parent
    if not sp.is_file():
        print(f"--sweep {sweep}: {not_found(sp)} (expected the profiler's load_sweep.csv)", file=sys.stderr)
        raise SystemExit(2)
    if not (pd_ / "prefill.csv").is_file() or not (pd_ / "decode.csv").is_file():
        print(f"--sweep {arg}: {pd_} holds no profile (prefill.csv and decode.csv) for the swept replica's laws; "
              f"name one with SWEEP.csv=PROFILE_DIR", file=sys.stderr)
        raise SystemExit(2)
    read_load_sweep(sp, "--sweep")  # exits 2 naming the flag on a sweep that cannot be read as one
    try:  # the swept model must be in the catalog (the imported models' one unless PLANNER_CATALOG is set)
        prof = load_profile(pd_)
        Catalog.load().model(prof.meta.model)
        check_laws_identifiable(pd_, prof.prefill, prof.decode)  # a load-only run's one-point grid is no profile
    except PlannerError as e:
        print(f"--sweep {arg}: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return sp, pd_


def steady_sim_p90(perf: VariantPerf, isl: int, osl: int, rate_rps: float,
                   shape: capacity.ArrivalShape = capacity.POISSON) -> tuple[float, float]:
    """The simulator's steady-state TTFT and ITL p90 at `rate_rps`: STEADY_REQUESTS Poisson arrivals, the first
    STEADY_WARMUP share dropped, the median over STEADY_SEEDS seeds; with a spread `shape`, prompts of mean `isl`
    drawn from its law (planner/planning/lengths.py)."""
    sims = []
    for seed in range(STEADY_SEEDS):
        rng = np.random.default_rng(seed)
        t = np.cumsum(rng.exponential(1.0 / rate_rps, STEADY_REQUESTS))
        prompts = draw_prompt_lengths(isl, shape.isl_scv, None if shape.isl_max is None else int(shape.isl_max),
                                      STEADY_REQUESTS, rng) if shape.isl_scv > 0 else None
        outputs = draw_prompt_lengths(osl, shape.osl_scv, None, STEADY_REQUESTS, rng) if shape.osl_scv > 0 else None
        df, _ = _mixed_sim(perf, isl, osl, t, FRONTEND_MS_PER_RUNNING, prompts, outputs)
        df = df.iloc[int(STEADY_WARMUP * STEADY_REQUESTS):]
        sims.append((float(np.nanpercentile(df.ttft_ms, PERCENTILE)), float(np.nanpercentile(df.itl_ms, PERCENTILE))))
    ttft, itl = np.median(np.asarray(sims), axis=0)
    return float(ttft), float(itl)


def steady_errors(perf: VariantPerf, points: list[LoadPoint], sat: Saturation) -> dict[str, list[float]]:
    """|model - simulator in steady state| / simulator, %, TTFT and ITL p90, at the realised rate of every
    point below saturation (the model's and the measured)."""
    out: dict[str, list[float]] = {"ttft": [], "itl": []}
    for p in points:
        if not sat.below(p):
            continue
        sim_ttft, sim_itl = steady_sim_p90(perf, round(p.mean_isl), p.osl, p.realised_rps, p.shape)
        lat = capacity.mixed_latency(perf, p.mean_isl, float(p.osl), p.realised_rps, PERCENTILE, p.shape)
        out["ttft"].append(abs(lat.ttft_ms - sim_ttft) / sim_ttft * 100.0)
        out["itl"].append(abs(lat.itl_ms - sim_itl) / sim_itl * 100.0)
    return out


# The closed form against the steady-state simulator OFF the measured points: each swept profile's laws at
# prompt and output lengths no load sweep used, at shares of the model's own saturation rate (the closed form's
# own error, apart from real vLLM and the samples' luck). Same steady-state settings as steady_errors.
GRID_ISL = (512, 2048)
GRID_OSL = (128, 256)
GRID_LOADS = (0.3, 0.5, 0.7, 0.85)
# Long prompts apart (RAG-like classes): where a prompt fills the step budget on its own, the closed form fell below
# the simulator as the load grew (grid_long_* of the RESULT, with the signed mean: the bias; ITL -10.5% until stop 34
# counted in a request's life the prompts queued behind it until its first token, -0.3% since: capacity.py module doc,
# Mixed, rule R3, whose tuning set was ISL 4,096 and held-out set ISL 6,144 / 12,288).
GRID_LONG_ISL = (4096, 8192)
GRID_LONG_OSL = (128,)
GRID_LONG_LOADS = (0.5, 0.7, 0.85)


def grid_errors(perf: VariantPerf, isls: tuple[int, ...] = GRID_ISL, osls: tuple[int, ...] = GRID_OSL,
                loads: tuple[float, ...] = GRID_LOADS) -> dict[str, list[float]]:
    """Signed (model - steady simulator) / simulator, %, TTFT and ITL p90, over `isls` x `osls` x `loads` (shares
    of the model's saturation rate; default GRID_ISL x GRID_OSL x GRID_LOADS)."""
    out: dict[str, list[float]] = {"ttft": [], "itl": []}
    for isl in isls:
        for osl in osls:
            sat = model_saturation_rps(perf, "mixed", isl, osl)
            for load in loads:
                rate = load * sat
                sim_ttft, sim_itl = steady_sim_p90(perf, isl, osl, rate)
                lat = capacity.mixed_latency(perf, float(isl), float(osl), rate, PERCENTILE)
                out["ttft"].append((lat.ttft_ms - sim_ttft) / sim_ttft * 100.0)
                out["itl"].append((lat.itl_ms - sim_itl) / sim_itl * 100.0)
    return out


# A sample shows the steady state only if the queue relaxes well within it: the M/M/1 relaxation time
# S / (1 - sqrt(rho))^2 (S = 1 / saturation rate, rho = rate / saturation rate; Morse 1955, the standard
# approximation for the time a queue from empty takes to reach its stationary law) at most RELAX_SHARE of the
# sample's arrival span. The capacity model is set against the measured p90 on those points alone.
RELAX_SHARE = 0.25


def relaxation_s(rate_rps: float, saturation_rps: float) -> float:
    """M/M/1 relaxation time (s) of a queue at `rate_rps` whose service rate is `saturation_rps`."""
    rho = rate_rps / saturation_rps
    return math.inf if rho >= 1.0 else 1.0 / saturation_rps / (1.0 - math.sqrt(rho)) ** 2


def reachable_errors(perf: VariantPerf, points: list[LoadPoint], sat: Saturation) -> dict[str, list[float]]:
    """|model - measured| / measured, %, TTFT and ITL p90, on the points whose sample could reach the
    steady state the model predicts (relaxation time <= RELAX_SHARE x the sample's arrival span)."""
    out: dict[str, list[float]] = {"ttft": [], "itl": []}
    for p in points:
        span = float(p.sent_s.max() - p.sent_s.min())
        if p.saturated or relaxation_s(p.realised_rps, sat.model[(p.isl, p.osl)]) > RELAX_SHARE * span:
            continue
        lat = capacity.mixed_latency(perf, p.mean_isl, float(p.osl), p.realised_rps, PERCENTILE, p.shape)
        for k, model in (("ttft", lat.ttft_ms), ("itl", lat.itl_ms)):
            meas = float(np.nanpercentile(p.sample_ttft_ms if k == "ttft" else p.sample_itl_ms, PERCENTILE))
            out[k].append(abs(model - meas) / meas * 100.0)
    return out


# A server stall: the engine delivers no first token for STALL_MIN_GAP_S (and STALL_GAP_FACTOR x the sample's
# median first-token gap) while requests arrive. Seen once per MoE launch in s8 (profiles/runs/2026-12-03-s8:
# 2.1 s and 1.7 s with 17 and 14 arrivals, against median gaps of ~0.1 s); a Poisson stream at the sample's rate
# leaves such a gap with probability ~exp(-arrivals in it). Thresholds for flagging, not a model constant.
STALL_MIN_GAP_S = 1.0
STALL_GAP_FACTOR = 10.0


@dataclasses.dataclass(frozen=True)
class Stall:
    """The longest pause in first-token delivery of one sample and the requests that arrived during it."""

    gap_s: float
    arrivals: int


def longest_stall(point: LoadPoint) -> Stall | None:
    """The sample's longest first-token gap if it is a stall (see STALL_MIN_GAP_S), else None."""
    first = point.first_token_s
    if first.size < 3:
        return None
    gaps = np.diff(first)
    i = int(np.argmax(gaps))
    gap = float(gaps[i])
    if gap < max(STALL_MIN_GAP_S, STALL_GAP_FACTOR * float(np.median(gaps))):
        return None
    arrived = int(np.sum((point.sent_s > first[i]) & (point.sent_s < first[i + 1])))
    return Stall(gap_s=gap, arrivals=arrived) if arrived > 0 else None


def _mean(xs: list[float] | None) -> float:
    return float(np.mean(xs)) if xs else math.nan


def label_of(sweep: Path) -> str:
    """`<model> (<session run>)` for a session's sweep, `<model>/<gpu>/<variant>` for a committed one."""
    rel = sweep.resolve().relative_to(ROOT) if sweep.resolve().is_relative_to(ROOT) else sweep
    if rel.parts[:2] == ("profiles", "runs") and len(rel.parts) > 4:
        gpu_i = next((i for i, p in enumerate(rel.parts) if p.endswith("GB") and i > 3), None)
        if gpu_i is None:
            return f"{rel.parts[3].removesuffix('-loadsat')} ({rel.parts[2]})"
        # a sub-run of the session (e.g. its second launch) and the variant folder's tag (e.g. tp1-kv64k: kv64k)
        within = [*rel.parts[3:gpu_i - 1], *([rel.parts[gpu_i + 1].partition("-")[2]] if len(rel.parts) > gpu_i + 2 else [])]
        return f"{rel.parts[gpu_i - 1]} ({', '.join([rel.parts[2], *(w for w in within if w)])})"
    parts = sweep.resolve().parts
    for i, p in enumerate(parts):
        if p.endswith("GB") and 0 < i < len(parts) - 1:  # <model>/<gpu>/<variant>
            return f"{parts[i - 1]}/{p}/{parts[i + 1]}"
    return sweep.parent.name


def bias_table(biases: Sequence[P90Bias]) -> Table:
    """Signed p90 errors against the measured samples below saturation, by prompt length: the simulator's (the
    median of its chance band: n Poisson arrivals at the sample's rate, as the sample was taken) and the closed
    form's, all samples and the settled ones (taken after a settle window: the steady state) apart. Which of the two
    sits nearer vLLM at each ISL, and on which side: where the closed form and the steady simulator disagree
    (bench/mixed_grid.py), this says which one the real samples side with."""
    t = Table(title="Signed p90 error vs the measured samples below saturation, by ISL: simulator (its chance band's "
                    "median) and capacity model; mean %, and the share of samples the simulator reads above")
    for c in ("ISL", "points", "TTFT sim", "TTFT sim above %", "TTFT model", "ITL sim", "ITL sim above %", "ITL model"):
        t.add_column(c, justify="right")
    # one row per ISL over all its samples, then one over its settled samples alone where it has any
    rows = sorted({(b.isl, False) for b in biases} | {(b.isl, True) for b in biases if b.settled})
    for isl, settled_only in rows:
        mine = [b for b in biases if b.isl == isl and (b.settled or not settled_only)]
        sim = {k: [b.band_median_pct for b in mine if b.metric == k] for k in ("ttft", "itl")}
        mod = {k: [b.model_pct for b in mine if b.metric == k] for k in ("ttft", "itl")}
        label = f"{isl} settled" if settled_only else str(isl)
        t.add_row(label, str(len(sim["ttft"])), *(cell for k in ("ttft", "itl") for cell in (
            f"{_mean(sim[k]):+.1f}" if sim[k] else "-",
            f"{100.0 * _mean([float(x > 0) for x in sim[k]]):.0f}" if sim[k] else "-",
            f"{_mean(mod[k]):+.1f}" if mod[k] else "-")))
    return t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="append", default=None, metavar="SWEEP.csv[=PROFILE_DIR]",
                    help="a load sweep and the profile of the swept replica (default: every committed sweep)")
    ap.add_argument("--no-grid", action="store_true",
                    help="skip the closed form against the steady simulator off the measured points (two grids per "
                         "profile, most of a one-sweep run); their RESULT fields read nan")
    a = ap.parse_args(argv)
    use_byo_catalog_unless_set()  # the imported models (default sweeps and --sweep alike)
    sweeps = [parse_sweep(s) for s in a.sweep] if a.sweep else default_sweeps()
    if not sweeps:
        print("no load sweep found (profiles/data/**/load_sweep.csv); name one with --sweep", file=sys.stderr)
        return 2
    con = Console(width=320)
    rows, pooled, held = [], {}, {}
    sat_errs: list[float] = []
    steady_sat_errs: list[float] = []  # the same, where the first saturated sample was a steady-state one
    untold: list[float] = []  # per ISL kept up above the model's saturation: 1 where the replay kept up too
    stalls: list[tuple[str, LoadPoint, Stall, bool]] = []
    fitted: dict[Path, VariantPerf] = {}  # each swept profile's laws, fitted once (the grid reuses them)
    biases: list[P90Bias] = []  # every sample's signed p90 errors (the by-ISL bias table)
    for sweep, prof in sweeps:
        is_tuning = sweep.resolve() == TUNING_SWEEP.resolve()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # extrapolation warnings of the laws are in the tables
            if prof.resolve() not in fitted:
                fitted[prof.resolve()] = fit_profile(load_profile(prof), Catalog.load())[0]
            perf = swept_replica(fitted[prof.resolve()], sweep)
            e = part_vllm_load(sweep, 0, 0, con, prof, perf=perf, tuning_sweep=is_tuning, biases=biases)
            points = read_load_sweep(sweep, "--sweep")
            sat = saturation(perf, points)
            steady = steady_errors(perf, points, sat)
            reach = reachable_errors(perf, points, sat)
        for p in points:
            st = longest_stall(p)
            if st is not None:
                stalls.append((label_of(sweep), p, st, sat.below(p)))
        for k in ("ttft", "itl"):
            pooled.setdefault(f"steady_{k}", []).extend(steady[k])
            pooled.setdefault(f"reach_{k}", []).extend(reach[k])
            pooled.setdefault(f"band_{k}", []).extend(e.get(f"vllm_load_{k}_p90_model_vs_band", []))
            pooled.setdefault(f"inband_{k}", []).extend(e.get(f"vllm_load_{k}_p90_in_band", []))
            for src in ("model", "sim", "in_band"):  # samples taken after a settle window (the steady state)
                pooled.setdefault(f"settled_{k}_{src}", []).extend(e.get(f"vllm_load_settled_{k}_p90_{src}", []))
        # rows of this sweep held out of the frontend constant: all but llama-3.1-8b ISL 1024
        for k in ("vllm_load_ttft_p90_model", "vllm_load_itl_p90_model", "vllm_load_ttft_p90_sim", "vllm_load_itl_p90_sim"):
            pooled.setdefault(k, []).extend(e.get(k, []))
            src = e.get(k.replace("vllm_load_", "vllm_load_heldout_"), []) if is_tuning else e.get(k, [])
            held.setdefault(k, []).extend(src)
        sat_err = e.get("vllm_load_saturation_err", [])
        sat_errs.extend(sat_err)
        steady_sat_errs.extend(e.get("vllm_load_saturation_err_steady", []))
        untold.extend(e.get("vllm_load_saturation_untold", []))
        rows.append((label_of(sweep), len(e.get("vllm_load_ttft_p90_model", [])),
                     *(_mean(e.get(k)) for k in
                       ("vllm_load_ttft_p90_model", "vllm_load_itl_p90_model", "vllm_load_ttft_p90_sim", "vllm_load_itl_p90_sim")),
                     *(_mean(steady[k]) for k in ("ttft", "itl")),
                     len(reach["ttft"]), *(_mean(reach[k]) for k in ("ttft", "itl")),
                     *(_mean(e.get(f"vllm_load_{k}_p90_model_vs_band")) for k in ("ttft", "itl")),
                     *(_mean(e.get(f"vllm_load_{k}_p90_in_band")) for k in ("ttft", "itl")),
                     ", ".join(f"{x:.0f}" for x in sat_err) or "-", "tuning (ISL 1024)" if is_tuning else "held out"))
    grid_rows, grid_pooled = [], {"ttft": [], "itl": []}
    long_rows, long_signed = [], {"ttft": [], "itl": []}
    for gperf in [] if a.no_grid else fitted.values():  # each profile once, in sweep order
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = grid_errors(gperf)
            gl = grid_errors(gperf, GRID_LONG_ISL, GRID_LONG_OSL, GRID_LONG_LOADS)
        grid_rows.append((f"{gperf.model}/{gperf.gpu}/tp{gperf.tp}{gperf.precision}", g))
        long_rows.append((f"{gperf.model}/{gperf.gpu}/tp{gperf.tp}{gperf.precision}", gl))
        for k in ("ttft", "itl"):
            grid_pooled[k].extend(abs(x) for x in g[k])
            long_signed[k].extend(gl[k])
    tg = Table(title=f"The capacity model vs the steady-state simulator off the measured points (ISL {GRID_ISL}, OSL "
                     f"{GRID_OSL}, {', '.join(f'{x:g}' for x in GRID_LOADS)} of the model's saturation): p90 error %")
    for c in ("profile", "points", "TTFT MAPE", "TTFT worst", "ITL MAPE", "ITL worst"):
        tg.add_column(c, justify="right")
    for lab, g in grid_rows:
        tg.add_row(lab, str(len(g["ttft"])), f"{_mean([abs(x) for x in g['ttft']]):.1f}", f"{max(g['ttft'], key=abs):+.1f}",
                   f"{_mean([abs(x) for x in g['itl']]):.1f}", f"{max(g['itl'], key=abs):+.1f}")
    con.print(tg)
    tl = Table(title=f"Long prompts: the capacity model vs the steady-state simulator (ISL {GRID_LONG_ISL}, OSL {GRID_LONG_OSL}, "
                     f"{', '.join(f'{x:g}' for x in GRID_LONG_LOADS)} of the model's saturation): p90 error %, signed mean = bias")
    for c in ("profile", "points", "TTFT MAPE", "TTFT bias", "ITL MAPE", "ITL bias"):
        tl.add_column(c, justify="right")
    for lab, g in long_rows:
        tl.add_row(lab, str(len(g["ttft"])), *(f"{v:{f}}" for k in ("ttft", "itl")
                                                for v, f in ((_mean([abs(x) for x in g[k]]), ".1f"), (_mean(g[k]), "+.1f"))))
    con.print(tl)
    t = Table(title=f"Real vLLM 0.26.0 under Poisson load, per sweep: p90 MAPE % below saturation (goal <= {GOAL_P90_PCT:g}), "
                    f"saturation-rate error % per ISL that saturated (goal <= {GOAL_SATURATION_PCT:g})")
    for c in ("sweep", "points", "TTFT model", "ITL model", "TTFT sim (replay)", "ITL sim (replay)",
              "TTFT model vs steady sim", "ITL model vs steady sim", "steady-reachable points",
              "TTFT model there", "ITL model there", "TTFT model vs chance band", "ITL model vs chance band",
              "TTFT measured in band %", "ITL measured in band %", "saturation err %", "frontend constant"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(r[0], str(r[1]), *(f"{x:.1f}" for x in r[2:8]), str(r[8]), *(f"{x:.1f}" for x in r[9:13]),
                  *(f"{x:.0f}" for x in r[13:15]), r[15], r[16])
    con.print(t)
    con.print(bias_table(biases))
    if stalls:
        ts = Table(title=f"Samples with a server stall (no first token for >= {STALL_MIN_GAP_S:g} s and "
                         f">= {STALL_GAP_FACTOR:g}x the median gap while requests arrived): their p90 is the stall's")
        for c in ("sweep", "ISL", "rate rps", "gap s", "arrivals during it", "below saturation"):
            ts.add_column(c, justify="right")
        for lab, p, st, below in stalls:
            ts.add_row(lab.replace("\n", " "), str(p.isl), f"{p.rate_rps:g}", f"{st.gap_s:.2f}", str(st.arrivals),
                       "yes" if below else "no")
        con.print(ts)

    def m(d: dict[str, list[float]], k: str) -> float:
        return _mean(d.get(k))

    print(f"RESULT sweeps={len(sweeps)} points={len(pooled.get('vllm_load_ttft_p90_model', []))} "
          f"ttft_p90_model_mape_pct={m(pooled, 'vllm_load_ttft_p90_model'):.1f} itl_p90_model_mape_pct={m(pooled, 'vllm_load_itl_p90_model'):.1f} "
          f"ttft_p90_sim_mape_pct={m(pooled, 'vllm_load_ttft_p90_sim'):.1f} itl_p90_sim_mape_pct={m(pooled, 'vllm_load_itl_p90_sim'):.1f} "
          f"heldout_ttft_p90_model_mape_pct={m(held, 'vllm_load_ttft_p90_model'):.1f} "
          f"heldout_itl_p90_model_mape_pct={m(held, 'vllm_load_itl_p90_model'):.1f} "
          f"steady_ttft_p90_model_vs_sim_mape_pct={m(pooled, 'steady_ttft'):.1f} "
          f"steady_itl_p90_model_vs_sim_mape_pct={m(pooled, 'steady_itl'):.1f} "
          f"reachable_points={len(pooled.get('reach_ttft', []))} "
          f"reachable_ttft_p90_model_mape_pct={m(pooled, 'reach_ttft'):.1f} reachable_itl_p90_model_mape_pct={m(pooled, 'reach_itl'):.1f} "
          f"band_ttft_p90_model_mape_pct={m(pooled, 'band_ttft'):.1f} band_itl_p90_model_mape_pct={m(pooled, 'band_itl'):.1f} "
          f"ttft_p90_in_band_pct={m(pooled, 'inband_ttft'):.0f} itl_p90_in_band_pct={m(pooled, 'inband_itl'):.0f} "
          f"grid_ttft_p90_model_vs_sim_mape_pct={_mean(grid_pooled['ttft']):.1f} "
          f"grid_itl_p90_model_vs_sim_mape_pct={_mean(grid_pooled['itl']):.1f} "
          f"grid_long_ttft_p90_model_vs_sim_mape_pct={_mean([abs(x) for x in long_signed['ttft']]):.1f} "
          f"grid_long_ttft_p90_bias_pct={_mean(long_signed['ttft']):+.1f} "
          f"grid_long_itl_p90_model_vs_sim_mape_pct={_mean([abs(x) for x in long_signed['itl']]):.1f} "
          f"grid_long_itl_p90_bias_pct={_mean(long_signed['itl']):+.1f} "
          f"stalled_samples={sum(1 for *_, below in stalls if below)} "
          f"saturation_err_pct={_mean(sat_errs):.1f} "
          f"saturation_worst_pct={max(sat_errs) if sat_errs else math.nan:.1f} "
          f"saturation_steady_isls={len(steady_sat_errs)} saturation_steady_err_pct={_mean(steady_sat_errs):.1f} "
          f"saturation_steady_worst_pct={max(steady_sat_errs) if steady_sat_errs else math.nan:.1f} "
          f"unsaturated_below_model={len(untold)} unsaturated_below_model_replay_too={int(sum(untold))} "
          f"settled_points={len(pooled.get('settled_ttft_model', []))} "
          f"settled_ttft_p90_model_mape_pct={m(pooled, 'settled_ttft_model'):.1f} "
          f"settled_itl_p90_model_mape_pct={m(pooled, 'settled_itl_model'):.1f} "
          f"settled_ttft_p90_sim_mape_pct={m(pooled, 'settled_ttft_sim'):.1f} "
          f"settled_itl_p90_sim_mape_pct={m(pooled, 'settled_itl_sim'):.1f} "
          f"settled_ttft_p90_in_band_pct={m(pooled, 'settled_ttft_in_band'):.0f} "
          f"settled_itl_p90_in_band_pct={m(pooled, 'settled_itl_in_band'):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
