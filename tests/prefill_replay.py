"""A prefill-only replay (every request one output token, plan r4's design: profiles/gpu_session.py PLAN_R4) in the
committed layout (<run>/<model>/<gpu>/<variant>/vllm/trace_replay.csv beside its meta.yaml) under a temporary folder:
what bench/vllm_trace_replay.py and bench/vllm_prefill_mix.py read before plan r4 has run on a GPU. Never written under
profiles/runs.

Its "measured" TTFTs are the simulator's prefill replica replaying the same arrivals with the bundled laws
(bench/vllm_prefill_mix.simulated_ttft_ms): a stand-in for vLLM on a GPU, which cannot run here, chosen over the
emulated server because it is deterministic: the emulator's client-side TTFT of 8,000-token prompts at a scaled clock
read 12 s at p90 on a busy 2-core machine (its clock fell behind), where the same run idle read 0.3 s. The profiler's
writing of such a file against the emulator is tested in tests/test_trace_replay_profile.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from planner.io.catalog import Catalog
from planner.perf.laws import VariantPerf, fit_profile
from planner.perf.profiledata import load_profile, profile_dir
from profiles.backends.vllm import LOAD_SWEEP_COLUMNS, TRACE_REPLAY_FILE
from profiles.format import table_text

REPO = Path(__file__).resolve().parents[1]
MODEL, GPU = "qwen3-30b-a3b", "H100-SXM-80GB"
# plan r4's two classes (profiles/runs/2026-12-08-r4/traces/prefill_mix.csv): prompt tokens, req/s
CLASSES = ((800, 12.0), (8000, 1.5))


def bundled_dir() -> Path:
    return profile_dir(REPO / "profiles" / "data", MODEL, GPU, 1, "bf16", "bf16", vllm=True)


def bundled_laws() -> VariantPerf:
    """The laws bench/vllm_trace_replay.read_replay fits for the replay (the bundled H100 profile of MODEL)."""
    perf, _, _ = fit_profile(load_profile(bundled_dir()), Catalog.load())
    return perf


def arrivals(span_s: float, seed: int) -> tuple[tuple[float, int, int], ...]:
    """Poisson arrivals of CLASSES over `span_s` seconds, every output one token, sorted by time."""
    rng = np.random.default_rng(seed)
    rows = [(float(t), isl, 1) for isl, rate in CLASSES
            for t in np.cumsum(rng.exponential(1.0 / rate, int(rate * span_s * 1.5))) if t < span_s]
    rows.sort()
    t0 = rows[0][0]
    return tuple((t - t0, k, o) for t, k, o in rows)


def simulated_prefill_replay(root: Path, span_s: float = 60.0, seed: int = 6001) -> Path:
    """A trace_replay.csv of `arrivals` whose TTFTs are the simulator's prefill replica replaying them
    (bench/vllm_prefill_mix.simulated_ttft_ms, on the laws bench/vllm_trace_replay.read_replay fits for it), with the
    bundled profile's meta.yaml beside it, under `root`/2026-12-08-r4/MODEL/GPU/tp1-replay-prefill-mix/vllm/ (plan r4's
    variant); its path."""
    import sys

    sys.path.insert(0, str(REPO / "bench"))
    import vllm_prefill_mix as vpm
    import vllm_trace_replay as vtr

    out = root / "2026-12-08-r4" / MODEL / GPU / "tp1-replay-prefill-mix" / "vllm"
    out.mkdir(parents=True)
    shutil.copy(bundled_dir() / "meta.yaml", out / "meta.yaml")
    arr = arrivals(span_s, seed)
    sent = [a[0] for a in arr]
    prompts = [a[1] for a in arr]
    rate = len(arr) / max(sent[-1], 1e-9)
    path = out / TRACE_REPLAY_FILE

    def write(ttft: list[float]) -> None:
        rows = [{"isl": round(float(np.mean(prompts))), "osl": 1, "rate_rps": rate, "seed": seed, "request": i,
                 "sent_s": s, "ttft_ms": t, "itl_ms": "", "tokens": 1, "e2e_ms": t, "prompt_tokens": k, "isl_scv": 0.0,
                 "osl_scv": 0.0, "settle": 0} for i, (s, k, t) in enumerate(zip(sent, prompts, ttft, strict=True))]
        path.write_text(table_text(rows, LOAD_SWEEP_COLUMNS))

    write([0.0] * len(arr))  # the rows first: read_replay fits the laws and reads the server's cache from meta.yaml
    r = vtr.read_replay(str(path))
    cls = vpm.classes_of(r.prompts)
    write([float(t) for t in vpm.simulated_ttft_ms(r, cls, int(cls.max()) + 1)])
    return path
