"""Step-time laws of one engine iteration, shared by the fleet simulator and the emulated server.

Pure functions of a :class:`planner.perf.laws.VariantPerf` and batch shape (DESIGN.md, Performance model):

* prefill of a batch:   t = a + max(floor, b * sum(isl) + c * sum(isl^2))  (floor 0: linear), times the
  measured token table's ratio at sum(isl) for an MoE (planner.perf.laws.prefill_token_table)
* decode step:          t = fixed(batch) + beta * batch + gamma * sum(context); fixed = alpha [+ MoE] [+ knee]
* mixed (chunked prefill) step: one forward pass carries the decodes and the prefill chunks, so the
  fixed cost is paid once (the larger of the two fixed terms) and the marginal terms add. A chunk of
  `n` tokens of a prompt of which `done` tokens are already in the cache costs
  ``b*n + c*((done+n)^2 - done^2)``, so the chunks of one prompt sum to exactly its unchunked cost
  (an MoE's chunks add the token table's excess at the step's prefill tokens: VariantPerf.prefill_marginal_ms).

* frontend delay before the engine sees a request (mixed replicas behind vLLM's API server):
  ``ttft_overhead_ms + FRONTEND_MS_PER_RUNNING * running``, see :data:`FRONTEND_MS_PER_RUNNING`.

Only the public fields of VariantPerf are read, so a perf model that fits these laws plugs in as is.
"""

from __future__ import annotations

import math

from planner.io.errors import InputError
from planner.perf.laws import VariantPerf

# Extra frontend latency per request already running on a mixed vLLM replica, ms (TTFT only). vLLM's
# API server streams every running request's tokens on the same event loop that admits a new one,
# so a prompt reaches the engine later the more streams are open. Source: the real vLLM 0.26.0 load
# sweep of llama-3.1-8b on H200 (profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm/load_sweep.csv),
# ISL 1024 rows only (tuning; ISL 4096 held out): least squares through the origin of the per-request
# residual (measured TTFT - the simulator's, replaying the same arrivals) on the requests running at
# arrival; bench/fidelity.py part 4 refits it and reports both splits. Applies where the laws carry a
# frontend (ttft_overhead_ms > 0, i.e. laws fitted on a real engine's client-side TTFT). Refitted with
# ASYNC_SCHEDULING in the simulator (2026-12-04): 0.52 -> 0.27, the step that async scheduling adds having
# been most of what the constant absorbed; refitted with admission at the next step boundary (rule A46, stop 46,
# ASYNC_SCHEDULING below): 0.27 -> 0.659 (bench/admission_ablation.py prints the fit).
FRONTEND_MS_PER_RUNNING = 0.659

# Whether a request that reaches a busy mixed replica during step k is first scheduled into step k+2 (True) or at
# the next step boundary, step k+1 (False). vLLM 0.26.0's engine core schedules the next step while the current one
# runs (async scheduling, on by default: "Asynchronous scheduling is enabled" in every server log of
# profiles/runs/2026-12-04-s17; vLLM's EngineCore.step_with_batch_queue), which suggested k+2 (stop 24, chosen on load
# samples that started from an empty replica). Rule A46 (stop 46) chose between the two on samples of the steady
# state (settled samples on fresh arrivals, profiles/runs/2026-12-06-h12 and -h13: three models on the H100, the
# tuning set): the next boundary read closer to vLLM's TTFT p90 there (the simulator replaying the samples 18.8 ->
# 8.4% MAPE, the closed form 20.1 -> 13.5%, ITL unchanged), and the held-out steady-state points of the rule are
# reported under both (its run folder's README). Mixed replicas only; a decode replica's admission keeps its
# one-boundary wait (capacity.mixed_latency and planner/simulate/engine.py read this flag when called).
ASYNC_SCHEDULING = False


def mixed_admission(frontend_ms_per_running: float | None, async_scheduling: bool | None) -> tuple[float, bool]:
    """A mixed replica's frontend constant and admission: the given values, or for None the shipped ones as this
    module holds them when called (bench/admission_ablation.py swaps the module's constants; the simulator and the
    capacity model both resolve through here)."""
    return (FRONTEND_MS_PER_RUNNING if frontend_ms_per_running is None else frontend_ms_per_running,
            ASYNC_SCHEDULING if async_scheduling is None else async_scheduling)


def frontend_delay_ms(perf: VariantPerf, running: float, per_running_ms: float | None = None) -> float:
    """Time from a request's arrival to the engine seeing it: the frontend's fixed overhead plus
    `per_running_ms` (None: FRONTEND_MS_PER_RUNNING when called) per request already running on the replica (0 where
    the laws have no frontend)."""
    if perf.ttft_overhead_ms <= 0:
        return 0.0
    per_running, _ = mixed_admission(per_running_ms, None)
    return perf.ttft_overhead_ms + per_running * max(0.0, running)


def prefill_batch_ms(perf: VariantPerf, sum_isl: float, sum_isl2: float) -> float:
    """One prefill forward pass over prompts with these token sums (sum of isl, sum of isl^2)."""
    return perf.prefill_pass_ms(sum_isl, sum_isl2)  # a + max(floor, b*sum + c*sum2) (planner.perf.laws)


def chunk_cost_isl2(done: int, n: int) -> int:
    """The sum(isl^2) share of prefilling tokens [done, done+n) of one prompt."""
    return (done + n) * (done + n) - done * done


def mixed_step_ms(perf: VariantPerf, batch: int, sum_context: float, prefill_tokens: int, prefill_isl2: float) -> float:
    """One engine step with `batch` decodes (contexts summing to `sum_context`) and prefill chunks.

    No decodes: a prefill pass (VariantPerf.prefill_pass_ms: its floor and an MoE's whole token table, as the
    profile measured it). No prefill: the decode law. Both: one fixed cost (the larger) plus both marginal
    costs (chunked prefill piggybacks on the decode step, as in vLLM's scheduler; an MoE's chunks pay
    MOE_TABLE_MIXED_SHARE of its table's excess).
    """
    dec = perf.decode_beta_ms_per_seq * batch + perf.decode_gamma_ms_per_token * sum_context
    if prefill_tokens <= 0:
        return perf.decode_fixed_ms(batch) + dec
    if batch <= 0:
        # no decode rides along: the step is a prefill pass, as the profile measured it (an MoE's whole token table)
        return perf.prefill_pass_ms(prefill_tokens, prefill_isl2)
    pre = perf.prefill_marginal_ms(prefill_tokens, prefill_isl2)
    return max(perf.decode_fixed_ms(batch), perf.prefill_a_ms) + dec + pre


def decode_stretch_ms(perf: VariantPerf, batch: int, sum_context: float, steps: int) -> float:
    """Time of `steps` decode steps of a constant batch whose context sum grows by `batch` per step."""
    if steps <= 0:
        return 0.0
    first = perf.decode_fixed_ms(batch) + perf.decode_beta_ms_per_seq * batch + perf.decode_gamma_ms_per_token * sum_context
    return steps * first + perf.decode_gamma_ms_per_token * batch * steps * (steps - 1) / 2.0


def decode_steps_within(perf: VariantPerf, batch: int, sum_context: float, elapsed_ms: float) -> int:
    """How many whole decode steps of a constant batch complete within `elapsed_ms` (inverse of the above)."""
    if elapsed_ms <= 0:
        return 0
    first = perf.decode_fixed_ms(batch) + perf.decode_beta_ms_per_seq * batch + perf.decode_gamma_ms_per_token * sum_context
    half = perf.decode_gamma_ms_per_token * batch / 2.0
    if half <= 1e-15:
        k = int(elapsed_ms / first)
    else:
        # half*k^2 + (first-half)*k - elapsed = 0
        lin = first - half
        k = int((-lin + math.sqrt(lin * lin + 4.0 * half * elapsed_ms)) / (2.0 * half))
    # guard the float root on both sides
    while k > 0 and decode_stretch_ms(perf, batch, sum_context, k) > elapsed_ms:
        k -= 1
    while decode_stretch_ms(perf, batch, sum_context, k + 1) <= elapsed_ms:
        k += 1
    return k


def check_perf(perf: VariantPerf, where: str) -> None:
    """Reject laws that would make an engine step free or a replica hold nothing (a simulation would not end)."""
    if perf.decode_alpha_ms + perf.decode_beta_ms_per_seq <= 0:
        raise InputError(where, "decode",
                         f"decode step time must be positive at batch 1; got alpha={perf.decode_alpha_ms}, beta={perf.decode_beta_ms_per_seq}")
    if perf.prefill_a_ms + perf.prefill_b_ms_per_token <= 0:
        raise InputError(where, "prefill", f"prefill time must be positive; got a={perf.prefill_a_ms}, b={perf.prefill_b_ms_per_token}")
    if min(perf.prefill_a_ms, perf.prefill_b_ms_per_token, perf.prefill_c_ms_per_token2, perf.decode_alpha_ms,
           perf.decode_beta_ms_per_seq, perf.decode_gamma_ms_per_token) < 0:
        raise InputError(where, "laws", "latency-law coefficients must be >= 0")
    if perf.kv_capacity_tokens <= 0:
        raise InputError(where, "kv_capacity_tokens", f"a replica must hold some KV cache; got {perf.kv_capacity_tokens} (zero-capacity pool)")
    if perf.max_num_seqs <= 0 or perf.max_batched_tokens <= 0:
        raise InputError(where, "max_num_seqs",
                         f"max_num_seqs and max_batched_tokens must be positive; got {perf.max_num_seqs}, {perf.max_batched_tokens}")
