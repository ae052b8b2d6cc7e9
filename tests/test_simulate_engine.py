"""Simulator core: exact timings of lone requests, analytic decode stretches vs a per-step reference,
chunked-prefill mixed steps, KV admission (reserved and on demand), determinism, routing shares."""

from __future__ import annotations

import numpy as np
import pytest

from planner.perf.laws import VariantPerf
from planner.io.schema import Slo
from planner.simulate.arrivals import Arrivals
from planner.simulate.engine import BatchReplica
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec
from planner.simulate.steptime import chunk_cost_isl2, decode_stretch_ms, decode_steps_within, mixed_step_ms
from planner.simulate.report import build_report

P = VariantPerf(model="m", gpu="H100", tp=1, source="prior", prefill_a_ms=15.0, prefill_b_ms_per_token=0.06,
                prefill_c_ms_per_token2=2e-6, decode_alpha_ms=7.0, decode_beta_ms_per_seq=0.3, decode_gamma_ms_per_token=5e-4,
                kv_capacity_tokens=400_000, kv_bytes_per_token=131072, kv_link_gb_s=50.0, max_batched_tokens=2048)
SLO = {"c": Slo(ttft_ms=1000, itl_ms=50)}


def arrivals(t, isl, osl) -> Arrivals:
    n = len(t)
    return Arrivals(np.asarray(t, float), np.zeros(n, dtype=np.int64), np.asarray(isl, dtype=np.int64),
                    np.asarray(osl, dtype=np.int64), ("c",))


def pd_sim(arr: Arrivals, perf: VariantPerf = P, n_pre: int = 1, n_dec: int = 1, **kw) -> FleetSimulator:
    pools = [PoolSpec("m/prefill/H100/tp1", "prefill", perf, n_pre), PoolSpec("m/decode/H100/tp1", "decode", perf, n_dec)]
    return FleetSimulator(pools, {"c": ClassRoute("m", ((0, 1.0),), ((1, 1.0),))}, arr, SLO, **kw)


def mixed_sim(arr: Arrivals, perf: VariantPerf = P) -> FleetSimulator:
    return FleetSimulator([PoolSpec("m/mixed/H100/tp1", "mixed", perf, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr, SLO)


def test_stretch_inverse_is_exact():
    for b, s, ms in [(1, 100, 0.0), (5, 2000, 55.5), (64, 200_000, 10_000.0), (3, 0, 7.9)]:
        k = decode_steps_within(P, b, s, ms)
        assert decode_stretch_ms(P, b, s, k) <= ms < decode_stretch_ms(P, b, s, k + 1)
    # a stretch is the sum of its steps, context growing by the batch each step
    assert decode_stretch_ms(P, 4, 1000, 3) == pytest.approx(sum(P.decode_step_ms(4, (1000 + 4 * j) / 4) for j in range(3)))


def test_chunks_of_a_prompt_cost_as_much_as_the_prompt():
    isl2 = sum(chunk_cost_isl2(d, n) for d, n in [(0, 700), (700, 700), (1400, 600)])
    assert isl2 == 2000 ** 2
    assert mixed_step_ms(P, 0, 0, 2000, isl2) == pytest.approx(P.prefill_ms(2000))
    assert mixed_step_ms(P, 3, 900, 0, 0) == pytest.approx(P.decode_step_ms(3, 300))


def test_lone_disaggregated_request_timing_is_exact():
    sim = pd_sim(arrivals([1.0], [3000], [50]))
    sim.run()
    r = build_report(sim).requests.iloc[0]
    ttft = P.prefill_ms(3000) + P.kv_transfer_ms(3000)
    assert r.ttft_ms == pytest.approx(ttft)
    assert r.e2e_ms == pytest.approx(ttft + decode_stretch_ms(P, 1, 3000, 49))
    assert r.itl_ms == pytest.approx(decode_stretch_ms(P, 1, 3000, 49) / 49)


def reference_decode(t_arr, isl, osl, perf):
    """Per-step reference: at each step boundary admit arrived requests, one token per running request."""
    order = sorted(range(len(t_arr)), key=lambda i: t_arr[i])
    t, i, running, first, done = 0.0, 0, {}, {}, {}
    while len(done) < len(t_arr):
        while i < len(order) and t_arr[order[i]] <= t + 1e-12:
            r = order[i]
            first[r] = t
            running[r] = [isl[r], osl[r] - 1]  # context, tokens left
            i += 1
        if not running:
            t = t_arr[order[i]]
            continue
        t += perf.decode_step_ms(len(running), sum(c for c, _ in running.values()) / len(running)) / 1e3
        for r in list(running):
            running[r][0] += 1
            running[r][1] -= 1
            if running[r][1] == 0:
                done[r] = t
                del running[r]
    return first, done


def test_analytic_decode_matches_per_step_reference():
    rng = np.random.default_rng(3)
    n = 40
    t = np.sort(rng.uniform(0, 3, n))
    isl = rng.integers(100, 3000, n)
    osl = rng.integers(2, 300, n)
    # decode-only view: feed the decode pool directly at KV-arrival times
    sim = pd_sim(arrivals(t, isl, osl))
    sim.run()
    req = sim.req
    first, done = reference_decode(req.t_kv, list(isl), list(osl), P)
    for r in range(n):
        assert req.t_first[r] == pytest.approx(first[r], abs=1e-9)
        assert req.t_done[r] == pytest.approx(done[r], rel=1e-9, abs=1e-9)


def test_mixed_pool_chunked_prefill_inflates_itl():
    """A long prompt arriving mid-decode is chunked under the token budget; the decode's ITL grows."""
    lone = mixed_sim(arrivals([0.0], [500], [200]))
    lone.run()
    both = mixed_sim(arrivals([0.0, 0.3], [500, 6000], [200, 10]))
    both.run()
    a, b = build_report(lone).requests, build_report(both).requests
    assert a.ttft_ms[0] == pytest.approx(P.prefill_ms(500))
    # the 6000-token prompt needs ceil(6000 / (2048 - 1)) = 3 steps sharing the batch with one decode
    extra = b.e2e_ms[0] - a.e2e_ms[0]
    assert extra > P.prefill_ms(6000) - P.prefill_a_ms - 1
    assert b.itl_ms[0] > a.itl_ms[0]
    assert b.ttft_ms[1] > P.prefill_ms(6000)


def test_kv_capacity_admission_queues_and_everything_finishes():
    small = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": 5000})
    sim = pd_sim(arrivals(np.linspace(0, 0.5, 10), [1000] * 10, [500] * 10), perf=small)
    sim.run()
    rep = build_report(sim)
    assert rep.requests.finished.all()
    assert (rep.requests.kv_wait_ms > 0).sum() >= 5  # only 3 fit (1500 tokens each) at a time
    assert rep.pools[rep.pools.role == "decode"].kv_usage.max() <= 1.0


def test_oversized_request_is_rejected_not_hung():
    small = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": 1000})
    sim = pd_sim(arrivals([0.0, 0.1], [200, 5000], [100, 100]), perf=small)
    sim.run()
    rep = build_report(sim)
    assert list(rep.requests.rejected) == [False, True]
    assert rep.requests.finished.tolist() == [True, False]
    assert rep.classes.attainment[0] == 0.5


def test_deterministic_for_a_seed_and_routing_follows_weights():
    rng = np.random.default_rng(0)
    t = np.sort(rng.uniform(0, 60, 3000))
    arr = arrivals(t, [1000] * 3000, [50] * 3000)
    pools = [PoolSpec("m/prefill/H100/tp1", "prefill", P, 2), PoolSpec("m/mixed/H100/tp1", "mixed", P, 2),
             PoolSpec("m/decode/H100/tp1", "decode", P, 2)]
    route = {"c": ClassRoute("m", ((0, 0.3), (1, 0.7)), ((2, 1.0),))}
    reps = []
    for seed in (5, 5, 6):
        s = FleetSimulator(pools, route, arr, SLO, seed=seed)
        s.run()
        reps.append(build_report(s).requests)
    assert reps[0].equals(reps[1])
    assert not reps[0].equals(reps[2])
    share = (reps[0].prefill_pool == "m/mixed/H100/tp1").mean()
    assert 0.67 < share < 0.73
    assert (reps[0].decode_pool[reps[0].prefill_pool == "m/mixed/H100/tp1"] == "").all()


# --------------------------------------------------------------------------- on-demand KV (mixed replicas' default)
# FleetSimulator(kv_policy="on_demand"), planner/simulate/engine.py: a mixed replica allocates as vLLM 0.26 does,
# preempting the most recently admitted request when the cache is full, and changes nothing while it has room.

def _run_kv(arr: Arrivals, policy: str, kv_tokens: int, pd: bool = False, n_dec: int = 1, **kw) -> FleetSimulator:
    """One mixed replica with a `kv_tokens` cache holding KV by `policy`; with `pd`, a prefill replica of P and
    `n_dec` decode replicas of that cache (and the laws' `kw`) holding it by `policy` instead."""
    perf = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": kv_tokens, **kw})
    if pd:
        pools = [PoolSpec("m/prefill/H100/tp1", "prefill", P, 1), PoolSpec("m/decode/H100/tp1", "decode", perf, n_dec)]
        route, policies = ClassRoute("m", ((0, 1.0),), ((1, 1.0),)), {"decode_kv_policy": policy}
    else:
        pools, route, policies = [PoolSpec("m/mixed/H100/tp1", "mixed", perf, 1)], ClassRoute("m", ((0, 1.0),), ()), {"kv_policy": policy}
    sim = FleetSimulator(pools, {"c": route}, arr, {"c": Slo(ttft_ms=1e9, itl_ms=1e9)}, **policies)
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
    arr = arrivals(np.cumsum(rng.exponential(1 / 3.0, n)), rng.integers(200, 3000, n), rng.integers(10, 600, n))
    a, b = _run_kv(arr, "reserve", 400_000), _run_kv(arr, "on_demand", 400_000)
    ra, rb = build_report(a).requests, build_report(b).requests
    assert ra.ttft_ms.tolist() == rb.ttft_ms.tolist() and ra.e2e_ms.tolist() == rb.e2e_ms.tolist()
    assert _replica(b).preemptions == 0


def test_a_request_admitted_on_demand_is_preempted_when_the_cache_fills_and_recomputes():
    """Two 1,000-token prompts of 400-token outputs on a 2,400-token cache. Reserving 1,400 each, the second waits for
    the first to finish. On demand both start; after ~200 steps the cache is full and the second (the last admitted)
    is preempted, its first token already out; it resumes once the first finishes, recomputing its prompt and the
    tokens it had generated, and ends later than the first. Every output token is produced once."""
    arr = arrivals([0.0, 0.0], [1000, 1000], [400, 400])
    res, od = _run_kv(arr, "reserve", 2400), _run_kv(arr, "on_demand", 2400)
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
    arr = arrivals(np.linspace(0.0, 0.2, 40), [1000] * 40, osl)
    seen: dict[str, list[tuple[int, int]]] = {"held": []}
    orig = BatchReplica._schedule

    def spy(self, cutoff: float = -1.0) -> None:
        orig(self, cutoff)
        if self.on_demand:
            seen["held"].append((self._held_tokens(), self.running))

    monkeypatch.setattr(BatchReplica, "_schedule", spy)
    od = _run_kv(arr, "on_demand", 20_000)
    res = _run_kv(arr, "reserve", 20_000)
    assert build_report(od).requests.finished.all()
    assert _replica(od).gen_tokens == int(osl.sum())
    held, running = zip(*seen["held"], strict=True)
    assert max(held) <= 20_000
    assert _replica(od).preemptions > 0
    reserve_max = max(int(k) for k in range(41) if np.sort(1000 + osl)[:k].sum() <= 20_000)  # the best case reserving
    assert max(running) > reserve_max
    assert build_report(res).requests.finished.all()


@pytest.mark.parametrize("seed", range(20))
def test_on_demand_kv_serves_every_token_once_on_random_loads(seed):
    """Random bursts (5-80 requests, prompts up to half the cache, outputs 1-800) on random small caches, budgets,
    batch limits and 1-2 replicas, with and without async scheduling: every admitted request finishes, the replicas
    produce exactly the outputs asked for (a preempted request's tokens are not produced twice), latencies >= 0."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 80))
    cap = int(rng.integers(3000, 30000))
    isl, osl = rng.integers(50, min(2500, cap // 2), n), rng.integers(1, 800, n)
    t = np.sort(rng.uniform(0, rng.uniform(0.1, 5.0), n))
    perf = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": cap, "max_batched_tokens": int(rng.choice([512, 2048, 8192])),
                          "max_num_seqs": int(rng.choice([8, 64, 256]))})
    replicas = int(rng.integers(1, 3))
    for async_scheduling in (True, False):
        sim = FleetSimulator([PoolSpec("m/mixed/H100/tp1", "mixed", perf, replicas)], {"c": ClassRoute("m", ((0, 1.0),), ())},
                             arrivals(t, isl, osl), {"c": Slo(ttft_ms=1e9, itl_ms=1e9)}, kv_policy="on_demand",
                             async_scheduling=async_scheduling)
        sim.run()
        rep = build_report(sim).requests
        served = ~rep.rejected.to_numpy()
        assert rep.finished[served].all()
        assert sum(r.gen_tokens for r in sim.pool_list[0].ready) == int(osl[served].sum())
        assert (rep.ttft_ms[served] >= 0).all() and (rep.itl_ms[served] >= 0).all()


# --------------------------------------------------------------------------- on-demand KV on decode replicas (P/D)
# FleetSimulator(decode_kv_policy="on_demand"), the default since stop 35 (rule D1): vLLM 0.26 admits a request whose
# prompt KV arrives from a prefill instance by the same allocation as any other and recomputes a preempted one on the
# decode instance; these check the bookkeeping of that path.

def _decode_replicas(sim: FleetSimulator) -> list[BatchReplica]:
    reps = [r for r in sim.pool_list[1].ready if isinstance(r, BatchReplica)]
    assert reps
    return reps


def test_decode_replica_with_room_gives_the_same_requests_under_both_policies():
    rng = np.random.default_rng(11)
    n = 200
    arr = arrivals(np.cumsum(rng.exponential(1 / 2.0, n)), rng.integers(200, 3000, n), rng.integers(10, 600, n))
    a, b = _run_kv(arr, "reserve", 400_000, pd=True), _run_kv(arr, "on_demand", 400_000, pd=True)
    ra, rb = build_report(a).requests, build_report(b).requests
    assert ra.ttft_ms.tolist() == rb.ttft_ms.tolist() and ra.e2e_ms.tolist() == rb.e2e_ms.tolist()
    assert _decode_replicas(b)[0].preemptions == 0


def test_decode_replica_on_demand_admits_at_once_preempts_and_recomputes_on_itself():
    """Two 1,000-token prompts of 400-token outputs, their KV shipped to one decode replica of a 2,400-token cache.
    Reserving 1,400 each, the second's first token waits for the first request to finish; on demand both decode at
    once until the cache is full, then the last admitted is preempted and recomputed on the decode replica (its prompt
    and the ~200 tokens it had generated as one prefill), after the first finishes. Every output token once."""
    arr = arrivals([0.0, 0.0], [1000, 1000], [400, 400])
    res, od = _run_kv(arr, "reserve", 2400, pd=True), _run_kv(arr, "on_demand", 2400, pd=True)
    r_res, r_od = build_report(res).requests, build_report(od).requests
    rep = _decode_replicas(od)[0]
    assert rep.preemptions == 1 and _decode_replicas(res)[0].preemptions == 0
    summary = build_report(od).pool_summary()
    assert dict(zip(summary.index if "pool_id" not in summary else summary.pool_id, summary.preemptions, strict=True)) == {
        "m/prefill/H100/tp1": 0, "m/decode/H100/tp1": 1}
    assert r_od.finished.all() and r_res.finished.all()
    assert r_od.ttft_ms[1] < 0.2 * r_res.ttft_ms[1]
    assert r_od.e2e_ms[1] > r_od.e2e_ms[0]
    assert rep.gen_tokens == 800
    assert 1000 + 150 < rep.prompt_tokens < 1000 + 260  # only the recompute is prefilled on the decode replica


@pytest.mark.parametrize("seed", range(12))
def test_decode_on_demand_serves_every_token_once_on_random_loads(seed, monkeypatch):
    """Random bursts on random small decode caches, budgets, batch limits and 1-2 decode replicas: every request
    finishes, the decode replicas produce exactly the outputs asked for, latencies >= 0, never more KV held than the
    cache at a schedule."""
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(5, 80))
    cap = int(rng.integers(3000, 30000))
    isl, osl = rng.integers(50, min(2500, cap // 2), n), rng.integers(1, 800, n)
    t = np.sort(rng.uniform(0, rng.uniform(0.1, 5.0), n))
    held: list[int] = []
    orig = BatchReplica._schedule

    def spy(self, cutoff: float = -1.0) -> None:
        orig(self, cutoff)
        if not self.mixed and self.b > 1:  # a lone request larger than the cache may run on (module doc)
            held.append(self._held_tokens())

    monkeypatch.setattr(BatchReplica, "_schedule", spy)
    sim = _run_kv(arrivals(t, isl, osl), "on_demand", cap, pd=True, n_dec=int(rng.integers(1, 3)),
                     max_batched_tokens=int(rng.choice([512, 2048, 8192])), max_num_seqs=int(rng.choice([8, 64, 256])))
    rep = build_report(sim).requests
    served = ~rep.rejected.to_numpy()
    assert rep.finished[served].all()
    assert sum(r.gen_tokens for r in _decode_replicas(sim)) == int(osl[served].sum())
    assert (rep.ttft_ms[served] >= 0).all() and (rep.itl_ms[served] >= 0).all()
    assert held and max(held) <= cap


@pytest.mark.parametrize("osl, itl_p50_is_nan", [([1, 5], False), ([1, 1, 1, 5], False), ([1, 1], True)])
def test_class_itl_percentiles_leave_out_one_token_outputs(osl: list[int], itl_p50_is_nan: bool) -> None:
    """A one-token output has no inter-token gap: the class's ITL percentiles are those of its longer outputs (found in
    QA: a 1-token and a 5-token request printed ITL p50 3.2 ms, half the 5-token request's 6.4 ms), and it meets the
    ITL bound."""
    t = np.arange(len(osl)) * 10.0  # far apart: each request alone on the replica
    sim = FleetSimulator([PoolSpec("m/mixed/H100/tp1", "mixed", P, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())},
                         arrivals(t, [100] * len(osl), osl), {"c": Slo(ttft_ms=1e9, itl_ms=1e9)})
    sim.run()
    rep = build_report(sim)
    row = rep.classes.iloc[0]
    longer = rep.requests.itl_ms[rep.requests.osl > 1].to_numpy()
    if itl_p50_is_nan:
        assert np.isnan(row.itl_p50_ms)
    else:
        assert row.itl_p50_ms == pytest.approx(float(np.percentile(longer, 50))) and row.itl_p50_ms > 0
    assert row.attainment == 1.0
