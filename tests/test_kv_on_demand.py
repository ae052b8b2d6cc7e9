"""The simulator's on-demand KV (FleetSimulator(kv_policy="on_demand"), planner/simulate/engine.py): a mixed replica
allocates as vLLM 0.26 does, preempting the most recently admitted request when the cache is full, and changes
nothing while the cache has room."""

from __future__ import annotations

import numpy as np

from planner.io.schema import Slo
from planner.perf.laws import VariantPerf
from planner.simulate.arrivals import Arrivals
from planner.simulate.engine import BatchReplica
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec
from planner.simulate.report import build_report

P = VariantPerf(model="m", gpu="H100", tp=1, source="prior", prefill_a_ms=15.0, prefill_b_ms_per_token=0.06,
                prefill_c_ms_per_token2=2e-6, decode_alpha_ms=7.0, decode_beta_ms_per_seq=0.3, decode_gamma_ms_per_token=5e-4,
                kv_capacity_tokens=400_000, kv_bytes_per_token=131072, kv_link_gb_s=50.0, max_batched_tokens=2048)
SLO = {"c": Slo(ttft_ms=1e9, itl_ms=1e9)}


def _arrivals(t, isl, osl) -> Arrivals:
    n = len(t)
    return Arrivals(np.asarray(t, float), np.zeros(n, dtype=np.int64), np.asarray(isl, dtype=np.int64),
                    np.asarray(osl, dtype=np.int64), ("c",))


def _run(arr: Arrivals, policy: str, kv_tokens: int) -> FleetSimulator:
    perf = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": kv_tokens})
    sim = FleetSimulator([PoolSpec("m/mixed/H100/tp1", "mixed", perf, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr, SLO,
                         kv_policy=policy)
    sim.run()
    return sim


def _replica(sim: FleetSimulator) -> BatchReplica:
    rep = sim.pool_list[0].ready[0]
    assert isinstance(rep, BatchReplica)
    return rep


def test_with_room_in_the_cache_both_policies_give_the_same_requests():
    """Poisson arrivals of spread lengths on a cache that never fills: identical request tables, no preemption."""
    rng = np.random.default_rng(7)
    n = 300
    arr = _arrivals(np.cumsum(rng.exponential(1 / 3.0, n)), rng.integers(200, 3000, n), rng.integers(10, 600, n))
    a, b = _run(arr, "reserve", 400_000), _run(arr, "on_demand", 400_000)
    ra, rb = build_report(a).requests, build_report(b).requests
    assert ra.ttft_ms.tolist() == rb.ttft_ms.tolist() and ra.e2e_ms.tolist() == rb.e2e_ms.tolist()
    assert _replica(b).preemptions == 0


def test_a_request_admitted_on_demand_is_preempted_when_the_cache_fills_and_recomputes():
    """Two 1,000-token prompts of 400-token outputs on a 2,400-token cache. Reserving 1,400 each, the second waits for
    the first to finish. On demand both start; after ~200 steps the cache is full and the second (the last admitted)
    is preempted, its first token already out; it resumes once the first finishes, recomputing its prompt and the
    tokens it had generated, and ends later than the first. Every output token is produced once."""
    arr = _arrivals([0.0, 0.0], [1000, 1000], [400, 400])
    res, od = _run(arr, "reserve", 2400), _run(arr, "on_demand", 2400)
    r_res, r_od = build_report(res).requests, build_report(od).requests
    rep = _replica(od)
    assert rep.preemptions == 1 and _replica(res).preemptions == 0
    assert build_report(od).pool_summary().preemptions.tolist() == [1]  # the report counts it
    assert r_od.finished.all() and r_res.finished.all()
    assert r_od.ttft_ms[1] < 0.1 * r_res.ttft_ms[1]  # on demand it starts at once
    assert r_od.e2e_ms[1] > r_od.e2e_ms[0]
    # the first runs alone after the preemption: it ends sooner than sharing the batch to its end would allow
    assert r_od.e2e_ms[0] < r_res.e2e_ms[1]
    assert rep.gen_tokens == 800
    # recomputed: the second prompt is prefilled again with the ~200 tokens it had generated
    assert 3000 + 150 < rep.prompt_tokens < 3000 + 260  # both prompts, then the second again with its output


def test_on_demand_never_holds_more_than_the_cache_and_runs_more_sequences(monkeypatch):
    """A burst of 40 requests (1,000-token prompts, outputs 50-950) on a 20,000-token cache: whenever the replica
    schedules, what the running hold fits the cache; on demand more run at once than reservations allow, with
    preemptions; everything finishes and every output token is produced once."""
    rng = np.random.default_rng(3)
    osl = rng.integers(50, 950, 40)
    arr = _arrivals(np.linspace(0.0, 0.2, 40), [1000] * 40, osl)
    seen: dict[str, list[tuple[int, int]]] = {"held": []}
    orig = BatchReplica._schedule

    def spy(self, cutoff: float = -1.0) -> None:
        orig(self, cutoff)
        if self.on_demand:
            seen["held"].append((self._held_tokens(), self.running))

    monkeypatch.setattr(BatchReplica, "_schedule", spy)
    od = _run(arr, "on_demand", 20_000)
    res = _run(arr, "reserve", 20_000)
    assert build_report(od).requests.finished.all()
    assert _replica(od).gen_tokens == int(osl.sum())
    held, running = zip(*seen["held"], strict=True)
    assert max(held) <= 20_000
    assert _replica(od).preemptions > 0
    reserve_max = max(int(k) for k in range(41) if np.sort(1000 + osl)[:k].sum() <= 20_000)  # the best case reserving
    assert max(running) > reserve_max
    assert build_report(res).requests.finished.all()
