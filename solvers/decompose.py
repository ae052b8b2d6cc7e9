"""Solve model by model when only the GPU inventory couples the models.

In the ILP of `solvers.formulation` every row but inventory[r] concerns one group (model):
coverage, pairing, capacity, KV links, min replicas, P:D ratio, step limits and churn. So each
group's problem alone (with the full inventory) is a relaxation of its share of the whole:

* the sum of the groups' lower bounds is a lower bound on the whole problem;
* when the union of the groups' plans fits the inventory, it is feasible for the whole problem,
  and its gap against that sum is at most the largest group's gap: an answer, proven.

Twenty small MIPs solve much faster than one large one (the LP relaxation of the large one is
loose where many groups round their replicas up at once). When the union does not fit, some GPU
type is contended and the groups must be solved together: the caller falls back to the whole
model, and the sum of the group bounds still tightens the bound it reports.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass

from solvers.formulation import LinearModel, binding, build
from solvers.objectives import spec
from solvers.problem import Problem, Solution

_RANK = {"optimal": 0, "feasible": 1, "time_limit": 2, "infeasible": 3, "error": 4}


@dataclass
class GroupResult:
    """Per-group solves: the union's Solution when it fits the inventory, else None; the bound always."""

    solution: Solution | None
    bound: float | None
    """Sum of the groups' lower bounds (None when a group gave none): valid for the whole problem."""
    seconds: float
    reason: str = ""


def decomposable(problem: Problem) -> bool:
    """Whether solving group by group can answer: several groups, and a separable objective."""
    return spec(problem.objective).separable and len({c.group for c in problem.classes}) > 1


def split(problem: Problem) -> list[Problem]:
    """One problem per group with demand or a pool floor, each with the whole inventory; other groups without classes
    are left out (their pools stay at 0)."""
    out = []
    for g in sorted({c.group for c in problem.classes} | {v.group for v in problem.variants if v.min_replicas > 0}):
        classes = [c for c in problem.classes if c.group == g]
        ids = {c.id for c in classes}
        out.append(dataclasses.replace(
            problem, classes=classes, variants=[v for v in problem.variants if v.group == g],
            capacity={k: x for k, x in problem.capacity.items() if k[0] in ids},
            min_replicas_per_group={k: n for k, n in problem.min_replicas_per_group.items() if k == g},
            pd_ratio_bounds={k: b for k, b in problem.pd_ratio_bounds.items() if k == g}))
    return out


def _group_of(sub: Problem) -> str:
    """The group of one of `split`'s problems (a group with a pool floor may have no class)."""
    return sub.classes[0].group if sub.classes else sub.variants[0].group


def solve_by_group(problem: Problem, solve: Callable[[Problem, float, float], Solution], time_limit_s: float,
                   mip_gap: float) -> GroupResult:
    """Solve each group alone with `solve(problem, time_limit_s, mip_gap)`; combine if the union fits."""
    start = time.perf_counter()
    parts: list[Solution] = []
    bound: float | None = 0.0
    for sub in split(problem):
        left = time_limit_s - (time.perf_counter() - start)
        if left <= 0:
            return GroupResult(None, None, time.perf_counter() - start, "groups ran out of time")
        sol = solve(sub, left, mip_gap)
        if sol.status == "infeasible":  # a relaxation of the whole is infeasible: so is the whole
            return GroupResult(dataclasses.replace(sol, message=f"model {_group_of(sub)} alone is infeasible"),
                               None, time.perf_counter() - start)
        if not sol.ok:
            return GroupResult(None, None, time.perf_counter() - start, f"group {_group_of(sub)}: {sol.status}")
        parts.append(sol)
        bound = None if bound is None or sol.bound is None else bound + sol.bound
    units = {v.id: (v.resource, v.units) for v in problem.variants}
    used: dict[str, int] = {}
    for sol in parts:
        for vid, n in sol.replicas.items():
            res, k = units[vid]
            used[res] = used.get(res, 0) + n * k
    over = {r: (used.get(r, 0), cap) for r, cap in problem.inventory.items() if used.get(r, 0) > cap}
    seconds = time.perf_counter() - start
    if over:
        return GroupResult(None, bound, seconds, "groups contend for " + ", ".join(
            f"{r} ({u} > {cap} GPUs)" for r, (u, cap) in sorted(over.items())))
    return GroupResult(_combine(problem, parts, bound, seconds), bound, seconds)


def _combine(problem: Problem, parts: list[Solution], bound: float | None, seconds: float) -> Solution:
    """The union of the groups' solutions as one Solution of the whole problem (binding rows included)."""
    sol = Solution(status="optimal", backend=parts[0].backend, seconds=seconds)
    for p in parts:
        sol.replicas.update(p.replicas)
        sol.flow.update(p.flow)
        sol.pair_flow.update(p.pair_flow)
        sol.status = p.status if _RANK[p.status] > _RANK[sol.status] else sol.status
    sol.objective = sum(p.objective or 0.0 for p in parts)
    sol.bound = None if bound is None else min(bound, sol.objective)
    sol.gap = None if sol.bound is None else abs(sol.objective - sol.bound) / max(abs(sol.objective), 1e-9)
    model = build(problem)
    sol.binding = binding(model, plan_values(model, problem, sol))
    sol.message = f"{len(parts)} models solved one by one"
    return sol


def plan_values(model: LinearModel, problem: Problem, sol: Solution) -> list[float]:
    """The values of `model`'s variables (built from `problem`) at the plan `sol`: replicas, flows, pair flows, and
    those the plan implies: churn d[v] = |n_v - current_v| and pool-open u[v] = 1 where the pool has replicas."""
    values = [0.0] * len(model.vars)
    for vid, i in model.n.items():
        values[i] = float(sol.replicas.get(vid, 0))
    for routed, i in model.x.items():
        values[i] = sol.flow.get(routed, 0.0)
    for paired, i in model.y.items():
        values[i] = sol.pair_flow.get(paired, 0.0)
    by_name = {var.name: i for i, var in enumerate(model.vars)}
    for v in problem.variants:
        if (d := by_name.get(f"d[{v.id}]")) is not None:
            values[d] = abs(sol.replicas.get(v.id, 0) - v.current)
        if (u := by_name.get(f"u[{v.id}]")) is not None:
            values[u] = 1.0 if sol.replicas.get(v.id, 0) > 0 else 0.0
    return values


__all__ = ["GroupResult", "decomposable", "plan_values", "solve_by_group", "split"]
