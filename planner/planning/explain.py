"""Plans and infeasible instances in English: binding constraints, diagnoses, what each class sees.

`explain(plan)` is `planner explain`'s text; `explain_infeasible(inst)` is an infeasible plan's
`diagnosis` (which SLO, class or inventory binds and what would make the instance feasible);
`describe_binding` words one binding constraint of the ILP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from planner.io.schema import FleetLimits, Plan, Variant
from planner.words import plural
from solvers.constraints import Binding, Family
from solvers.diagnose import diagnose

if TYPE_CHECKING:
    from planner.planning.instance import Instance


def _over(pred: float | None, bound: float) -> str:
    """What follows a predicted term over its SLO bound (found in QA: a feasible, verified plan read 'class q/chat:
    TTFT p90 466/300 ms' with nothing beside it, the why only in a note further down)."""
    return " OVER SLO (see the notes)" if pred is not None and pred > bound else ""


def explain(plan: Plan) -> list[str]:
    """The plan in sentences: what binds, what each class is predicted to see against its SLO."""
    lines: list[str] = []
    if not plan.feasible:
        # a solver out of time proved nothing (planner/solvedplan.py, timed_out)
        timed_out = plan.solver.status == "time_limit"
        lines.append("No plan within the solver's time limit:" if timed_out else "The plan is INFEASIBLE:")
        lines += [f"  - {d}" for d in plan.diagnosis]
        return lines
    s = plan.solver
    gap = f", gap {s.gap * 100:.2f}%" if s.gap is not None else ""
    n_gpus = sum(plan.gpus.values())
    lines.append(f"Cost ${plan.cost_per_hour:,.2f}/h on {n_gpus} GPU{'' if n_gpus == 1 else 's'} "
                 # a type the plan holds none of is not listed (found by a helper at stop 57: '0 H200-141GB')
                 f"({', '.join(f'{n} {g}' for g, n in sorted(plan.gpus.items()) if n > 0)}); solver {s.backend} "
                 f"{s.status}{gap} in {s.seconds:.2f}s.")
    if plan.load_multiplier is not None:
        lines.append(f"This fleet serves {plan.load_multiplier:.2f}x the workload within SLO.")
    lines.append("Binding constraints:" if plan.binding else "No constraint binds besides the SLO capacities themselves.")
    lines += [f"  - {b}" for b in plan.binding]
    for model, mp in plan.models.items():
        pd = f"P:D = {mp.pd_ratio:.2f} (GPUs)" if mp.pd_ratio else "no disaggregated pools"
        lines.append(f"Model {model}: {pd}")
        for p in mp.pools:
            lines.append(f"  pool {p.id}: {p.replicas} x tp{p.tp} = {plural(p.gpus, 'GPU')}, ${p.cost_per_hour:,.2f}/h, "
                         f"utilization {p.utilization:.0%} of SLO capacity ({p.law_source or p.source} laws"
                         + (", fit " + " / ".join(f"{ph} {e:.0%}" for ph, e in p.law_fit_err.items()) if p.law_fit_err else "")
                         + (f"; weights {p.weight_dtype}, KV cache {p.kv_dtype})" if (p.weight_dtype, p.kv_dtype) != ("bf16", "bf16") else ")"))
        for cid, pr in mp.predicted.items():
            if pr.ttft_ms is None and pr.itl_ms is None:  # routed to no pool: no latency to set against its SLO
                lines.append(f"  class {cid}: routed to no pool (no traffic planned for it), nothing predicted")
                continue
            terms = []
            if pr.slo_ttft_ms is not None:
                terms.append(f"TTFT p{pr.percentile:g} {pr.ttft_ms:.0f}/{pr.slo_ttft_ms:g} ms{_over(pr.ttft_ms, pr.slo_ttft_ms)}")
            if pr.slo_itl_ms is not None:
                terms.append(f"ITL p{pr.percentile:g} {pr.itl_ms:.1f}/{pr.slo_itl_ms:g} ms{_over(pr.itl_ms, pr.slo_itl_ms)}")
            load = (f"; planned for {pr.rate_rps:g} req/s of {pr.isl:g} -> {pr.osl:g} tokens"
                    if pr.rate_rps is not None and pr.isl is not None and pr.osl is not None else "")
            lines.append(f"  class {cid}: {', '.join(terms)}; {pr.disaggregated_share:.0%} disaggregated{load}")
            for pid, weights in mp.pairing.get(cid, {}).items():
                lines.append(f"    KV from {pid} -> " + ", ".join(f"{d} {w:.0%}" for d, w in sorted(weights.items())))
    if plan.slo_costs:
        lines.append("What each SLO costs (re-solved with the bound tightened / loosened):")
        for sc in plan.slo_costs:
            def fmt(c: float | None) -> str:
                if c is None:
                    return "infeasible"
                d = c - plan.cost_per_hour
                return f"${c:,.2f}/h ({'+' if d >= 0 else '-'}${abs(d):,.2f})"
            who = sc.model if sc.class_id is None else f"class {sc.class_id} ({sc.model})"
            lines.append(f"  {who} {sc.metric.upper()} p{sc.percentile:g} {sc.bound_ms:g} ms: "
                         f"at {sc.tighter_ms:g} ms {fmt(sc.tighter_cost_per_hour)}; at {sc.looser_ms:g} ms {fmt(sc.looser_cost_per_hour)}")
    lines += [f"Note: {n}" for n in plan.notes]
    return lines


def describe_binding(inst: Instance, name: Binding) -> str:
    """A binding constraint in words, with the fields of the fleet or workload an operator could change to relax it
    (inventory[H100] -> 'GPU inventory: all 8 H100 GPUs are used. To relax it, raise gpus.H100.available ...'), as
    explain_infeasible's diagnoses name theirs (found in QA: the lines named no action). Nothing is re-solved: what the
    change would save is `planner whatif`'s. No '; ' inside a line: `planner whatif` joins and splits them on it."""
    kind, target = name.family, name.target
    model = inst.variants[target].model if target in inst.variants else None
    slo = (f"relax the SLOs (models.{model}.slo, or a class's own slo) or rates" if model is not None
           else "relax the SLOs or rates")
    if kind == Family.INVENTORY:
        if target not in inst.fleet.gpus:
            return str(name)
        return (f"GPU inventory: all {plural(inst.fleet.gpus[target].available, f'{target} GPU')} are used. To relax it, "
                f"raise gpus.{target}.available, allow another GPU type (gpus) or relax the SLOs or rates")
    if kind == Family.KV_LINK:
        return (f"KV-transfer link bandwidth of pool {target} is saturated. To relax it, allow mixed pools (limits.roles "
                f"{inst.fleet.limits.roles}), other pairings (limits.pairing, limits.forbid_pairs) or a GPU type of a "
                "faster kv_link_gb_s (gpus)")
    if kind == Family.PD_RATIO:
        return f"P:D ratio bound of model {target}. To relax it, widen limits.pd_ratio_min / limits.pd_ratio_max"
    if kind == Family.STEP:
        return (f"step limit (max_step={inst.fleet.limits.max_step}) on pool {target}. To relax it, raise "
                "limits.max_step, or let the pool move over several re-plans")
    if kind == Family.MIN_REPLICAS:
        return (f"minimum replicas of model {target}. To relax it, lower limits.min_replicas.{target} (else "
                "limits.default_min_replicas)")
    if kind == Family.POOL_FLOOR:
        floor = next((s.min_replicas for s in inst.problem.variants if s.id == target), 0) if inst.problem else 0
        return (f"pool {target} is held at its floor of {plural(floor, 'replica')} (limits.pool_min_replicas). To relax "
                f"it, lower limits.pool_min_replicas.{target} (the controller's guard.min_replicas)")
    if kind == Family.CAPACITY:
        return (f"pool {target} is at its utilization target ({inst.fleet.limits.utilization:g}). To relax it, raise "
                f"limits.utilization (less headroom) or {slo}")
    if kind == Family.POOL_SIZE:
        k = inst.pool_min.get(target, 0)
        bursty = any(c.burstiness is not None for c in inst.workload.classes if c.model == inst.variants[target].model)
        if bursty:
            return (f"pool {target} holds {plural(k, 'replica')}, the fewest over which its classes' bursts spread within SLO (with "
                    "fewer, each replica takes a larger share of every burst and falls short): its utilization reads low "
                    f"for that reason. To relax it, {slo}")
        return (f"pool {target} holds {plural(k, 'replica')}, the fewest whose shared queue carries its load within SLO. "
                f"To relax it, {slo}")
    return str(name)


def _floors_text(inst: Instance) -> str:
    """The pool floors the plan holds, e.g. 'm/decode/H100/tp1 >= 3 (3 H100 GPUs)'."""
    parts = []
    for pool, n in sorted(inst.fleet.limits.pool_min_replicas.items()):
        v = Variant.parse(pool)
        if n > 0 and v.model in inst.workload.models:
            parts.append(f"{pool} >= {n} ({plural(n * v.tp, f'{v.gpu} GPU')})")
    return ", ".join(parts)


def _floors_beyond_inventory(inst: Instance) -> list[str]:
    """Per GPU type whose pool floors alone (limits.pool_min_replicas, the controller's guard.min_replicas) hold more
    GPUs than the plan may use: the floors and the numbers; no plan can keep them."""
    held: dict[str, int] = {}
    for pool, n in inst.fleet.limits.pool_min_replicas.items():
        v = Variant.parse(pool)
        if v.model in inst.workload.models:
            held[v.gpu] = held.get(v.gpu, 0) + n * v.tp
    have = {g: inv.available for g, inv in inst.fleet.gpus.items()}
    return [f"the pool floors hold {plural(n, f'{g} GPU')} and {have.get(g, 0)} are available: {_floors_text(inst)} "
            "(limits.pool_min_replicas / the controller's guard.min_replicas); lower them or add GPUs"
            for g, n in sorted(held.items()) if n > have.get(g, 0)]


def _shortfall_lines(inst: Instance, need: dict[str, int]) -> list[str]:
    """'G needs K more GPUs' per GPU type: the fewest to add with the fleet's own GPUs in use (`Instance.gpu_added`),
    else what the fewest-GPU plan with unlimited inventory uses beyond them; when the fleet's min-replica limits hold
    part of that plan (`Instance.gpu_need_floor1`), how many GPUs they hold."""
    have = {g: inv.available for g, inv in inst.fleet.gpus.items()}
    plan_txt = ", ".join(f"{n:,} x {g}" for g, n in sorted(need.items()) if n > 0)  # 1,989 as plural() writes it
    free = inst.gpu_need_floor1
    held = sum(need.values()) - sum(free.values()) if free is not None else 0
    pools = inst.fleet.limits.pool_min_replicas
    lowered = ("with at most 1 replica per side and no pool floor" if pools else "with at most 1 replica per side")
    floors = (f"; {held} of them only for the fleet's min-replica limits (limits.min_replicas / default_min_replicas"
              + (f"; the pool floors {_floors_text(inst)}, limits.pool_min_replicas / the controller's "
                 "guard.min_replicas" if pools else "")
              + f": {lowered} the fewest-GPU plan uses {plural(sum(free.values()), 'GPU')})"
              if free is not None and held > 0 else "")
    relax = "lower the min-replica limits, add GPUs" if free is not None and held > 0 else "add them"
    util, util_default = inst.fleet.limits.utilization, FleetLimits.model_fields["utilization"].default
    if util < util_default:  # the operator lowered the headroom target: it multiplies every pool's replicas
        relax += f", raise limits.utilization ({util:g}, below the default {util_default:g})"
    added = inst.gpu_added
    if added:  # the fewest GPUs to add with the fleet's own in use, each count checked by the planner
        parts = (["the fleet's other GPUs"] if len(have) > 1 else []) + (["the other additions"] if len(added) > 1 else [])
        beside = f"with {' and '.join(parts)}, " if parts else ""
        return [f"GPU inventory binds: {g} needs {plural(k, 'more GPU')} ({have.get(g, 0)} available: {beside}"
                f"{have.get(g, 0) + k:,} serve the workload within SLO and {have.get(g, 0) + k - 1:,} do not; "
                f"the fewest-GPU plan with no inventory limit uses {plural(sum(need.values()), 'GPU')}: {plan_txt}{floors}); "
                f"{relax} or relax the SLOs or rates" for g, k in sorted(added.items())]
    return [f"GPU inventory binds: {g} needs {plural(n - have.get(g, 0), 'more GPU')} ({have.get(g, 0)} available; the fewest-GPU "
            f"plan that serves the workload within SLO uses {plural(sum(need.values()), 'GPU')}: {plan_txt}{floors}); "
            f"{relax} or relax the SLOs or rates"
            for g, n in sorted(need.items()) if n > have.get(g, 0)] or [
        f"GPU inventory binds: the fewest-GPU plan within SLO uses {plan_txt}, yet the limits (min_replicas, max_step, "
        "pd_ratio) keep it out of reach with the available GPUs; relax them or add GPUs"]


@dataclass(frozen=True)
class OutOfReach:
    """A class whose SLO bound no allowed pool meets even unloaded: the metric, its bound and the best any pool gets."""

    class_id: str
    model: str
    metric: Literal["ttft", "itl"]
    bound_ms: float
    percentile: float
    best_ms: float
    variant: str
    per_class_slo: bool
    """The class states its own SLO (else its model's)."""

    @property
    def relax_to_ms(self) -> int:
        """The bound the advice names: 5% above the best, so that some load fits under it."""
        return math.ceil(self.best_ms * 1.05)


def out_of_reach(inst: Instance) -> list[OutOfReach]:
    """Classes with demand whose prefill side (TTFT) or decode side (ITL) has allowed pools and none of positive
    capacity under the SLO: the SLO is beyond every GPU of the fleet."""
    out: list[OutOfReach] = []
    wl = inst.workload
    for c in wl.classes:
        slo = wl.slo_of(c)
        caps = {vid: cap for (cid, vid), cap in inst.caps.items() if cid == c.id}
        for side, roles in (("prefill", ("prefill", "mixed")), ("decode", ("decode", "mixed"))):
            side_caps = {vid: cap for vid, cap in caps.items() if inst.variants[vid].role in roles}
            if c.rate_rps <= 0 or not side_caps or any(cap.rate_rps > 0 for cap in side_caps.values()):
                continue
            ttft = side == "prefill"
            bound = slo.ttft_ms if ttft else slo.itl_ms
            if bound is None:
                # no bound on this side's metric: it is not what is out of reach (found by hand: a TTFT-only SLO of
                # 5 ms on mixed pools was also told "ITL p90 0 ms ... is out of reach", a bound nobody set)
                continue
            vid, cap = min(side_caps.items(), key=lambda kv: kv[1].best_ttft_ms if ttft else kv[1].best_itl_ms)
            out.append(OutOfReach(c.id, c.model, "ttft" if ttft else "itl", float(bound), slo.percentile,
                                  cap.best_ttft_ms if ttft else cap.best_itl_ms, vid, c.slo is not None))
    return out


def explain_infeasible(inst: Instance) -> list[str]:
    """Which SLO, class or inventory binds, and what would make the instance feasible, in words."""
    assert inst.problem is not None
    out: list[str] = []
    wl = inst.workload
    for c in wl.classes:
        caps = {vid: cap for (cid, vid), cap in inst.caps.items() if cid == c.id}
        for side, roles in (("prefill", ("prefill", "mixed")), ("decode", ("decode", "mixed"))):
            if c.rate_rps > 0 and not any(inst.variants[vid].role in roles for vid in caps):
                if c.model in inst.no_fit:
                    if inst.no_fit[c.model] not in out:
                        out.append(inst.no_fit[c.model])
                else:
                    out.append(f"class {c.id}: no {side}-side pool is allowed for model {c.model} "
                               f"(limits.roles {inst.fleet.limits.roles}); allow mixed, or both prefill and decode")
    for o in out_of_reach(inst):
        v = inst.variants[o.variant]
        best = f"{o.best_ms:.0f}" if o.metric == "ttft" else f"{o.best_ms:.1f}"
        fits = inst.slo_within_fleet
        least = fits[2] if fits is not None and fits[:2] == (o.model, o.metric) else None
        metric = o.metric.upper()
        if least is not None and least <= o.relax_to_ms:  # the searched bound is the tighter advice: it alone is said
            advice, after = f"{least:g} ms (the least bound the fleet as it stands plans from)", ""
        else:  # where a pool gets under the bound at all; the fleet's load may need a looser one, said after
            advice = f"{o.relax_to_ms} ms"
            article = "an" if metric == "ITL" else "a"  # 'an ITL', 'a TTFT', as they are read out
            after = f"; the fleet as it stands plans from {article} {metric} bound of {least:g} ms" if least is not None else ""
        # the field that sets the bound: a class id alone did not say which model's SLO to relax (found in QA: a
        # workload of two models read "TTFT p90 50 ms for class big is out of reach", the model unnamed)
        field = (f"its own slo.{o.metric}_ms" if o.per_class_slo else f"models.{o.model}.slo.{o.metric}_ms")
        out.append(f"{metric} p{o.percentile:g} {o.bound_ms:g} ms for class {o.class_id} ({field}) is out of reach on every "
                   f"GPU; the best is {best} ms on {v.gpu} tp{v.tp} ({v.role}): relax the {metric} SLO to "
                   f">= {advice} or add a faster GPU type{after}")
    if out:
        return out
    beyond = _floors_beyond_inventory(inst)
    if beyond:
        return beyond
    if inst.gpu_need is not None:
        return _shortfall_lines(inst, inst.gpu_need)
    if not inst.problem.variants:
        return ["no candidate pool: no variant of the workload's models can run on the fleet's available GPUs"]
    found = diagnose(inst.problem)
    cap = inst.fleet.limits.max_replicas_per_pool
    uncapped: set[str] = set()  # classes served in full once no pool is capped (the cap is what leaves them unserved)
    if cap is not None and any(r.kind == Family.UNSERVED for r in found):
        free = replace(inst.problem, variants=[replace(v, max_replicas=None) for v in inst.problem.variants])
        unserved = {r.target for r in diagnose(free) if r.kind == Family.UNSERVED}
        uncapped = {r.target for r in found if r.kind == Family.UNSERVED} - unserved
    for r in found:
        if r.kind == Family.UNSERVED and r.target in uncapped:
            # found in QA: max_replicas_per_pool 2 on tp1 pools read "275 req/s cannot be served within SLO by any
            # fleet the limits allow", the limit that binds unnamed
            out.append(f"class {r.target}: {r.amount:.3g} req/s cannot be served within SLO with at most {cap} replicas "
                       f"per pool (limits.max_replicas_per_pool); raise it, allow larger TP sizes (limits.allowed_tp "
                       f"{inst.fleet.limits.allowed_tp}) or relax the SLOs or rates")
        elif r.kind == Family.INVENTORY:
            have = inst.fleet.gpus[r.target].available if r.target in inst.fleet.gpus else 0
            out.append(f"GPU inventory binds: {r.target} needs {plural(math.ceil(r.amount), 'more GPU')} "
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
            step = inst.fleet.limits.max_step or 0
            move = step + math.ceil(r.amount)  # the elastic slack is the move beyond the step limit
            now = inst.fleet.current.get(r.target, 0)
            to = now + move if r.detail == "up" else now - move
            over = (f"over {math.ceil(move / step)} re-plans of {step}" if step > 0 else "once max_step allows it "
                    "(0 holds every pool where it is)")
            out.append(f"pool {r.target} must go from {now} to {plural(to, 'replica')}, {move} {'more' if r.detail == 'up' else 'fewer'}"
                       f", where max_step allows {step} per re-plan: raise max_step to {move}, or move {over}")
        else:
            out.append(f"{r.kind} {r.target}: relax by {r.amount:.3g} {r.unit}".strip())
    return out or ["the solver found no feasible plan; no single relaxation explains it"]
