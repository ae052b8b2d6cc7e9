"""The planning instance: candidate variants of a workload on a fleet, their laws, their capacities
under SLO per request class, and the ILP `Problem` over them (pure apart from the laws).

Variants are model x role x GPU type x tp (x precision) allowed by the fleet's limits and that fit
in memory; `build_instance` computes every (class, variant) capacity, for the replica routing the
fleet's `limits.routing` names (least-loaded pools the prefill wait, random does not:
planner/planning/capacity.py, Pool of replicas), and the problem a backend solves
(planner/planning/assemble.py turns the solution into a plan).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from planner.io.catalog import Catalog
from planner.io.errors import InputError
from planner.io.schema import Fleet, Variant, Workload, parse_selector
from planner.perf.kernel_tables import moe_kernel_tuning
from planner.perf.laws import PerfModel, VariantPerf, model_of, quiet_extrapolation, run_blocker
from planner.planning.capacity import ArrivalShape, Capacity, ClassLoad, capacity, pool_class_capacities
from solvers.problem import ClassSpec, Problem, VariantSpec


def gpu_prices(fleet: Fleet, catalog: Catalog) -> dict[str, float]:
    """USD per GPU-hour of each of the fleet's GPU types: its `price_per_hour` where the fleet sets one, else the
    catalog's. What plans are costed with; the controller costs the replicas it applies with the same prices."""
    return {g: inv.price_per_hour or catalog.gpu(g).price_per_hour for g, inv in fleet.gpus.items()}


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
    pool_min: dict[str, int] = field(default_factory=dict)
    """Per variant: the pool size its classes' shared capacities assume (bursty classes, Poisson prefill pools;
    0 or 1: none; solvers' min_when_used)."""
    price_per_hour: dict[str, float] = field(default_factory=dict)
    """Per GPU type, after fleet overrides."""
    power_known: bool = True
    """Whether the catalog gives the board power of every GPU type of the fleet (else no power_kw)."""
    problem: Problem | None = None
    no_fit: dict[str, str] = field(default_factory=dict)
    """Per model without any variant: why none (TP beyond a node, or weights beyond memory), in words."""
    moe_models: frozenset[str] = frozenset()
    """The workload's mixture-of-experts models (the plan's notes on laws from the prior tell them apart)."""
    profiled_gpus: frozenset[str] = frozenset()
    """GPU types with a measured profile of some model (the prior on any other type is extrapolated further)."""
    torch_unused: frozenset[str] = frozenset()
    """Variant ids planned from the prior although a torch-reference profile of them exists (the loader's rule,
    planner.perf.laws.PerfModel.from_profiles): the plan's notes say so."""
    unphysical: dict[str, str] = field(default_factory=dict)
    """Variant id -> why its measured profile is not used (faster than the roofline allows: planner.perf.floor, rule
    V1); the variant is planned from the prior and the plan's notes say so."""
    untuned_moe: dict[str, str] = field(default_factory=dict)
    """Variant id -> the fused-MoE table vLLM 0.26.0 would look up and does not ship, for MoE variants planned from the
    prior (planner.perf.kernel_tables, rule V3): the engine runs default tiles there and the prior, which describes tuned
    kernels, is likely optimistic; the plan's notes say so."""
    gpu_need: dict[str, int] | None = None
    """When infeasible only for want of GPUs: GPUs per type of the fewest-GPU plan with unlimited inventory."""
    gpu_added: dict[str, int] | None = None
    """When infeasible only for want of GPUs: the fewest GPUs to add per type with the fleet's own in use, each the
    smallest count the planner finds feasible (planner.planning.assemble._gpu_shortfall); None when not found."""
    slo_within_fleet: tuple[str, str, float] | None = None
    """When one model's TTFT or ITL bound is beyond every GPU: (model, 'ttft' | 'itl', the least bound in ms with which
    the fleet plans), found by bisection (planner.planning.assemble._slo_within_fleet); None when not sought or found."""
    gpu_need_floor1: dict[str, int] | None = None
    """The same with every min-replica limit above 1 lowered to 1 and no pool floor (only when the fleet sets a limit
    above 1 or a pool floor): the diagnosis tells how many of the needed GPUs the operator's replica floors hold."""


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
    inst = Instance(workload=workload, fleet=fleet,
                    moe_models=frozenset(m for m in workload.models if catalog.model(m).moe is not None),
                    profiled_gpus=perf.profiled_gpus)
    inst.price_per_hour = gpu_prices(fleet, catalog)
    inst.power_known = all(catalog.gpu(g).power_w is not None for g in fleet.gpus)
    current = {Variant.parse(k).id: v for k, v in fleet.current.items()}
    # per-pool floors (limits.pool_min_replicas; the controller's guard.min_replicas) on the workload's models: the ILP's
    # pool_floor rows hold them, so the plan keeps them within the inventory (a floor applied after the plan, by the
    # controller's guard alone, took 10 H100s in a fleet of 8)
    floors = {Variant.parse(k).id: n for k, n in lim.pool_min_replicas.items()
              if n > 0 and Variant.parse(k).model in workload.models}

    for model in workload.models:
        classes = [c for c in workload.classes if c.model == model]
        too_wide: list[str] = []
        split: list[str] = []
        too_big: list[str] = []
        for gpu in fleet.gpus:
            gpn = catalog.gpu(gpu).gpus_per_node
            # TP sizes x the weight and KV precisions the operator allows (limits.allowed_dtypes; default bf16 only)
            for tp, wd, kd in ((t, w, k) for t in lim.allowed_tp for w in lim.allowed_dtypes for k in lim.allowed_dtypes):
                if tp > gpn:  # tensor parallelism stays inside one node's NVLink domain
                    too_wide.append(f"{gpu} (tp{tp} > {gpn} GPUs per node)")
                    continue
                vp = perf.get(model, gpu, tp, wd, kd)
                if vp is None:  # a TP that does not divide the attention heads, or weights beyond memory
                    blocker = run_blocker(model_of(catalog, model, wd, kd), catalog.gpu(gpu), tp)
                    (split if blocker == "heads" else too_big).append(f"{gpu} tp{tp}")
                    continue
                for role in lim.roles:
                    v = Variant(model=model, role=role, gpu=gpu, tp=tp, weight_dtype=wd, kv_dtype=kd)
                    inst.variants[v.id] = v
                    inst.perf[v.id] = vp
                    if vp.source == "prior" and "measured-torch" in perf.alternatives.get((model, gpu, tp, wd, kd), []):
                        inst.torch_unused |= {v.id}
                    if vp.source == "prior" and (model, gpu, tp, wd, kd) in perf.unphysical:
                        inst.unphysical[v.id] = perf.unphysical[(model, gpu, tp, wd, kd)]
                    if vp.source == "prior" and model in inst.moe_models:
                        tuning = moe_kernel_tuning(catalog.model(model), catalog.gpu(gpu), tp, wd)
                        if tuning.tuned is False and tuning.table is not None:
                            inst.untuned_moe[v.id] = tuning.table
                    # the model's classes share the variant's pool (capacity.pool_class_capacities)
                    loads = [ClassLoad(c.isl, c.osl, workload.slo_of(c).percentile, workload.slo_of(c).ttft_ms,
                                       workload.slo_of(c).itl_ms, c.burstiness, c.rate_rps, c.isl_scv or 0.0,
                                       c.isl_max, c.osl_scv or 0.0) for c in classes]
                    pooled = (pooled_cache or {}).get((model, v.id))
                    if pooled is None:
                        with quiet_extrapolation():
                            # the largest pool this variant may have: the fleet's limit and the GPUs it holds
                            most = fleet.gpus[gpu].available // tp
                            if lim.max_replicas_per_pool is not None:
                                most = min(most, lim.max_replicas_per_pool)
                            pooled = pool_class_capacities(vp, role, loads, most, lim.routing, lim.decode_kv_pooling)
                        if pooled_cache is not None:
                            pooled_cache[(model, v.id)] = pooled
                    # the pool size the shared capacities assume (0 or >= it in the ILP: VariantSpec.min_when_used)
                    # (bursty classes, and Poisson prefill pools whose waits are the pool's behind least-loaded routing:
                    # capacity.pool_class_capacities; under random routing a Poisson pool assumes none)
                    inst.pool_min[v.id] = max([sh.replicas for c, (cp, sh) in zip(classes, pooled, strict=True)
                                               if c.rate_rps > 0 and cp.rate_rps > 0], default=0)
                    for c, ld, (cap, shape) in zip(classes, loads, pooled, strict=True):
                        fixed = (arrivals or {}).get((c.id, v.id))
                        if fixed is not None:
                            with quiet_extrapolation():
                                cap = capacity(vp, role, c.isl, c.osl, ld.percentile, ld.ttft_ms, ld.itl_ms, fixed)
                            shape = fixed
                        inst.caps[(c.id, v.id)], inst.arrivals[(c.id, v.id)] = cap, shape
        if not any(v.model == model for v in inst.variants.values()):
            inst.no_fit[model] = _no_fit_reason(model, fleet, catalog, perf, too_wide, split, too_big)

    specs: list[VariantSpec] = []
    for vid, v in inst.variants.items():
        held = current.get(vid) or floors.get(vid)  # a pool that runs now or has a floor stays a candidate
        if not any(inst.caps[(c.id, vid)].rate_rps > 0 for c in workload.classes if c.model == v.model) and not held:
            continue  # serves nothing under SLO: not a candidate (kept in caps for the diagnosis)
        if fleet.gpus[v.gpu].available < v.tp and not held:
            continue  # not even one replica fits the inventory
        specs.append(VariantSpec(
            id=vid, group=v.model, side=v.role, resource=v.gpu, units=v.tp,
            cost=v.tp * inst.price_per_hour[v.gpu],
            power_w=v.tp * (catalog.gpu(v.gpu).power_w or 0.0),
            utilization=(utilization or {}).get(vid, lim.utilization),
            min_replicas=floors.get(vid, 0),
            max_replicas=lim.max_replicas_per_pool,
            current=current.get(vid, 0),
            # Classes state their KV bytes at bf16; a pool whose KV bytes per token are fewer (FP8 KV)
            # moves that many more requests over the same link, so its link counts in bf16 bytes.
            link_bytes_per_s=inst.perf[vid].kv_link_gb_s * 1e9 * _kv_bytes_ratio(catalog, inst.perf[vid]),
            pair_key=_pair_key(v, lim.pairing_by_tp),
            min_when_used=inst.pool_min.get(vid, 0),
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


def _no_fit_reason(model: str, fleet: Fleet, catalog: Catalog, perf: PerfModel,
                   too_wide: list[str], split: list[str], too_big: list[str]) -> str:
    """Why model `model` has no variant on the fleet, with the advice that would give it one.

    Three reasons, each named with the (GPU, TP) pairs it rules out: TP wider than a node (tensor parallelism stays
    in one NVLink domain), a TP size that does not divide the model's attention heads (vLLM splits the heads over the
    ranks and refuses such a TP), weights and KV cache beyond the GPUs' memory. The advice is the smallest TP size,
    per GPU type of the fleet, at which the model runs (any allowed precision), else a GPU type with more memory."""
    spec = catalog.model(model)
    why: list[str] = []
    if too_wide:
        why.append(f"TP beyond a node's GPUs on {', '.join(too_wide)}")
    if split:
        why.append(f"{spec.heads} attention heads do not split evenly over {', '.join(split)}")
    if too_big:
        # the weights at the narrowest precision the fleet allows (an fp8-only fleet was told bf16's 128 GiB of
        # llama-2-70b, twice what it would load); weights alone, the KV cache needing room beside them (run_blocker)
        weights, dtype = min((model_of(catalog, model, wd, wd).weight_bytes, wd) for wd in fleet.limits.allowed_dtypes)
        why.append(f"its {weights / 2**30:,.0f} GiB of {dtype} weights leave no room for a KV cache on {', '.join(too_big)}")
    runs: list[tuple[int, str]] = []
    for g in fleet.gpus:
        gpn = catalog.gpu(g).gpus_per_node
        smallest = next((t for t in range(1, gpn + 1) if any(
            perf.get(model, g, t, wd, kd) is not None for wd in fleet.limits.allowed_dtypes for kd in fleet.limits.allowed_dtypes)), None)
        if smallest is not None:
            runs.append((smallest, f"{g} tp{smallest}"))
    advice = (f"allow TP {min(runs)[0]} ({', '.join(name for _, name in sorted(runs))})" if runs
              else "add a GPU type with more memory per node")
    return f"model {model}: no allowed TP size runs it ({'; '.join(why)}); {advice}"
