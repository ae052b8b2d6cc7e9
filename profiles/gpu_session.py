"""Profile several vLLM variants back to back on one lent GPU, inside a fixed device-time budget.

    PYTHONPATH=/tmp/site:. python3 -m profiles.gpu_session --out /tmp/res --deadline-unix-s $((`date +%s` + 1400))
    ... --plan h1 [--gpu H100-SXM-80GB]   # the lent card's catalog name; default: the one nvidia-smi names (the
                                          # profiler refuses a --gpu that the driver contradicts)

Each variant is one ``planner profile --backend vllm --dummy-weights`` run (profiles.vllm_cli, in a
subprocess): the model folder is written from the catalog, ``vllm serve`` starts with CUDA graphs
(as deployed), the sparse grids below are measured, the server stops. The session knows the
device-time deadline: every variant gets an absolute end for its sweeps such that the variants after
it still fit their start-up plus a minimum sweep; a variant that would not fit is skipped and said
so. Results go to ``OUT/<model>/<gpu>/tp1[-fp8][-kvfp8]/vllm/`` (the repository's layout) and the
session log to ``OUT/session.log``; ``OUT/DONE`` marks the end.

The grids are DESIGN.md's grids thinned to what a fit of the laws needs (three contexts and five
batches for decode, six ISLs and two batches for prefill) plus points held out for an error check;
decode points whose KV exceeds ``max_kv`` are skipped (their prefill alone would take most of a
variant's time on the 32B model). Start-up times are the measured ones of the vLLM 0.26.0 runs in
../shared/tools/vllm-offline/README.md (106-140 s with CUDA graphs on the H200).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

# vLLM 0.26.0 needs this without flashinfer (vllm-offline README); the others keep it offline.
SERVER_ENV = {"VLLM_USE_FLASHINFER_SAMPLER": "0", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1",
              "PYTHONUNBUFFERED": "1"}
SERVER_CMD = f"{sys.executable} -m vllm.entrypoints.openai.api_server"
GPU = "H200-141GB"
# A sweep needs at least this long to give a usable (if sparse) profile.
MIN_SWEEP_S = 60.0
# Stopping a server and freeing the GPU (SIGINT, engine shutdown), seconds.
STOP_S = 15.0
# After its rate deadline the profiler finishes the requests in flight (a saturated replica's queue) and writes its
# files: the session waits this long more before stopping it.
DRAIN_S = 60.0
# Stopping a profiler past its time: SIGTERM, then this long for it to stop its server (its finally block) ...
TERM_GRACE_S = 45.0
# ... and stop_leftover_server's SIGINT and SIGKILL waits (20 + 5 s) if the server outlived it.
LEFTOVER_STOP_S = 25.0
FORCED_STOP_S = TERM_GRACE_S + LEFTOVER_STOP_S
"""The longest a profiler stopped at its hard end may still hold the GPU: kept free before the session's deadline."""


@dataclass(frozen=True)
class Window:
    """When one variant's profiler must be done (absolute unix times)."""

    sweep_end: float
    """End of its grid sweeps (the profiler's --deadline-unix-s)."""
    rate_end: float | None
    """End of its load sweep's arrivals (--rate-deadline-unix-s); None: no load sweep."""
    hard_end: float
    """When the session stops the profiler (SIGTERM) if it is still running."""


def variant_window(now: float, deadline: float, startup_s: float, sweep_s: float, rate_s: float, has_rates: bool,
                   later_min_s: float, later_full_s: float, scale: float = 1.0) -> Window:
    """The time one variant gets so that the session keeps its promise, every server stopped by `deadline`, even
    when this profiler has to be stopped: its hard end leaves the later variants' minimum plans (`later_min_s`) and
    the stop's own waits (FORCED_STOP_S); its load sweep runs only with time to spare after every
    later variant's full plan (`later_full_s`), and its arrivals end DRAIN_S before the hard end. Plan k3h (stop 43)
    ran past its deadline by the drain and the stop's waits (the hard end was the rate deadline + 60 s, the rate
    deadline itself near the session's deadline), and the device call that held it timed out before its files were
    copied back: the run was lost."""
    last = deadline - later_min_s - FORCED_STOP_S
    sweep_end = min(now + startup_s + sweep_s, last)
    rate_end = None
    if has_rates:
        spare = deadline - now - startup_s - sweep_s - later_full_s - STOP_S
        if spare >= 60 * scale:
            rate_end = min(sweep_end + min(spare, rate_s), last - DRAIN_S * scale)
            if rate_end <= sweep_end:
                rate_end = None
    hard_end = min((rate_end + DRAIN_S * scale) if rate_end is not None else sweep_end + 60 * scale, last)
    return Window(sweep_end, rate_end, hard_end)


@dataclass
class Variant:
    model: str
    startup_s: float  # expected start to /health (measured, README)
    sweep_s: float  # planned prefill + decode sweep time
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    prefill_isl: str = "128,512,2048,4096,8192,16384"
    prefill_batch: str = "1,4"
    decode_batch: str = "1,8,32,128,256"
    decode_context: str = "512,2048,8192"
    max_kv: int = 300_000
    rates: str | None = None  # the Poisson load sweep, run in the same server after the profile
    rate_s: float = 0.0
    extra: list[str] = field(default_factory=list)
    prefill_frac: float = 0.3  # share of the sweep time the prefill sweep may use
    tag: str = ""  # suffix of the output folder (e.g. "-loadsat": a load-only run beside the profile)
    server_env: dict[str, str] = field(default_factory=dict)  # extra environment of this variant's server
    rate_duration_s: float = 12.0  # arrivals per rate of the load sweep, s (each rate sends max(20, rate x this))
    # the profiler ends an ISL's rates after the first whose median TTFT passes this (the queue grows); a steady-state
    # plan that must show the served rate's plateau sets it higher (plans h10 / h11 lost their top rate to the 2 s)
    saturation_ttft_ms: float = 2000.0
    # the server's --max-model-len: the longest grid prompt + its output, within the model's context
    max_model_len: int = 17408
    rate_isl_scv: float = 0.0  # spread of the load sweep's prompt lengths (squared CV; 0: every prompt of the ISL)
    rate_osl: int = 128  # the load sweep's mean output, tokens
    rate_osl_scv: float = 0.0  # spread of the load sweep's output lengths (squared CV; 0: every output of rate_osl)
    rate_seed: int = 0  # the load sweep's seed (the i-th ISL's k-th rate: + 1000 i + k); every plan before h12 used 0
    rate_settle_s: float = 0.0  # seconds of each rate's arrivals sent first and kept out of the sample (0: none)
    rate_trace: str | None = None  # a request trace replayed instead of the rates (planner profile --rate-trace)

    @property
    def label(self) -> str:
        return self.model + ("-fp8" if self.quantization else "") + ("-kvfp8" if self.kv_cache_dtype else "") + self.tag


PLAN = [
    Variant("llama-3.1-8b", startup_s=110, sweep_s=110, rates="1024=3,8,14,20,26;4096=2,4,6,8", rate_s=150),
    Variant("qwen3-30b-a3b", startup_s=125, sweep_s=110),
    Variant("qwen3-32b", startup_s=150, sweep_s=180, prefill_isl="128,512,2048,4096,8192", max_kv=150_000),
    Variant("llama-3.1-8b", startup_s=140, sweep_s=90, quantization="fp8"),
    Variant("llama-3.1-8b", startup_s=120, sweep_s=90, kv_cache_dtype="fp8"),
]

# The second session (2026-12-02, evening): a load sweep past saturation on the bf16 8B replica (the first
# never saturated it: 26 rps at ISL 1k and 8 rps at 4k were sustained; the model saturates at 32.3 and 8.8),
# with a one-point profile grid so the server's time goes to the rates; two models the prior was never
# calibrated on (held out: a dense 14B of the Qwen3 family, a small tied-embedding Llama); the MoE
# profile again with the profiler's request-overhead wait fixed.
PLAN_S2 = [
    Variant("llama-3.1-8b", startup_s=110, sweep_s=25, prefill_isl="512", prefill_batch="1", decode_batch="1",
            decode_context="512", rates="1024=24,30,34,38,42,48,56;4096=6,8,9,10,11,13", rate_s=330, tag="-loadsat"),
    Variant("qwen3-14b", startup_s=130, sweep_s=120),
    Variant("llama-3.2-3b", startup_s=100, sweep_s=100),
    Variant("qwen3-30b-a3b", startup_s=125, sweep_s=110),
]
# The third session (2026-12-03, morning; raw results in profiles/runs/2026-12-03-s3): prefill again with
# the client-side *step* method (a decoding blocker's token gaps; dropped since, module doc of
# profiles/backends/vllm.py) where
# the blocker method failed (FP8 weights: batches split over steps; the MoE: client TTFT only) and on
# bf16 where it worked (the two methods side by side); decode there is a one-point placeholder, the
# committed decode sweeps stay. Then the two held-out models in full (the s2 run was cut).
def _prefill_only(model: str, startup_s: float, quantization: str | None = None, tag: str = "-step") -> Variant:
    return Variant(model, startup_s=startup_s, sweep_s=60, quantization=quantization, decode_batch="1",
                   decode_context="512", prefill_frac=0.9, tag=tag)


PLAN_S3 = [
    _prefill_only("llama-3.1-8b", 140, quantization="fp8"),
    _prefill_only("qwen3-30b-a3b", 125),
    _prefill_only("llama-3.1-8b", 110),
    Variant("qwen3-14b", startup_s=130, sweep_s=120),
    Variant("llama-3.2-3b", startup_s=100, sweep_s=100),
]
# The fourth (2026-12-03, late morning): prefill by the engine method (vLLM's own prefill-time histogram)
# where the committed profiles' prefill is doubtful (FP8 weights: the blocker method's split batches;
# the MoE: client TTFT only; llama-3.2-3b: measured by the dropped step method) and on bf16 llama-3.1-8b,
# whose blocker-method prefill and client TTFT agree, to check the method against both.
PLAN_S4 = [
    _prefill_only("llama-3.1-8b", 140, quantization="fp8", tag="-engine"),
    _prefill_only("llama-3.1-8b", 110, tag="-engine"),
    _prefill_only("qwen3-30b-a3b", 125, tag="-engine"),
    _prefill_only("llama-3.2-3b", 100, tag="-engine"),
]
# The fifth (2026-12-03, session 2): the engine method on the variants s4 had no time for: the MoE (its
# committed prefill is client TTFT), qwen3-32b and the FP8 KV cache (blocker method), llama-3.2-3b
# (held out; its committed prefill is the dropped step method's).
PLAN_S5 = [
    _prefill_only("qwen3-30b-a3b", 125, tag="-engine"),
    Variant("qwen3-32b", startup_s=150, sweep_s=70, prefill_isl="128,512,2048,4096,8192", max_kv=150_000,
            decode_batch="1", decode_context="512", prefill_frac=0.9, tag="-engine"),
    Variant("llama-3.1-8b", startup_s=120, sweep_s=60, kv_cache_dtype="fp8", decode_batch="1",
            decode_context="512", prefill_frac=0.9, tag="-engine"),
    _prefill_only("llama-3.2-3b", 100, tag="-engine"),
]
# The sixth (2026-12-03, session 2): the MoE again, with vLLM's routing simulator drawing each token's
# experts uniformly at random (VLLM_MOE_ROUTING_SIMULATION_STRATEGY, vLLM 0.26 envs.py): with dummy
# weights the real router's choices are whatever random gate weights give, and s5's MoE prefill was
# neither smooth in tokens nor stable between launches. Prefill and decode, to compare with s5 and s2.
PLAN_S6 = [
    Variant("qwen3-30b-a3b", startup_s=150, sweep_s=200, decode_batch="1,8,32,128,256", decode_context="512,2048",
            prefill_frac=0.45, tag="-uniform", server_env={"VLLM_MOE_ROUTING_SIMULATION_STRATEGY": "uniform_random"}),
]
# The seventh (2026-12-03, session 3): issue 10's under-load check on more than one model. Poisson load
# sweeps past the capacity model's saturation rate (qwen3-32b: 8.7 rps at ISL 1024, 2.05 at 4096;
# llama-3.2-3b, held out of every calibration: 55 / 16.7; the MoE: 34.7 / 10.8; OSL 128, from the
# committed laws) with a one-point profile grid, so the server's time goes to the rates.
def _load_only(model: str, startup_s: float, rates: str, rate_s: float, rate_duration_s: float = 12.0,
               tag: str = "-loadsat") -> Variant:
    return Variant(model, startup_s=startup_s, sweep_s=25, prefill_isl="512", prefill_batch="1", decode_batch="1",
                   decode_context="512", rates=rates, rate_s=rate_s, rate_duration_s=rate_duration_s, tag=tag)


PLAN_S7 = [
    _load_only("qwen3-32b", 150, "1024=3,5,6.5,7.5,8.5,10;4096=0.8,1.3,1.7,2,2.4", 240),
    _load_only("llama-3.2-3b", 100, "1024=15,30,40,48,55,62;4096=5,9,12,14.5,17,20", 200),
    _load_only("qwen3-30b-a3b", 150, "1024=8,16,24,30,36,42;4096=3,6,8,10,12,14", 200),
]
# The eighth (prepared 2026-12-03 for the next lent GPU): what s7 left. (1) The steady state near saturation on
# real vLLM: llama-3.1-8b at ISL 4096, 73-92% of the capacity model's 8.9 rps, 60 s of arrivals per rate, so the
# queue builds as in the model's steady state (the 12-s samples stay transient: s7 README). (2) The MoE's load
# sweep again, now with the profiler's warm-ups (each prefill point once untimed, 5 s of arrivals before the
# rates: the fused-MoE JIT stalls of s5-s7), in one launch with its prefill grid (is the spread of s5 the JIT's?).
PLAN_S8 = [
    _load_only("llama-3.1-8b", 110, "4096=6.5,7.5,8.2", 260, rate_duration_s=60.0, tag="-steady"),
    Variant("qwen3-30b-a3b", startup_s=150, sweep_s=70, decode_batch="1", decode_context="512", prefill_frac=0.95,
            rates="1024=8,16,24,30,36,42;4096=3,6,8,10,12,14", rate_s=230, tag="-warm"),
]
# The ninth (2026-12-03, session 4, after s8): the MoE's prefill at the token counts between the grid's points,
# batch 1, engine method, warmed up: under load at ISL 1024 its TTFT is ~2x the law's (s8 README), and the grid
# (512, 2048) never measured 1,024 tokens; 2,048 already costs as much as 4,096.
PLAN_S9 = [
    Variant("qwen3-30b-a3b", startup_s=150, sweep_s=60, prefill_isl="256,768,1024,1536,2048,3072,4096",
            prefill_batch="1", decode_batch="1", decode_context="512", prefill_frac=0.95, tag="-dense-grid"),
]
# The tenth (2026-12-03, session 5): per-step timings under load. vLLM 0.26 logs every engine iteration with
# --enable-logging-iteration-details (its context requests/tokens, generation requests and elapsed ms;
# vllm/v1/metrics/loggers.py), so the composition of real mixed steps is measured, not inferred from request
# times: where an MoE's prefill cost lands (the prompt's own step or its riders), and the 8B's +8% per
# prompt near saturation (s8). Load-only runs with the profiler's warm-ups; 30-40 s of arrivals per rate.
# (s10 and s11 ran with "--extra-args=--enable-logging-iteration-details" and the table was parsed afterwards;
# `planner profile --log-iterations` now adds the flag and writes iterations.csv.gz itself)
_ITER = ["--log-iterations"]
PLAN_S10 = [
    replace(_load_only("qwen3-30b-a3b", 150, "1024=8,16,24;4096=6,10", 230, rate_duration_s=30.0, tag="-iter"),
            extra=_ITER),
    replace(_load_only("llama-3.1-8b", 110, "4096=6.5,8.2;1024=20,30", 230, rate_duration_s=40.0, tag="-iter"),
            extra=_ITER),
    replace(_load_only("qwen3-32b", 150, "1024=5,7.5;4096=1.3,2", 230, rate_duration_s=40.0, tag="-iter"), extra=_ITER),
]
# The eleventh (2026-12-03, session 5, after s10): the MoE's run of s10 again in a second server launch, to check on
# launch-to-launch spread the share of its token table that mixed steps pay (chosen on s10, laws.MOE_TABLE_MIXED_SHARE).
PLAN_S11 = [replace(PLAN_S10[0], tag="-iter2")]
# The twelfth (2026-12-03, session 6): two models nobody here catalogued, imported from their Hugging Face
# config.json by `planner catalog import-hf` (examples/byo-model/catalog; run with PLANNER_CATALOG set to it):
# their real vLLM profiles hold out the roofline prior on a new dense shape (Mistral-Nemo 12B: head_dim 128 with
# hidden 5120, a 131k vocabulary) and a new MoE (Mixtral 8x7B: 8 experts of 14,336, top-2), and Nemo's Poisson
# load sweep (0.3-1.15 of the prior's saturation, 25.8 rps at ISL 1024 and 6.3 at 4096; 20 s per rate) checks
# the whole prediction under load on a model no law was fitted to.
PLAN_S12 = [
    Variant("mistral-nemo-12b", startup_s=140, sweep_s=150, max_kv=250_000,
            rates="1024=8,13,18,22,26,30;4096=2,3,4.4,5.3,6.3,7.2", rate_s=280, rate_duration_s=20.0),
    Variant("mixtral-8x7b", startup_s=260, sweep_s=160, max_kv=200_000, prefill_isl="128,512,2048,4096,8192"),
]
# The thirteenth (same session, after s12): Mixtral's Poisson load sweep, a held-out check of the MoE's mixed-step
# share of its token table (laws.MOE_TABLE_MIXED_SHARE, chosen on qwen3-30b-a3b) and of the whole prediction on an
# MoE no law or constant was fitted to; rates up to ~1.15x the saturation that s12's measured profile gives.
PLAN_S13 = [_load_only("mixtral-8x7b", 150, "1024=5,9,13,16,19,22;4096=1.3,2.2,3,3.6,4.3,5", 300, rate_duration_s=20.0)]
# The fourteenth (2026-12-03, session 7): two more models nobody here catalogued (examples/byo-model, imported from
# their public config.json; run with PLANNER_CATALOG set to its catalog), a fresh held-out set for the prior as
# re-calibrated this session (the robust calibration loss, chosen on the bundled leave-one-model-out set only):
# Qwen2.5-14B (dense, 48 layers of hidden 5120 with QKV biases, a 152k vocabulary) with a Poisson load sweep (0.3-1.15
# of the saturation the prior gives, ~22 rps at ISL 1024 and ~5.4 at 4096; 20 s per rate) and Qwen1.5-MoE-A2.7B (a
# small MoE: 24 layers, 60 experts of 1,408 top-4 plus a shared expert of 5,632; context 8,192, so its grid stops
# at 6,144-token prompts).
PLAN_S14 = [
    Variant("qwen2.5-14b", startup_s=150, sweep_s=170, max_kv=250_000,
            rates="1024=7,12,16,20,23,26;4096=1.8,2.8,3.8,4.6,5.4,6.2", rate_s=280, rate_duration_s=20.0),
    Variant("qwen1.5-moe-a2.7b", startup_s=150, sweep_s=130, prefill_isl="128,512,2048,4096,6144",
            decode_context="512,2048,6144", max_model_len=8192),
]
# The fifteenth (2026-12-04, session 8). (1) The MoE's load sweep again with the warm-up at both ends of each ISL's
# rates (VllmRunConfig.rate_warmup_ends, new this session): with the highest-rate warm-up alone every MoE launch (s8
# twice, s10, s11) paused its engine ~2 s early in the lowest rate (vLLM's per-step log of s10 has no step in those
# seconds while requests ran). Same rates and durations as s8's stalled sweeps, so the stall count compares like for
# like. (2) Why both small-expert MoEs prefill 768-4,096 tokens in a flat ~80-90 ms where 512 take 16-24 ms: vLLM
# 0.26 captures CUDA graphs only up to min(2 x max_num_seqs, 512) tokens (its CompilationConfig docstring), so a
# step over 512 tokens runs eagerly; the prefill grid again with graphs captured up to 4,096 tokens tells whether
# the plateau is the eager path's (then a launch-bound floor) or the kernels' (Mixtral's large experts show none).
_GRAPHS_4K = ["--extra-args=--cudagraph-capture-sizes 1 2 4 8 16 32 64 128 256 512 768 1024 1536 2048 3072 4096"]
PLAN_S15 = [
    Variant("qwen3-30b-a3b", startup_s=200, sweep_s=60, prefill_isl="256,512,768,1024,2048,4096,8192",
            prefill_batch="1", decode_batch="1", decode_context="512", prefill_frac=0.95, tag="-graphs4k",
            extra=_GRAPHS_4K),
    Variant("qwen1.5-moe-a2.7b", startup_s=200, sweep_s=60, prefill_isl="256,512,768,1024,2048,4096,6144",
            prefill_batch="1", decode_batch="1", decode_context="512", prefill_frac=0.95, tag="-graphs4k",
            extra=_GRAPHS_4K, max_model_len=8192),
    _load_only("qwen3-30b-a3b", 150, "1024=8,16,24,30,36,42;4096=3,6,8,10,12,14", 230, tag="-warm2"),
]
# The sixteenth (2026-12-04, session 9): every MoE of the prior's calibration and held-out sets profiled with CUDA
# graphs captured to 4,096 tokens (s15's flags), so the prior's MoE share is calibrated on the kernels' cost and not on
# vLLM's default graph limit (planner/perf/graphs.py): qwen3-30b-a3b's full grid plus s15's load sweep again with graphs
# (does the under-load error of the MoE change with them?), the held-out qwen1.5-moe-a2.7b's full grid, and Mixtral's
# prefill (its decode steps are within the default's captured sizes).
PLAN_S16 = [
    Variant("qwen3-30b-a3b", startup_s=200, sweep_s=150, prefill_isl="128,512,1024,2048,4096,8192,16384",
            rates="1024=8,16,24,30,36,42;4096=3,6,8,10,12,14", rate_s=230, tag="-graphs4k", extra=_GRAPHS_4K),
    Variant("qwen1.5-moe-a2.7b", startup_s=200, sweep_s=130, prefill_isl="128,512,1024,2048,4096,6144",
            decode_context="512,2048,6144", max_model_len=8192, tag="-graphs4k", extra=_GRAPHS_4K),
    Variant("mixtral-8x7b", startup_s=300, sweep_s=60, max_kv=200_000, prefill_isl="128,512,1024,2048,4096,8192",
            prefill_batch="1", decode_batch="1", decode_context="512", prefill_frac=0.95, tag="-graphs4k",
            extra=_GRAPHS_4K),
]
# The seventeenth (2026-12-04, session 10): the steady state on two models held out of every constant and law form,
# for issue 10's under-load check. The 12-s samples of s7-s16 start from an empty replica and stay transient at
# 50-85% load, while the capacity model predicts the steady state; s8 measured the steady state on llama-3.1-8b
# alone. Here 60 s of arrivals per rate at 50 / 70 / 85% of each model's saturation rate by the committed laws
# (qwen1.5-moe with graphs: 41.7 rps at ISL 1024, 13.5 at 4096; mistral-nemo-12b: 21.7 / 5.7; OSL 128), each model
# in one server launch with its own profile's flags (the MoE with s16's graphs to 4,096 tokens).
PLAN_S17 = [
    replace(_load_only("qwen1.5-moe-a2.7b", 200, "1024=21,29,35.5;4096=6.7,9.4,11.5", 480, rate_duration_s=60.0,
                       tag="-graphs4k-steady"), extra=_GRAPHS_4K, max_model_len=8192),
    _load_only("mistral-nemo-12b", 150, "1024=10.8,15.2,18.4;4096=2.9,4,4.9", 480, rate_duration_s=60.0, tag="-steady"),
]
# The eighteenth (2026-12-04, session 12): the engine's own account of the steady state (profiles/engine_load.py:
# /metrics scraped around and, at 2 Hz, during each rate run -> engine_load.csv), to split a client's TTFT under load
# into frontend, queue and prefill where s17 could not: the held-out MoE with graphs, whose TTFT at 85% of the laws'
# saturation grew through the minute (188 -> 426 ms median by sixths: a queue that does not settle) where both models
# predict ~100 ms, at s17's 70% and 85% and between; llama-3.1-8b at s17's ISL-1,024 rates and s8's ISL 4,096 ones
# (its closed form runs 22% low at 85%); then the steady state on qwen2.5-14b, a dense model held out of every choice
# (50 / 70 / 85% of its laws' 18.3 and 4.86 rps); last, llama-3.1-8b's decode points to batch 256 with the engine's
# own inter-token gap (decode_engine.csv).
PLAN_S18 = [
    replace(_load_only("qwen1.5-moe-a2.7b", 200, "1024=29,32.5,35.5", 240, rate_duration_s=60.0, tag="-graphs4k-acct"),
            extra=_GRAPHS_4K, max_model_len=8192),
    _load_only("llama-3.1-8b", 140, "1024=16.5,23,28;4096=6.1,7.4", 340, rate_duration_s=60.0, tag="-acct"),
    _load_only("qwen2.5-14b", 150, "1024=9.2,12.8,15.6;4096=3.4,4.1", 340, rate_duration_s=60.0, tag="-steady"),
    # the batch-256 decode step (stop 24 on: the client's ITL jumps 1.2-2.4x from batch 128 to 256): decode points
    # with the engine's own inter-token gap beside the client's (decode_engine.csv) say whether it is the engine's
    Variant("llama-3.1-8b", startup_s=140, sweep_s=150, prefill_isl="512", prefill_batch="1",
            decode_batch="1,32,128,192,256", decode_context="512,2048", prefill_frac=0.1, tag="-dec256"),
]
# The nineteenth (stop 30): s18, with real vLLM under prompts that spread third. The capacity model states a class's
# prompt-length spread since stop 30 (planner/planning/capacity.py, Prompt-length dispersion; against the simulator
# its mixed TTFT MAPE went 37.0 -> 10.8% on the tuning rows): llama-3.1-8b, the tuning model of every real-vLLM
# choice, at ISL 1,024 on average with the Azure conversation trace's spread (squared CV 0.66), at 37 / 50 / 70% of
# its laws' 32 rps, a minute each; bench/vllm_under_load.py replays each request's own prompt.
PLAN_S19 = [
    PLAN_S18[0],
    PLAN_S18[1],
    replace(_load_only("llama-3.1-8b", 140, "1024=12,16.5,23", 260, rate_duration_s=60.0, tag="-spread"),
            rate_isl_scv=0.66),
    PLAN_S18[2],
    PLAN_S18[3],
]
# The twentieth (stop 31): s19, then what vLLM's KV cache does with outputs that spread. The planner's decode KV check
# counts the running batch's reservations length-biased, isl + osl(1 + scv) per sequence, as the simulator reserves
# a sequence's whole output at admission (planner/planning/capacity.py, Output-length dispersion); vLLM 0.26 allocates
# blocks as a sequence grows and preempts when they run out, which would hold isl + osl(1 + scv)/2. llama-3.1-8b with
# its cache cut to 4,096 blocks (65,536 tokens, --num-gpu-blocks-override) so that the KV cache binds at ISL 1,024 /
# OSL 256: the mixed capacity is 16.2 rps with equal outputs and 14.6 at scv 1 (the laws of profiles/data); 13 / 15.5
# / 17.5 rps, a minute each, with equal outputs and then at scv 1, the same server flags.
_KV_64K = ["--extra-args=--num-gpu-blocks-override 4096"]
PLAN_S20 = PLAN_S19 + [
    replace(_load_only("llama-3.1-8b", 140, "1024=13,15.5,17.5", 260, rate_duration_s=60.0, tag="-kv64k"),
            extra=_KV_64K, rate_osl=256),
    replace(_load_only("llama-3.1-8b", 140, "1024=13,15.5,17.5", 260, rate_duration_s=60.0, tag="-kv64k-oslspread"),
            extra=_KV_64K, rate_osl=256, rate_osl_scv=1.0),
]
# The twenty-first (prepared at stop 32): the held-out check of what s20 decided. s20 measured vLLM's KV cache binding
# on llama-3.1-8b alone (ISL 1,024 / OSL 256), and on those six samples the simulator's mixed replicas were switched to
# on-demand KV with preemption and the planner's reservation check was kept (bench/vllm_kv_outputs.py). Here a model and
# a shape held out of both: mistral-nemo-12b (imported, examples/byo-model) with its cache cut to 6,144 blocks (98,304
# tokens) at ISL 2,048 / OSL 512, outputs of squared CV 1 first, then equal; the planner's check gives 3.77 / 4.18 rps
# (scv 1 / 0), so 3.4 / 4.0 / 4.7 rps, 90 s each. The rule, written before the run (notes of stop 32): the on-demand
# default stands if its replay's TTFT p90 MAPE is <= 20% and below the reservation's; the check stands if it is at or
# below vLLM's served rate at saturation and within 10% of it. Then what s18 left: the MoE's engine account,
# qwen2.5-14b's steady state, and llama-3.1-8b's decode to batch 256.
_KV_96K = ["--extra-args=--num-gpu-blocks-override 6144"]
PLAN_S21 = [
    replace(_load_only("mistral-nemo-12b", 150, "2048=3.4,4,4.7", 420, rate_duration_s=90.0, tag="-kv96k-oslspread"),
            extra=_KV_96K, rate_osl=512, rate_osl_scv=1.0),
    replace(_load_only("mistral-nemo-12b", 150, "2048=3.4,4,4.7", 420, rate_duration_s=90.0, tag="-kv96k"),
            extra=_KV_96K, rate_osl=512),
    PLAN_S18[0],
    PLAN_S18[2],
    PLAN_S18[3],
]
# The twenty-second (prepared at stop 36): what s21 left. Its spread-output sweep ran 3.4 and 4 rps only (the device
# time ran out before 4.7), so rule K2's second half ("the check stands if it is at or below vLLM's served rate at
# saturation and within 10% of it") was judged with equal outputs alone. Rule K3 (written at stop 36, before this
# run): the same bar with outputs of squared CV 1 -- the planner's check gives 3.75 rps there, vLLM served 3.99 without
# a queue -- at 4.7 and 5.2 rps, 90 s each (one saturated point is enough for the bar; ~5 min of device time with the
# server's start). Then llama-3.1-8b's decode at batch 160 / 192 / 224 (s21 measured 192 25% above the laws' knee,
# with repeats 30% apart), two repeats each (the session's --decode-repeats), with vLLM's per-step log: every bundled
# llama-3.1-8b profile that measured batch 256 (H200 bf16 and FP8, H100 FP8 of plan h1) steps 2.4-2.6x slower at
# batch 256 x context 512 than at 128, where the weights' and KV's bytes grow 1.5x; the client's stream timestamps
# cannot tell the engine's steps from a frontend that falls behind 256 streams. Rule K4 (written at stop 37, before this
# run): if the engine's own pure-decode step time at batch 256 (iterations.csv.gz; bench/step_composition.py) is within
# 15% of the laws of the bundled H200 profile fitted without the batch-256 point, the jump is the frontend's, and the
# profiler takes its decode points past batch 128 from the engine's steps; else the laws need a term for it
# (bench/decode_steps.py --run <its iterations.csv.gz>=profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm --without-batch
# 256). 256 tokens per stream (the profiler's default: 64) give each batch-256 point ~5 s of pure decode steps, ~4
# whole seconds of the engine's log.
PLAN_S22 = [
    replace(_load_only("mistral-nemo-12b", 150, "2048=4.7,5.2", 230, rate_duration_s=90.0, tag="-kv96k-oslspread-sat"),
            extra=_KV_96K, rate_osl=512, rate_osl_scv=1.0),
    Variant("llama-3.1-8b", startup_s=140, sweep_s=120, prefill_isl="512", prefill_batch="1",
            decode_batch="128,160,192,224,256", decode_context="512", prefill_frac=0.1, tag="-dec192",
            extra=[*_ITER, "--decode-tokens", "256"]),
]
# The first on an H100 (stop 33; the lent machine was an H100 80GB HBM3, hardware no law, prior or constant was ever
# fitted on with vLLM): issue 10's profiles "on H100 too if that GPU is lent". The prior's and today's planner's
# predictions were written down before the run (profiles/runs/<date>-h1/README.md). llama-3.1-8b first, its profile and
# then a Poisson load sweep around the prior's mixed saturation (31.7 rps at ISL 1,024 and 8.1 at 4,096, OSL 128;
# the H100 torch-reference profile the planner uses today says 25.4 / 6.4), 25 s per rate; then the MoE and FP8
# weights as deployed (vLLM's defaults), then qwen3-32b, whose bf16 weights leave ~30k tokens of KV on 80 GB.
PLAN_H1 = [
    Variant("llama-3.1-8b", startup_s=120, sweep_s=100, rates="1024=16,23,29,34,39;4096=4,5.7,7.2,8.5,9.8", rate_s=250,
            rate_duration_s=20.0),
    Variant("qwen3-30b-a3b", startup_s=160, sweep_s=130, max_kv=120_000),
    Variant("llama-3.1-8b", startup_s=140, sweep_s=90, quantization="fp8"),
    Variant("qwen3-32b", startup_s=160, sweep_s=150, prefill_isl="128,512,2048,4096,8192", max_kv=26_000),
]
# The second on an H100 (stop 38, rules K4h and F2 written before it ran, in the session's note): rule K4 on the card's
# FP8-weight llama-3.1-8b, whose bundled profile showed the batch-256 jump (8.33 -> 21.09 ms from batch 128 to 256 at
# context 512); then a second and a third model with FP8 weights, qwen3-32b (the prior's tuning set: rule F2 re-runs
# rule F1 with it) and qwen3-14b (held out: in HELD_OUT_SET, never calibrated on); then the MoE's FP8 weights if time
# is left. qwen3-32b's FP8 weights (~33 GB) leave ~130k tokens of KV on 80 GB.
PLAN_H2 = [
    replace(PLAN_S22[1], quantization="fp8"),
    Variant("qwen3-32b", startup_s=170, sweep_s=150, quantization="fp8", prefill_isl="128,512,2048,4096,8192",
            max_kv=100_000),
    Variant("qwen3-14b", startup_s=150, sweep_s=120, quantization="fp8"),
    Variant("qwen3-30b-a3b", startup_s=170, sweep_s=130, quantization="fp8", max_kv=120_000),
    replace(_load_only("qwen3-14b", 150, "1024=8,13,18,23,28,33;4096=2.5,4,5.5,7,8.5", 330, rate_duration_s=20.0,
                       tag="-load"), quantization="fp8"),
]
# The third FP8 plan (stop 39, rule F3 written before it ran, in the session's note), on the H200 after plan s22: the
# MoE's FP8 weights (tuning, bundled: the prior's weak point with one FP8 MoE profile, the H100's), then qwen3-14b's FP8
# weights (held out: in HELD_OUT_SET, never calibrated on), the same variants as plan h2's on the other card.
PLAN_S23 = [PLAN_H2[3], PLAN_H2[2]]
# The third on an H100 (stop 39, rule H3 written before it ran, in the session's note), if the H200 is not lent: issue
# 10 item 3's FP8 KV cache on the second card (llama-3.1-8b, tuning: bundled), then llama-3.2-3b bf16 (held out: in
# HELD_OUT_SET, never calibrated on; the prior's first held-out model on the H100 that no H100 run of it informed).
PLAN_H3 = [
    Variant("llama-3.1-8b", startup_s=120, sweep_s=90, kv_cache_dtype="fp8"),
    Variant("llama-3.2-3b", startup_s=110, sweep_s=90),
]
# The fourth on an H100 (stop 41, rule H4 written before it ran, in the session's note), if an H100 comes where an H200
# was asked for: mistral-nemo-12b bf16, profile only (held out: in HELD_OUT_SET, never calibrated on; imported, so
# PLANNER_CATALOG=examples/byo-model/catalog), the second held-out model of the session on that card.
PLAN_H4 = [Variant("mistral-nemo-12b", startup_s=140, sweep_s=130, max_kv=250_000)]
# The fifth on an H100 (stop 42, rule H5 written before it ran, in the session's note), if an H100 comes where an H200
# was asked for: qwen3-14b bf16, profile only (held out: in HELD_OUT_SET, never calibrated on; its bf16 weights never
# ran on the H100), then the held-out small MoE qwen1.5-moe-a2.7b with s16's CUDA graphs to 4,096 tokens (vLLM 0.26.0
# ships no E=60,N=1408 table for the H100, so by rule V3's lookup it runs default tiles); both need
# PLANNER_CATALOG=examples/byo-model/catalog for the MoE.
PLAN_H5 = [Variant("qwen3-14b", startup_s=150, sweep_s=120, max_kv=200_000), PLAN_S16[1]]
# The sixth on an H100 (stop 42, rule H6 written before it ran, in the session's note), if an H100 comes again: a
# Poisson load sweep of the held-out qwen3-14b bf16 on the H100 (issue 10 item 7 on a model no constant was fitted on),
# its rates 0.35-1.2 of the capacity model's mixed saturation on plan h5's profile (16.9 rps at ISL 1,024, 4.1 at 4,096,
# OSL 128), computed before the sweep, 20 s per rate.
PLAN_H6 = [_load_only("qwen3-14b", 150, "1024=6,9.5,12.5,15,17.5,20;4096=1.4,2.3,3.1,3.7,4.3,4.9", 330,
                      rate_duration_s=20.0, tag="-load")]
# The seventh on an H100 (stop 42, rule H7 written before it ran, in the session's note), if an H100 comes with ~450 s
# of device time left: the held-out llama-3.2-3b with FP8 weights (the prior's FP8 share, fitted on other models, on a
# model and size no calibration saw), profile only.
PLAN_H7 = [Variant("llama-3.2-3b", startup_s=110, sweep_s=90, quantization="fp8")]
# The eighth on an H100 (stop 42, rule H8 written before it ran, in the session's note; for a later session): the
# steady state at long prompts near the capacity model's saturation, which 20-s samples cannot show (bench/
# vllm_under_load.py: on every ISL where vLLM kept up above the model's rate, the simulator replaying the sample kept up
# too): the held-out qwen3-14b bf16, ISL 4,096, 60 s per rate at 0.85 / 0.95 / 1.05 / 1.15 of the model's 4.10 req/s.
PLAN_H8 = [_load_only("qwen3-14b", 150, "4096=3.5,3.9,4.3,4.7", 330, rate_duration_s=60.0, tag="-steady4k")]
# Rule K3h (stop 43, written before it ran): rule K3's spread-output half on the H100 with plan h4's laws: the
# reservation check gives 3.01 req/s there (scv 0.92), so 1.25x and 1.5x of it, 60 s each (the device time left).
PLAN_K3H = [replace(_load_only("mistral-nemo-12b", 120, "2048=3.75,4.5", 200, rate_duration_s=60.0,
                               tag="-kv96k-oslspread-sat"),
                    extra=_KV_96K, rate_osl=512, rate_osl_scv=1.0)]
# Rule H9 (stop 44, written before it ran): a Poisson load sweep of the held-out mistral-nemo-12b bf16 on the H100
# (no load sweep of it ran on that card), plan h6's design: 20 s per rate at 0.35-1.2 of the capacity model's mixed
# saturation on plan h4's laws (20.54 req/s at ISL 1,024, 5.01 at 4,096, OSL 128), computed before the run.
PLAN_H9 = [_load_only("mistral-nemo-12b", 140, "1024=7.2,12.3,16.4,19.5,21.6,24.6;4096=1.75,3,4,4.75,5.25,6", 330,
                      rate_duration_s=20.0, tag="-load")]
# Rule H10 (stop 44, written before it ran): the steady state of the held-out qwen2.5-14b bf16 at ISL 4,096 on the H100,
# where plan v3's 20-s samples put the capacity model's saturation 12% low (4.55 req/s measured, 4.02 modelled):
# 60 s per rate at 0.95-1.32 of 4.02, the top rate high enough to show a capacity up to 4.8 req/s.
PLAN_H10 = [_load_only("qwen2.5-14b", 150, "4096=3.8,4.3,4.8,5.3", 330, rate_duration_s=60.0, tag="-steady4k")]
# Rule H11 (stop 44, written before it ran): the steady state at ISL 4,096 of the held-out llama-3.2-3b bf16 on the
# H100, 50 s per rate at 0.95-1.19 of the capacity model's 14.94 req/s on plan h3's laws (the device time left: ~480 s).
PLAN_H11 = [_load_only("llama-3.2-3b", 110, "4096=14.2,16,17.8", 200, rate_duration_s=50.0, tag="-steady4k")]


def _settled(model: str, startup_s: float, rates: str, rate_s: float, rate_duration_s: float,
             rate_seed: int) -> Variant:
    """A load-only variant measuring the steady state (plans h12-h14): each rate's first 20 s of arrivals kept out of
    the sample, fresh seeds, and no TTFT stop (the rates are below the model's saturation by design)."""
    return replace(_load_only(model, startup_s, rates, rate_s, rate_duration_s=rate_duration_s, tag="-steady"),
                   rate_seed=rate_seed, rate_settle_s=20.0, saturation_ttft_ms=10_000.0)


# Rule H12 (stop 45, written before it was implemented or run): the capacity model in the steady state on fresh
# arrivals, two held-out models on the H100, one device call each (ONLY=<model>-steady): ISL 1,024 at 0.5 / 0.8 and ISL
# 4,096 at 0.5 of the model's saturation (plan h5's laws: 16.92 / 4.10 req/s; plan h4's: 20.54 / 5.01), OSL 128; each
# rate 20 s of settle arrivals kept out of the sample, then 70 s measured; seeds 4500 / 4600 (+ 1000 at ISL 4,096, + k
# at the k-th rate): every earlier sweep drew seed k at each ISL's k-th rate.
PLAN_H12 = [_settled("qwen3-14b", 150, "1024=8.46,13.54;4096=2.05", 330, 70.0, 4500),
            _settled("mistral-nemo-12b", 140, "1024=10.27,16.43;4096=2.51", 330, 70.0, 4600)]
# Rule H13 (stop 45, written before it was implemented or run): h12's design on llama-3.1-8b bf16 (the model of the
# frontend constant's H200 tuning sweep) on the H100, its bundled profile's laws (32.08 / 8.02 req/s): which admission
# (async k+2 or next boundary, bench/admission_ablation.py) its settled samples follow. Seed 4700.
PLAN_H13 = [_settled("llama-3.1-8b", 120, "1024=16,25.7;4096=4.01", 330, 70.0, 4700)]
# Rule H14 (stop 45, written before it was implemented or run): the settled design on the MoE qwen3-30b-a3b bf16 on the
# H100 (default fused-MoE tiles; its bundled profile's laws: 20.27 req/s at ISL 1,024), 0.5 / 0.8 of it, 20 s settle +
# 50 s measured per rate, seed 4800: the device time left at stop 45 (~400 s). It measured nothing: the server took
# 153 s to start (profiles/runs/2026-12-06-h14/README.md); a rerun needs startup_s >= 160 and a call of ~500 s.
PLAN_H14 = [_settled("qwen3-30b-a3b", 120, "1024=10.1,16.2", 200, 50.0, 4800)]
# Rule H15 (stop 46, written before it was implemented or run): the settled design on the H200 with the bundled H200
# profiles' laws (llama-3.1-8b 30.69 / 8.36 req/s, qwen3-32b 7.98 / 1.90): ISL 1,024 at 0.5 / 0.8 and ISL 4,096 at 0.5,
# 20 s settle + 70 s measured, seeds 4900 / 5000. Rule A46 chooses the admission with llama-3.1-8b's points in its
# tuning set and reports it on qwen3-32b's (held out). One call each (ONLY=<model>-steady).
PLAN_H15 = [_settled("llama-3.1-8b", 120, "1024=15.3,24.6;4096=4.18", 330, 70.0, 4900),
            _settled("qwen3-32b", 150, "1024=3.99,6.38;4096=0.952", 330, 70.0, 5000)]
# Rule H16 (stop 46, written before it was implemented or run; if an H100 comes): plan h14 with the start-up the MoE
# needs on the H100 (its server took 153 s) and 60 s measured, then the held-out qwen2.5-14b (plan v3's laws: 16.74 /
# 4.02 req/s) at 0.5 / 0.8 and 0.5, seed 5100 (PLANNER_CATALOG=examples/byo-model/catalog). At stop 46 the MoE's points
# ran (profiles/runs/2026-12-06-h16; its server started in ~106 s); qwen2.5-14b's did not (device time) until stop 47
# (profiles/runs/2026-12-06-h16b: its two ISL-1,024 rates; the ISL-4,096 rate hit the call's time limit). Plan h15
# (H200) did not run: no H200 came at stops 46-47.
PLAN_H16 = [replace(PLAN_H14[0], startup_s=170, rate_duration_s=60.0),
            _settled("qwen2.5-14b", 150, "1024=8.37,13.4;4096=2.01", 330, 70.0, 5100)]
# Rule 48-GPU (stop 48, written before it was implemented or run; if an H100 comes): the held-out qwen2.5-14b settled at
# ISL 4,096, the rate plan h16's call could not reach (2.01 req/s, 0.5 of plan v3's 4.02) and 0.8 of it, seed 6100
# (h16's design: + 1000 at ISL 4,096); PLANNER_CATALOG=examples/byo-model/catalog.
PLAN_H17 = [_settled("qwen2.5-14b", 150, "4096=2.01,3.22", 330, 70.0, 6100)]
# Rule 48-GPU-b (stop 48, written before it was implemented or run; if an H100 comes): the held-out mistral-nemo-12b
# settled at ISL 4,096 at 0.65 / 0.8 of plan h4's laws' 5.01 req/s, seed 6200
# (PLANNER_CATALOG=examples/byo-model/catalog): more steady-state long-prompt points, where the simulator and the closed
# form disagree (bench/vllm_under_load.py).
PLAN_H18 = [_settled("mistral-nemo-12b", 140, "4096=3.26,4.01", 330, 70.0, 6200)]
# Rule 53-GPU-b (stop 53, written before it was implemented or run; an H100): plan h18 again with fresh seeds (6300):
# does h18's closed-form TTFT p90 miss (23-26% below vLLM's on both points) reproduce on new arrivals?
PLAN_H19 = [_settled("mistral-nemo-12b", 140, "4096=3.26,4.01", 330, 70.0, 6300)]
# Rule 54-GPU-b (stop 54, written before it was implemented or run; an H100): plan h19 again with fresh seeds (6400):
# does h19's closed-form ITL p90 over-read (+13% / +40%, the replay within 6%) reproduce on new arrivals? Reported only.
PLAN_H20 = [_settled("mistral-nemo-12b", 140, "4096=3.26,4.01", 330, 70.0, 6400)]
# Rule 54-GPU-c (stop 54, written before it was implemented or run; an H100): plan k3h with fresh seeds (6500): does the
# simulator's on-demand KV replay hold on new arrivals (k3h: TTFT p90 8.4% MAPE)? Reported only.
PLAN_K3H2 = [replace(PLAN_K3H[0], rate_seed=6500)]
# Rule 54-GPU-d (stop 54, written before it was implemented or run; an H100): a third draw (6600), k3h 8.4%, k3h2 146.8%
PLAN_K3H3 = [replace(PLAN_K3H[0], rate_seed=6600)]
# Rule 55-GPU-b (stop 55, written before it was implemented or run; an H100): plan k3h's design on the KV policy's
# tuning model, llama-3.1-8b (plan s20 chose the on-demand replay on it, on the H200), on the H100: the reservation
# check on profiles/data/llama-3.1-8b/H100-SXM-80GB/tp1 with the cache cut to 98,304 tokens gives 4.42 req/s (scv
# 0.92), so 5.5 / 6.6 req/s (k3h's 1.25x / 1.5x). Tuning samples: is the replay pessimistic near the cache's limit on
# the tuning model too? k3t2 is a second draw (seeds 6800).
PLAN_K3T = [replace(_load_only("llama-3.1-8b", 140, "2048=5.5,6.6", 200, rate_duration_s=60.0,
                               tag="-kv96k-oslspread-sat"),
                    extra=_KV_96K, rate_osl=512, rate_osl_scv=1.0, rate_seed=6700)]
PLAN_K3T2 = [replace(PLAN_K3T[0], rate_seed=6800)]
# Rule 56-GPU-b (stop 56, written before it was implemented or run; an H100): the first real-vLLM check of the
# simulator on arrivals that are not Poisson (issue 9's referee): one llama-3.1-8b mixed replica on the H100 replays a
# clustered trace (13 req/s, clusters of 8 within 0.2 s, 150 s) and an on/off trace (18 / 4 req/s, 30 s each, 120 s),
# generated by `planner workload synth` (seeds 5601 / 5602) and committed beside the run; bench/vllm_trace_replay.py
# sets vLLM's per-request TTFT and ITL against the simulator's replay of the same requests. Reported only. One call
# each (ONLY=llama-3.1-8b-replay-clustered / -replay-mmpp).
_R1 = "profiles/runs/2026-12-07-r1/traces"
PLAN_R1 = [replace(_load_only("llama-3.1-8b", 140, "", 175, tag="-replay-clustered"),
                   rate_trace=f"{_R1}/clustered.csv"),
           replace(_load_only("llama-3.1-8b", 140, "", 145, tag="-replay-mmpp"), rate_trace=f"{_R1}/mmpp.csv")]
# Rule 57-GPU-b (stop 57, written before it was run; an H100): the capacity model's burst-aware sizing of one mixed
# replica against real vLLM near and over its limit (plan r1 ran at 0.73 of it, 97% within SLO): clustered traces
# (`planner workload synth clustered`, 150 s) that the capacity model plans on one H100 at utilization 0.82 (seed
# 5702, rate_rps 14: 14.98 req/s, 1-s IDC 9.5) and on two (seed 5701, rate_rps 18: 19.04 req/s, IDC 11.9; one
# replica's limit ~15 req/s at that IDC), at SLO TTFT 1,000 ms / ITL 50 ms p90, utilization 1; held out for the
# closed form's and the simulator's checks on plan r1 (bench/vllm_trace_replay.py). Reported only.
_R2 = "profiles/runs/2026-12-07-r2/traces"
PLAN_R2 = [replace(_load_only("llama-3.1-8b", 140, "", 175, tag="-replay-near"), rate_trace=f"{_R2}/near.csv"),
           replace(_load_only("llama-3.1-8b", 140, "", 185, tag="-replay-over"), rate_trace=f"{_R2}/over.csv")]
# Rule 57-GPU-c (stop 57, written before it ran; an H100): plan r2's 'near' design on a fresh draw (seed 5703,
# rate_rps 13: 12.0 req/s, 1-s IDC 13.6), which the capacity model plans on one H100 at utilization 0.91: does the
# one-replica verdict (every class within SLO on vLLM) and the simulator's optimism near the limit reproduce?
PLAN_R3 = [replace(_load_only("llama-3.1-8b", 140, "", 175, tag="-replay-near2"),
                   rate_trace="profiles/runs/2026-12-07-r3/traces/near2.csv")]
# Rule 60-GPU-b (stop 60, written before it ran; an H100): does real vLLM batch a P/D prefill pool's mix of classes as
# rule 60-B's FCFS packing says? qwen3-30b-a3b replays a prefill-only trace (every output one token): Poisson 800- and
# 8,000-token prompts at 12 and 1.5 req/s, 150 s (seed 6001). Reported only.
PLAN_R4 = [replace(_load_only("qwen3-30b-a3b", 150, "", 175, tag="-replay-prefill-mix"),
                   rate_trace="profiles/runs/2026-12-08-r4/traces/prefill_mix.csv")]
PLANS = {"s1": PLAN, "h1": PLAN_H1, "h2": PLAN_H2, "h3": PLAN_H3, "h4": PLAN_H4, "h5": PLAN_H5, "h6": PLAN_H6,
         "h7": PLAN_H7, "h8": PLAN_H8, "k3h": PLAN_K3H, "k3h2": PLAN_K3H2, "k3h3": PLAN_K3H3, "h9": PLAN_H9,
         "k3t": PLAN_K3T, "k3t2": PLAN_K3T2, "r1": PLAN_R1, "r2": PLAN_R2, "r3": PLAN_R3, "r4": PLAN_R4,
         "h10": PLAN_H10, "h11": PLAN_H11,
         "h12": PLAN_H12, "h13": PLAN_H13, "h14": PLAN_H14, "h15": PLAN_H15, "h16": PLAN_H16, "h17": PLAN_H17,
         "h18": PLAN_H18, "h19": PLAN_H19, "h20": PLAN_H20, "s2": PLAN_S2, "s3": PLAN_S3, "s4": PLAN_S4, "s5": PLAN_S5,
         "s6": PLAN_S6, "s7": PLAN_S7,
         "s8": PLAN_S8, "s9": PLAN_S9, "s10": PLAN_S10,
         "s11": PLAN_S11, "s12": PLAN_S12, "s13": PLAN_S13, "s14": PLAN_S14, "s15": PLAN_S15, "s16": PLAN_S16,
         "s17": PLAN_S17,
         "s18": PLAN_S18, "s19": PLAN_S19, "s20": PLAN_S20, "s21": PLAN_S21, "s22": PLAN_S22, "s23": PLAN_S23}


def log(out: Path, msg: str) -> None:
    line = f"{time.strftime('%H:%M:%S', time.gmtime())} {msg}"
    print(line, flush=True)
    with (out / "session.log").open("a") as fh:
        fh.write(line + "\n")


def vdir_of(v: Variant) -> str:
    return "tp1" + ("-fp8" if v.quantization else "") + ("-kvfp8" if v.kv_cache_dtype else "") + v.tag


def stop_leftover_server(pid_file: Path) -> None:
    """If the server this session's profiler started is still alive (profiler killed), stop its group."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    for sig, wait_s in ((signal.SIGINT, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.time() + wait_s
        while time.time() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def tokenizer_loads(model: str, out: Path) -> bool:
    """Write `model`'s weightless folder and load its tokenizer and config with transformers, as vLLM
    will (one subprocess, ~10 s): False means serve with --skip-tokenizer-init instead."""
    from planner.io.catalog import Catalog
    from profiles.modeldir import write_model_dir

    d = write_model_dir(Catalog.load().model(model), out / "_models" / model)
    code = ("import sys; from transformers import AutoConfig, AutoTokenizer; "
            "c = AutoConfig.from_pretrained(sys.argv[1]); "
            "t = AutoTokenizer.from_pretrained(sys.argv[1]); ids = t('w5 w6 w7')['input_ids']; "
            "print(type(c).__name__, len(t), ids, repr(t.decode([5, 6, 7])))")
    try:
        res = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        log(out, f"{model}: tokenizer check timed out")
        return False
    log(out, f"{model}: tokenizer check exit {res.returncode}: {res.stdout.strip()[-300:]} "
             f"{res.stderr.strip()[-600:] if res.returncode else ''}")
    return res.returncode == 0


def command(v: Variant, out: Path, sweep_end: float, rate_end: float | None, server_cmd: str, health_s: float,
            time_scale: float, gpu: str = GPU) -> list[str]:
    vdir = vdir_of(v)
    cmd = [sys.executable, "-m", "profiles.vllm_cli", "profile", "--backend", "vllm", "--dummy-weights",
           "--model", v.model, "--gpu", gpu, "--tp", "1", "--out", str(out / v.model / gpu / vdir / "vllm"),
           "--model-dir", str(out / "_models" / v.model), "--server-cmd", server_cmd,
           "--max-model-len", str(v.max_model_len), "--prefill-isl", v.prefill_isl, "--prefill-batch", v.prefill_batch,
           "--decode-batch", v.decode_batch, "--decode-context", v.decode_context,
           "--max-point-kv-tokens", str(v.max_kv),
           "--repeats", "3", "--decode-repeats", "2", "--deadline-unix-s", f"{sweep_end:.0f}",
           "--prefill-budget-frac", f"{v.prefill_frac:g}",
           "--health-timeout-s", f"{health_s:.0f}", "--no-progress", "--time-scale", f"{time_scale:g}"]
    if v.quantization:
        cmd += ["--quantization", v.quantization]
    if v.kv_cache_dtype:
        cmd += ["--kv-cache-dtype", v.kv_cache_dtype]
    if v.rate_trace and rate_end is not None:  # its own arrivals and lengths; the profiler checks it before any work
        cmd += ["--rate-trace", v.rate_trace, "--rate-deadline-unix-s", f"{rate_end:.0f}"]
    elif v.rates and rate_end is not None:
        cmd += ["--rates-by-isl", v.rates, "--rate-osl", str(v.rate_osl), "--rate-requests", "20",
                "--rate-duration-s", f"{v.rate_duration_s:g}", "--saturation-ttft-ms", f"{v.saturation_ttft_ms:g}",
                "--rate-deadline-unix-s", f"{rate_end:.0f}"]
        if v.rate_isl_scv > 0:
            cmd += ["--rate-isl-scv", f"{v.rate_isl_scv:g}"]
        if v.rate_osl_scv > 0:
            cmd += ["--rate-osl-scv", f"{v.rate_osl_scv:g}"]
        if v.rate_seed:
            cmd += ["--rate-seed", str(v.rate_seed)]
        if v.rate_settle_s > 0:
            cmd += ["--rate-settle-s", f"{v.rate_settle_s:g}"]
    return cmd + v.extra


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--deadline-unix-s", type=float, required=True, help="every server stopped by then")
    ap.add_argument("--server-cmd", default=SERVER_CMD)
    ap.add_argument("--plan", choices=sorted(PLANS), default="s1",
                    help="which session plan (PLANS: s1 = PLAN, s2 = PLAN_S2, ...)")
    ap.add_argument("--only", default=None, help="comma list of variant labels to run (default: the whole plan)")
    ap.add_argument("--gpu", default="auto",
                    help="the catalog's name of the lent GPU (profiles/gpus.yaml), e.g. H100-SXM-80GB; "
                    f"auto: the catalog entry of the card nvidia-smi names, else {GPU}")
    ap.add_argument("--time-scale", type=float, default=1.0, help="emulated rehearsal only")
    ap.add_argument("--scale-plan", type=float, default=1.0, help="rehearsal: multiply the plan's times by this")
    ap.add_argument("--check-tokenizer", action=argparse.BooleanOptionalAction, default=True,
                    help="load each word-level tokenizer with transformers first; fall back to --skip-tokenizer-init")
    a = ap.parse_args(argv)
    if a.gpu == "auto":
        from planner.io.catalog import Catalog
        from profiles.backends.vllm import catalog_gpu_of_device, local_device_name

        a.gpu = catalog_gpu_of_device(local_device_name(), sorted(Catalog.load().gpus)) or GPU
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    plan = [v for v in PLANS[a.plan] if a.only is None or v.label in a.only.split(",")]
    for v in plan:
        v.startup_s *= a.scale_plan
        v.sweep_s *= a.scale_plan
        v.rate_s *= a.scale_plan
    min_sweep = MIN_SWEEP_S * a.scale_plan
    env = {**os.environ, **SERVER_ENV}
    # Keep the longest prefix of the plan (in priority order) whose start-ups and minimum sweeps fit.
    room, kept = a.deadline_unix_s - time.time() - FORCED_STOP_S, []
    for v in plan:
        need = v.startup_s + min_sweep + STOP_S
        if need > room:
            log(out, f"{v.label}: not run, the deadline leaves no room for it after the variants before it")
            continue
        room -= need
        kept.append(v)
    plan = kept
    log(out, f"session: {len(plan)} variants on {a.gpu}, deadline in {a.deadline_unix_s - time.time():.0f} s")
    tok_ok: dict[str, bool] = {}
    for i, v in enumerate(plan):
        now = time.time()
        later = sum(w.startup_s + min_sweep + STOP_S for w in plan[i + 1:])
        left = a.deadline_unix_s - now - later - STOP_S - FORCED_STOP_S
        if left < v.startup_s + min_sweep:
            log(out, f"{v.label}: skipped, {left:.0f} s left for it (needs {v.startup_s + min_sweep:.0f})")
            continue
        planned_full = sum(w.startup_s + w.sweep_s + STOP_S for w in plan[i + 1:])
        win = variant_window(now, a.deadline_unix_s, v.startup_s, v.sweep_s, v.rate_s, bool(v.rates or v.rate_trace),
                             later + STOP_S,
                             planned_full, a.scale_plan)
        sweep_end, rate_end, hard_end = win.sweep_end, win.rate_end, win.hard_end
        if v.rates or v.rate_trace:
            log(out, f"{v.label}: load sweep {'until +%.0f s' % (rate_end - now) if rate_end else 'skipped'}")
        cmd = command(v, out, sweep_end, rate_end, a.server_cmd, health_s=max(60.0, left - min_sweep),
                      time_scale=a.time_scale, gpu=a.gpu)
        log(out, f"{v.label}: start, sweeps until +{sweep_end - now:.0f} s: {' '.join(cmd[2:])}")
        cmd += ["--port", str(8000 + i)]
        if a.check_tokenizer and v.model not in tok_ok:
            tok_ok[v.model] = tokenizer_loads(v.model, out)
        if a.check_tokenizer and not tok_ok[v.model]:
            cmd.append("--skip-tokenizer-init")
        t0 = time.time()
        with (out / f"cli-{i}-{v.label}.log").open("w") as cli_log:
            proc = subprocess.Popen(cmd, env={**env, **v.server_env}, stdout=cli_log, stderr=subprocess.STDOUT)
            try:
                rc = proc.wait(timeout=max(30.0, hard_end - now))
            except subprocess.TimeoutExpired:
                # SIGTERM: the profiler stops its server in a finally block, keeping the points measured.
                proc.send_signal(signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=45)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
                log(out, f"{v.label}: stopped at its time limit")
        stop_leftover_server(out / v.model / a.gpu / vdir_of(v) / "vllm" / "server.pid")
        tail = (out / f"cli-{i}-{v.label}.log").read_text(errors="replace")[-2500:]
        log(out, f"{v.label}: exit {rc} after {time.time() - t0:.0f} s\n{tail}")
    (out / "DONE").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
    log(out, "session done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
