"""From a workload, a fleet and performance laws to a plan: the orchestration of `planner solve`.

Steps: enumerate variants (model x role x GPU type x tp allowed by the fleet and that fit in
memory) -> capacity under SLO of every (class, variant) -> an ILP `Problem` -> a backend solves it
-> the solution becomes a `Plan` with routing weights, predicted percentiles and the binding
constraints; an infeasible instance becomes a plan whose `diagnosis` says what binds and what
would make it feasible.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from planner.planning.capacity import (POISSON, ArrivalShape, Capacity, ClassLoad, capacity, latency, pool_class_capacities,
                              realised_arrivals)
from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.perf.laws import PerfModel, VariantPerf, quiet_extrapolation
from planner.io.schema import (
    PREFILL_SIDE,
    ClassPrediction,
    Fleet,
    ModelPlan,
    Plan,
    PoolPlan,
    RequestClass,
    SloCost,
    SolverInfo,
    Variant,
    Workload,
    parse_selector,
)
from planner.planning.slo_metrics import SloMetric
from solvers.backends import solve as solve_problem
from solvers.constraints import Binding, Family
from solvers.diagnose import diagnose
from solvers.objectives import OBJECTIVES
from solvers.problem import ClassSpec, Problem, Solution, VariantSpec

# What the solver's objective value is counted in, per objective (max_load reports the multiplier).
_OBJECTIVE_UNIT = {o.value: s.unit for o, s in OBJECTIVES.items()}
# Inventory given to every GPU type when asking how many GPUs the workload needs (the schema's
# bound on `available`, so the ILP's integers stay in range).
_UNLIMITED_GPUS = 10**6
# Routing weights and replicas below these are solver noise, not decisions.
_FLOW_EPS_RPS = 1e-6
_WEIGHT_DIGITS = 4


@dataclass
class Instance:
    """The planning instance: candidate variants with their laws and per-class capacities."""

    workload: Workload
    fleet: Fleet
    variants: dict[str, Variant] = field(default_factory=dict)
    perf: dict[str, VariantPerf] = field(default_factory=dict)
    caps: dict[tuple[str, str], Capacity] = field(default_factory=dict)
    arrivals: dict[tuple[str, str], ArrivalShape] = field(default_factory=dict)
    """Per (class, variant): the arrival shape its capacity was computed for (Poisson unless bursty)."""
    price_per_hour: dict[str, float] = field(default_factory=dict)
    """Per GPU type, after fleet overrides."""
    power_known: bool = True
    """Whether the catalog gives the board power of every GPU type of the fleet (else no power_kw)."""
    problem: Problem | None = None
    no_fit: dict[str, str] = field(default_factory=dict)
    """Per model without any variant: why none (TP beyond a node, or weights beyond memory), in words."""
    gpu_need: dict[str, int] | None = None
    """When infeasible only for want of GPUs: GPUs per type of the fewest-GPU plan with unlimited inventory."""


def _validate(workload: Workload, fleet: Fleet, catalog: Catalog) -> None:
    for m in workload.models:
        catalog.model(m)  # raises InputError naming the catalog and the known models
    for g in fleet.gpus:
        catalog.gpu(g)
    for pool_id in fleet.current:
        try:
            Variant.parse(pool_id)
        except ValueError as exc:
            raise InputError(None, f"current.{pool_id}", str(exc)) from exc
    for i, rule in enumerate(fleet.limits.forbid_pairs):
        for side in ("prefill", "decode"):
            gpu = parse_selector(getattr(rule, side))[0]
            if gpu != "*" and gpu not in fleet.gpus:
                raise InputError(None, f"limits.forbid_pairs[{i}].{side}",
                                 f"GPU type '{gpu}' is not in the fleet's gpus ({', '.join(sorted(fleet.gpus))}) or '*'")


def _pair_key(v: Variant, by_tp: bool) -> str:
    """What the fleet's pairing rules see of a variant: its GPU type, and its TP when they name one;
    an FP8 KV cache is part of the key (its blocks can only go to a decode pool of the same KV dtype)."""
    return (f"{v.gpu}/tp{v.tp}" if by_tp else v.gpu) + ("/kvfp8" if v.kv_dtype == "fp8" else "")


def _forbidden_pairs(variants: list[Variant], fleet: Fleet) -> frozenset[tuple[str, str]]:
    """(prefill key, decode key) pairs the fleet's limits forbid, over the candidate variants.

    A KV cache moves prefill -> decode as raw blocks, so pools of different KV dtypes never pair."""
    lim = fleet.limits
    pre = [v for v in variants if v.role == "prefill"]
    dec = [v for v in variants if v.role == "decode"]
    return frozenset((_pair_key(p, lim.pairing_by_tp), _pair_key(d, lim.pairing_by_tp)) for p in pre for d in dec
                     if p.kv_dtype != d.kv_dtype or (lim.pairing_restricted and lim.pair_forbidden(p.gpu, p.tp, d.gpu, d.tp)))


def _kv_bytes_ratio(catalog: Catalog, vp: VariantPerf) -> float:
    """bf16 KV bytes per token of the variant's model over the variant's (2 for an FP8 KV cache)."""
    return catalog.model(vp.model).kv_bytes_per_token / catalog.model(vp.model).with_precision("bf16", vp.kv_dtype).kv_bytes_per_token


def build_instance(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog,
                   objective: str = "cost", utilization: dict[str, float] | None = None,
                   arrivals: dict[tuple[str, str], ArrivalShape] | None = None,
                   pooled_cache: dict[tuple[str, str], list[tuple[Capacity, ArrivalShape]]] | None = None) -> Instance:
    """Variants, capacities and the ILP problem for `workload` on `fleet` (pure apart from the laws).

    `utilization` overrides the fleet's target utilization per pool id (verification tightens
    the pools a simulation found at fault). `arrivals` fixes the arrival shape of some (class,
    variant) pairs of bursty classes (`plan_workload` passes the split a solution realised)."""
    _validate(workload, fleet, catalog)
    if objective == "power":
        for g in fleet.gpus:
            if catalog.gpu(g).power_w is None:
                raise InputError(catalog.gpus_path, f"{g}.power_w", "objective 'power' needs the board power of every GPU type in the fleet")
    lim = fleet.limits
    inst = Instance(workload=workload, fleet=fleet)
    inst.price_per_hour = {g: inv.price_per_hour or catalog.gpu(g).price_per_hour for g, inv in fleet.gpus.items()}
    inst.power_known = all(catalog.gpu(g).power_w is not None for g in fleet.gpus)
    current = {Variant.parse(k).id: v for k, v in fleet.current.items()}

    for model in workload.models:
        classes = [c for c in workload.classes if c.model == model]
        too_wide: list[str] = []
        too_big: list[str] = []
        for gpu, inv in fleet.gpus.items():
            gpn = catalog.gpu(gpu).gpus_per_node
            # TP sizes x the weight and KV precisions the operator allows (limits.allowed_dtypes; default bf16 only)
            for tp, wd, kd in ((t, w, k) for t in lim.allowed_tp for w in lim.allowed_dtypes for k in lim.allowed_dtypes):
                if tp > gpn:  # tensor parallelism stays inside one node's NVLink domain
                    too_wide.append(f"{gpu} (tp{tp} > {gpn} GPUs per node)")
                    continue
                vp = perf.get(model, gpu, tp, wd, kd)
                if vp is None:  # weights do not fit at this tp
                    too_big.append(f"{gpu} tp{tp}")
                    continue
                for role in lim.roles:
                    v = Variant(model=model, role=role, gpu=gpu, tp=tp, weight_dtype=wd, kv_dtype=kd)
                    inst.variants[v.id] = v
                    inst.perf[v.id] = vp
                    # the model's classes share the variant's pool (capacity.pool_class_capacities)
                    loads = [ClassLoad(c.isl, c.osl, workload.slo_of(c).percentile, workload.slo_of(c).ttft_ms,
                                       workload.slo_of(c).itl_ms, c.burstiness, c.rate_rps) for c in classes]
                    pooled = (pooled_cache or {}).get((model, v.id))
                    if pooled is None:
                        with quiet_extrapolation():
                            pooled = pool_class_capacities(vp, role, loads)
                        if pooled_cache is not None:
                            pooled_cache[(model, v.id)] = pooled
                    for c, ld, (cap, shape) in zip(classes, loads, pooled):
                        fixed = (arrivals or {}).get((c.id, v.id))
                        if fixed is not None:
                            with quiet_extrapolation():
                                cap = capacity(vp, role, c.isl, c.osl, ld.percentile, ld.ttft_ms, ld.itl_ms, fixed)
                            shape = fixed
                        inst.caps[(c.id, v.id)], inst.arrivals[(c.id, v.id)] = cap, shape
        if not any(v.model == model for v in inst.variants.values()):
            inst.no_fit[model] = _no_fit_reason(model, fleet, catalog, too_wide, too_big)

    specs: list[VariantSpec] = []
    for vid, v in inst.variants.items():
        if not any(inst.caps[(c.id, vid)].rate_rps > 0 for c in workload.classes if c.model == v.model) and not current.get(vid):
            continue  # serves nothing under SLO: not a candidate (kept in caps for the diagnosis)
        if fleet.gpus[v.gpu].available < v.tp and not current.get(vid):
            continue  # not even one replica fits the inventory
        specs.append(VariantSpec(
            id=vid, group=v.model, side=v.role, resource=v.gpu, units=v.tp,
            cost=v.tp * inst.price_per_hour[v.gpu],
            power_w=v.tp * (catalog.gpu(v.gpu).power_w or 0.0),
            utilization=(utilization or {}).get(vid, lim.utilization),
            max_replicas=lim.max_replicas_per_pool,
            current=current.get(vid, 0),
            # Classes state their KV bytes at bf16; a pool whose KV bytes per token are fewer (FP8 KV)
            # moves that many more requests over the same link, so its link counts in bf16 bytes.
            link_bytes_per_s=inst.perf[vid].kv_link_gb_s * 1e9 * _kv_bytes_ratio(catalog, inst.perf[vid]),
            pair_key=_pair_key(v, lim.pairing_by_tp),
        ))
    kept = {s.id for s in specs}
    inst.problem = Problem(
        classes=[ClassSpec(id=c.id, group=c.model, rate=c.rate_rps,
                           kv_bytes=c.isl * catalog.model(c.model).kv_bytes_per_token) for c in workload.classes],
        variants=specs,
        capacity={k: cap.rate_rps for k, cap in inst.caps.items() if k[1] in kept and cap.rate_rps > 0},
        inventory={g: inv.available for g, inv in fleet.gpus.items()},
        min_replicas_per_group={m: lim.min_replicas.get(m, lim.default_min_replicas) for m in workload.models},
        pd_ratio_bounds={m: (lim.pd_ratio_min, lim.pd_ratio_max) for m in workload.models
                         if lim.pd_ratio_min is not None or lim.pd_ratio_max is not None},
        max_step=lim.max_step if current else None,
        churn_cost=lim.churn_cost_per_replica if current else 0.0,
        objective=objective,  # type: ignore[arg-type]
        forbidden_pairs=_forbidden_pairs([inst.variants[s.id] for s in specs], fleet),
    )
    return inst


def _no_fit_reason(model: str, fleet: Fleet, catalog: Catalog, too_wide: list[str], too_big: list[str]) -> str:
    """Why model `model` has no variant on the fleet, with the advice that would give it one."""
    spec = catalog.model(model)
    weights_gib = spec.weight_bytes / 2**30
    tps = fleet.limits.allowed_tp
    if not too_big:  # every allowed TP is wider than a node
        widest = max(catalog.gpu(g).gpus_per_node for g in fleet.gpus)
        return (f"model {model}: every allowed TP size {tps} exceeds the GPUs per node of the fleet's GPU types "
                f"({', '.join(too_wide)}); tensor parallelism stays within one node: allow a TP size <= {widest}")
    wider = sorted({catalog.gpu(g).gpus_per_node for g in fleet.gpus} - set(tps))
    fits_wider = [f"{g} tp{catalog.gpu(g).gpus_per_node}" for g in fleet.gpus
                  if catalog.gpu(g).gpus_per_node > max(tps) and weights_gib < catalog.gpu(g).memory_gib * catalog.gpu(g).gpus_per_node]
    advice = (f"allow TP {fits_wider[0].split(' tp')[1]} ({', '.join(fits_wider)})" if fits_wider and wider
              else "add a GPU type with more memory per node")
    return (f"model {model}: its {weights_gib:,.0f} GiB of weights and KV cache do not fit on {', '.join(too_big)}; {advice}")


def _gpu_need(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog, backend: str,
              time_limit_s: float) -> dict[str, int] | None:
    """GPUs per type of the fewest-GPU plan when every GPU type of the fleet is unlimited; None when
    even that is infeasible (then inventory is not what binds)."""
    unlimited = {g: inv.model_copy(update={"available": _UNLIMITED_GPUS}) for g, inv in fleet.gpus.items()}
    inst = build_instance(workload, fleet.model_copy(update={"gpus": unlimited}), perf, catalog, "gpus")
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


def plan_workload(workload: Workload, fleet: Fleet, perf: PerfModel | None = None, catalog: Catalog | None = None,
                  backend: str = "highs", time_limit_s: float = 10.0, objective: str = "cost",
                  mip_gap: float = 1e-4, utilization: dict[str, float] | None = None) -> Plan:
    """The cheapest plan (or, with objective='max_load', the largest common load factor)."""
    catalog = catalog or Catalog.load()
    perf = perf or PerfModel.load(catalog=catalog)
    pooled: dict[tuple[str, str], list[tuple[Capacity, ArrivalShape]]] = {}  # the same every round
    base = build_instance(workload, fleet, perf, catalog, objective, utilization, None, pooled)
    inst, sol = base, _solve(base, backend, time_limit_s, mip_gap)
    # 1. Fixed point: each round assumes, for the pairs the last solution used, the split it realised
    #    where that is burstier than the shared pool's (`_burstier_splits` against the base caps);
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
    if not sol.ok and objective != "max_load":
        inst.gpu_need = _gpu_need(workload, fleet, perf, catalog, backend, time_limit_s)
    return to_plan(inst, sol, perf)


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
    assumed, with that split's arrival shape (`realised_arrivals`).

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
    for (cid, vid), flow in sol.flow.items():
        pool_flow[vid] = pool_flow.get(vid, 0.0) + max(flow, 0.0)
    for (cid, vid), flow in sol.flow.items():
        c = next(x for x in inst.workload.classes if x.id == cid)
        if c.burstiness is None or flow <= 0 or c.rate_rps <= 0:
            continue
        slo = inst.workload.slo_of(c)
        share = min(1.0, pool_flow[vid] / model_rate[c.model])
        shape = realised_arrivals(c.burstiness, c.rate_rps, c.isl, slo.ttft_ms, share, sol.replicas.get(vid, 1))
        v = inst.variants[vid]
        with quiet_extrapolation():
            cap = capacity(inst.perf[vid], v.role, c.isl, c.osl, slo.percentile, slo.ttft_ms, slo.itl_ms, shape)
        # the realised split waits longer; 1% spares the solver's degenerate flows (a split that moves
        # by a hair between solves) and is far below the model's error (bench/fidelity.py)
        if cap.rate_rps < inst.caps[(cid, vid)].rate_rps * (1.0 - _SPLIT_RTOL):
            out[(cid, vid)] = shape
    return out


def slo_costs(workload: Workload, fleet: Fleet, perf: PerfModel, catalog: Catalog, factor: float = 1.25,
              backend: str = "highs", time_limit_s: float = 10.0) -> list[SloCost]:
    """What each model's TTFT and ITL bound costs: re-solve with it divided and multiplied by `factor`.

    Class-level SLO overrides are left as they are; the model's default SLO is what moves.
    """
    out: list[SloCost] = []
    for model, entry in workload.models.items():
        for metric in SloMetric:
            bound = getattr(entry.slo, metric.key)
            if bound is None:
                continue
            costs: dict[str, float | None] = {}
            for side, b in (("tighter", bound / factor), ("looser", bound * factor)):
                slo = entry.slo.model_copy(update={metric.key: b})
                models = {**workload.models, model: entry.model_copy(update={"slo": slo})}
                plan = plan_workload(workload.model_copy(update={"models": models}), fleet, perf, catalog,
                                     backend=backend, time_limit_s=time_limit_s)
                costs[side] = plan.cost_per_hour if plan.feasible else None
            out.append(SloCost(model=model, metric=metric, percentile=entry.slo.percentile, bound_ms=bound,
                               tighter_ms=round(bound / factor, 2), tighter_cost_per_hour=costs["tighter"],
                               looser_ms=round(bound * factor, 2), looser_cost_per_hour=costs["looser"]))
    return out


# --------------------------------------------------------------------------- solution -> plan
def _extrapolation_notes(vp: VariantPerf, pool_id: str, c: RequestClass, role: str, batch: float) -> list[str]:
    """Where a planned operating point lies beyond the measured range of a measured law."""
    out = []
    if vp.source != "measured":
        return out
    if role != "decode" and vp.max_isl_measured and c.isl > vp.max_isl_measured * 1.05:
        out.append(f"{pool_id}: class {c.id} prompts ({c.isl} tokens) exceed the measured ISL ({vp.max_isl_measured}); prefill law extrapolated")
    if role != "prefill" and vp.max_decode_batch_measured and batch > vp.max_decode_batch_measured * 1.05:
        out.append(f"{pool_id}: planned decode batch {batch:.0f} exceeds the measured {vp.max_decode_batch_measured}; decode law extrapolated")
    if role != "prefill" and vp.max_context_measured and c.isl + c.osl > vp.max_context_measured * 1.05:
        out.append(f"{pool_id}: class {c.id} context ({c.isl + c.osl} tokens) exceeds the measured {vp.max_context_measured}; decode law extrapolated")
    return out


def _class_prediction(inst: Instance, c: RequestClass, pools: dict[str, PoolPlan],
                      flows: dict[str, float], rate_scale: float, notes: list[str]) -> ClassPrediction:
    """Worst predicted percentile over the pools the class is routed to, at their planned load."""
    slo = inst.workload.slo_of(c)
    ttft = itl = 0.0
    disagg = 0.0
    for vid, x in flows.items():
        v = inst.variants[vid]
        pool = pools[vid]
        cap = inst.caps[(c.id, vid)].rate_rps
        # The class alone at the pool's utilization: the load that consumes the same capacity share.
        eq_rate = pool.utilization * cap
        with quiet_extrapolation():
            lat = latency(inst.perf[vid], v.role, c.isl, c.osl, eq_rate, slo.percentile,
                          inst.arrivals.get((c.id, vid), POISSON))
        notes.extend(n for n in _extrapolation_notes(inst.perf[vid], vid, c, v.role, lat.batch) if n not in notes)
        if v.role in PREFILL_SIDE:
            ttft = max(ttft, lat.ttft_ms)
            pool.ttft_ms = round(max(pool.ttft_ms or 0.0, lat.ttft_ms), 2)
        if v.role in ("decode", "mixed"):
            itl = max(itl, lat.itl_ms)
            pool.itl_ms = round(max(pool.itl_ms or 0.0, lat.itl_ms), 3)
        if v.role == "prefill":
            disagg += x / max(c.rate_rps * rate_scale, 1e-12)
    return ClassPrediction(percentile=slo.percentile, ttft_ms=round(ttft, 2), itl_ms=round(itl, 3),
                           slo_ttft_ms=slo.ttft_ms, slo_itl_ms=slo.itl_ms, disaggregated_share=round(min(disagg, 1.0), 4))


def to_plan(inst: Instance, sol: Solution, perf: PerfModel | None = None) -> Plan:
    """Turn a solver solution into the plan file's record (routing, predictions, costs, binding)."""
    assert inst.problem is not None
    info = SolverInfo(backend=sol.backend, status=sol.status, objective=sol.objective, bound=sol.bound,
                      gap=sol.gap, seconds=round(sol.seconds, 4), objective_unit=_OBJECTIVE_UNIT.get(inst.problem.objective))
    if not sol.ok:
        return Plan(feasible=False, solver=info, diagnosis=explain_infeasible(inst), notes=[sol.message] if sol.message else [])

    scale = sol.load_multiplier if inst.problem.objective == "max_load" and sol.load_multiplier else 1.0
    flows_by_class: dict[str, dict[str, float]] = defaultdict(dict)
    load: dict[str, float] = defaultdict(float)
    for (cid, vid), x in sol.flow.items():
        if x > _FLOW_EPS_RPS:
            flows_by_class[cid][vid] = x
            load[vid] += x / inst.problem.capacity[(cid, vid)]

    plan = Plan(solver=info, load_multiplier=sol.load_multiplier if inst.problem.objective == "max_load" else None)
    pools: dict[str, PoolPlan] = {}
    for vid, n in sorted(sol.replicas.items()):
        if n <= 0:
            continue
        v = inst.variants[vid]
        pools[vid] = PoolPlan(
            id=vid, role=v.role, gpu=v.gpu, tp=v.tp, replicas=n, gpus=n * v.tp,
            cost_per_hour=round(n * v.tp * inst.price_per_hour[v.gpu], 4),
            utilization=round(load[vid] / n, 4),
            source=inst.perf[vid].source,
            weight_dtype=v.weight_dtype, kv_dtype=v.kv_dtype, law_source=inst.perf[vid].law_source,
        )
        plan.gpus[v.gpu] = plan.gpus.get(v.gpu, 0) + n * v.tp
    plan.cost_per_hour = round(sum(p.cost_per_hour for p in pools.values()), 4)
    watts = {s.id: s.power_w for s in inst.problem.variants}
    plan.power_kw = round(sum(watts[vid] * p.replicas for vid, p in pools.items()) / 1e3, 3) if inst.power_known else None

    for model in inst.workload.models:
        mpools = [p for vid, p in pools.items() if inst.variants[vid].model == model]
        routing: dict[str, dict[str, float]] = {}
        predicted: dict[str, ClassPrediction] = {}
        pairing: dict[str, dict[str, dict[str, float]]] = {}
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
            predicted[c.id] = _class_prediction(inst, c, pools, flows, scale, plan.notes)
        p_gpus = sum(p.gpus for p in mpools if p.role == "prefill")
        d_gpus = sum(p.gpus for p in mpools if p.role == "decode")
        plan.models[model] = ModelPlan(
            pd_ratio=round(p_gpus / d_gpus, 4) if d_gpus and p_gpus else None,
            pools=mpools, routing=routing, predicted=predicted, pairing=pairing,
        )
    plan.binding = [describe_binding(inst, b) for b in sol.binding]
    return plan


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


def describe_binding(inst: Instance, name: Binding) -> str:
    """A binding constraint in words (inventory[H100] -> 'GPU inventory: all 8 H100 GPUs are used')."""
    kind, target = name.family, name.target
    if kind == Family.INVENTORY:
        return f"GPU inventory: all {inst.fleet.gpus[target].available} {target} GPUs are used" if target in inst.fleet.gpus else str(name)
    if kind == Family.KV_LINK:
        return f"KV-transfer link bandwidth of pool {target} is saturated"
    if kind == Family.PD_RATIO:
        return f"P:D ratio bound of model {target}"
    if kind == Family.STEP:
        return f"step limit (max_step={inst.fleet.limits.max_step}) on pool {target}"
    if kind == Family.MIN_REPLICAS:
        return f"minimum replicas of model {target}"
    if kind == Family.CAPACITY:
        return f"pool {target} is at its utilization target ({inst.fleet.limits.utilization:g})"
    return str(name)


def _shortfall_lines(inst: Instance, need: dict[str, int]) -> list[str]:
    """'G needs K more GPUs' per GPU type, from the fewest-GPU plan with unlimited inventory."""
    have = {g: inv.available for g, inv in inst.fleet.gpus.items()}
    plan_txt = ", ".join(f"{n} x {g}" for g, n in sorted(need.items()) if n > 0)
    return [f"GPU inventory binds: {g} needs {n - have.get(g, 0)} more GPUs ({have.get(g, 0)} available; the fewest-GPU "
            f"plan that serves the workload within SLO uses {sum(need.values())} GPUs: {plan_txt}); add them or relax the SLOs or rates"
            for g, n in sorted(need.items()) if n > have.get(g, 0)] or [
        f"GPU inventory binds: the fewest-GPU plan within SLO uses {plan_txt}, yet the limits (min_replicas, max_step, "
        "pd_ratio) keep it out of reach with the available GPUs; relax them or add GPUs"]


def explain_infeasible(inst: Instance) -> list[str]:
    """Which SLO, class or inventory binds, and what would make the instance feasible, in words."""
    assert inst.problem is not None
    out: list[str] = []
    wl = inst.workload
    for c in wl.classes:
        slo = wl.slo_of(c)
        caps = {vid: cap for (cid, vid), cap in inst.caps.items() if cid == c.id}
        for side, roles in (("prefill", ("prefill", "mixed")), ("decode", ("decode", "mixed"))):
            side_caps = {vid: cap for vid, cap in caps.items() if inst.variants[vid].role in roles}
            if c.rate_rps <= 0 or any(cap.rate_rps > 0 for cap in side_caps.values()):
                continue
            if not side_caps:
                if c.model in inst.no_fit:
                    if inst.no_fit[c.model] not in out:
                        out.append(inst.no_fit[c.model])
                else:
                    out.append(f"class {c.id}: no {side}-side pool is allowed for model {c.model} "
                               f"(limits.roles {inst.fleet.limits.roles}); allow mixed, or both prefill and decode")
                continue
            if side == "prefill":
                vid, cap = min(side_caps.items(), key=lambda kv: kv[1].best_ttft_ms)
                v = inst.variants[vid]
                out.append(f"TTFT p{slo.percentile:g} {slo.ttft_ms:g} ms for class {c.id} is out of reach on every GPU; "
                           f"the best is {cap.best_ttft_ms:.0f} ms on {v.gpu} tp{v.tp} ({v.role}): "
                           f"relax the TTFT SLO to >= {math.ceil(cap.best_ttft_ms * 1.05)} ms or add a faster GPU type")
            else:
                vid, cap = min(side_caps.items(), key=lambda kv: kv[1].best_itl_ms)
                v = inst.variants[vid]
                out.append(f"ITL p{slo.percentile:g} {slo.itl_ms:g} ms for class {c.id} is out of reach on every GPU; "
                           f"the best is {cap.best_itl_ms:.1f} ms on {v.gpu} tp{v.tp} ({v.role}): "
                           f"relax the ITL SLO to >= {math.ceil(cap.best_itl_ms * 1.05)} ms or add a faster GPU type")
    if out:
        return out
    if inst.gpu_need is not None:
        return _shortfall_lines(inst, inst.gpu_need)
    if not inst.problem.variants:
        return ["no candidate pool: no variant of the workload's models can run on the fleet's available GPUs"]
    for r in diagnose(inst.problem):
        if r.kind == Family.INVENTORY:
            have = inst.fleet.gpus[r.target].available if r.target in inst.fleet.gpus else 0
            out.append(f"GPU inventory binds: {r.target} needs {math.ceil(r.amount)} more GPUs "
                       f"({have} available); add them or relax the SLOs")
        elif r.kind == Family.UNSERVED:
            out.append(f"class {r.target}: {r.amount:.3g} req/s cannot be served within SLO by any fleet the limits allow")
        elif r.kind == Family.NO_VARIANT:
            out.append(f"class {r.target}: no {r.detail} variant can serve it within SLO")
        elif r.kind == Family.NO_PAIRING:
            out.append(f"class {r.target}: its prefill meets the SLO only on {', '.join(r.prefill_keys)} and its decode only on "
                       f"{', '.join(r.decode_keys)}, and the fleet forbids every such pairing "
                       f"(limits.pairing={inst.fleet.limits.pairing}, {len(inst.fleet.limits.forbid_pairs)} forbid_pairs rules); "
                       f"allow one of these pairings, allow mixed pools, or relax the SLO")
        elif r.kind == Family.MIN_REPLICAS:
            out.append(f"minimum replicas of model {r.target} ({r.detail} side) do not fit: "
                       f"lower min_replicas by {math.ceil(r.amount)} or add GPUs")
        elif r.kind == Family.PD_RATIO:
            out.append(f"the P:D ratio bound ({r.detail}) of model {r.target} is off by {r.amount:.3g} GPUs: relax pd_ratio_{r.detail}")
        elif r.kind == Family.STEP:
            out.append(f"pool {r.target} must move {math.ceil(r.amount)} replicas {r.detail} beyond max_step "
                       f"({inst.fleet.limits.max_step}): raise max_step or re-plan over several intervals")
        else:
            out.append(f"{r.kind} {r.target}: relax by {r.amount:.3g} {r.unit}".strip())
    return out or ["the solver found no feasible plan; no single relaxation explains it"]
