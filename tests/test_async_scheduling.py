"""vLLM 0.26's asynchronous scheduling in the simulator's mixed replica and in the closed form.

The engine schedules step k+1 while step k runs, so a request that reaches it during step k first runs in
step k+2 (planner/simulate/steptime.py, ASYNC_SCHEDULING; profiles/runs/2026-12-04-s17/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from planner.io.schema import Slo
from planner.perf.laws import VariantPerf
from planner.planning.capacity import mixed_latency
from planner.simulate.arrivals import Arrivals
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec
from planner.simulate.report import build_report

ROOT = Path(__file__).resolve().parents[1]

# Laws with round numbers and no frontend (ttft_overhead_ms 0), so every step of the timeline below is exact.
PERF = VariantPerf(model="m", gpu="G", tp=1, source="prior", prefill_a_ms=10.0, prefill_b_ms_per_token=0.01,
                   prefill_c_ms_per_token2=0.0, decode_alpha_ms=10.0, decode_beta_ms_per_seq=0.0,
                   decode_gamma_ms_per_token=0.0, kv_capacity_tokens=1_000_000, kv_bytes_per_token=131_072,
                   kv_link_gb_s=50.0)


def _ttft_ms(t_s: list[float], isl: int, osl: list[int], async_scheduling: bool) -> np.ndarray:
    n = len(t_s)
    arr = Arrivals(np.asarray(t_s), np.zeros(n, dtype=np.int64), np.full(n, isl), np.asarray(osl), ("c",))
    sim = FleetSimulator([PoolSpec("m/mixed/G/tp1", "mixed", PERF, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr,
                         {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=90.0)}, frontend_ms_per_running=0.0,
                         async_scheduling=async_scheduling)
    sim.run()
    return build_report(sim).requests.ttft_ms.to_numpy()


@pytest.mark.parametrize(
    ("case", "arrival_s", "async_scheduling", "expected_ttft_ms"),
    [
        # Request 0 (t=0, idle engine) prefills alone in one 10 + 0.01 x 1000 = 20 ms step, then decodes in 10-ms
        # steps from t=20 ms. Request 1 arrives at t=25 ms, in the decode step 20-30 ms.
        ("sync: joins the step after the one in flight", 0.025, False, 5.0 + 20.0),
        ("async: the step 30-40 ms was scheduled without it", 0.025, True, 5.0 + 10.0 + 20.0),
        # An idle engine schedules an arrival at once, async or not.
        ("idle engine, async", 0.5, True, 20.0),
    ],
)
def test_a_request_joins_the_step_after_next_when_the_engine_is_busy(case: str, arrival_s: float, async_scheduling: bool,
                                                                    expected_ttft_ms: float) -> None:
    ttft = _ttft_ms([0.0, arrival_s], 1000, [20, 20], async_scheduling)
    assert ttft[0] == pytest.approx(20.0), case
    assert ttft[1] == pytest.approx(expected_ttft_ms), case


def test_arrivals_during_a_chunk_step_wait_for_the_chunk_step_already_scheduled() -> None:
    """Three prompts at t = 0, 5, 6 ms: the first prefills alone (0-20 ms). The second and third arrived during that
    step: synchronously they share the next step (20-50 ms: 10 + 0.01 x 2000 prefill plus the decode batch's fixed
    cost, mixed_step_ms); asynchronously the step 20-30 ms (one decode) was already scheduled, so they start at 30."""
    sync = _ttft_ms([0.0, 0.005, 0.006], 1000, [20, 20, 20], False)
    asyn = _ttft_ms([0.0, 0.005, 0.006], 1000, [20, 20, 20], True)
    assert sync[0] == asyn[0] == pytest.approx(20.0)
    delay = asyn[1:] - sync[1:]
    assert np.all(delay == pytest.approx(10.0))  # exactly the one decode step scheduled before they were seen


def test_closed_form_adds_about_one_step_and_nothing_at_an_idle_replica() -> None:
    """The closed form's TTFT grows with async scheduling by at most two steps at load, and by next to nothing at a
    vanishing rate (the replica is idle when a request comes); the ITL does not change."""
    for rate in (1e-4, 5.0, 20.0):
        off = mixed_latency(PERF, 1000.0, 100.0, rate, 90.0, frontend_ms_per_running=0.0, async_scheduling=False)
        on = mixed_latency(PERF, 1000.0, 100.0, rate, 90.0, frontend_ms_per_running=0.0, async_scheduling=True)
        assert on.itl_ms == pytest.approx(off.itl_ms)
        assert on.ttft_ms >= off.ttft_ms
        if rate < 1e-3:
            assert on.ttft_ms == pytest.approx(off.ttft_ms, abs=0.1)
        else:
            assert 2.0 <= on.ttft_ms - off.ttft_ms <= 2.0 * 20.0 + 10.0, (rate, on, off)


def test_closed_form_with_async_scheduling_tracks_the_async_simulator() -> None:
    """Closed form vs the simulator (both async) at a 1,000-token class, 40% prefill share: TTFT and ITL p90
    within 15%, as test_capacity's referee check asks of the synchronous model."""
    rng = np.random.default_rng(3)
    rate = 0.4 * 1000.0 / (0.01 * 1000 + 10.0)
    n = 4000
    t = np.cumsum(rng.exponential(1.0 / rate, n))
    arr = Arrivals(t, np.zeros(n, dtype=np.int64), np.full(n, 1000), np.full(n, 100), ("c",))
    sim = FleetSimulator([PoolSpec("m/mixed/G/tp1", "mixed", PERF, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr,
                         {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=90.0)}, frontend_ms_per_running=0.0)
    sim.run()
    df = build_report(sim).requests.iloc[n // 10:]
    lat = mixed_latency(PERF, 1000.0, 100.0, rate, 90.0, frontend_ms_per_running=0.0)
    assert lat.ttft_ms == pytest.approx(float(np.nanpercentile(df.ttft_ms, 90.0)), rel=0.15)
    assert lat.itl_ms == pytest.approx(float(np.nanpercentile(df.itl_ms, 90.0)), rel=0.15)


@pytest.mark.parametrize("load", [0.5, 0.85])
def test_closed_form_tracks_the_simulator_when_a_prompt_is_longer_than_the_step_budget(load: float) -> None:
    """On the real llama-3.1-8b H200 profile's laws, an 8,192-token prompt spans two steps of the 8,192-token budget
    (the decodes take part of it), and its last step's room goes to the next prompt's first chunk, FCFS: its first
    token waits for that chunk too. The closed form counts those riders up to steps x budget / isl prompts
    (capacity.mixed_latency); with the cap at one step's budget it ran 22% / 20% below the simulator at 50% / 85% of
    the closed form's saturation rate (4.04 rps at ISL 8,192, OSL 128). TTFT p90 within 15%."""
    from planner.io.catalog import Catalog
    from planner.perf.laws import fit_profile
    from planner.perf.profiledata import load_profile
    from planner.simulate.steptime import FRONTEND_MS_PER_RUNNING

    perf = fit_profile(load_profile(ROOT / "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"), Catalog.load())[0]
    rate = load * 4.04  # the closed form's saturation rate at ISL 8,192 / OSL 128 (bench/fidelity.py's bisection)
    n = 3000
    t = np.cumsum(np.random.default_rng(0).exponential(1.0 / rate, n))
    arr = Arrivals(t, np.zeros(n, dtype=np.int64), np.full(n, 8192), np.full(n, 128), ("c",))
    sim = FleetSimulator([PoolSpec("m/mixed/G/tp1", "mixed", perf, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr,
                         {"c": Slo(ttft_ms=1e9, itl_ms=1e9, percentile=90.0)},
                         frontend_ms_per_running=FRONTEND_MS_PER_RUNNING)
    sim.run()
    df = build_report(sim).requests.iloc[n // 5:]
    lat = mixed_latency(perf, 8192.0, 128.0, rate, 90.0)
    assert lat.ttft_ms == pytest.approx(float(np.nanpercentile(df.ttft_ms, 90.0)), rel=0.15)
