"""The engine method of the vLLM backend (profiles.backends.vllm, module doc): prefill timed by vLLM's own
``vllm:request_prefill_time_seconds`` histogram, read from ``/metrics`` before and after one request.

Table-driven arithmetic on /metrics texts as vLLM 0.26.0 writes them (labels, an engine label, several
samples), then against the EMULATED vLLM server (planner.simulate.emulator: a fake of vLLM on a GPU whose
step times follow a known law), which records the same histograms with vLLM V1's semantics.
"""

from __future__ import annotations

import asyncio

import pytest

from planner.perf.laws import VariantPerf
from planner.simulate.emulator import EmulatorFleet
from profiles.backends.vllm import (EngineCounters, ProfilerError, VllmClient, engine_counters,
                                    engine_prefill_sample)


def metrics_text(prefill_sum_s: float, prefill_count: int, steps: int, engines: int = 1) -> str:
    """A /metrics excerpt in vLLM 0.26.0's form; the totals are split over `engines` engine labels."""
    out = ["# HELP vllm:request_prefill_time_seconds Histogram of time spent in PREFILL phase for request.",
           "# TYPE vllm:request_prefill_time_seconds histogram",
           "# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.",
           "# TYPE vllm:iteration_tokens_total histogram"]
    lines_p, lines_i = out[:2], out[2:]
    for e in range(engines):
        lab = f'engine="{e}",model_name="m"'
        lines_p += [f'vllm:request_prefill_time_seconds_bucket{{{lab},le="+Inf"}} {prefill_count // engines}',
                    f"vllm:request_prefill_time_seconds_count{{{lab}}} {prefill_count // engines}",
                    f"vllm:request_prefill_time_seconds_sum{{{lab}}} {prefill_sum_s / engines}"]
        lines_i += [f'vllm:iteration_tokens_total_bucket{{{lab},le="+Inf"}} {steps // engines}',
                    f"vllm:iteration_tokens_total_count{{{lab}}} {steps // engines}",
                    f"vllm:iteration_tokens_total_sum{{{lab}}} 100.0"]
    return "\n".join(lines_p + lines_i) + "\n"


def test_counters_are_summed_over_engines():
    c = engine_counters(metrics_text(3.0, 40, 100, engines=2))
    assert c == EngineCounters(prefill_sum_s=3.0, prefill_count=40, output_steps=100)


def test_a_server_without_the_histograms_is_a_clear_error():
    with pytest.raises(ProfilerError, match="request_prefill_time_seconds_sum.*--prefill-method blocker"):
        engine_counters("# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0\n", "http://x")


B = EngineCounters(prefill_sum_s=10.0, prefill_count=7, output_steps=50)
CASES = [
    # name, after, batch, expected (ms, steps) or None
    ("one prompt, one step", EngineCounters(10.050, 8, 51), 1, (50.0, 1)),
    ("four prompts sharing a step: each took the step", EngineCounters(10.080, 11, 51), 4, (20.0, 1)),
    ("four prompts over two steps (the first arrived alone): not one step",
     EngineCounters(10.070, 11, 52), 4, (17.5, 2)),
    ("a request of someone else finished meanwhile", EngineCounters(10.1, 9, 52), 1, None),
    ("the histogram has not counted the request yet", EngineCounters(10.0, 7, 50), 1, None),
]


@pytest.mark.parametrize("name,after,batch,expected", CASES, ids=[c[0] for c in CASES])
def test_engine_sample(name, after, batch, expected):
    got = engine_prefill_sample(B, after, batch)
    if expected is None:
        assert got is None
        return
    assert got is not None
    assert (round(got.ms, 6), got.steps) == expected
    assert got.one_step == (expected[1] == 1)


# Fixed costs large enough (30 ms) that the emulator's own per-step overhead (~1 ms of asyncio) is small.
LAW = VariantPerf(model="llama-3.1-8b", gpu="H100-SXM-80GB", tp=1, source="measured",
                  prefill_a_ms=30.0, prefill_b_ms_per_token=0.06, prefill_c_ms_per_token2=3e-6,
                  decode_alpha_ms=30.0, decode_beta_ms_per_seq=0.3, decode_gamma_ms_per_token=4e-4,
                  kv_capacity_tokens=120_000, kv_bytes_per_token=131072, kv_link_gb_s=50.0, max_batched_tokens=8192)


@pytest.mark.parametrize("isl,batch", [(128, 1), (512, 4), (2048, 4), (16384, 1)])
def test_engine_method_reads_the_emulated_step_law(isl, batch):
    """The engine method recovers the emulator's prefill law (batch sharing one step; a prompt over the
    step budget chunked over steps, whose engine time is the whole span). The emulator stamps steps on
    a virtual clock, so the machine's load does not enter the comparison."""

    async def measure(url: str) -> list[float]:
        c = VllmClient(url, "llama-3.1-8b")
        try:
            return [await c.prefill_engine_ms(isl, batch) for _ in range(2)]
        finally:
            await c.aclose()

    with EmulatorFleet(LAW, time_scale=0.5) as fleet:
        got = asyncio.run(measure(fleet.urls[0]))
    if batch * isl <= LAW.max_batched_tokens:
        want = LAW.prefill_ms(isl, batch)
    else:  # chunked: one fixed cost per step, the chunks' attention over the prefix so far
        steps = -(-isl // LAW.max_batched_tokens)
        chunk = LAW.max_batched_tokens
        want = steps * LAW.prefill_a_ms + LAW.prefill_b_ms_per_token * isl + LAW.prefill_c_ms_per_token2 * sum(
            (k + 1) ** 2 * chunk**2 - k**2 * chunk**2 for k in range(steps))
    for ms in got:
        assert ms == pytest.approx(want, rel=0.02), (got, want)
