"""An independent checker and brute-force optimum for solver tests (shares no code with `solvers`).

`violations(problem, solution)` re-reads the constraints from DESIGN.md and problem.py's docs and
lists every one a solution breaks. `brute_force(problem, n_max)` enumerates replica vectors in
cost order and asks scipy's `linprog` whether some routing of the flows fits; the first that does
is the optimum (exact when every variant's replicas are bounded by `n_max`). Vectors on which a
class cannot fit even alone are passed over without an LP (a necessary condition: same answer).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import linprog

from solvers.objectives import OBJECTIVES, Objective
from solvers.problem import Problem, Solution


def _demand(problem: Problem) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in problem.classes:
        out[c.group] = out.get(c.group, 0.0) + c.rate
    return out


def replica_violations(problem: Problem, n: dict[str, int]) -> list[str]:
    """Constraints on replicas alone: bounds, inventory, min replicas per group, P:D ratio, step."""
    out = []
    for v in problem.variants:
        k = n.get(v.id, 0)
        if k < v.min_replicas or (v.max_replicas is not None and k > v.max_replicas) or k < 0:
            out.append(f"bounds {v.id}: {k}")
        # a pool below its floor goes up to it at once (the step yields to the floor: solvers.formulation, step_up[v])
        if problem.max_step is not None and (k - v.current > max(problem.max_step, v.min_replicas - v.current)
                                             or v.current - k > problem.max_step):
            out.append(f"step {v.id}: {k} vs current {v.current}")
    for res, avail in problem.inventory.items():
        used = sum(v.units * n.get(v.id, 0) for v in problem.variants if v.resource == res)
        if used > avail:
            out.append(f"inventory {res}: {used} > {avail}")
    demand = _demand(problem)
    for g, low in problem.min_replicas_per_group.items():
        if demand.get(g, 0.0) <= 0:
            continue
        for sides in (("prefill", "mixed"), ("decode", "mixed")):
            have = sum(n.get(v.id, 0) for v in problem.variants if v.group == g and v.side in sides)
            if have < low:
                out.append(f"min replicas {g} {sides}: {have} < {low}")
    for g, (lo, hi) in problem.pd_ratio_bounds.items():
        p = sum(v.units * n.get(v.id, 0) for v in problem.variants if v.group == g and v.side == "prefill")
        d = sum(v.units * n.get(v.id, 0) for v in problem.variants if v.group == g and v.side == "decode")
        if lo is not None and p < lo * d - 1e-9:
            out.append(f"pd ratio {g}: {p} < {lo} x {d}")
        if hi is not None and p > hi * d + 1e-9:
            out.append(f"pd ratio {g}: {p} > {hi} x {d}")
    return out


def violations(problem: Problem, sol: Solution, tol: float = 1e-6) -> list[str]:
    """Every constraint the solution breaks, in words (empty when it is a valid plan)."""
    out = replica_violations(problem, sol.replicas)
    side = {v.id: v.side for v in problem.variants}
    var = {v.id: v for v in problem.variants}
    cls = {c.id: c for c in problem.classes}
    mu = sol.load_multiplier if problem.objective == "max_load" else 1.0
    for (c, v), f in sol.flow.items():
        if f < -tol or problem.capacity.get((c, v), 0.0) <= 0 or cls[c].group != var[v].group:
            out.append(f"flow {c}->{v} not allowed: {f}")
    for c in problem.classes:
        pre = sum(f for (k, v), f in sol.flow.items() if k == c.id and side[v] in ("prefill", "mixed"))
        if abs(pre - c.rate * mu) > tol * max(1.0, c.rate * mu):
            out.append(f"coverage {c.id}: {pre} != {c.rate * mu}")
        p = sum(f for (k, v), f in sol.flow.items() if k == c.id and side[v] == "prefill")
        d = sum(f for (k, v), f in sol.flow.items() if k == c.id and side[v] == "decode")
        if abs(p - d) > tol * max(1.0, p):
            out.append(f"pairing {c.id}: prefill {p} != decode {d}")
        if problem.forbidden_pairs:
            # the hand-off, key by key: what leaves a prefill key and enters a decode key is the
            # pair flows' sums, and no pair flow runs along a forbidden pairing
            for (k, a, b), y in sol.pair_flow.items():
                if k == c.id and (a, b) in problem.forbidden_pairs and y > tol:
                    out.append(f"forbidden pairing {a}->{b} carries {y} req/s of {c.id}")
            for s_, pos in (("prefill", 1), ("decode", 2)):
                for key in {var[v].key for v in var if side[v] == s_}:
                    routed = sum(f for (k, v), f in sol.flow.items()
                                 if k == c.id and side[v] == s_ and var[v].key == key)
                    paired = sum(y for kk, y in sol.pair_flow.items() if kk[0] == c.id and kk[pos] == key)
                    if abs(routed - paired) > tol * max(1.0, routed):
                        out.append(f"pair flows of {c.id} at {s_} key {key}: {paired} != routed {routed}")
    for v in problem.variants:
        k = sol.replicas.get(v.id, 0)
        load = sum(f / problem.capacity[(c, v.id)] for (c, w), f in sol.flow.items() if w == v.id)
        if load > v.utilization * k + tol * max(1.0, k):
            out.append(f"capacity {v.id}: load {load} > {v.utilization} x {k}")
        if v.link_bytes_per_s is not None and v.side != "mixed":
            shipped = sum(f * cls[c].kv_bytes for (c, w), f in sol.flow.items() if w == v.id)
            if shipped > v.link_bytes_per_s * k * (1 + tol) + tol:
                out.append(f"kv link {v.id}: {shipped} > {v.link_bytes_per_s} x {k}")
    return out


def fleet_cost(problem: Problem, n: dict[str, int]) -> float:
    """The objective: per-replica weight of the objective (solvers/objectives.py: price, GPUs or W) plus churn."""
    weight = OBJECTIVES[Objective(problem.objective)].weight
    per = {v.id: weight(v) for v in problem.variants}
    churn = problem.churn_cost * sum(abs(n.get(v.id, 0) - v.current) for v in problem.variants)
    return sum(per[v] * k for v, k in n.items()) + churn


def routable(problem: Problem, n: dict[str, int], mu: float = 1.0) -> bool:
    """Is there a routing of every class (rate x mu) that fits replicas `n`? An LP feasibility test."""
    var = {v.id: v for v in problem.variants}
    pairs = [(c.id, v.id) for c in problem.classes for v in problem.variants
             if v.group == c.group and problem.capacity.get((c.id, v.id), 0.0) > 0]
    if not pairs:
        return all(c.rate * mu <= 0 for c in problem.classes)
    col = {p: i for i, p in enumerate(pairs)}
    # With forbidden pairings, one hand-off column per (class, allowed prefill key, decode key).
    keys = sorted({v.key for v in problem.variants})
    hand = [(c.id, a, b) for c in problem.classes for a in keys for b in keys
            if problem.forbidden_pairs and (a, b) not in problem.forbidden_pairs]
    for h in hand:
        col[h] = len(col)
    width = len(col)
    a_eq, b_eq, a_ub, b_ub = [], [], [], []
    for c in problem.classes:
        cover, pair = np.zeros(width), np.zeros(width)
        for (k, v), i in ((key, i) for key, i in col.items() if len(key) == 2):
            if k == c.id:
                cover[i] = var[v].side in ("prefill", "mixed")
                pair[i] = {"prefill": 1.0, "decode": -1.0, "mixed": 0.0}[var[v].side]
        a_eq += [cover, pair]
        b_eq += [c.rate * mu, 0.0]
        if problem.forbidden_pairs:
            for side, pos in (("prefill", 1), ("decode", 2)):
                for key in keys:
                    row = np.zeros(width)
                    for (k, v), i in ((kk, i) for kk, i in col.items() if len(kk) == 2):
                        if k == c.id and var[v].side == side and var[v].key == key:
                            row[i] = 1.0
                    for h in hand:
                        if h[0] == c.id and h[pos] == key:
                            row[col[h]] = -1.0
                    a_eq.append(row)
                    b_eq.append(0.0)
    kv = {c.id: c.kv_bytes for c in problem.classes}
    for v in problem.variants:
        row = np.zeros(width)
        link = np.zeros(width)
        for (k, w), i in ((kk, i) for kk, i in col.items() if len(kk) == 2):
            if w == v.id:
                row[i] = 1.0 / problem.capacity[(k, w)]
                link[i] = kv[k]
        a_ub.append(row)
        b_ub.append(v.utilization * n.get(v.id, 0))
        if v.link_bytes_per_s is not None and v.side != "mixed" and link.any():
            a_ub.append(link / v.link_bytes_per_s)
            b_ub.append(float(n.get(v.id, 0)))
    res = linprog(np.zeros(width), A_ub=np.array(a_ub), b_ub=b_ub, A_eq=np.array(a_eq), b_eq=b_eq,
                  bounds=(0, None), method="highs")
    return res.status == 0


def _grid_costs(problem: Problem, grid: np.ndarray) -> np.ndarray:
    """fleet_cost of every row of `grid` (replica counts, columns in variant order), bit for bit: the same
    float operations in the same order (per-replica weights summed left to right, then churn)."""
    weight = OBJECTIVES[Objective(problem.objective)].weight
    cost = np.zeros(len(grid))
    for j, v in enumerate(problem.variants):
        cost = cost + weight(v) * grid[:, j]
    current = np.array([v.current for v in problem.variants], dtype=grid.dtype)
    return cost + problem.churn_cost * np.abs(grid - current).sum(axis=1)


def _may_route(problem: Problem, grid: np.ndarray) -> np.ndarray:
    """False only for rows that `routable` rejects (a necessary condition, so skipping them changes nothing):
    a class's rate must fit on its prefill+mixed replicas and on its decode+mixed ones, each replica taking at
    most capacity x utilization of that class alone. (Prefill + mixed flow covers the rate; decode flow equals
    prefill flow, so decode + mixed capacity must reach it too.) The margin keeps the LP's tolerances on the
    side of `routable`: only rates beyond the bound by 1e-4 relative are rejected here."""
    ok = np.ones(len(grid), dtype=bool)
    for c in problem.classes:
        room = {"prefill": np.zeros(len(grid)), "decode": np.zeros(len(grid)), "mixed": np.zeros(len(grid))}
        for j, v in enumerate(problem.variants):
            cap = problem.capacity.get((c.id, v.id), 0.0)
            if v.group == c.group and cap > 0:
                room[v.side] = room[v.side] + cap * v.utilization * grid[:, j]
        for side in ("prefill", "decode"):
            ok &= c.rate <= (room[side] + room["mixed"]) * (1 + 1e-4) + 1e-6
    return ok


def tie_cost(problem: Problem, n: dict[str, int]) -> float:
    """The objective's tie-break at replicas `n` (solvers/objectives.py: USD/h for "gpus"); 0 for one without."""
    tie = OBJECTIVES[Objective(problem.objective)].tie_break
    per = {v.id: tie(v) if tie is not None else 0.0 for v in problem.variants}
    return sum(per[v] * k for v, k in n.items())


def brute_force(problem: Problem, n_max: int) -> tuple[float, dict[str, int]] | None:
    """Cheapest replica vector in {0..n_max}^V that satisfies every constraint; None if none does.

    Vectors are tried in cost order, ties in the order of the objective's tie-break (`tie_cost`), then in
    itertools.product order; a vector whose classes cannot fit even one at a time on its replicas
    (`_may_route`) is passed over without solving its LP.
    """
    ids = [v.id for v in problem.variants]
    grid = np.array(list(itertools.product(range(n_max + 1), repeat=len(ids))), dtype=np.int64).reshape(-1, len(ids))
    candidates = _may_route(problem, grid)
    tie = OBJECTIVES[Objective(problem.objective)].tie_break
    ties = np.zeros(len(grid))
    for j, v in enumerate(problem.variants):
        ties = ties + (tie(v) if tie is not None else 0.0) * grid[:, j]
    for i in np.lexsort((ties, _grid_costs(problem, grid))):
        if not candidates[i]:
            continue
        n = dict(zip(ids, (int(k) for k in grid[i]), strict=True))
        if not replica_violations(problem, n) and routable(problem, n):
            return fleet_cost(problem, n), n
    return None


def max_multiplier(problem: Problem, n_max: int, hi: float = 1e3) -> float:
    """Largest mu some replica vector in {0..n_max}^V can route (bisection per vector)."""
    ids = [v.id for v in problem.variants]
    best = 0.0
    for ks in itertools.product(range(n_max + 1), repeat=len(ids)):
        n = dict(zip(ids, ks, strict=True))
        if replica_violations(problem, n) or not routable(problem, n, best):
            continue
        lo_, hi_ = best, hi
        for _ in range(60):
            mid = (lo_ + hi_) / 2
            lo_, hi_ = (mid, hi_) if routable(problem, n, mid) else (lo_, mid)
        best = max(best, lo_)
    return best
