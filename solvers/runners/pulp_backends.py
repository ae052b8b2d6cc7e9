"""PuLP backends: HiGHS (through highspy, `pulp.HiGHS`) and CBC (`pulp.PULP_CBC_CMD`).

What each reports as the bound: HiGHS its MIP dual bound (highspy `mip_dual_bound`), CBC the
"Lower bound" line of its log. PuLP has no type information, so its objects are `Any` here, kept
inside this module.
"""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
import warnings
from typing import Any

from solvers.formulation import LinearModel
from solvers.problem import Status
from solvers.runners.base import StageResult, register


def highs_available() -> bool:
    """Whether PuLP can reach HiGHS (highspy installed)."""
    import pulp

    return "HiGHS" in pulp.listSolvers(onlyAvailable=True)


class _PulpRunner:
    """A PuLP model of a `LinearModel`; subclasses say which solver minimises it."""

    name = "pulp"

    def load(self, model: LinearModel) -> None:
        import pulp

        self.pulp: Any = pulp
        self.model = model
        cat = {True: pulp.LpInteger, False: pulp.LpContinuous}
        # Zero-padded names: the index of a variable can be read back from its name.
        self.vars: list[Any] = [pulp.LpVariable(f"v{i:07d}", lowBound=v.lb, upBound=v.ub, cat=cat[v.integer])
                                for i, v in enumerate(model.vars)]
        self._rows(skip_cuts=False)
        self.holds = 0
        self.relaxed = False
        self.start: list[float] | None = None

    def _rows(self, skip_cuts: bool) -> None:
        pulp = self.pulp
        self.prob: Any = pulp.LpProblem("pd_planner", pulp.LpMinimize)
        sense = {"<=": pulp.LpConstraintLE, ">=": pulp.LpConstraintGE, "==": pulp.LpConstraintEQ}
        for k, row in enumerate(self.model.rows):
            if skip_cuts and row.cut:
                continue
            expr = pulp.LpAffineExpression([(self.vars[i], a) for i, a in row.terms.items()])
            self.prob.addConstraint(pulp.LpConstraint(expr, sense[row.sense], f"r{k}", row.rhs))

    def relax(self, ints: list[int], on: bool) -> None:
        self.relaxed = on
        for i in ints:
            self.vars[i].cat = self.pulp.LpContinuous if on else self.pulp.LpInteger

    def set_bounds(self, box: dict[int, tuple[float, float | None]]) -> None:
        for i, (lo, hi) in box.items():
            self.vars[i].lowBound, self.vars[i].upBound = lo, hi

    def hint(self, values: list[float]) -> None:
        self.start = [round(x) if self.model.vars[i].integer else x for i, x in enumerate(values)]

    def drop_cuts(self) -> None:
        """Rebuild the rows without the valid inequalities (called before any objective is held)."""
        self._rows(skip_cuts=True)

    def hold(self, goal: dict[int, float], value: float) -> None:
        expr = self.pulp.LpAffineExpression([(self.vars[i], a) for i, a in goal.items()])
        self.prob.addConstraint(self.pulp.LpConstraint(expr, self.pulp.LpConstraintLE, f"hold{self.holds}", value))
        self.holds += 1

    def minimise(self, goal: dict[int, float], time_limit_s: float, mip_gap: float) -> StageResult:
        self.prob.setObjective(self.pulp.LpAffineExpression([(self.vars[i], a) for i, a in goal.items()]))
        return self._solve(goal, time_limit_s, mip_gap)

    def _solve(self, goal: dict[int, float], time_limit_s: float, mip_gap: float) -> StageResult:
        raise NotImplementedError

    def _values(self) -> list[float]:
        return [float(v.varValue) if v.varValue is not None else 0.0 for v in self.vars]

    def _objective(self, goal: dict[int, float], values: list[float]) -> float:
        return sum(a * values[i] for i, a in goal.items())


@register("highs", "HiGHS", "HiGHS through PuLP and highspy", available=highs_available, fallback="cbc")
class PulpHighs(_PulpRunner):
    """HiGHS through highspy, with warm starts passed in (PuLP's HiGHS interface drops them)."""

    name = "pulp-highs"

    def _solve(self, goal: dict[int, float], time_limit_s: float, mip_gap: float) -> StageResult:
        solver = _highs_with_start(msg=False, timeLimit=time_limit_s, gapRel=mip_gap, threads=1)
        solver.start = None if self.relaxed else self.start
        self.prob.solve(solver)
        return self._read_highs(goal)

    def _read_highs(self, goal: dict[int, float]) -> StageResult:
        import highspy

        h = self.prob.solverModel
        ms = h.getModelStatus()
        info = h.getInfo()
        has_sol = info.primal_solution_status == 2  # kSolutionStatusFeasible
        S = highspy.HighsModelStatus
        status: Status
        if ms == S.kOptimal:
            status = "optimal"
        elif ms in (S.kTimeLimit, S.kIterationLimit, S.kInterrupt, S.kSolutionLimit):
            status = "time_limit"
        elif ms in (S.kInfeasible, S.kUnboundedOrInfeasible):
            status = "infeasible"
        else:
            status = "error"
        if not has_sol or status == "infeasible":
            return StageResult(status, None, None, None,
                               "" if status != "error" else f"HiGHS: {h.modelStatusToString(ms)}")
        values = self._values()
        obj = self._objective(goal, values)
        bound: float | None = obj
        if self.model.num_integer and not self.relaxed:
            raw = info.mip_dual_bound
            bound = None if raw is None else float(raw)
        if bound is None or not math.isfinite(bound):
            bound = None
        return StageResult(status, values, obj, bound)


@register("cbc", "CBC", "CBC bundled with PuLP")
class PulpCbc(_PulpRunner):
    """CBC as PuLP runs it (a subprocess); the bound is read from its log."""

    name = "pulp-cbc"

    def _solve(self, goal: dict[int, float], time_limit_s: float, mip_gap: float) -> StageResult:
        pulp = self.pulp
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "cbc.log")
            warm = self.start is not None and not self.relaxed
            if warm and self.start is not None:
                for var, x in zip(self.vars, self.start, strict=False):
                    var.setInitialValue(x)
            with warnings.catch_warnings():  # PuLP 3 says the bundled CBC goes in 4.0; it is the CBC we have
                warnings.simplefilter("ignore", DeprecationWarning)
                solver = pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, gapRel=mip_gap, logPath=log,
                                           warmStart=warm)
            try:
                self.prob.solve(solver)
            except pulp.PulpSolverError as e:
                return StageResult("error", None, None, None, f"CBC failed: {e}")
            text = ""
            if os.path.exists(log):
                with open(log) as f:
                    text = f.read()
        return self._read_cbc(goal, text)

    def _read_cbc(self, goal: dict[int, float], log: str) -> StageResult:
        # prob.sol_status: 1 optimal, 2 integer feasible (stopped early), -1 infeasible, -2 unbounded, 0 none.
        st = self.prob.sol_status
        stopped = "Stopped on time" in log or "Stopped on iterations" in log
        status: Status
        if st == 1 and not stopped:
            status = "optimal"
        elif st in (1, 2):
            status = "time_limit" if stopped else "feasible"
        elif st == -1 or self.prob.status == -1 or "infeasible" in log.lower():
            return StageResult("infeasible", None, None, None)
        else:
            return StageResult("time_limit" if stopped else "error", None, None, None,
                               "" if stopped else f"CBC: status {self.prob.status}")
        values = self._values()
        obj = self._objective(goal, values)
        if self.relaxed:
            return StageResult(status, values, obj, obj)
        m = re.search(r"Lower bound:\s*([-+0-9.eE]+)", log)
        bound = float(m.group(1)) if m else (obj if status == "optimal" else None)
        if m and bound is not None and self.prob.objective.constant:
            bound += float(self.prob.objective.constant)
        return StageResult(status, values, obj, bound)


@functools.cache
def _highs_class() -> Any:
    import pulp

    class HighsWithStart(pulp.HiGHS):  # type: ignore[misc]  # pulp is untyped: its classes are Any
        """pulp.HiGHS that passes a starting solution to highspy before running (PuLP's doesn't)."""

        start: list[float] | None = None

        def callSolver(self, lp: Any) -> None:
            if self.start is not None:
                import highspy

                order = sorted(lp.variables(), key=lambda var: var.index)
                sol = highspy.HighsSolution()
                sol.col_value = [self.start[int(var.name[1:])] for var in order]
                sol.value_valid = True
                lp.solverModel.setSolution(sol)
            lp.solverModel.run()

    return HighsWithStart


@functools.cache
def _quiet_highs_banner() -> None:
    """Construct one Highs object with stdout (fd 1) pointed at /dev/null: highspy prints its
    licence banner from C++ on the first construction in a process, before `output_flag` can be
    set, which would land in the middle of the CLI's table."""
    import sys

    import highspy

    sys.stdout.flush()
    saved, null = os.dup(1), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        highspy.Highs()  # type: ignore[no-untyped-call]  # highspy types Highs.__init__ without annotations
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)


def _highs_with_start(**kwargs: Any) -> Any:
    _quiet_highs_banner()
    return _highs_class()(**kwargs)
