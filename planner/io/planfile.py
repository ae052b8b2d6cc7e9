"""Plan files: read, write, and diff against a fleet's current replicas (explained in planner/planning/explain.py).

The plan file is the product's contract with outside tools (the controller, the router, the
simulator): top-level `cost_per_hour`, `gpus`, `solver`, `models` with pools, routing and
predictions (see :class:`planner.io.schema.Plan`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from planner.io.errors import InputError
from planner.io.files import parse_model, read_yaml, write_model
from planner.io.schema import PREFILL_SIDE, Plan, Variant

# Top-level fields that mark another of the product's files, not a plan (planner/io/schema.py's Workload and Fleet,
# controllers/config.py's ControllerConfig; a plan has none of them), and what the file is then said to look like.
OTHER_FILE_FIELDS = (("classes", "a workload"), ("limits", "a fleet"), ("current", "a fleet"),
                     ("interval_s", "a controller config"), ("fleet", "a controller config"))

# A model's pd_ratio against its pools' GPUs: the solver writes it rounded to 4 decimals, a hand-written one to 3
# (the precision of the routing weights' sums below).
PD_RATIO_TOL = 1e-3


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a plan file, checking that its routing names its own pools (none of 0 replicas with a
    weight), sums to 1 on each side, and gives a class routed to a prefill pool a decode pool, and that its GPU and cost
    totals are its pools' sums."""
    tree = read_yaml(path)
    _check_is_plan(tree, path)
    plan = parse_model(Plan, tree, str(path))
    for model, mp in plan.models.items():
        for i, p in enumerate(mp.pools):
            try:
                v = Variant.parse(p.id)
            except ValueError as exc:
                raise InputError(str(path), f"models.{model}.pools[{i}].id", str(exc)) from None
            got = (v.model, v.role, v.gpu, v.tp, v.weight_dtype, v.kv_dtype)
            if got != (model, p.role, p.gpu, p.tp, p.weight_dtype, p.kv_dtype):
                raise InputError(str(path), f"models.{model}.pools[{i}]",
                                 f"id '{p.id}' disagrees with the pool's model/role/gpu/tp/weight_dtype/kv_dtype "
                                 f"({model}, {p.role}, {p.gpu}, {p.tp}, {p.weight_dtype}, {p.kv_dtype})")
        roles = {p.id: p.role for p in mp.pools}
        replicas = {p.id: p.replicas for p in mp.pools}
        for i, pool in enumerate(mp.pools):
            if pool.replicas < 0 or pool.tp <= 0:
                raise InputError(str(path), f"models.{model}.pools[{i}]", f"expected replicas >= 0 and tp > 0, got {pool.replicas} and {pool.tp}")
            if pool.gpus != pool.replicas * pool.tp:
                raise InputError(str(path), f"models.{model}.pools[{i}].gpus", f"expected replicas x tp = {pool.replicas} x "
                                 f"{pool.tp} = {pool.replicas * pool.tp}, got {pool.gpus}")
        for cid, weights in mp.routing.items():
            for pool_id, w in weights.items():
                if not (0.0 <= w <= 1.0):  # also false for NaN
                    raise InputError(str(path), f"models.{model}.routing.{cid}.{pool_id}", f"expected a routing weight in [0, 1], got {w!r}")
                if pool_id not in roles:
                    raise InputError(str(path), f"models.{model}.routing.{cid}.{pool_id}", "routing names a pool that is not in the plan's pools")
                if w > 0 and replicas[pool_id] == 0:
                    # found in QA: a pool's replicas (and GPUs) edited to 0 with its routing kept; `planner explain`
                    # said 28% of the class's KV went to it, and the simulator refused it naming no file
                    raise InputError(str(path), f"models.{model}.routing.{cid}.{pool_id}",
                                     f"a weight of {w:g} to a pool of 0 replicas, which serves nothing: expected the "
                                     "pool's replicas, or its weight moved to the class's other pools")
            for side, side_roles in (("prefill-side", PREFILL_SIDE), ("decode", ("decode",))):
                tot = sum(w for p, w in weights.items() if roles[p] in side_roles)
                if tot and abs(tot - 1.0) > 1e-3:
                    raise InputError(str(path), f"models.{model}.routing.{cid}", f"{side} weights must sum to 1 (got {tot:.4f})")
            # a prefill pool hands its KV cache to a decode pool: without one the class is not served, yet `planner
            # explain` printed its predicted ITL and '100% disaggregated' (found by hand: a decode pool and its routing
            # line removed from a plan; the simulator refused it naming no file)
            if any(w > 0 and roles[p] == "prefill" for p, w in weights.items()) and not any(
                    w > 0 and roles[p] == "decode" for p, w in weights.items()):
                raise InputError(str(path), f"models.{model}.routing.{cid}",
                                 "the class is routed to a prefill pool but to no decode pool (expected decode weights "
                                 "summing to 1)")
        for cid, by_prefill in mp.pairing.items():
            # found in QA: one prefill pool's line dropped from a class's pairing; `planner explain` said nothing of
            # where its KV goes, and the simulator drew its decode pools from the class's decode weights, handing
            # H100 prefills to A100 decodes that the fleet's forbid_pairs had kept apart
            unpaired = [p for p, w in mp.routing.get(cid, {}).items() if w > 0 and roles.get(p) == "prefill"
                        and p not in by_prefill]
            if by_prefill and unpaired:
                raise InputError(str(path), f"models.{model}.pairing.{cid}",
                                 f"says where the KV of {', '.join(sorted(by_prefill))} goes but not of {unpaired[0]}, "
                                 f"which the class routes {mp.routing[cid][unpaired[0]]:g} to: expected the decode pools "
                                 "of each of the class's prefill pools (or no pairing for the class, where any prefill "
                                 "pool may hand its KV to any decode pool)")
            for pid, weights in by_prefill.items():
                where = f"models.{model}.pairing.{cid}.{pid}"
                for d, w in weights.items():
                    if not (0.0 <= w <= 1.0):
                        raise InputError(str(path), f"{where}.{d}", f"expected a pairing weight in [0, 1], got {w!r}")
                if roles.get(pid) != "prefill":
                    raise InputError(str(path), where, "pairing is keyed by the class's prefill pools; this is not one of the plan's prefill pools")
                bad = [d for d in weights if roles.get(d) != "decode"]
                if bad:
                    raise InputError(str(path), f"{where}.{bad[0]}", "pairing names a pool that is not one of the plan's decode pools")
                if abs(sum(weights.values()) - 1.0) > 1e-3:
                    raise InputError(str(path), where, f"decode weights of a prefill pool must sum to 1 (got {sum(weights.values()):.4f})")
    _check_totals(plan, path)
    return plan


def _check_is_plan(tree: object, path: str | os.PathLike[str]) -> None:
    """`tree` (a file's YAML) is a plan: a mapping with the `solver` that planner solve writes, or with a model's
    `pools` (a plan whose solver was edited out, told so by the schema's own error), else an InputError naming the
    file and what it looks like. Found in QA: a workload YAML given as `planner simulate PLAN` was "field 'solver':
    Field required; and 6 more error(s)"."""
    expected = "expected a plan written by planner solve (fields solver, models, ...)"
    if tree is None:
        return  # parse_model says the file is empty
    if not isinstance(tree, dict):
        raise InputError(str(path), None, f"{expected}; got a YAML {type(tree).__name__}, not a mapping")
    models = tree.get("models")
    if "solver" in tree or (isinstance(models, dict) and any(isinstance(m, dict) and "pools" in m
                                                              for m in models.values())):
        return
    kind = next(((what, key) for key, what in OTHER_FILE_FIELDS if key in tree), None)
    if kind is not None:
        raise InputError(str(path), None, f"{expected}; this looks like {kind[0]} (it has {kind[1]})")
    fields = ", ".join(str(k) for k in list(tree)[:5]) + (", ..." if len(tree) > 5 else "")
    raise InputError(str(path), None, f"{expected}; its top-level fields are {fields or 'none'}")


def _check_totals(plan: Plan, path: str | os.PathLike[str]) -> None:
    """A feasible plan's `gpus` and `cost_per_hour`, where stated, are its pools' sums, and each model's `pd_ratio` its
    pools' prefill GPUs over decode GPUs (as the solver writes them; a plan of pools only, as tools and tests write,
    leaves them out). Found by hand: with a pool (or a whole model) removed, `planner explain` still said 'Cost
    $59.19/h on 21 GPUs (3 A100-80GB, ...)', the removed pool's A100 and dollars included."""
    if not plan.feasible:
        return
    pools = [p for mp in plan.models.values() for p in mp.pools]
    by_gpu: dict[str, int] = {}
    for p in pools:
        if p.gpus:
            by_gpu[p.gpu] = by_gpu.get(p.gpu, 0) + p.gpus
    if plan.gpus and by_gpu != {g: n for g, n in plan.gpus.items() if n}:
        raise InputError(str(path), "gpus", "expected the GPUs of the plan's pools, "
                         f"{dict(sorted(by_gpu.items())) or 'none'}, got {dict(sorted(plan.gpus.items())) or 'none'}")
    cost = sum(p.cost_per_hour for p in pools)
    if plan.cost_per_hour and abs(cost - plan.cost_per_hour) > 0.01:
        raise InputError(str(path), "cost_per_hour", f"expected the sum of the plan's pools' cost_per_hour, {cost:,.2f} USD/h, "
                         f"got {plan.cost_per_hour:,.2f}")
    for model, mp in plan.models.items():
        # found in QA: a decode pool edited to 0 replicas (GPUs and costs with it); `planner explain` still said
        # 'P:D = 3.75 (GPUs)' of 15 prefill and 3 decode GPUs. A ratio is stated where the model has both sides
        p_gpus = sum(p.gpus for p in mp.pools if p.role == "prefill")
        d_gpus = sum(p.gpus for p in mp.pools if p.role == "decode")
        if mp.pd_ratio is not None and (not p_gpus or not d_gpus or abs(mp.pd_ratio - p_gpus / d_gpus) > PD_RATIO_TOL):
            expected = f"{p_gpus} / {d_gpus} = {p_gpus / d_gpus:.4g}" if p_gpus and d_gpus else "none (null)"
            raise InputError(str(path), f"models.{model}.pd_ratio", f"expected the pools' prefill GPUs / decode GPUs, "
                             f"{expected}, got {mp.pd_ratio:g}")


def save_plan(path: str | os.PathLike[str], plan: Plan) -> None:
    """Write a plan atomically (YAML, or JSON when the path ends in .json)."""
    write_model(path, plan)


@dataclass(frozen=True)
class PoolChange:
    pool: str
    current: int
    desired: int

    @property
    def delta(self) -> int:
        return self.desired - self.current


def diff(plan: Plan, current: dict[str, int]) -> list[PoolChange]:
    """Pools whose replicas differ between the fleet's `current` state and the plan (sorted by pool)."""
    desired = plan.replicas()
    pools = sorted(set(desired) | set(current))
    return [PoolChange(p, current.get(p, 0), desired.get(p, 0)) for p in pools if current.get(p, 0) != desired.get(p, 0)]
