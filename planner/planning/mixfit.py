"""Classes sharing a pool: each class's TTFT behind the pool's mix of classes, and the utilization a pool must keep
for every class of its mix to meet its own TTFT SLO.

The ILP prices each class as if it were alone at the pool's utilization (Mélange's fractions, capacity.py); a pool
serves its classes from one FCFS queue, so a class of short prompts waits behind the long ones (capacity module doc,
Mixed, classes sharing a replica; rules 57-M and 58-P). Where classes with different TTFT SLOs share a pool the plan
sized class by class can then predict, behind the mix, a TTFT over a class's SLO: a plan contradicting itself. Rule
58-S (stop 58): `mix_tightening` finds the largest scale of the pool's per-replica mix at which every class meets its
TTFT SLO behind it, and planner/planning/assemble.py re-solves with the pool's utilization target tightened by that
scale (the --verify mechanism, planner/planning/verify.py, with the closed form as its referee). Only tightening: the
class-alone sizing stays a floor (behind the mix the binding class read 29-35% below real vLLM, rule 57-M). Measured
on bench/mixed_sizing.py and not adopted (planner/planning/assemble.py `_MIX_REPLANS` 0: its plans cost more than
the simulator's); instead a plan predicting a class over its SLO says so, and `planner solve` verifies it by
simulation by default (rule 58-V, `assemble.classes_over_slo`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from planner.io.schema import PREFILL_SIDE, RequestClass
from planner.perf.laws import quiet_extrapolation
from planner.planning.capacity import POISSON, ArrivalShape, PoolMix, decode_latency, mix_kv_tokens, mixed_latency, prefill_latency
from planner.planning.instance import Instance

# The pools whose predicted TTFT is the class's behind the pool's mix of classes: mixed (rule 57-M) and prefill (rule
# 58-P), those whose one queue every class waits in; bench/mixed_classes.py sets ("mixed",) to read a prefill pool's
# class-alone form beside it.
TTFT_MIX_ROLES: tuple[str, ...] = PREFILL_SIDE
# The pools whose predicted ITL is the pool's, behind its mix of classes (rule 58-D): P/D decode pools, where every
# class rides the same decode steps; bench/mixed_classes.py sets () to read the class-alone form beside it. (A mixed
# pool's ITL stays the class alone's: rule 57-M did not adopt the mix for it.)
ITL_MIX_ROLES: tuple[str, ...] = ("decode",)
# Rule 59-K2's share of a class's TTFT tail (1 - p) that its decode pool's KV may overflow in before the plan names it
# (`mix_kv_demand`: the KV at the percentile 1 - KV_TAIL_SHARE·(1 - p)); 1: at the class's own percentile (rule 59-K).
KV_TAIL_SHARE = 1.0
# The least scale of a pool's mix `mix_tightening` asks for: below it the class's TTFT over its SLO is not the load's
# (its own prompt, its cluster-mates' wait or the hand-off alone exceed the SLO), and no utilization target fixes it.
MIN_MIX_SCALE = 0.05
# Halvings of the scale's bisection: 2^-12 of the scale, far below the laws' error.
_SCALE_HALVINGS = 12


def pool_mixes(inst: Instance, replicas: dict[str, int], flows_by_class: dict[str, dict[str, float]],
               roles: tuple[str, ...] | None = None) -> dict[str, PoolMix]:
    """Per pool (variant id -> its `replicas`) of `roles` (default `TTFT_MIX_ROLES`) serving more than one class, the
    classes it serves at their planned rates (`flows_by_class`: class -> variant -> req/s) on one of its replicas
    (capacity.PoolMix). A pool of one class has none: its class-alone prediction is the form its capacity was sized
    with, so the plan's prediction meets the SLO it was sized for (the mix's nodes form reads it within a few %, which
    would flag it over its SLO for nothing, rule 58-V)."""
    roles = TTFT_MIX_ROLES if roles is None else roles
    by_id = {c.id: c for c in inst.workload.classes}
    out: dict[str, PoolMix] = {}
    for vid, n in replicas.items():
        if inst.variants[vid].role not in roles or n <= 0:
            continue
        served = [(by_id[cid], fl[vid]) for cid, fl in sorted(flows_by_class.items()) if vid in fl and cid in by_id]
        if len(served) > 1:  # a pool of one class keeps the class-alone form its capacity was sized with
            out[vid] = PoolMix(tuple(float(c.isl) for c, _ in served), tuple(float(c.osl) for c, _ in served),
                               tuple(x / n for _, x in served))
    return out


def prediction_shape(inst: Instance, c: RequestClass, vid: str, replicas: int) -> ArrivalShape:
    """The arrival shape a class's prediction on pool `vid` of `replicas` reads: its capacity's, on a least-loaded
    prefill pool at the pool's replicas (the capacity was sized for the smallest pool that carries the load, n*; the
    plan may hold more replicas, other classes and integrality, and behind least-loaded routing their wait is that
    pool's)."""
    shape = inst.arrivals.get((c.id, vid), POISSON)
    if inst.variants[vid].role == "prefill" and inst.fleet.limits.routing == "least_loaded" and replicas > shape.replicas:
        shape = replace(shape, replicas=replicas)
    return shape


def mix_ttft_ms(inst: Instance, vid: str, c: RequestClass, shape: ArrivalShape, mix: PoolMix) -> float:
    """Class `c`'s TTFT at its SLO's percentile behind `mix` on pool `vid` (inf beyond the mix's saturation); a
    prefill pool whose class states a length mixture (shape.wait_isl) keeps it (capacity.prefill_latency)."""
    perf, pct = inst.perf[vid], inst.workload.slo_of(c).percentile
    with quiet_extrapolation():
        if inst.variants[vid].role == "mixed":
            return mixed_latency(perf, c.isl, c.osl, mix.total_rps, pct, shape, mix=mix).ttft_ms
        return prefill_latency(perf, c.isl, mix.total_rps, pct, arrivals=shape, mix=mix).ttft_ms


def _worst(inst: Instance, vid: str, mix: PoolMix, bound: list[tuple[RequestClass, float, ArrivalShape]],
           scale: float) -> tuple[float, RequestClass | None, float]:
    """(the largest TTFT / SLO over the `bound` classes, that class, its TTFT) behind pool `vid`'s `mix` scaled by
    `scale`; inf beyond the scaled mix's saturation."""
    scaled = PoolMix(mix.isl, mix.osl, tuple(r * scale for r in mix.rate_rps))
    out: tuple[float, RequestClass | None, float] = (0.0, None, 0.0)
    for c, slo_ms, shape in bound:
        t = mix_ttft_ms(inst, vid, c, shape, scaled)
        ratio = t / slo_ms if math.isfinite(t) else math.inf
        if ratio > out[0]:
            out = (ratio, c, t)
    return out


def mix_itl_ms(inst: Instance, vid: str, c: RequestClass, shape: ArrivalShape, mix: PoolMix) -> float:
    """Class `c`'s ITL at its SLO's percentile on decode pool `vid` behind `mix` (rule 58-D: the pool's, the same for
    every class of it; inf beyond the mix's saturation)."""
    with quiet_extrapolation():
        return decode_latency(inst.perf[vid], c.isl, c.osl, mix.total_rps, inst.workload.slo_of(c).percentile, shape,
                              mix=mix).itl_ms


def mix_kv_demand(inst: Instance, vid: str, c: RequestClass, shape: ArrivalShape, mix: PoolMix) -> float:
    """KV tokens decode pool `vid`'s replica holds behind `mix` at class `c`'s SLO percentile (rule 59-K,
    capacity.mix_kv_tokens); above the replica's capacity a share of arrivals beyond the TTFT's tail waits for
    admission, which the TTFT predictions do not count."""
    pct = 100.0 - KV_TAIL_SHARE * (100.0 - inst.workload.slo_of(c).percentile)
    with quiet_extrapolation():
        return mix_kv_tokens(inst.perf[vid], mix, pct, shape)


@dataclass(frozen=True)
class MixShortfall:
    """A pool whose mix puts a class over its TTFT SLO at any load (below `MIN_MIX_SCALE`): no utilization fixes it."""

    pool: str
    class_id: str
    ttft_ms: float
    slo_ttft_ms: float


def mix_tightening(inst: Instance, replicas: dict[str, int], flows_by_class: dict[str, dict[str, float]],
                   planned_utilization: dict[str, float]) -> tuple[dict[str, float], list[MixShortfall]]:
    """(utilization targets, shortfalls) of rule 58-S (module doc): per pool whose mix puts a class with a TTFT SLO over
    it, the pool's `planned_utilization` times the largest scale s of its per-replica mix (bisection on [MIN_MIX_SCALE,
    1]) at which every such class meets its SLO behind the mix; a pool over the SLO even at MIN_MIX_SCALE is a
    shortfall instead (left as planned)."""
    by_id = {c.id: c for c in inst.workload.classes}
    targets: dict[str, float] = {}
    short: list[MixShortfall] = []
    for vid, mix in pool_mixes(inst, replicas, flows_by_class).items():
        bound = [(c, float(slo_ms), prediction_shape(inst, c, vid, replicas[vid]))
                 for cid, fl in sorted(flows_by_class.items()) if vid in fl and (c := by_id.get(cid)) is not None
                 and (slo_ms := inst.workload.slo_of(c).ttft_ms) is not None]

        if _worst(inst, vid, mix, bound, 1.0)[0] <= 1.0:
            continue
        low = _worst(inst, vid, mix, bound, MIN_MIX_SCALE)
        if low[0] > 1.0:
            assert low[1] is not None
            short.append(MixShortfall(vid, low[1].id, low[2], float(inst.workload.slo_of(low[1]).ttft_ms or 0.0)))
            continue
        lo, hi = MIN_MIX_SCALE, 1.0  # the mix scaled by lo meets every SLO, by hi not
        for _ in range(_SCALE_HALVINGS):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if _worst(inst, vid, mix, bound, mid)[0] <= 1.0 else (lo, mid)
        targets[vid] = planned_utilization[vid] * lo
    return targets, short
