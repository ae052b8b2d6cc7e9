"""From a workload, a fleet and performance laws to a plan: the orchestration of `planner solve`.

Steps: the planning instance (planner/planning/instance.py: variants, capacities under SLO, the ILP
`Problem`) -> a backend solves it -> the solution becomes a `Plan` with routing weights, predicted
percentiles and the binding constraints (here); an infeasible instance becomes a plan whose
`diagnosis` says what binds and what would make it feasible (planner/planning/explain.py).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from planner.io.catalog import Catalog
from planner.io.schema import (
    MAX_GPUS_AVAILABLE,
    PREFILL_SIDE,
    ClassPrediction,
    Fleet,
    ModelPlan,
    Plan,
    PoolPlan,
    RequestClass,
    Slo,
    SloCost,
    SolverInfo,
    Variant,
    Workload,
)
from planner.perf.graphs import graph_limit
from planner.perf.heldout import PRIOR_CARD_AND_MODEL_UNSEEN, PRIOR_HELD_OUT, PRIOR_HELD_OUT_GPU, PRIOR_HELD_OUT_MOE_GRAPHS
from planner.perf.kernel_tables import default_tiles_advice
from planner.perf.laws import PerfModel, VariantPerf, quiet_extrapolation
from planner.planning import mixfit
from planner.planning.capacity import (
    POISSON,
    ArrivalShape,
    Capacity,
    PoolMix,
    capacity,
    latency,
    pool_servers,
    realised_arrivals,
)
from planner.planning.explain import describe_binding, explain_infeasible
from planner.planning.instance import Instance, build_instance
from planner.planning.mixfit import mix_itl_ms, mix_kv_demand, mix_tightening, mix_ttft_ms, pool_mixes, prediction_shape
from planner.planning.slo_metrics import SloMetric
from solvers.backends import solve as solve_problem
from solvers.objectives import OBJECTIVES
from solvers.problem import Solution

# What the solver's objective value is counted in, per objective (max_load reports the multiplier).
_OBJECTIVE_UNIT = {o.value: s.unit for o, s in OBJECTIVES.items()}
# Inventory given to every GPU type when asking how many GPUs the workload needs (the schema's
# bound on `available`, so the ILP's integers stay in range).
_UNLIMITED_GPUS = MAX_GPUS_AVAILABLE
# Routing weights and replicas below these are solver noise, not decisions.
_FLOW_EPS_RPS = 1e-6
_WEIGHT_DIGITS = 4


def _unlimited(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog) -> Instance:
    """The instance of `workload` on `fleet` with every GPU type unlimited, minimising GPUs (the shortfall's start)."""
    unlimited = {g: inv.model_copy(update={"available": _UNLIMITED_GPUS}) for g, inv in fleet.gpus.items()}
    return build_instance(workload, fleet.model_copy(update={"gpus": unlimited}), perf, catalog, "gpus")


def _gpu_need(inst: Instance, backend: str, time_limit_s: float) -> dict[str, int] | None:
    """GPUs per type of the fewest-GPU plan of `inst` (`_unlimited`: every GPU type of the fleet unlimited); None
    when even that is infeasible (then inventory is not what binds)."""
    assert inst.problem is not None
    if not inst.problem.variants:
        return None
    sol = solve_problem(inst.problem, backend=backend, time_limit_s=time_limit_s)
    if not sol.ok:
        return None
    need: dict[str, int] = defaultdict(int)
    for vid, n in sol.replicas.items():
        need[inst.variants[vid].gpu] += n * inst.variants[vid].tp
    return dict(need)


def _gpu_shortfall(unlimited: Instance, workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog,
                   backend: str, time_limit_s: float, objective: str) -> dict[str, int] | None:
    """The fewest GPUs to add, per type, with the fleet's own GPUs in use, that make the plan feasible: None when
    even unlimited GPUs do not.

    A start from the elastic model (`solvers.diagnose`, the fewest GPUs added over the instance with unlimited
    inventory, held to the fleet's), then per type the smallest count the planner itself finds feasible, by
    bisection with the other types' additions held (the elastic model's capacities are those of the largest
    pools, which may differ a little from the fleet's: the planner's answer is the one the diagnosis states)."""
    from solvers.constraints import Family
    from solvers.diagnose import diagnose

    problem = unlimited.problem
    if problem is None or not problem.variants:
        return None
    have = {g: inv.available for g, inv in fleet.gpus.items()}
    # the same problem held to the fleet's inventory, under the plan's own objective (the elastic model's tie-break)
    found = diagnose(replace(problem, inventory=have, objective=objective), backend, time_limit_s)  # type: ignore[arg-type]
    if any(r.kind != Family.INVENTORY for r in found):
        return None  # something beside GPUs binds (unserved demand, policy rows): not a shortfall of GPUs

    def feasible(extra: dict[str, int]) -> bool:
        gpus = {g: inv.model_copy(update={"available": inv.available + extra.get(g, 0)}) for g, inv in fleet.gpus.items()}
        return _plan_once(workload, fleet.model_copy(update={"gpus": gpus}), perf, catalog, backend, time_limit_s,
                          objective, 1e-4, None, diagnose=False).feasible

    add = {r.target: int(round(r.amount)) for r in found if r.amount > 0}
    if not add or not feasible(add):
        return None
    for g in sorted(add):  # from below any count (-1) to the start, feasible, with the other types' additions held
        add[g] = _least_feasible(-1, add[g], functools.partial(_with_count, feasible, add, g))
    return {g: n for g, n in add.items() if n > 0}


def _with_count(feasible: Callable[[dict[str, int]], bool], add: dict[str, int], gpu: str, n: int) -> bool:
    """Whether the plan is feasible with `add`, `gpu`'s addition set to `n`."""
    return feasible({**add, gpu: n})


def _least_feasible(lo: int, hi: int, feasible: Callable[[int], bool]) -> int:
    """The least integer in (lo, hi] that `feasible` accepts, by bisection: `hi` is known to be, `lo` known not to be
    (or below the range); feasibility rises with the integer (GPUs added, an SLO bound in ms). The diagnosis' counts
    and bounds are each this search over re-plans."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if feasible(mid):
            hi = mid
        else:
            lo = mid
    return hi


# The SLO search of an out-of-reach bound: doublings of the advised bound before giving up (then bisected to 1 ms).
_SLO_DOUBLINGS = 6


def _slo_within_fleet(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog, backend: str,
                      time_limit_s: float, objective: str, inst: Instance) -> tuple[str, str, float] | None:
    """The least bound (ms, to 1 ms) of the one out-of-reach (model, metric) with which the fleet plans: the advice
    'relax to >= X' names where a pool gets under the bound at all, which the load may still need more GPUs for.
    None when several models or metrics are out of reach, a class states its own SLO, or no bound up to 2^6 x the
    advised one plans (then something else binds)."""
    from planner.planning.explain import out_of_reach
    from planner.planning.whatif import with_slo

    found = out_of_reach(inst)
    pairs = {(r.model, r.metric) for r in found}
    if len(pairs) != 1 or any(r.per_class_slo for r in found):
        return None
    model, metric = next(iter(pairs))

    def feasible(ms: float) -> bool:
        wl = with_slo(workload, **({"ttft_ms": ms} if metric == "ttft" else {"itl_ms": ms}), models=[model])
        return _plan_once(wl, fleet, perf, catalog, backend, time_limit_s, objective, 1e-4, None, diagnose=False).feasible

    lo, hi = max(r.bound_ms for r in found), float(max(r.relax_to_ms for r in found))
    for _ in range(_SLO_DOUBLINGS):
        if feasible(hi):
            break
        lo, hi = hi, hi * 2
    else:
        return None
    # to 1 ms: a bound at or below `lo` is as out of reach as `lo` itself (a tighter bound never plans)
    return model, metric, float(_least_feasible(math.floor(lo), math.ceil(hi), feasible))


# Re-solves of a max-load plan at the load it found (a pool's capacities depend on the load it carries:
# capacity.pool_class_capacities), until the factor moves by less than _LOAD_RTOL.
_LOAD_REPLANS = 8
_LOAD_RTOL = 0.01
# A load factor at or below this is the solver's zero (its feasibility tolerance, 1e-6 in HiGHS and CBC).
_LOAD_ZERO = 1e-6


def plan_workload(workload: Workload, fleet: Fleet, perf: PerfModel | None = None, catalog: Catalog | None = None,
                  backend: str = "highs", time_limit_s: float = 10.0, objective: str = "cost",
                  mip_gap: float = 1e-4, utilization: dict[str, float] | None = None,
                  refine_diagnosis: bool = True) -> Plan:
    """The cheapest plan (or, with objective='max_load', the largest common load factor).

    An infeasible plan's diagnosis states the fewest GPUs to add and the least SLO bound the fleet plans from, each
    found by a bisection of re-plans; `refine_diagnosis=False` keeps to the fewest-GPU plan's one solve (the
    controller, which re-plans every interval and only logs the diagnosis).

    With 'max_load', pooled capacities (prefill pools behind least-loaded routing, bursty classes) are those of
    the pool the load needs, which the factor found changes: the workload is re-planned scaled by the factor so
    far until it moves by less than 1%, and the plan's factor is their product (relative to `workload`)."""
    catalog = catalog or Catalog.load()
    perf = perf or PerfModel.load(catalog=catalog)
    plan = _plan_once(workload, fleet, perf, catalog, backend, time_limit_s, objective, mip_gap, utilization,
                      refine=refine_diagnosis)
    if objective != "max_load":
        return plan
    total = 1.0
    for _ in range(_LOAD_REPLANS):
        mu = plan.load_multiplier
        if not plan.feasible or mu is None or mu <= 0 or abs(mu - 1.0) <= _LOAD_RTOL:
            break
        total *= mu
        nxt = _plan_once(workload.scaled(total), fleet, perf, catalog, backend, time_limit_s, objective, mip_gap, utilization)
        if not nxt.feasible or nxt.load_multiplier is None:
            total /= mu  # the rescaled instance found nothing better: keep the last consistent plan
            break
        plan = nxt
    if plan.load_multiplier is not None:
        plan.load_multiplier = total * plan.load_multiplier
        # the solver's objective and bound are the last solve's factor, on the workload scaled by `total`: state them
        # relative to `workload`, as the load multiplier is (the gap is relative, unchanged)
        s = plan.solver
        plan.solver = s.model_copy(update={"objective": None if s.objective is None else total * s.objective,
                                           "bound": None if s.bound is None else total * s.bound})
        unserved = sorted(m for m, mp in plan.models.items() if mp.routing and not mp.pools)
        if serves_no_share(plan):
            plan.notes.append(f"no share of the workload fits: this fleet runs no pool of {', '.join(unserved)} within its "
                              "SLO, and max_load scales every model by one factor; `planner solve` without --objective "
                              "max_load says what binds")
    return plan


def serves_no_share(plan: Plan) -> bool:
    """A max-load plan that serves no share of the workload: some model with traffic has no pool the fleet runs within
    its SLO, and max_load scales every model by one factor, so the factor is 0. `planner solve --objective max_load`
    exits 3 on it, as `planner whatif --headroom` does (found in QA: the first exited 0, the second 3)."""
    return (plan.feasible and plan.load_multiplier is not None and plan.load_multiplier <= _LOAD_ZERO
            and any(mp.routing and not mp.pools for mp in plan.models.values()))


def _plan_once(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog, backend: str, time_limit_s: float,
               objective: str, mip_gap: float, utilization: dict[str, float] | None, diagnose: bool = True,
               refine: bool = True) -> Plan:
    """One plan of `workload` (the burst fixed point below included; `plan_workload` says why max-load repeats it);
    `diagnose=False` leaves an infeasible plan's diagnosis out, the GPU shortfall and `explain_infeasible`'s text (the
    shortfall's and the SLO bound's own feasibility checks read only `feasible`);
    `refine=False` keeps the diagnosis to the fewest-GPU plan (no bisections: `plan_workload`'s refine_diagnosis)."""
    pooled: dict[tuple[str, str], list[tuple[Capacity, ArrivalShape]]] = {}  # the same every round
    base = build_instance(workload, fleet, perf, catalog, objective, utilization, None, pooled)
    inst, sol = base, _solve(base, backend, time_limit_s, mip_gap)
    # 1. Fixed point: each round assumes, for the pairs the last solution used, the split it realised
    #    where that is burstier than the shared pool's, or a decode pool smaller than its pooled KV assumed
    #    (`_burstier_splits` against the base caps);
    #    the first solution consistent with its own assumption is the plan.
    shapes: dict[tuple[str, str], ArrivalShape] = {}
    for _ in range(_BURST_REPLANS):
        if not sol.ok or not _burstier_splits(inst, sol):
            break
        shapes = _burstier_splits(base, sol)
        inst = build_instance(workload, fleet, perf, catalog, objective, utilization, shapes, pooled)
        sol = _solve(inst, backend, time_limit_s, mip_gap)
    else:
        # 2. No fixed point (the solver alternates between pools): accumulate, each round only
        #    tightening, which ends (finitely many pool sizes) at a consistent or infeasible plan.
        for _ in range(_BURST_REPLANS):
            tighter = _burstier_splits(inst, sol) if sol.ok else {}
            if not tighter:
                break
            shapes.update(tighter)
            inst = build_instance(workload, fleet, perf, catalog, objective, utilization, shapes, pooled)
            sol = _solve(inst, backend, time_limit_s, mip_gap)
    mix_notes: list[str] = []
    if objective != "max_load":
        inst, sol, mix_notes = _mix_rounds(inst, sol, workload, fleet, perf, catalog, backend, time_limit_s, objective,
                                           mip_gap, utilization, shapes, pooled)
    if not sol.ok and sol.status != "time_limit" and objective != "max_load" and diagnose:
        if refine:
            inst.slo_within_fleet = _slo_within_fleet(workload, fleet, perf, catalog, backend, time_limit_s, objective, inst)
        unlimited = _unlimited(workload, fleet, perf, catalog)  # built once: the need's solve, the shortfall's start
        inst.gpu_need = _gpu_need(unlimited, backend, time_limit_s)
        if inst.gpu_need is not None and refine:
            inst.gpu_added = _gpu_shortfall(unlimited, workload, fleet, perf, catalog, backend, time_limit_s, objective)
        lim = fleet.limits
        if inst.gpu_need is not None and (max([lim.default_min_replicas, *lim.min_replicas.values()]) > 1
                                          or any(lim.pool_min_replicas.values())):
            # how much of that need the operator's replica floors hold (one replica per side stays: it serves; the
            # pool floors go)
            floor1 = lim.model_copy(update={"default_min_replicas": min(lim.default_min_replicas, 1),
                                            "min_replicas": {m: min(n, 1) for m, n in lim.min_replicas.items()},
                                            "pool_min_replicas": {}})
            inst.gpu_need_floor1 = _gpu_need(_unlimited(workload, fleet.model_copy(update={"limits": floor1}), perf, catalog),
                                             backend, time_limit_s)
    plan = to_plan(inst, sol, perf, explain=diagnose)
    plan.notes.extend(mix_notes)
    return plan


# Re-solves rule 58-S may take (planner/planning/mixfit.py): each tightens the pools whose mix puts a class over its
# TTFT SLO. 0: not adopted (stop 58, rules 58-S / 58-S2 on bench/mixed_sizing.py's tuning set: 4 rounds took the
# classes over their SLO in simulation 4 -> 0 but two of five tightened plans cost more than `planner solve --verify`'s,
# $11.96 against $8.97/h); the bench sets 4 to measure it. A plan whose prediction puts a class over its SLO says so
# (`_over_slo_notes`).
_MIX_REPLANS = 0


def _mix_rounds(inst: Instance, sol: Solution, workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog,
                backend: str, time_limit_s: float, objective: str, mip_gap: float,
                utilization: dict[str, float] | None, shapes: dict[tuple[str, str], ArrivalShape],
                pooled: dict[tuple[str, str], list[tuple[Capacity, ArrivalShape]]]) -> tuple[Instance, Solution, list[str]]:
    """Rule 58-S (planner/planning/mixfit.py): re-solve with the utilization targets of the pools whose mix of classes
    puts a class over its TTFT SLO tightened, until none does (at most `_MIX_REPLANS`, targets only falling). A round
    the fleet cannot hold keeps the last feasible plan, said in a note, as is a pool no target fixes."""
    util = dict(utilization or {})
    notes: list[str] = []
    for _ in range(_MIX_REPLANS):
        if not sol.ok:
            break
        targets, short = mix_tightening(inst, _solution_replicas(sol), _solution_flows(sol), _solution_utilization(inst, sol))
        notes = [f"{m.pool}: class {m.class_id}'s TTFT p{workload.slo_of(next(c for c in workload.classes if c.id == m.class_id)).percentile:g} "
                 f"behind the pool's mix of classes is {m.ttft_ms:.0f} ms against its {m.slo_ttft_ms:g}-ms SLO at any load "
                 "(its own prompt or its cluster-mates' wait behind the longer prompts of the pool); a pool of its own "
                 "would serve it (capacity module doc, Mixed, classes sharing a replica)" for m in short]
        if not targets:
            break
        nxt_util = {**util, **{vid: min(u, util.get(vid, fleet.limits.utilization)) for vid, u in targets.items()}}
        nxt_inst = build_instance(workload, fleet, perf, catalog, objective, nxt_util, shapes, pooled)
        nxt = _solve(nxt_inst, backend, time_limit_s, mip_gap)
        if not nxt.ok:
            notes.append("the plan's pools serve classes whose TTFT SLOs differ, and behind their mix of classes a class "
                         f"reads over its SLO; tightening the utilization of {', '.join(sorted(targets))} to hold it did "
                         "not fit the fleet: kept the plan sized class by class (`planner explain` shows each class's "
                         "prediction)")
            break
        inst, sol, util = nxt_inst, nxt, nxt_util
    return inst, sol, notes


def _solution_replicas(sol: Solution) -> dict[str, int]:
    """The solution's pools: variant id -> replicas (> 0)."""
    return {vid: n for vid, n in sol.replicas.items() if n > 0}


def _solution_flows(sol: Solution) -> dict[str, dict[str, float]]:
    """The solution's routing: class -> variant -> req/s, flows below solver noise left out."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for (cid, vid), x in sol.flow.items():
        if x > _FLOW_EPS_RPS:
            out[cid][vid] = x
    return out


def _solution_utilization(inst: Instance, sol: Solution) -> dict[str, float]:
    """Per pool of the solution: its load in capacity shares per replica (the plan's PoolPlan.utilization)."""
    assert inst.problem is not None
    load: dict[str, float] = defaultdict(float)
    for (cid, vid), x in sol.flow.items():
        if x > _FLOW_EPS_RPS:
            load[vid] += x / inst.problem.capacity[(cid, vid)]
    return {vid: load[vid] / n for vid, n in _solution_replicas(sol).items()}


def _solve(inst: Instance, backend: str, time_limit_s: float, mip_gap: float) -> Solution:
    assert inst.problem is not None
    if not inst.problem.variants:  # nothing can run (no GPU available, or no variant fits): no columns to work on
        return Solution(status="infeasible", backend=backend, message="no candidate pool: nothing the solver could choose")
    return solve_problem(inst.problem, backend=backend, time_limit_s=time_limit_s, mip_gap=mip_gap)


# Re-solves a plan with bursty classes may take, per phase, to make the clusters' split consistent
# with the pools the solution chose (on the clustered Azure case of bench/burst_sizing.py: 2-6).
_BURST_REPLANS = 12
_SPLIT_RTOL = 0.01


def _burstier_splits(inst: Instance, sol: Solution) -> dict[tuple[str, str], ArrivalShape]:
    """(class, variant) pairs of bursty classes whose realised split is burstier than their capacity
    assumed, with that split's arrival shape (`realised_arrivals`); and of Poisson classes on a decode pool
    whose KV the capacity pooled over more replicas than the solution gave it (capacity.py, Pool of decode
    replicas), with the pool it got.

    A bursty class's capacities assume its model's whole stream fills the smallest carrying pool of
    each variant (`pool_class_capacities`); the solution may instead spread the model over several
    pools, fewer replicas each. A class's burstiness is its model stream's (the clusters mix the
    model's classes, planner/io/traces.py), and the routing weights thin that stream at random, so a
    pool taking a share s of the model's requests sees IDC 1 + (IDC - 1)·s over its replicas."""
    out: dict[tuple[str, str], ArrivalShape] = {}
    scale = sol.load_multiplier or 1.0
    model_rate: dict[str, float] = {}
    for c in inst.workload.classes:
        model_rate[c.model] = model_rate.get(c.model, 0.0) + c.rate_rps * scale
    pool_flow: dict[str, float] = {}
    for (_, vid), flow in sol.flow.items():
        pool_flow[vid] = pool_flow.get(vid, 0.0) + max(flow, 0.0)
    for (cid, vid), flow in sol.flow.items():
        c = next(x for x in inst.workload.classes if x.id == cid)
        if flow <= 0 or c.rate_rps <= 0:
            continue
        slo = inst.workload.slo_of(c)
        assumed = inst.arrivals.get((cid, vid))
        if c.burstiness is None:
            # a Poisson class on a decode pool whose KV is pooled (capacity.py, Pool of decode replicas): the capacity
            # assumed the smallest pool carrying the model alone; a smaller pool shares less cache
            got = max(1, sol.replicas.get(vid, 1))
            if assumed is None or assumed.kv_pool <= got:
                continue
            shape = replace(assumed, kv_pool=got)
        else:
            share = min(1.0, pool_flow[vid] / model_rate[c.model])
            shape = realised_arrivals(c.burstiness, c.rate_rps, c.isl, slo.ttft_ms, share, sol.replicas.get(vid, 1),
                                      inst.fleet.limits.routing, c.isl_scv or 0.0, c.isl_max)
            if assumed is not None and assumed.osl_scv > 0:  # the output lengths' spread (decode KV) stays too
                shape = replace(shape, osl_scv=assumed.osl_scv)
            if assumed is not None and assumed.wait_isl > 0:  # the pool's length mixture (pool_length_mixture) stays
                shape = replace(shape, wait_isl=assumed.wait_isl, wait_isl_scv=assumed.wait_isl_scv,
                                wait_isl_max=assumed.wait_isl_max)
        v = inst.variants[vid]
        with quiet_extrapolation():
            cap = capacity(inst.perf[vid], v.role, c.isl, c.osl, slo.percentile, slo.ttft_ms, slo.itl_ms, shape)
        # the realised split (or the smaller pool) serves less; 1% spares the solver's degenerate flows (a split that
        # moves by a hair between solves) and is far below the model's error (bench/fidelity.py)
        if cap.rate_rps < inst.caps[(cid, vid)].rate_rps * (1.0 - _SPLIT_RTOL):
            out[(cid, vid)] = shape
    return out


@dataclass(frozen=True)
class SloTerm:
    """One SLO bound `slo_costs` prices: a model's (class_id None: its classes without their own SLO follow it) or a
    class's own, and how to write the workload with that SLO replaced."""

    model: str
    class_id: str | None
    slo: Slo
    metric: SloMetric
    with_slo: Callable[[Slo], Workload]

    @property
    def name(self) -> str:
        return f"{self.class_id or self.model} {self.metric.key}"


def slo_terms(workload: Workload) -> list[SloTerm]:
    """The SLO terms `slo_costs` prices: each model's TTFT and ITL bounds (where some class with traffic follows them)
    and each class's own SLO override (a class with `slo`: its bounds move alone); a bound the SLO leaves out is none."""
    out: list[SloTerm] = []
    follows = {c.model for c in workload.classes if c.rate_rps > 0 and c.slo is None}  # classes under the model's SLO
    for model, entry in workload.models.items():
        if model not in follows:  # no traffic under it: its bounds cost nothing either way
            continue
        out += [SloTerm(model, None, entry.slo, metric, functools.partial(_with_model_slo, workload, model))
                for metric in SloMetric if getattr(entry.slo, metric.key) is not None]
    for i, c in enumerate(workload.classes):
        if c.slo is None or c.rate_rps <= 0:
            continue
        out += [SloTerm(c.model, c.id, c.slo, metric, functools.partial(_with_class_slo, workload, i))
                for metric in SloMetric if getattr(c.slo, metric.key) is not None]
    return out


def slo_costs(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog, factor: float = 1.25,
              backend: str = "highs", time_limit_s: float = 10.0,
              on_term: Callable[[int, str], None] | None = None) -> list[SloCost]:
    """What each SLO term (`slo_terms`) costs: re-solve with one bound divided and multiplied by `factor`, the others as
    they are. `on_term` is told how many terms are priced and the next one's name (two re-plans each: a caller's
    progress bar)."""
    out: list[SloCost] = []

    def cost(wl: Workload) -> float | None:
        plan = plan_workload(wl, fleet, perf, catalog, backend=backend, time_limit_s=time_limit_s,
                             refine_diagnosis=False)  # cost only
        return plan.cost_per_hour if plan.feasible else None

    for done, t in enumerate(slo_terms(workload)):
        if on_term is not None:
            on_term(done, t.name)
        bound = getattr(t.slo, t.metric.key)
        costs = {side: cost(t.with_slo(t.slo.model_copy(update={t.metric.key: b})))
                 for side, b in (("tighter", bound / factor), ("looser", bound * factor))}
        out.append(SloCost(model=t.model, class_id=t.class_id, metric=t.metric, percentile=t.slo.percentile, bound_ms=bound,
                           tighter_ms=round(bound / factor, 2), tighter_cost_per_hour=costs["tighter"],
                           looser_ms=round(bound * factor, 2), looser_cost_per_hour=costs["looser"]))
    return out


def _with_model_slo(workload: Workload, model: str, slo: Slo) -> Workload:
    """`workload` with `model`'s SLO replaced (its classes without their own SLO follow it)."""
    entry = workload.models[model]
    return workload.model_copy(update={"models": {**workload.models, model: entry.model_copy(update={"slo": slo})}})


def _with_class_slo(workload: Workload, index: int, slo: Slo) -> Workload:
    """`workload` with the SLO of its class at `index` replaced."""
    classes = list(workload.classes)
    classes[index] = classes[index].model_copy(update={"slo": slo})
    return workload.model_copy(update={"classes": classes})


# --------------------------------------------------------------------------- solution -> plan
# A measured law whose median misfit on its own profile exceeds this fraction gets a note in the plan:
# the held-out error issue 10 sets as the goal of a law fitted from a sparse profile (p90 <= 10%), so a
# law missing the points it was fitted on by more than that at the median is a known-uncertain input
# (e.g. qwen3-30b-a3b on vLLM 0.26: its prefill is not a smooth function of tokens,
# profiles/runs/2026-12-03-s6/README.md).
MISFIT_NOTE_FRACTION = 0.10


def _phases(role: str) -> tuple[str, ...]:
    return {"prefill": ("prefill",), "decode": ("decode",)}.get(role, ("prefill", "decode"))


def _law_fit_err(vp: VariantPerf, role: str) -> dict[str, float] | None:
    """Median relative misfit of a measured law on its own points, per phase the role runs."""
    if vp.source != "measured":
        return None
    errs = {"prefill": vp.prefill_rel_err, "decode": vp.decode_rel_err}
    return {ph: round(float(errs[ph]), 4) for ph in _phases(role)}


def _misfit_notes(vp: VariantPerf, pool_id: str, role: str) -> list[str]:
    """A note per phase whose measured law misses its own points by more than MISFIT_NOTE_FRACTION
    at the median (:func:`_law_fit_err`). Where an MoE's measured prefill token table stands in for
    the law (planner.perf.laws.prefill_token_table) a prefill pool's passes are the measurement's, so
    no note; a mixed pool's closed form still takes the law's per-prompt work (capacity.py
    `_mixed_prompt_work_ms`) while the simulator takes the table, so the note says how to check it."""
    worst = {"prefill": vp.prefill_max_rel_err, "decode": vp.decode_max_rel_err}
    notes: list[str] = []
    for ph, med in (_law_fit_err(vp, role) or {}).items():
        if med <= MISFIT_NOTE_FRACTION:
            continue
        head = (f"{pool_id}: its {ph} law misses its own measured points by {med:.0%} at the median "
                f"({max(worst[ph], med):.0%} at worst)")
        if ph == "prefill" and vp.prefill_table_tokens:
            if role != "prefill":
                notes.append(f"{head}; the simulator reads the measured token table, this pool's closed form the "
                             "law: `planner solve --verify` checks the plan against the table")
            continue
        notes.append(f"{head}; predictions for this pool carry that error")
    return notes


def _graph_limit_notes(vp: VariantPerf, pool_id: str, role: str) -> list[str]:
    """A note where a measured MoE prefill carries vLLM's default CUDA-graph limit (planner.perf.graphs): with
    graphs captured to larger sizes the deployment could prefill those steps 1.1-3.1x faster (s15), which the
    plan can only count on if the profile was measured with the same flags. Not for decode pools."""
    g = graph_limit(vp) if role != "decode" else None
    return [f"{pool_id}: {g.advice()}"] if g is not None else []


def _untuned_note(inst: Instance, ids: list[str]) -> str:
    """The part of a prior note for MoE pools that vLLM 0.26.0 runs on default fused-MoE tiles (no tuned table for the
    shape on that GPU: planner.perf.kernel_tables, rule V3)."""
    hit = sorted(set(ids) & set(inst.untuned_moe))
    if not hit:
        return ""
    tables = sorted({inst.untuned_moe[vid] for vid in hit})
    return f"; {', '.join(hit)}: " + default_tiles_advice(tables, "it" if len(hit) == 1 else "them")


def _torch_laws_notes(pools: dict[str, PoolPlan]) -> list[str]:
    """A note on pools planned from the torch reference decoder's profile (no vLLM profile of the variant; where vLLM
    profiles exist, part D's verdict, planner.perf.laws.TORCH_ONLY_LAWS): vLLM's kernels ran 0.65-0.93x its times where
    both were measured (H200 and H100 pairs, profiles/data/llama-3.1-8b/ROOFLINE.md), so such a pool is likely larger
    than vLLM needs."""
    ids = sorted(vid for vid, p in pools.items() if p.law_source == "measured-torch")
    if not ids:
        return []
    return [f"{', '.join(ids)}: planned from the torch reference decoder's profile (no vLLM profile of "
            f"{'it' if len(ids) == 1 else 'them'}): vLLM ran 0.65-0.93x that decoder's times where both were measured, "
            "so the pool is likely larger than vLLM needs; measure it (planner profile --backend vllm --dummy-weights ...)"]


def _prior_notes(inst: Instance, pools: dict[str, PoolPlan]) -> list[str]:
    """Per model with pools planned from the roofline prior (no profile of the variant): how far the prior missed
    real vLLM on held-out models (planner.perf.heldout.PRIOR_HELD_OUT) and how to measure instead."""
    a = PRIOR_HELD_OUT
    notes = []
    for model in inst.workload.models:
        ids = [vid for vid, p in pools.items() if inst.variants[vid].model == model and p.source == "prior"]
        if not ids:
            continue
        moe = model in inst.moe_models
        n_held, pre, dec = a.of_kind(moe)
        g = PRIOR_HELD_OUT_GPU
        unprofiled = sorted({inst.variants[vid].gpu for vid in ids} - inst.profiled_gpus)
        notes.append(
            f"{model}: {', '.join(ids)} planned from the roofline prior (no vLLM profile of {'it' if len(ids) == 1 else 'them'}); "
            f"on {n_held} {'MoE' if moe else 'dense'} model{'' if n_held == 1 else 's'} held out on real "
            f"vLLM 0.26 it missed prefill by {pre:.0%} and decode by {dec:.0%} at the median (bench/heldout_model.py --set)"
            + ("; an MoE's prefill of 513-4,096-token steps runs without CUDA graphs at vLLM's default sizes, "
               "launch-bound, not as its FLOPs: served with graphs captured to 4,096 tokens "
               f"(--cudagraph-capture-sizes) the same MoE's prefill was within {PRIOR_HELD_OUT_MOE_GRAPHS[0]:.0%}"
               if moe else "")
            + (f"; {', '.join(sorted(set(ids) & inst.torch_unused))}: the torch reference decoder's profile is not used "
               "(vLLM's kernels ran 0.65-0.93x its times on the H200 and H100 pairs; where both exist the prior missed "
               "vLLM less: bench/calibrate_prior.py part D)" if set(ids) & inst.torch_unused else "")
            + "".join(f"; {vid}: its profile at {inst.unphysical[vid]}" for vid in sorted(set(ids) & set(inst.unphysical)))
            + _untuned_note(inst, ids)
            + (f"; {', '.join(unprofiled)} {'has' if len(unprofiled) == 1 else 'have'} no profile of any model: on a GPU type "
               f"held out of the calibration ({g.gpu} tp{g.min_tp}+) it missed by {g.prefill:.0%} / {g.decode:.0%}, "
               f"and on vLLM profiles whose card and model were both held out by {PRIOR_CARD_AND_MODEL_UNSEEN[0]:.0%} / "
               f"{PRIOR_CARD_AND_MODEL_UNSEEN[1]:.0%} (bench/calibrate_prior.py part C2')"
               if unprofiled else "")
            + f": measure it (planner profile --backend vllm --dummy-weights --model {model} ...) before relying on the plan")
    return notes


# The closed form's mixed-replica bias where one prompt fills half a step's token budget or more (floor(C/isl) <= 1),
# against the steady-state simulator at ISL 4,096 / 8,192, 50-85% load, every swept vLLM profile: TTFT p90 -8.1%,
# ITL p90 -0.3% (bench/vllm_under_load.py, grid_long_*; MAPE 9.7% / 8.5%: the dense profiles run below the simulator,
# the MoE above it). Stop 34's life count (capacity.py module doc, Mixed, rule R3) took the ITL from -10.5% and
# TTFT from -9.8%; profiles/runs/2026-12-04-s17/README.md says why TTFT was -16.8% before a prompt longer than the
# budget took riders in its last step (capacity.mixed_latency).
MIXED_LONG_PROMPT_BIAS_PCT = (-8.1, -0.3)


def _long_prompt_mixed_notes(vp: VariantPerf, pool_id: str, c: RequestClass, role: str) -> list[str]:
    """A note where a mixed pool takes prompts that fill half its step budget or more: there the closed form
    predicts below the simulator (MIXED_LONG_PROMPT_BIAS_PCT), so the plan should be checked with --verify."""
    if role != "mixed" or 2 * c.isl < vp.max_batched_tokens:
        return []
    ttft, itl = MIXED_LONG_PROMPT_BIAS_PCT
    return [f"{pool_id}: class {c.id}'s {c.isl}-token prompts fill half a step's {vp.max_batched_tokens}-token budget or "
            f"more; there the closed form's TTFT p90 runs {-ttft:.0f}% below the simulator's at 50-85% load on average "
            f"(ITL {itl:+.0f}%, within about 9% either way; bench/vllm_under_load.py): `planner solve --verify` checks "
            "the plan in the simulator"]


# The output spread a note prices a KV-bound decode pool at when the class states none: scv 1, exponential-like
# outputs (the Azure conversation trace's outputs have scv 0.60 over the whole trace; heavy tails run higher).
NOTE_OUTPUT_SCV = 1.0
# A smaller loss of the KV-bound rate than this is within the capacity model's own error on measured points
# (bench/fidelity.py: TTFT p90 MAPE 7.9%, ITL 2.4%): no note.
NOTE_MIN_CAPACITY_LOSS = 0.05


@dataclass
class _PoolClassFacts:
    """What the classes routed to one pool left to say about it, said once per pool (`_pool_facts_notes`; found by
    hand at stop 53: a pool of 8 classes got 8 'planned decode batch N exceeds the measured 128' notes)."""

    measured_batch: int = 0
    batch_over: dict[str, float] = field(default_factory=dict)
    """Class id -> the decode batch planned beyond the measured one."""
    kv_bound: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Class id -> (its output length, the share fewer of its requests a replica takes at output scv 1)."""
    large_clusters: dict[str, float] = field(default_factory=dict)
    """Class id -> its 1-s IDC, where its clusters are larger than the pool's replicas (`_note_large_clusters`)."""
    replicas: int = 0
    """The pool's planned replicas (what `large_clusters` compares with)."""


def _output_spread_loss(inst: Instance, vid: str, c: RequestClass) -> float | None:
    """Where a class without an output spread (osl_scv) is bound by a decode or mixed pool's KV cache, the share fewer
    of its requests a replica takes at scv NOTE_OUTPUT_SCV (there the spread decides the rate: capacity.py, Output-length
    dispersion); None where the KV cache does not bind it or the loss is below NOTE_MIN_CAPACITY_LOSS."""
    v = inst.variants[vid]
    cap = inst.caps.get((c.id, vid))
    if v.role not in ("decode", "mixed") or c.osl_scv is not None or cap is None or cap.binding != "kv" or cap.rate_rps <= 0:
        return None
    slo = inst.workload.slo_of(c)
    shape = replace(inst.arrivals.get((c.id, vid), POISSON), osl_scv=NOTE_OUTPUT_SCV)
    with quiet_extrapolation():
        spread = capacity(inst.perf[vid], v.role, c.isl, c.osl, slo.percentile, slo.ttft_ms, slo.itl_ms, shape).rate_rps
    if spread > (1.0 - NOTE_MIN_CAPACITY_LOSS) * cap.rate_rps:
        return None
    return 1.0 - spread / cap.rate_rps


def _pool_facts_notes(facts: dict[str, _PoolClassFacts]) -> list[str]:
    """One note per pool and kind of `facts`, its classes named together."""
    out: list[str] = []
    for vid, f in facts.items():
        if f.batch_over:
            many = len(f.batch_over) > 1
            out.append(f"{vid}: planned decode batch {'up to ' if many else ''}{max(f.batch_over.values()):.0f}"
                       f"{f' ({len(f.batch_over)} classes)' if many else ''} exceeds the measured {f.measured_batch}; "
                       "decode law extrapolated")
        if f.kv_bound:
            ids = ", ".join(f"{cid} ({osl} tokens)" for cid, (osl, _) in f.kv_bound.items())
            losses = sorted(100 * loss for _, loss in f.kv_bound.values())
            span = f"{losses[0]:.0f}%" if round(losses[0]) == round(losses[-1]) else f"{losses[0]:.0f}-{losses[-1]:.0f}%"
            one = len(f.kv_bound) == 1
            out.append(f"{vid}: class{'' if one else 'es'} {ids} {'is' if one else 'are'} bound by the KV cache with "
                       f"every output of {'its' if one else 'their'} mean length; outputs that spread hold more (a running "
                       "sequence isl + "
                       f"osl·(1 + scv)), and at scv {NOTE_OUTPUT_SCV:g} a replica takes {span} fewer of "
                       f"{'its' if one else 'their'} requests: `planner workload from-trace --length-spread` states the "
                       "spread (osl_scv)")
        if f.large_clusters:
            one = len(f.large_clusters) == 1
            idcs = sorted(f.large_clusters.values())
            idc = f"{idcs[0]:.3g}" if f"{idcs[0]:.3g}" == f"{idcs[-1]:.3g}" else f"{idcs[0]:.3g}-{idcs[-1]:.3g}"
            who = (f"class {next(iter(f.large_clusters))}'s clusters" if one
                   else f"the clusters of classes {', '.join(f.large_clusters)}")
            out.append(f"{vid}: {who} (1-s IDC {idc}) are larger than the pool's {f.replicas} "
                       f"replica{'' if f.replicas == 1 else 's'}: there the capacity model's TTFT p90 ran up to "
                       f"{LARGE_CLUSTER_UNDER_PCT}% below the simulator's (pools of 5 and 7 under IDC 10): check the plan "
                       "with planner solve --verify")
    return out


# Where a bursty class's clusters are larger than the prefill pool behind least-loaded routing (n / IDC < 1), the
# capacity model can run well below the simulator: down to -36% TTFT p90 (the 70B chat class at 70% load, 7 replicas
# under IDC 10) where its MAPE on those rows is 13.9% (bench/fidelity_burst.py, pools of 5 and 7 under IDC 3 and 10,
# 1,500 requests per replica x 5 seeds; stop 33's scratch run of the same rows with fewer requests read -28%).
LARGE_CLUSTER_UNDER_PCT = 36


def _note_large_clusters(facts: _PoolClassFacts, c: RequestClass, role: str, shape: ArrivalShape, replicas: int) -> None:
    """Record, for the pool's one note (`_pool_facts_notes`), a class whose clusters are larger than its prefill pool
    (capacity.py, Pool of replicas, Clusters: c = n/IDC < 1), whose TTFT p90 the model under-predicts (found in QA: a
    trace's six classes on one pool gave six such notes, one per class, alike but for the class)."""
    if role != "prefill" or shape.routing != "least_loaded" or shape.idc <= max(1.0, float(replicas)):
        return
    facts.large_clusters[c.id] = shape.idc
    facts.replicas = replicas


# Relative slack above which a pool's load in capacity shares counts as more than its target (see `_routing_notes`).
_SOLVER_FEAS_TOL = 1e-6


def _routing_notes(inst: Instance, vid: str, pool: PoolPlan, flows: dict[str, float]) -> list[str]:
    """A note where a prefill pool's size counts on least-loaded routing (capacity.py, Pool of replicas): a
    prompt waits only when every replica is busy; likewise where a decode pool's KV is checked as one cache
    (capacity.py, Pool of decode replicas). Random or round-robin routing (a plain Kubernetes Service)
    makes each replica a queue of its own (a bursty class's cluster of B split Binomial(B, 1/n): IDC 1 + (IDC - 1)/n
    per replica); the note gives the replicas the one-replica model would need then, at the same flows and
    utilization target; no note where that many replicas is no more than the pool has (the routing changes nothing
    there). A plan sized for random routing (limits.routing: random) has no such pool: no note
    (`_random_routing_note` says what it was sized for)."""
    v = inst.variants[vid]
    shapes = {cid: inst.arrivals.get((cid, vid), POISSON) for cid in flows}
    if v.role == "prefill" and any(pool_servers(sh) > 1 for sh in shapes.values()):
        alone = {cid: sh.randomly_routed() for cid, sh in shapes.items()}
    elif v.role == "decode" and any(sh.kv_pool > 1 for sh in shapes.values()):
        alone = {cid: replace(sh, kv_pool=1).randomly_routed() for cid, sh in shapes.items()}
    else:
        return []
    need = 0.0
    for cid, x in flows.items():
        c = next(k for k in inst.workload.classes if k.id == cid)
        slo = inst.workload.slo_of(c)
        with quiet_extrapolation():
            cap = capacity(inst.perf[vid], v.role, c.isl, c.osl, slo.percentile, slo.ttft_ms, slo.itl_ms, alone[cid]).rate_rps
        need += x / cap if cap > 0 else math.inf
    util = next((spec.utilization for spec in inst.problem.variants if spec.id == vid), 1.0) if inst.problem else 1.0
    # the solver's feasibility tolerance: a pool the ILP filled to its target reads need/util = 1 + ~1e-7 (found at stop
    # 58: CBC's plan of the default example noted a one-replica decode pool, whose capacities no routing changes, as
    # needing "about 2 replicas" with random routing; HiGHS' and CBC's primal feasibility tolerances are 1e-7)
    n_rr = math.ceil(need / util - _SOLVER_FEAS_TOL) if math.isfinite(need) else None
    if n_rr is not None and n_rr <= pool.replicas:
        return []  # the routing makes no difference to this pool's size: nothing to say
    would = f" and the pool would need about {n_rr} replicas" if n_rr else ", which this pool cannot carry"
    if v.role == "decode":
        return [f"{vid}: its KV cache checked as one shared by its {pool.replicas} replicas behind least-loaded routing "
                "(llm-d's KV-utilisation scorer; the simulator's): a request goes to the replica holding the least KV. "
                "With random or round-robin routing each replica holds its own share" + would
                + " (planner/planning/capacity.py, Pool of decode replicas)"]
    return [f"{vid}: sized for least-loaded routing over its {pool.replicas} replicas (llm-d's load-aware scorers; the "
            "simulator's): a prompt waits only when all are busy. With random or round-robin routing each replica "
            "queues alone" + would + " (planner/planning/capacity.py, Pool of replicas)"]


def _unplanned_current_notes(fleet: Fleet, workload: Workload) -> list[str]:
    """A note per model whose pools run now (fleet.current) but which the workload does not list: the plan holds none
    of them, so applying it stops that model (found by hand at stop 52: two llama-2-70b replicas left the plan
    without a word)."""
    running: dict[str, int] = defaultdict(int)
    for pid, n in fleet.current.items():
        model = Variant.parse(pid).model
        if n > 0 and model not in workload.models:
            running[model] += n
    return [f"the fleet runs {n} replica{'' if n == 1 else 's'} of {m} now (fleet.current), a model the workload does not "
            "list: the plan holds none of them (applied, it stops that model; list it in the workload to keep it)"
            for m, n in sorted(running.items())]


def _random_routing_note(inst: Instance) -> list[str]:
    """The plan-wide note of a plan sized for random routing (the fleet's limits.routing: random)."""
    if inst.fleet.limits.routing != "random":
        return []
    return ["sized for random routing (limits.routing: random; a plain Kubernetes Service): a request picks a replica "
            "of its pool at random, so each replica queues alone and no prefill wait is pooled (planner/planning/capacity.py, "
            "Pool of replicas, Random routing); `planner solve --verify` simulates it so"]


def _extrapolation_notes(vp: VariantPerf, pool_id: str, c: RequestClass, role: str, batch: float,
                         facts: _PoolClassFacts) -> list[str]:
    """Where a planned operating point lies beyond the measured range of a measured law (a decode batch beyond it is
    recorded in `facts`, said once per pool)."""
    out: list[str] = []
    if vp.source != "measured":
        return out
    if role != "decode" and vp.max_isl_measured and c.isl > vp.max_isl_measured * 1.05:
        out.append(f"{pool_id}: class {c.id} prompts ({c.isl} tokens) exceed the measured ISL ({vp.max_isl_measured}); prefill law extrapolated")
    if role != "prefill" and vp.max_decode_batch_measured and batch > vp.max_decode_batch_measured * 1.05:
        facts.measured_batch = vp.max_decode_batch_measured
        facts.batch_over[c.id] = batch
    if role != "prefill" and vp.max_context_measured and c.isl + c.osl > vp.max_context_measured * 1.05:
        out.append(f"{pool_id}: class {c.id} context ({c.isl + c.osl} tokens) exceeds the measured {vp.max_context_measured}; "
                   "decode law extrapolated")
    return out


def _class_prediction(inst: Instance, c: RequestClass, pools: dict[str, PoolPlan],
                      flows: dict[str, float], rate_scale: float, notes: list[str],
                      facts: dict[str, _PoolClassFacts], mixes: dict[str, PoolMix] | None = None,
                      itl_mixes: dict[str, PoolMix] | None = None) -> ClassPrediction:
    """Worst predicted percentile over the pools the class is routed to, at their planned load (what to say of a pool
    across its classes goes to `facts`). A mixed pool's TTFT is the class's behind the pool's mix of classes (`mixes`,
    capacity module doc, Mixed, classes sharing a replica; rule 57-M), and so is a prefill pool's where the workload
    states no length spread (capacity module doc, Prompt-length dispersion, classes sharing a pool; rule 58-P); a
    decode pool's ITL is the pool's behind its mix (`itl_mixes`, rule 58-D); a mixed pool's ITL, and every capacity,
    the class alone's at the pool's utilization."""
    slo = inst.workload.slo_of(c)
    # the load the plan was sized and predicted for, recorded so that a reader of the plan file can tell it (found in
    # QA: `simulate --workload` of a grown workload and `explain` of a stale plan could not; a max-load plan's
    # predictions are at the scaled rate)
    planned = {"rate_rps": round(c.rate_rps * rate_scale, 6), "isl": float(c.isl), "osl": float(c.osl)}
    if not flows:  # no pool serves it (a class of rate 0): no latency to predict, where 0 ms read as met (found in QA)
        return ClassPrediction(percentile=slo.percentile, slo_ttft_ms=slo.ttft_ms, slo_itl_ms=slo.itl_ms, **planned)
    ttft = itl = 0.0
    disagg = 0.0
    kv: tuple[float, float] | None = None  # (demand, capacity) of the fullest decode pool behind its mix (rule 59-K)
    for vid, x in flows.items():
        v = inst.variants[vid]
        pool = pools[vid]
        cap = inst.caps[(c.id, vid)].rate_rps
        # The class alone at the pool's utilization: the load that consumes the same capacity share.
        eq_rate = pool.utilization * cap
        shape = prediction_shape(inst, c, vid, pool.replicas)
        with quiet_extrapolation():
            lat = latency(inst.perf[vid], v.role, c.isl, c.osl, eq_rate, slo.percentile, shape)
        mix = (mixes or {}).get(vid)
        if mix is not None:
            behind = mix_ttft_ms(inst, vid, c, shape, mix)
            if math.isfinite(behind):  # beyond the mix's saturation the class alone's stands (it was planned)
                lat = replace(lat, ttft_ms=behind)
        itl_mix = (itl_mixes or {}).get(vid)
        if itl_mix is not None:
            pooled_itl = mix_itl_ms(inst, vid, c, shape, itl_mix)
            if math.isfinite(pooled_itl):
                lat = replace(lat, itl_ms=pooled_itl)
            demand, room = mix_kv_demand(inst, vid, c, shape, itl_mix), inst.perf[vid].kv_capacity_tokens
            if kv is None or demand / room > kv[0] / kv[1]:
                kv = (demand, room)
        pool_facts = facts.setdefault(vid, _PoolClassFacts())
        notes.extend(n for n in _extrapolation_notes(inst.perf[vid], vid, c, v.role, lat.batch, pool_facts) if n not in notes)
        notes.extend(n for n in _long_prompt_mixed_notes(inst.perf[vid], vid, c, v.role) if n not in notes)
        loss = _output_spread_loss(inst, vid, c)
        if loss is not None:
            pool_facts.kv_bound[c.id] = (c.osl, loss)
        _note_large_clusters(pool_facts, c, v.role, shape, pool.replicas)
        if v.role in PREFILL_SIDE:
            ttft = max(ttft, lat.ttft_ms)
            pool.ttft_ms = round(max(pool.ttft_ms or 0.0, lat.ttft_ms), 2)
        if v.role in ("decode", "mixed"):
            itl = max(itl, lat.itl_ms)
            pool.itl_ms = round(max(pool.itl_ms or 0.0, lat.itl_ms), 3)
        if v.role == "prefill":
            disagg += x / max(c.rate_rps * rate_scale, 1e-12)
    return ClassPrediction(percentile=slo.percentile, ttft_ms=round(ttft, 2), itl_ms=round(itl, 3),
                           slo_ttft_ms=slo.ttft_ms, slo_itl_ms=slo.itl_ms, disaggregated_share=round(min(disagg, 1.0), 4),
                           decode_kv_tokens=None if kv is None else round(kv[0], 1),
                           decode_kv_capacity_tokens=None if kv is None else kv[1], **planned)


def _time_limit_diagnosis(inst: Instance, sol: Solution) -> list[str]:
    """A solver stopped at its time limit before any plan: not shown infeasible, so no constraint is blamed (found by
    hand at stop 56: 874 classes timed out at 10 s and were told 'the limits (min_replicas, max_step, pd_ratio) keep it
    out of reach'; 40 s solved them, one H100)."""
    assert inst.problem is not None
    return [f"the solver ({sol.backend}) stopped at its time limit after {sol.seconds:.1f} s before it found any plan: "
            f"the workload is not shown infeasible ({len(inst.workload.classes):,} classes on "
            f"{len(inst.problem.variants):,} candidate pools); raise --time-limit, or pool the classes (fewer "
            "--isl-buckets / --osl-buckets in `planner workload from-trace`)"]


def to_plan(inst: Instance, sol: Solution, perf: PerfModel | None = None, explain: bool = True) -> Plan:
    """Turn a solver solution into the plan file's record (routing, predictions, costs, binding); `explain=False`
    leaves an infeasible one's diagnosis empty: `explain_infeasible` re-solves its elastic model, seconds on a large
    instance, which the diagnosis' own feasibility checks (bisections of re-plans) paid at every step (found in QA: a
    50,000 req/s workload's shortfall took 113 s, 87 of them in those unread diagnoses)."""
    assert inst.problem is not None
    info = SolverInfo(backend=sol.backend, status=sol.status, objective=sol.objective, bound=sol.bound,
                      gap=sol.gap, seconds=round(sol.seconds, 4), objective_unit=_OBJECTIVE_UNIT.get(inst.problem.objective))
    replica_routing = inst.fleet.limits.routing
    if not sol.ok:
        return Plan(feasible=False, solver=info, diagnosis=(_time_limit_diagnosis(inst, sol) if sol.status == "time_limit"
                                                           else explain_infeasible(inst) if explain else []),
                    notes=[sol.message] if sol.message else [], replica_routing=replica_routing)

    scale = sol.load_multiplier if inst.problem.objective == "max_load" and sol.load_multiplier else 1.0
    flows_by_class = _solution_flows(sol)
    util = _solution_utilization(inst, sol)

    plan = Plan(solver=info, load_multiplier=sol.load_multiplier if inst.problem.objective == "max_load" else None,
                replica_routing=replica_routing)
    plan.notes.extend(_unplanned_current_notes(inst.fleet, inst.workload))
    plan.notes.extend(_random_routing_note(inst))
    pools: dict[str, PoolPlan] = {}
    for vid, n in sorted(sol.replicas.items()):
        if n <= 0:
            continue
        v = inst.variants[vid]
        pools[vid] = PoolPlan(
            id=vid, role=v.role, gpu=v.gpu, tp=v.tp, replicas=n, gpus=n * v.tp,
            cost_per_hour=round(n * v.tp * inst.price_per_hour[v.gpu], 4),
            utilization=round(util[vid], 4),
            source=inst.perf[vid].source,
            weight_dtype=v.weight_dtype, kv_dtype=v.kv_dtype, law_source=inst.perf[vid].law_source,
            law_fit_err=_law_fit_err(inst.perf[vid], v.role),
        )
        plan.notes.extend(_misfit_notes(inst.perf[vid], vid, v.role))
        plan.notes.extend(_graph_limit_notes(inst.perf[vid], vid, v.role))
        plan.gpus[v.gpu] = plan.gpus.get(v.gpu, 0) + n * v.tp
    plan.notes.extend(_prior_notes(inst, pools))
    plan.notes.extend(_torch_laws_notes(pools))
    plan.cost_per_hour = round(sum(p.cost_per_hour for p in pools.values()), 4)
    watts = {s.id: s.power_w for s in inst.problem.variants}
    plan.power_kw = round(sum(watts[vid] * p.replicas for vid, p in pools.items()) / 1e3, 3) if inst.power_known else None

    for model in inst.workload.models:
        mpools = [p for vid, p in pools.items() if inst.variants[vid].model == model]
        routing: dict[str, dict[str, float]] = {}
        predicted: dict[str, ClassPrediction] = {}
        pairing: dict[str, dict[str, dict[str, float]]] = {}
        facts: dict[str, _PoolClassFacts] = {}
        sizes = {vid: p.replicas for vid, p in pools.items()}
        mixes = pool_mixes(inst, sizes, flows_by_class)
        itl_mixes = pool_mixes(inst, sizes, flows_by_class, mixfit.ITL_MIX_ROLES)
        for c in (c for c in inst.workload.classes if c.model == model):
            flows = flows_by_class.get(c.id, {})
            pre = {v: x for v, x in flows.items() if inst.variants[v].role in PREFILL_SIDE}
            dec = {v: x for v, x in flows.items() if inst.variants[v].role == "decode"}
            tot_p, tot_d = sum(pre.values()), sum(dec.values())
            w = {v: round(x / tot_p, _WEIGHT_DIGITS) for v, x in pre.items()} if tot_p > 0 else {}
            w.update({v: round(x / tot_d, _WEIGHT_DIGITS) for v, x in dec.items()} if tot_d > 0 else {})
            routing[c.id] = w
            if inst.problem.forbidden_pairs and dec:
                pairing[c.id] = _pool_pairing(inst, c.id, pre, dec, sol.pair_flow)
            predicted[c.id] = _class_prediction(inst, c, pools, flows, scale, plan.notes, facts, mixes, itl_mixes)
        plan.notes.extend(_pool_facts_notes(facts))
        for vid in (vid for vid, p in pools.items() if inst.variants[vid].model == model):
            pool_flows = {cid: fl[vid] for cid, fl in flows_by_class.items() if vid in fl}
            plan.notes.extend(_routing_notes(inst, vid, pools[vid], pool_flows))
        p_gpus = sum(p.gpus for p in mpools if p.role == "prefill")
        d_gpus = sum(p.gpus for p in mpools if p.role == "decode")
        plan.models[model] = ModelPlan(
            pd_ratio=round(p_gpus / d_gpus, 4) if d_gpus and p_gpus else None,
            pools=mpools, routing=routing, predicted=predicted, pairing=pairing,
        )
    plan.notes.extend(_over_slo_notes(plan))
    plan.binding = [describe_binding(inst, b) for b in sol.binding]
    return plan


def classes_over_slo(plan: Plan) -> dict[str, list[tuple[str, float, float]]]:
    """Per class whose predicted TTFT or ITL is over its SLO in `plan`: (metric, predicted ms, SLO ms) of each such
    metric, and ("decode KV", tokens, capacity tokens) where its P/D decode pool's KV behind the pool's mix overflows
    the replica's cache at the class's percentile (rule 59-K: arrivals wait for admission beyond the TTFT's tail, which
    the TTFT prediction does not count; only for a class with a TTFT SLO). In a plan the ILP found feasible the cause
    is its pools' mix of classes (rules 57-M / 58-P / 58-D / 59-K): a class waits behind prompts, is batched with
    decodes, or waits for a cache, that its class-alone capacity did not count (a class with a tight SLO beside the
    long prompts or outputs of a looser one). `planner solve` verifies such a plan by default (rule 58-V)."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for mp in plan.models.values():
        for cid, pr in sorted(mp.predicted.items()):
            kv_bound = pr.decode_kv_capacity_tokens if pr.slo_ttft_ms is not None else None
            over = [(name, got, bound) for name, got, bound in (("TTFT", pr.ttft_ms, pr.slo_ttft_ms),
                                                                 ("ITL", pr.itl_ms, pr.slo_itl_ms),
                                                                 (KV_OVER, pr.decode_kv_tokens, kv_bound))
                    if bound is not None and got is not None and got > bound * (1.0 + 1e-9)]
            if over:
                out[cid] = over
    return out


# The metric name of rule 59-K's overflow in `classes_over_slo`: a decode pool's KV behind its mix, tokens.
KV_OVER = "decode KV"


def _over_slo_notes(plan: Plan) -> list[str]:
    """`classes_over_slo` in words, with what re-sizes the plan: the plan's own numbers must not claim a SLO they
    contradict."""
    out: list[str] = []
    for cid, over in classes_over_slo(plan).items():
        pct = next(mp.predicted[cid].percentile for mp in plan.models.values() if cid in mp.predicted)
        what = " and ".join(f"{name} p{pct:g} {got:,.0f} tokens over its replica's {bound:,.0f}-token cache (arrivals "
                            "wait for admission, which its TTFT does not count)" if name == KV_OVER else
                            f"{name} p{pct:g} {got:,.1f} ms over its {bound:g}-ms SLO" for name, got, bound in over)
        out.append(f"class {cid}: predicted {what} behind its pools' mix of classes (the plan sizes each class as if "
                   "alone in its pool; capacity module doc, Mixed, classes sharing a replica): a simulation judges such a "
                   "plan, `planner solve` (and planner.solve) running --verify's rounds on it unless --no-verify")
    return out


def _pool_pairing(inst: Instance, cid: str, pre: dict[str, float], dec: dict[str, float],
                  pair_flow: dict[tuple[str, str, str], float]) -> dict[str, dict[str, float]]:
    """Per prefill pool of class `cid`, the decode pools its KV cache goes to (weights sum to 1).

    The ILP pairs by key (GPU type, or type and TP): y[a>b] req/s go from key a to key b. A prefill
    pool on key a sends the share y[a>b] / (flow out of a) to key b, split over b's decode pools in
    proportion to their flows, which reproduces every pool's decode flow exactly.
    """
    assert inst.problem is not None
    key = {s.id: s.key for s in inst.problem.variants}
    out_of: dict[str, float] = defaultdict(float)
    into: dict[str, float] = defaultdict(float)
    for vid, x in pre.items():
        if inst.variants[vid].role == "prefill":
            out_of[key[vid]] += x
    for vid, x in dec.items():
        into[key[vid]] += x
    result: dict[str, dict[str, float]] = {}
    for pid in pre:
        if inst.variants[pid].role != "prefill":
            continue  # a mixed pool decodes its own prefills
        a = key[pid]
        w = {did: pair_flow.get((cid, a, key[did]), 0.0) / out_of[a] * x / into[key[did]]
             for did, x in dec.items() if out_of[a] > 0 and into[key[did]] > 0}
        total = sum(w.values())
        if total > 0:
            result[pid] = {d: round(x / total, _WEIGHT_DIGITS) for d, x in w.items() if x / total >= 10 ** -_WEIGHT_DIGITS}
    return result
