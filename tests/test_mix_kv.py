"""Rule 59-K (stop 59): a P/D decode pool serving several classes holds their KV together, and a KV percentile is not
linear in the load: where the mix's KV at a class's percentile overflows the replica's cache, requests wait for
admission beyond the TTFT's tail. The plan says so and `planner solve` verifies it by default (rule 58-V)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from planner.perf.laws import PerfModel, quiet_extrapolation
from planner.planning.capacity import POISSON, PoolMix, capacity, decode_latency, kv_batch, kv_reserve_tokens, mix_kv_tokens

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

MODEL, GPU = "qwen3-30b-a3b", "H100-SXM-80GB"


@pytest.fixture(scope="module")
def pm() -> PerfModel:
    return PerfModel.load()


@pytest.mark.parametrize("isl, osl, rate_rps", [(500, 200, 12.0), (8000, 300, 1.0), (2000, 500, 4.0)])
def test_one_class_mix_is_the_capacity_check(pm: PerfModel, isl: int, osl: int, rate_rps: float) -> None:
    """A mix of one class reads what the capacity's own KV check reads for that class (kv_batch x its reservation)."""
    v = pm.get(MODEL, GPU, 1)
    with quiet_extrapolation():
        lat = decode_latency(v, isl, osl, rate_rps, 90.0)
        alone = kv_batch(lat, isl, osl, 90.0) * kv_reserve_tokens(isl, osl)
        mixed = mix_kv_tokens(v, PoolMix(isl=(float(isl),), osl=(float(osl),), rate_rps=(rate_rps,)), 90.0, POISSON)
    assert mixed == pytest.approx(alone, rel=1e-9)


def test_two_kv_bound_classes_overflow_together_where_their_shares_do_not(pm: PerfModel) -> None:
    """chat 500/200 at 12 req/s and documents 8,000/300 at 1 req/s: each alone is KV-bound on the replica, their
    linear shares add to ~0.80, but the mix's p90 KV is over the cache (the documents' reservations widen its law)."""
    v = pm.get(MODEL, GPU, 1)
    with quiet_extrapolation():
        share = sum(r / capacity(v, "decode", i, o, 90.0, None, 50.0).rate_rps for i, o, r in ((500, 200, 12.0), (8000, 300, 1.0)))
        kv = mix_kv_tokens(v, PoolMix(isl=(500.0, 8000.0), osl=(200.0, 300.0), rate_rps=(12.0, 1.0)), 90.0, POISSON)
    assert 0.7 < share < 0.85
    assert kv > v.kv_capacity_tokens


def test_the_plan_flags_the_overflow_and_solve_verifies_it(pm: PerfModel) -> None:
    """The class-by-class P/D plan of that workload (one prefill, one decode replica), chat's TTFT SLO 300 ms,
    predicts both classes within their TTFT SLO; the simulator's chat requests wait for decode admission (p90 ~1.3 s).
    The plan names the overflow per class, so rule 58-V's default verifies it. Fails on the old code (nothing flagged).
    (At a 150-ms SLO, rule 60-B's FCFS packing reads the chat class over it behind the prefill pool's mix as well.)"""
    from mixed_sizing import fleet_of, plan, workload

    from planner.api import simulate
    from planner.planning.assemble import classes_over_slo
    from planner.planning.verify import verified_by_default

    wl = workload(MODEL, 500, 300.0, 8000, 12.0, 1.0)
    p = plan(wl, fleet_of(GPU, "pd"), pm, False)
    pred = p.models[MODEL].predicted
    assert pred[f"{MODEL}/chat"].ttft_ms is not None and pred[f"{MODEL}/chat"].ttft_ms < 300.0
    over = classes_over_slo(p)
    assert [m for m, _, _ in over[f"{MODEL}/chat"]] == ["decode KV"]
    assert verified_by_default(p, "cost") == [f"{MODEL}/chat", f"{MODEL}/doc"]
    assert any("decode KV p90" in n and "136,560-token cache" in n for n in p.notes)
    with quiet_extrapolation():
        rep = simulate(p, wl, duration_s=900.0, seed=11, perf=pm)
    chat = rep.requests[rep.requests["class_id"] == f"{MODEL}/chat"]
    assert float(np.nanpercentile(chat["kv_wait_ms"], 90)) > 300.0  # the wait the TTFT prediction does not count
