"""Solve a `Problem` with any registered backend (`solvers.runners`), behind one function.

    solve(problem, backend="highs" | "cbc" | "ortools", time_limit_s=10.0, mip_gap=1e-4) -> Solution

Each backend (a `runners.SolverBackend`) reads the same `formulation.LinearModel` (the constraints
are written once, there); the staged solve here drives it and solves the objectives
lexicographically: for each objective in turn, minimise it, then hold it at the value found (plus
a tolerance) while the next one is minimised. Only "max_load" (maximise the multiplier, then the
cheapest fleet reaching it) and the diagnosis use more than one. An objective's tie-break ("gpus":
USD/h) is one more such stage, run model by model after the whole solve (`_break_ties`).

What each backend reports as the bound: HiGHS its MIP dual bound (highspy `mip_dual_bound`),
OR-Tools its `BestBound()` (SCIP, else CBC), CBC the "Lower bound" line of its log; where that is
absent, the LP relaxation's, which every backend solves first (see `_first_stage`).
`seconds` covers building the model and all solves. The time limit is shared by the stages.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from solvers.decompose import decomposable, plan_values, solve_by_group, split
from solvers.formulation import LinearModel, binding, build
from solvers.objectives import spec
from solvers.problem import Problem, Solution, Status
from solvers.runners import DEFAULT_BACKEND, SolverBackend, StageResult, backend_entry, backend_names

BACKENDS = tuple(backend_names())
"""Names of the registered backends, the default first (see `solvers.runners`)."""
HOLD_TOL = 1e-7
"""Relative slack with which an earlier objective is held while the next one is minimised."""
RENS_WIDTH = 2
"""Replicas either side of the LP value a RENS neighbourhood allows. With [floor, ceil] alone the
neighbourhood is often infeasible when an inventory binds (a pool rounded down cannot be made up
by others held to their ceiling); 2 found plans within 0.9% of the LP bound in under a second on
the 1920-variant synthetic instance (bench/solve_scaling.py), 1 did not."""
GROUP_SHARE = 0.5
"""Share of the time limit the model-by-model solves may take before the whole model is solved;
on the 20-model synthetic instances they take 1-3 s of a 10 s limit (bench/solve_scaling.py)."""
FLOW_TOL = 1e-9
"""Flows below this share of the class's rate are numerical noise and are dropped."""


GROUP_MEMO_ENTRIES = 512
"""Per-group solutions proven optimal that `solve` keeps, by (backend, MIP gap, the group's problem): a re-plan that
changes one model's classes (the SLO price list, the burst fixed point's rounds, the what-if sweeps) solves that model
alone again (found by hand at stop 53: pricing a 7-model workload's 14 SLO terms re-solved all 7 models in each of
its 28 re-plans, 8 minutes with the pools already memoised). A HiGHS, CBC or OR-Tools solve of the same problem to
optimality is deterministic, so a kept answer is the one a new solve gives; one that stopped at its time limit is not
kept."""
_GROUP_MEMO: OrderedDict[tuple[str, float, str], Solution] = OrderedDict()


def _group_solution(problem: Problem, backend: str, time_limit_s: float, mip_gap: float) -> Solution:
    """`_solve_whole` of one group's problem, from the memo (GROUP_MEMO_ENTRIES) where an equal one was solved."""
    key = (backend, mip_gap, repr(problem))  # a dataclass' repr: every field, floats to their last digit
    kept = _GROUP_MEMO.get(key)
    if kept is not None:
        _GROUP_MEMO.move_to_end(key)
        return copy.deepcopy(kept)
    sol = _solve_whole(problem, backend, time_limit_s, mip_gap)
    if sol.status == "optimal":
        _GROUP_MEMO[key] = copy.deepcopy(sol)
        while len(_GROUP_MEMO) > GROUP_MEMO_ENTRIES:
            _GROUP_MEMO.popitem(last=False)
    return sol


def solve(problem: Problem, backend: str = DEFAULT_BACKEND, time_limit_s: float = 10.0,
          mip_gap: float = 1e-4) -> Solution:
    """Build the ILP of `problem`, solve it with `backend` and read the answer back.

    With several models (groups), three steps, each tried only if the one before left the gap open:
    the whole model's LP bound and RENS plan (see `_first_stage`); model by model
    (`solvers.decompose`), whose union, when it fits the inventory, is a plan proven against the
    sum of the models' bounds; the whole MIP on the time left, warm from nothing but bounded by
    the best of all. The cheapest plan found and the best bound are reported. An objective with a
    tie-break ("gpus": USD/h) then has it minimised on the time left, the fleet term held (`_break_ties`).
    """
    start = time.perf_counter()
    sol = _solve_fleet(problem, backend, time_limit_s, mip_gap)
    if spec(problem.objective).tie_break is None or not sol.ok:
        return sol
    sol = _break_ties(problem, sol, backend, time_limit_s - (time.perf_counter() - start), mip_gap)
    sol.seconds = time.perf_counter() - start
    return sol


def _solve_fleet(problem: Problem, backend: str, time_limit_s: float, mip_gap: float) -> Solution:
    """`solve` of the fleet term (the objectives of `formulation.build`), without the tie-break."""
    start = time.perf_counter()
    backend_entry(backend)  # ValueError naming the registered backends
    if not decomposable(problem):
        return _solve_whole(problem, backend, time_limit_s, mip_gap)
    def left() -> float:
        return max(time_limit_s - (time.perf_counter() - start), 0.05)

    quick = _solve_whole(problem, backend, time_limit_s, mip_gap, quick=True)
    if quick.status in ("optimal", "infeasible", "error"):
        return quick
    found = [quick] if quick.ok else []
    bounds = [quick.bound] if quick.bound is not None else []
    def by_group(p: Problem, t: float, g: float) -> Solution:
        return _group_solution(p, backend, t, g)

    groups = solve_by_group(problem, by_group, GROUP_SHARE * left(), mip_gap)
    if groups.solution is not None and groups.solution.status == "infeasible":
        return dataclasses.replace(groups.solution, seconds=time.perf_counter() - start)
    if groups.solution is not None:
        found.append(groups.solution)
    if groups.bound is not None:
        bounds.append(groups.bound)
    notes = [f"model by model: {groups.reason}" if groups.reason else
             f"model by model: the union fits the inventory, bound {groups.bound:.6g}" if groups.bound is not None
             else ""]
    best = _best(found, bounds)
    if best is None or best.gap is None or best.gap > mip_gap:
        full = _solve_whole(problem, backend, left(), mip_gap)
        if not full.ok and not found:
            return dataclasses.replace(full, seconds=time.perf_counter() - start)
        if full.ok:
            found.append(full)
        if full.bound is not None:
            bounds.append(full.bound)
        best = _best(found, bounds)
        if best is not None and best is not full and full.status == "time_limit":
            best.status = "time_limit"
    assert best is not None
    if best.gap is not None and best.gap <= mip_gap:
        best.status = "optimal"
    best.seconds = time.perf_counter() - start
    best.message = "; ".join(filter(None, [best.message, *notes]))
    return best


def _break_ties(problem: Problem, sol: Solution, backend: str, time_limit_s: float, mip_gap: float) -> Solution:
    """`sol` with each model's pools re-chosen as the least by the objective's tie-break ("gpus": the cheapest) of
    those with no more of its fleet term (solvers.formulation, Tie-break), on `time_limit_s`: model by model (both
    terms are sums over the models, and one model's MIP proves its tie where the whole one did not in 10 s on the
    5x6x3 synthetic instance), each within the inventory the others' pools leave it, so the union fits, and on an
    equal share of the time left. A model whose solve finds nothing better in time keeps its pools (said)."""
    start = time.perf_counter()
    out = copy.deepcopy(sol)
    groups = split(problem)
    kept = 0
    for k, sub in enumerate(groups):
        left = time_limit_s - (time.perf_counter() - start)
        if left <= 0.0:
            kept += len(groups) - k
            break
        mine = {v.id for v in sub.variants}
        others: dict[str, int] = {}
        for v in problem.variants:
            if v.id not in mine:
                others[v.resource] = others.get(v.resource, 0) + out.replicas.get(v.id, 0) * v.units
        sub = dataclasses.replace(sub, inventory={r: cap - others.get(r, 0) for r, cap in sub.inventory.items()})
        part, status = _least_tie(sub, out, backend, max(left / (len(groups) - k), 0.05), mip_gap)
        kept += status != "optimal"
        if part is None:
            continue
        ids = {c.id for c in sub.classes}
        out.replicas.update({vid: n for vid, n in part.replicas.items() if vid in mine})
        out.flow = {key: x for key, x in out.flow.items() if key[0] not in ids} | part.flow
        out.pair_flow = {key: x for key, x in out.pair_flow.items() if key[0] not in ids} | part.pair_flow
    model = build(problem)
    values = plan_values(model, problem, out)
    out.binding = binding(model, values)
    out.objective = sum(w * values[i] for i, w in model.objectives[-1].items())  # at most sol's: it was held
    if out.bound is not None:
        out.bound = min(out.bound, out.objective)
        out.gap = abs(out.objective - out.bound) / max(abs(out.objective), 1e-9)
    if kept:
        out.message = "; ".join(filter(None, [out.message, f"the tie-break among plans of as few "
                                              f"{spec(problem.objective).unit} was not proven in time for {kept} of "
                                              f"{len(groups)} model(s): their pools are the best found"]))
    return out


def _least_tie(problem: Problem, sol: Solution, backend: str, time_limit_s: float,
               mip_gap: float) -> tuple[Solution | None, Status]:
    """The plan of `problem` (one model) least by its tie-break with its fleet term held at `sol`'s, or None where
    the solve found none better than `sol`; and the solve's status."""
    model = build(problem)
    values = plan_values(model, problem, sol)
    fleet = model.objectives[-1]
    held = sum(w * values[i] for i, w in fleet.items())
    before = sum(w * values[i] for i, w in model.tie_break.items())
    runner, _ = _runner(backend)
    runner.load(model)
    runner.hold(fleet, held + HOLD_TOL * max(1.0, abs(held)))
    runner.hint(values)
    res = runner.minimise(model.tie_break, time_limit_s, mip_gap)
    if res.values is None or res.objective is None or res.objective >= before - HOLD_TOL * max(1.0, abs(before)):
        return None, res.status
    fleet_now = sum(w * res.values[i] for i, w in fleet.items())
    found = ModelSolution(res.status, runner.name, res.values, [fleet_now], None, "")
    return _read(problem, model, found, 0.0), res.status


def _runner(backend: str) -> tuple[SolverBackend, list[str]]:
    """A new runner of `backend`, or of its fallback where it is not installed (said in the notes)."""
    entry = backend_entry(backend)
    if entry.fallback is not None and not entry.available():
        fallback = backend_entry(entry.fallback)
        return fallback.factory(), [f"{entry.label} not available; used {fallback.label}"]
    return entry.factory(), []


def _best(found: list[Solution], bounds: list[float]) -> Solution | None:
    """The cheapest of `found`, its bound the best of `bounds` (each valid for the whole problem)."""
    if not found:
        return None
    best = min(found, key=lambda s: s.objective if s.objective is not None else math.inf)
    if bounds and best.objective is not None:
        best.bound = min(max(bounds), best.objective)
        best.gap = abs(best.objective - best.bound) / max(abs(best.objective), 1e-9)
    return best


def _solve_whole(problem: Problem, backend: str, time_limit_s: float, mip_gap: float, quick: bool = False) -> Solution:
    """The monolithic solve: one model, lexicographic objectives (see `solve_model`). `quick`
    stops after the LP bound and the RENS plan (status 'feasible' when the gap is still open)."""
    start = time.perf_counter()
    model = build(problem)
    sol = solve_model(model, backend, time_limit_s, mip_gap, start, quick=quick)
    if sol.status in ("optimal", "feasible", "time_limit") and sol.values is not None:
        return _read(problem, model, sol, time.perf_counter() - start)
    return Solution(status=sol.status, backend=sol.backend, seconds=time.perf_counter() - start, message=sol.message)


@dataclass
class ModelSolution:
    status: Status
    backend: str
    values: list[float] | None
    objectives: list[float]
    bound: float | None
    """Best bound on the first objective (in minimisation terms)."""
    message: str


def solve_model(model: LinearModel, backend: str, time_limit_s: float, mip_gap: float,
                start: float | None = None, quick: bool = False) -> ModelSolution:
    """Minimise `model.objectives` lexicographically with `backend`."""
    start = time.perf_counter() if start is None else start
    runner, notes = _runner(backend)
    runner.load(model)
    name = runner.name
    values: list[float] | None = None
    objectives: list[float] = []
    bound: float | None = None
    status: Status = "optimal"
    for k, goal in enumerate(model.objectives):
        left = max(time_limit_s - (time.perf_counter() - start), 0.05)
        if k == 0 and model.num_integer:
            res = _first_stage(runner, model, goal, left, mip_gap, quick=quick and len(model.objectives) == 1)
        else:
            res = runner.minimise(goal, left, mip_gap)
        if res.message:
            notes.append(res.message)
        if res.values is None:
            if k == 0:
                status, values = res.status, None
            elif res.status not in ("infeasible", "error"):
                status = "time_limit"  # a later stage found nothing in time: keep the earlier answer
            break
        values = res.values
        assert res.objective is not None  # every backend gives the objective with the values
        objectives.append(res.objective)
        if k == 0:
            bound = res.bound if res.bound is not None else (res.objective if res.status == "optimal" else None)
        status = _worse(status, res.status)
        if k + 1 < len(model.objectives):
            runner.hold(goal, res.objective + HOLD_TOL * max(1.0, abs(res.objective)))
            runner.hint(values)
    return ModelSolution(status, name, values, objectives, bound, "; ".join(notes))


def _first_stage(runner: SolverBackend, model: LinearModel, goal: dict[int, float], time_limit_s: float,
                 mip_gap: float, quick: bool = False) -> StageResult:
    """LP relaxation (the bound), a restricted MIP around it (RENS: the incumbent), then the full MIP.

    1. The LP relaxation gives a valid lower bound L; if it is infeasible, so is the MIP.
    2. RENS (Berthold's "relaxation enforced neighbourhood search", widened): every integer
       variable is held to [floor - w, ceil + w] of its LP value (w = RENS_WIDTH, 0 where the LP
       value is 0), so the MIP left is small and solves fast; its answer is a feasible plan,
       usually within a fraction of a percent of L.
    3. If that plan is within `mip_gap` of L it is returned (the gap is proven against L).
       Otherwise the full MIP runs on the remaining time, warm-started from the plan; the bound
       reported is the better of L and the MIP's own. With `quick`, step 3 is left to the caller:
       the RENS plan comes back as 'feasible' with L as its bound.
    """
    t0 = time.perf_counter()
    ints = [i for i, v in enumerate(model.vars) if v.integer]
    runner.relax(ints, True)
    lp = runner.minimise(goal, time_limit_s, 0.0)
    runner.relax(ints, False)
    if lp.status != "optimal":  # infeasible, or stopped early: no valid bound from the LP
        if lp.status == "infeasible" or lp.values is None:
            return lp
        return runner.minimise(goal, max(time_limit_s - (time.perf_counter() - t0), 0.05), mip_gap)
    lp_values, low = lp.values, lp.objective
    assert lp_values is not None and low is not None  # an optimal stage carries its values and objective
    inc: _Plan | None = None
    if any(abs(lp_values[i] - round(lp_values[i])) > 1e-6 for i in ints):
        box: dict[int, tuple[float, float | None]] = {}
        for i in ints:
            v, x = model.vars[i], lp_values[i]
            wide = RENS_WIDTH if x > 1e-6 else 0  # pools the LP leaves empty stay empty
            lo, hi = math.floor(x + 1e-6) - wide, math.ceil(x - 1e-6) + wide
            box[i] = (max(v.lb, lo), hi if v.ub is None else min(v.ub, hi))
        runner.set_bounds(box)
        left = time_limit_s - (time.perf_counter() - t0)
        rens = runner.minimise(goal, max(0.3 * left, 0.05), mip_gap)
        runner.set_bounds({i: (model.vars[i].lb, model.vars[i].ub) for i in ints})
        inc = _Plan.of(rens)
    if inc is not None and inc.objective - low <= mip_gap * max(abs(inc.objective), 1e-9):
        return StageResult("optimal", inc.values, inc.objective, low, "gap proven against the LP bound after RENS")
    if quick:
        if inc is not None:
            return StageResult("feasible", inc.values, inc.objective, low, "RENS plan")
        if not any(abs(lp_values[i] - round(lp_values[i])) > 1e-6 for i in ints):
            return StageResult("optimal", lp_values, low, low, "the LP relaxation is integral")
        return StageResult("time_limit", None, None, low, "RENS found no plan")
    if inc is not None:
        runner.hint(inc.values)
    # The branch-and-bound gets the model without the valid inequalities: they served the LP bound
    # and RENS; in the full MIP they slowed HiGHS 8x (10x8x4 synthetic, seed 1), its own cuts do better.
    runner.drop_cuts()
    left = time_limit_s - (time.perf_counter() - t0)
    full = runner.minimise(goal, max(left, 0.05), mip_gap)
    best = _Plan.of(full)
    if best is None or (inc is not None and inc.objective < best.objective):
        if inc is None:
            return full
        bound = max(low, full.bound) if full.bound is not None and full.status != "infeasible" else low
        status: Status = full.status if full.status in ("optimal", "time_limit") else "feasible"
        return StageResult(status, inc.values, inc.objective, min(bound, inc.objective), "RENS plan kept")
    bound = low if full.bound is None else max(low, full.bound)
    return StageResult(full.status, best.values, best.objective, min(bound, best.objective), full.message)


@dataclass(frozen=True)
class _Plan:
    """A stage's answer that has values (and so an objective)."""

    values: list[float]
    objective: float

    @staticmethod
    def of(res: StageResult) -> _Plan | None:
        if res.values is None or res.objective is None:
            return None
        return _Plan(res.values, res.objective)


def _read(problem: Problem, model: LinearModel, ms: ModelSolution, seconds: float) -> Solution:
    """Turn variable values into replicas, cleaned flows, objective in the problem's own sense."""
    vals = ms.values
    assert vals is not None  # called only for solutions with values
    replicas = {v: int(round(vals[i])) for v, i in model.n.items()}
    rounded = list(vals)
    for v, i in model.n.items():
        rounded[i] = float(replicas[v])
    rates = {c.id: c.rate for c in problem.classes}
    mu = vals[model.mu] if model.mu is not None else None
    flow = {}
    for (c, v), i in model.x.items():
        if vals[i] > FLOW_TOL * max(rates[c] * (mu if mu is not None else 1.0), 1e-12):
            flow[(c, v)] = vals[i]
    pair_flow = {}
    for key, i in model.y.items():
        if vals[i] > FLOW_TOL * max(rates[key[0]] * (mu if mu is not None else 1.0), 1e-12):
            pair_flow[key] = vals[i]
    sign = -1.0 if model.mu is not None else 1.0  # max_load minimises -mu
    objective = sign * ms.objectives[0]
    bound = None if ms.bound is None else sign * ms.bound
    gap = None if bound is None else abs(objective - bound) / max(abs(objective), 1e-9)
    message = ms.message
    cap = model.vars[model.mu].ub if model.mu is not None else None
    if mu is not None and cap is not None and mu >= 0.999 * cap:
        message = "; ".join(filter(None, [message, "load multiplier hit its cap: the fleet is not limited"]))
    return Solution(status=ms.status, backend=ms.backend, replicas=replicas, flow=flow, pair_flow=pair_flow,
                    objective=objective,
                    bound=bound, gap=gap, seconds=seconds, load_multiplier=mu,
                    binding=binding(model, rounded),
                    message=message)


_RANK = {"optimal": 0, "feasible": 1, "time_limit": 2, "infeasible": 3, "error": 4}


def _worse(a: Status, b: Status) -> Status:
    return a if _RANK[a] >= _RANK[b] else b


__all__ = ["BACKENDS", "ModelSolution", "solve", "solve_model"]
