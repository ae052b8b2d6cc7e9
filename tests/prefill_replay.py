"""A prefill-only replay (every request one output token, plan r4's design: profiles/gpu_session.py PLAN_R4) produced
by the profiler against the EMULATED vLLM (planner.simulate.emulator: a fake of an external system, vLLM on a GPU,
which cannot run here), written in the committed layout (<run>/<model>/<gpu>/<variant>/vllm/trace_replay.csv beside
its meta.yaml) under a temporary folder: what bench/vllm_trace_replay.py and bench/vllm_prefill_mix.py read before
plan r4 has run on a GPU. Never written under profiles/runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from planner.io.catalog import Catalog
from planner.perf.laws import VariantPerf, fit_profile
from planner.perf.profiledata import load_profile, profile_dir
from planner.simulate.emulator import EmulatorFleet
from profiles.backends.vllm import TRACE_REPLAY_FILE, VllmRunConfig, run_profile

REPO = Path(__file__).resolve().parents[1]
MODEL, GPU = "qwen3-30b-a3b", "H100-SXM-80GB"
# plan r4's two classes (profiles/runs/2026-12-08-r4/traces/prefill_mix.csv): prompt tokens, req/s
CLASSES = ((800, 12.0), (8000, 1.5))


def bundled_laws() -> VariantPerf:
    """The laws bench/vllm_trace_replay.read_replay fits for the replay (the bundled H100 profile of MODEL): the
    emulator serves these, so the benches' model and simulator run the laws the 'measured' replica ran."""
    d = profile_dir(REPO / "profiles" / "data", MODEL, GPU, 1, "bf16", "bf16", vllm=True)
    perf, _, _ = fit_profile(load_profile(d), Catalog.load())
    return perf


def arrivals(span_s: float, seed: int) -> tuple[tuple[float, int, int], ...]:
    """Poisson arrivals of CLASSES over `span_s` seconds, every output one token, sorted by time."""
    rng = np.random.default_rng(seed)
    rows = [(float(t), isl, 1) for isl, rate in CLASSES
            for t in np.cumsum(rng.exponential(1.0 / rate, int(rate * span_s * 1.5))) if t < span_s]
    rows.sort()
    t0 = rows[0][0]
    return tuple((t - t0, k, o) for t, k, o in rows)


def emulated_prefill_replay(root: Path, span_s: float = 30.0, seed: int = 6001, time_scale: float = 0.2) -> Path:
    """The profiler's trace_replay.csv of `arrivals` replayed on one emulated replica of `bundled_laws`, under
    `root`/run/MODEL/GPU/tp1-replay-prefill-mix/vllm/ (plan r4's variant); its path."""
    out = root / "2026-12-08-r4" / MODEL / GPU / "tp1-replay-prefill-mix" / "vllm"
    out.mkdir(parents=True)
    with EmulatorFleet(bundled_laws(), model_name=MODEL, time_scale=time_scale) as fleet:
        cfg = VllmRunConfig(model=MODEL, gpu=GPU, tp=1, out=out, endpoint=fleet.urls[0], prefill_isl=(512,),
                            prefill_batch=(1,), decode_batch=(1,), decode_context=(512,), decode_tokens=8, repeats=1,
                            time_scale=time_scale, rate_trace=arrivals(span_s, seed), rate_warmup_s=0.0,
                            rate_seed=seed, progress=False)
        run_profile(cfg)
    return out / TRACE_REPLAY_FILE
