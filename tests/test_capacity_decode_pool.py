"""The decode KV check on a pool behind least-loaded routing (planner/planning/capacity.py, Pool of decode replicas;
rule Q1 of stop 36): the pool's occupancy quantile shared evenly, where each replica used to hold its own share's."""

from __future__ import annotations

import numpy as np
import pytest

from planner.io.schema import Fleet, ModelEntry, RequestClass, Slo, Workload
from planner.perf.laws import quiet_extrapolation
from planner.planning import capacity as cap_mod
from planner.planning.assemble import plan_workload
from planner.planning.capacity import ArrivalShape, ClassLoad, capacity, kv_batch, latency, pool_class_capacities
from planner.simulate.arrivals import Arrivals
from planner.simulate.fleet import ClassRoute, FleetSimulator, PoolSpec
from planner.simulate.report import build_report

GPU = "H100-SXM-80GB"
ISL, OSL = 1300, 300


@pytest.mark.parametrize(("shape", "pooled"), [
    (ArrivalShape(), False),                                         # one replica: the per-replica check, unchanged
    (ArrivalShape(osl_scv=1.0), False),
    (ArrivalShape(kv_pool=4), True),                                 # a pool of 4 shares one cache
    (ArrivalShape(kv_pool=4, osl_scv=1.0, isl_scv=0.5), True),
    (ArrivalShape(kv_pool=8, idc=3.0, replicas=8), True),  # the form with clusters (not planned: Q1 tested Poisson)
])
def test_kv_batch_table(perf, shape, pooled):
    """kv_batch per replica: with kv_pool m > 1 the pool's quantile / m (KV_POOL_HEADROOM_SEQS 0, chosen by rule Q1),
    below the per-replica quantile of a 1/m share; with kv_pool 1 exactly the former check."""
    vp = perf.get("llama-2-70b", GPU, 2)
    with quiet_extrapolation():
        lat = latency(vp, "decode", ISL, OSL, 0.4, 99.0, shape)
        got = kv_batch(lat, ISL, OSL, 99.0, shape)
        alone = kv_batch(lat, ISL, OSL, 99.0, ArrivalShape(osl_scv=shape.osl_scv, isl_scv=shape.isl_scv, idc=shape.idc,
                                                           replicas=shape.replicas))
    if not pooled:
        assert got == alone
        return
    m = shape.kv_pool
    assert got < alone
    # the pool's mean share is a floor: balancing cannot hold less per replica than the pool's mean batch
    assert got >= lat.batch_mean - 1e-9
    # the form itself (no headroom): Q_p of the pool's occupancy / m
    reserve = cap_mod.kv_reserve_tokens(ISL, OSL, shape.osl_scv)
    var = shape.isl_scv * ISL ** 2 + shape.osl_scv * OSL ** 2 * (1 + shape.osl_scv) ** 2
    q = cap_mod._batch_quantile(m * lat.batch_mean, 99.0, shape.idc, m * lat.batch_mean * var / reserve ** 2)
    assert got == pytest.approx(q / m + cap_mod.KV_POOL_HEADROOM_SEQS)


def test_a_pooled_decode_capacity_rises_with_the_pool_and_random_routing_keeps_one_replicas():
    """Per-replica KV-bound capacity of a least-loaded decode pool rises with its size (the quantile's relative spread
    falls as 1/sqrt(m N)); random routing, a fleet that turns pooling off (limits.decode_kv_pooling, the controller's
    default) and prefill pools keep the one-replica decode capacity."""
    from planner.io.catalog import Catalog
    from planner.perf.laws import PerfModel

    vp = PerfModel.load(catalog=Catalog.load()).get("llama-2-70b", GPU, 2)
    with quiet_extrapolation():
        caps = [capacity(vp, "decode", ISL, OSL, 99.0, None, 100.0, ArrivalShape(kv_pool=m, osl_scv=1.0)).rate_rps
                for m in (1, 2, 4, 8)]
        one = capacity(vp, "decode", ISL, OSL, 99.0, None, 100.0, ArrivalShape(osl_scv=1.0)).rate_rps
        load = [ClassLoad(ISL, OSL, 99.0, 2000.0, 100.0, None, 6.0, 0.0, None, 1.0)]
        pooled = pool_class_capacities(vp, "decode", load)
        random = pool_class_capacities(vp, "decode", load, routing="random")
        off = pool_class_capacities(vp, "decode", load, kv_pooling=False)
    assert caps[0] == one
    assert all(b > a for a, b in zip(caps, caps[1:], strict=False)), caps
    (c_pool, sh), = pooled
    assert sh.kv_pool > 1 and sh.replicas == 1 and c_pool.rate_rps > one
    assert sh.kv_pool >= 6.0 / c_pool.rate_rps  # the smallest carrying pool carries the class
    assert random[0][1].kv_pool == 1 and random[0][0].rate_rps == one
    assert off[0][1].kv_pool == 1 and off[0][0].rate_rps == one


def _lognormal_outputs(mean: float, scv: float, n: int, rng: np.random.Generator) -> np.ndarray:
    sigma2 = np.log1p(scv)
    return np.maximum(1, np.round(rng.lognormal(np.log(mean) - sigma2 / 2, np.sqrt(sigma2), n))).astype(int)


def test_the_pooled_plan_is_smaller_and_meets_the_slo_in_simulation(perf, catalog):
    """llama-2-70b H100 tp2, 5 req/s of 1,300-token prompts and outputs of mean 300 and squared CV 1 (KV-bound
    decode): the pooled check plans fewer decode replicas than the per-replica one, and the simulator (least-loaded
    routing, decode KV on demand) serves the pooled plan with >= 99% of requests within the SLO. A seeded 20-minute
    replay; the simulator is deterministic given the seed."""
    slo = Slo(ttft_ms=2000, itl_ms=100, percentile=99)
    wl = Workload(models={"llama-2-70b": ModelEntry(slo=slo)}, classes=[
        RequestClass(id="c", model="llama-2-70b", isl=ISL, osl=OSL, rate_rps=5.0, osl_scv=1.0)])
    limits = {"allowed_tp": [2], "roles": ["prefill", "decode"]}
    pooled_fleet = Fleet.model_validate({"gpus": {GPU: {"available": 256}}, "limits": limits})
    per_fleet = Fleet.model_validate({"gpus": {GPU: {"available": 256}},
                                      "limits": {**limits, "decode_kv_pooling": False}})
    with quiet_extrapolation():
        plans = [plan_workload(wl, f, perf, catalog) for f in (pooled_fleet, per_fleet)]
    dec = [sum(p.replicas for p in plan.models["llama-2-70b"].pools if p.role == "decode") for plan in plans]
    pre = [sum(p.replicas for p in plan.models["llama-2-70b"].pools if p.role == "prefill") for plan in plans]
    assert dec[0] < dec[1], dec
    # the plan says what the pooled size counts on, and what each replica's own share would need (the per-replica plan)
    note = next(n for n in plans[0].notes if "KV cache checked as one shared" in n)
    assert int(note.split("would need about ")[1].split()[0]) == dec[1], note
    assert not any("KV cache checked as one shared" in n for n in plans[1].notes)
    rng = np.random.default_rng(7)
    n = int(5.0 * 1200)
    t = np.cumsum(rng.exponential(1 / 5.0, n))
    arr = Arrivals(t, np.zeros(n, dtype=np.int64), np.full(n, ISL), _lognormal_outputs(OSL, 1.0, n, rng), ("c",))
    vp = perf.get("llama-2-70b", GPU, 2)
    sim = FleetSimulator([PoolSpec("p", "prefill", vp, pre[0]), PoolSpec("d", "decode", vp, dec[0])],
                         {"c": ClassRoute("llama-2-70b", ((0, 1.0),), ((1, 1.0),))}, arr, {"c": slo}, seed=7)
    with quiet_extrapolation():
        sim.run()
    df = build_report(sim).requests.iloc[n // 10:]
    ok = (df.ttft_ms <= slo.ttft_ms) & (df.itl_ms <= slo.itl_ms)
    assert float(ok.mean()) >= 0.99, (dec, pre, float(ok.mean()))


def test_pooling_never_makes_a_plan_dearer(perf, catalog):
    """The bundled example (two models, three GPU types): pooling the decode KV may only lower the plan's cost. A
    pooled capacity assumes the smallest pool that carries the model alone; forcing that pool size (the prefill
    pools' min_when_used) priced out the example's one-replica decode pools on two GPU types ($62.18 against
    $59.19/h), so smaller pools are re-solved with the cache they get (planner/planning/assemble.py)."""
    from pathlib import Path

    from planner.io.validate import load_workload_fleet

    root = Path(__file__).resolve().parents[1] / "examples" / "default"
    wl, fleet = load_workload_fleet(root / "workload.yaml", root / "fleet.yaml", catalog)
    off = fleet.model_copy(update={"limits": fleet.limits.model_copy(update={"decode_kv_pooling": False})})
    with quiet_extrapolation():
        pooled, per = plan_workload(wl, fleet, perf, catalog), plan_workload(wl, off, perf, catalog)
    assert pooled.feasible and per.feasible
    assert pooled.cost_per_hour <= per.cost_per_hour + 1e-6, (pooled.cost_per_hour, per.cost_per_hour)


def test_routing_notes_only_where_random_routing_needs_more_replicas(perf, catalog):
    """The bundled example's plan notes a pool's reliance on least-loaded routing only where random routing would need
    more replicas than the pool has (stop 37: its one-replica decode pool was noted as needing "about 1 replicas")."""
    import re
    from pathlib import Path

    from planner.io.validate import load_workload_fleet

    root = Path(__file__).resolve().parents[1] / "examples" / "default"
    wl, fleet = load_workload_fleet(root / "workload.yaml", root / "fleet.yaml", catalog)
    with quiet_extrapolation():
        plan = plan_workload(wl, fleet, perf, catalog)
    routing = [n for n in plan.notes if "would need about" in n]
    assert routing, plan.notes  # the example has a prefill pool of 3 that random routing would make 4
    for n in routing:
        m = re.search(r"(?:by|over) its (\d+) replicas.*would need about (\d+) replicas", n)
        assert m is not None and int(m.group(2)) > int(m.group(1)), n
