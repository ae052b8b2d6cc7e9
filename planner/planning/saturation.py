"""The request rate that saturates one replica, by the capacity model (planner/planning/capacity.py).

`saturation_rps` is the largest arrival rate at which the closed form still predicts a finite latency and the
engine's limits hold (the running batch within max_num_seqs and, by the planner's own KV check, within the KV
cache). It is what bench/fidelity.py and bench/vllm_under_load.py set real vLLM's measured saturation against
(issue 10 item 7: within 10%; the benches' RESULT lines say how close) and what a load sweep's rates are planned as shares
of (`planner profile rates`), so that the sweep straddles the replica's capacity instead of guessing it.
"""

from __future__ import annotations

import math

from planner.perf.laws import VariantPerf
from planner.planning import capacity

# Halvings of the bisection: 60 take any bracket below 1e-15 of its width (far below a rate's meaning).
BISECTION_STEPS = 60


def prefill_saturation_rps(perf: VariantPerf, isl: float) -> float:
    """Prompts per second one replica prefills back to back at its batch budget (`max_batched_tokens // isl` prompts
    a step): the bracket's prefill side."""
    b = max(1, int(perf.max_batched_tokens // isl)) if isl <= perf.max_batched_tokens else 1
    return b * 1000.0 / perf.prefill_ms(isl, b)


def decode_saturation_rps(perf: VariantPerf, isl: float, osl: float) -> float:
    """Requests per second one replica decodes with its batch at the engine's limit (max_num_seqs or the KV cache,
    Little's law N = rate x osl x step / 1000) or where the step's growth with the batch diverges: the bracket's
    decode side."""
    ctx = isl + osl / 2
    slope = perf.decode_beta_ms_per_seq + perf.decode_gamma_ms_per_token * ctx
    n_max = min(perf.max_num_seqs, perf.kv_capacity_tokens / (isl + osl))
    lam_n = n_max * 1000.0 / (osl * perf.decode_step_ms(n_max, ctx))
    return min(lam_n, 1000.0 / (osl * slope))


def saturation_rps(perf: VariantPerf, role: str, isl: float, osl: float, percentile: float,
                   arrivals: capacity.ArrivalShape = capacity.POISSON, reserve_tokens: float | None = None) -> float:
    """Largest rate at which `capacity.latency` of `role` stays finite at `percentile` and, for a replica that decodes,
    the percentile batch fits max_num_seqs and the KV cache (`capacity.kv_batch` x `capacity.kv_reserve_tokens`:
    isl + osl(1 + scv) per sequence with `arrivals` of an output spread; `reserve_tokens` counts a sequence otherwise,
    e.g. bench/vllm_kv_outputs.py's on-demand count). Bisection on a bracket of twice the larger of the prefill and
    decode sides."""
    per_seq = capacity.kv_reserve_tokens(isl, osl, arrivals.osl_scv) if reserve_tokens is None else reserve_tokens
    hi = 2.0 * max(prefill_saturation_rps(perf, isl), decode_saturation_rps(perf, isl, osl))
    lo = 0.0
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        lat = capacity.latency(perf, role, isl, osl, mid, percentile, arrivals)
        ok = math.isfinite(lat.ttft_ms) and math.isfinite(lat.itl_ms)
        if role != "prefill":
            kv = capacity.kv_batch(lat, isl, osl, percentile, arrivals) * per_seq
            ok = ok and lat.batch <= perf.max_num_seqs and kv <= perf.kv_capacity_tokens
        lo, hi = (mid, hi) if ok else (lo, mid)
    return lo
