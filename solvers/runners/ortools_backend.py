"""OR-Tools backend: the linear-solver wrapper (pywraplp) with SCIP, else CBC.

The bound is the solver's `BestBound()`. A FEASIBLE answer counts as stopped by the time limit
when the solve used at least 95% of it (pywraplp does not say why it stopped).
"""

from __future__ import annotations

import math
import time
from typing import Any

from solvers.formulation import LinearModel
from solvers.problem import Status
from solvers.runners.base import StageResult, register

TIME_LIMIT_SHARE = 0.95
"""Share of the time limit past which a FEASIBLE or NOT_SOLVED answer is taken as stopped by it."""


@register("ortools", "OR-Tools", "OR-Tools with SCIP, else CBC")
class OrtoolsRunner:
    """OR-Tools linear solver wrapper (pywraplp) with SCIP, else CBC."""

    name = "ortools"

    def load(self, model: LinearModel) -> None:
        from ortools.linear_solver import pywraplp

        self.pywraplp: Any = pywraplp
        self.model = model
        self.relaxed = False
        for engine in ("SCIP", "CBC"):
            solver = pywraplp.Solver.CreateSolver(engine)
            if solver is not None:
                self.solver: Any = solver
                self.name = f"ortools-{engine.lower()}"
                break
        else:
            raise RuntimeError("OR-Tools has neither SCIP nor CBC")
        inf = self.solver.infinity()
        self.vars: list[Any] = [self.solver.Var(v.lb, inf if v.ub is None else v.ub, v.integer, f"v{i}")
                                for i, v in enumerate(model.vars)]
        self.rows: list[Any] = []
        for k, row in enumerate(model.rows):
            lo, hi = {"<=": (-inf, row.rhs), ">=": (row.rhs, inf), "==": (row.rhs, row.rhs)}[row.sense]
            ct = self.solver.Constraint(lo, hi, f"r{k}")
            self.rows.append(ct)
            for i, a in row.terms.items():
                ct.SetCoefficient(self.vars[i], a)

    def relax(self, ints: list[int], on: bool) -> None:
        self.relaxed = on
        for i in ints:
            self.vars[i].SetInteger(not on)

    def set_bounds(self, box: dict[int, tuple[float, float | None]]) -> None:
        for i, (lo, hi) in box.items():
            self.vars[i].SetBounds(lo, self.solver.infinity() if hi is None else hi)

    def hint(self, values: list[float]) -> None:
        self.solver.SetHint(self.vars, [round(x) if self.model.vars[i].integer else x for i, x in enumerate(values)])

    def drop_cuts(self) -> None:
        inf = self.solver.infinity()
        for ct, row in zip(self.rows, self.model.rows, strict=False):
            if row.cut:
                ct.SetBounds(-inf, inf)

    def hold(self, goal: dict[int, float], value: float) -> None:
        ct = self.solver.Constraint(-self.solver.infinity(), value)
        for i, a in goal.items():
            ct.SetCoefficient(self.vars[i], a)

    def minimise(self, goal: dict[int, float], time_limit_s: float, mip_gap: float) -> StageResult:
        pywraplp = self.pywraplp
        obj = self.solver.Objective()
        obj.Clear()
        for i, a in goal.items():
            obj.SetCoefficient(self.vars[i], a)
        obj.SetMinimization()
        self.solver.SetTimeLimit(int(max(time_limit_s, 0.05) * 1000))
        params = pywraplp.MPSolverParameters()
        params.SetDoubleParam(params.RELATIVE_MIP_GAP, mip_gap)
        t0 = time.perf_counter()
        code = self.solver.Solve(params)
        took = time.perf_counter() - t0
        S = pywraplp.Solver
        status: Status
        if code == S.OPTIMAL:
            status = "optimal"
        elif code == S.FEASIBLE:
            status = "time_limit" if took >= TIME_LIMIT_SHARE * time_limit_s else "feasible"
        elif code == S.INFEASIBLE:
            return StageResult("infeasible", None, None, None)
        elif code == S.NOT_SOLVED and took >= TIME_LIMIT_SHARE * time_limit_s:
            return StageResult("time_limit", None, None, None)
        else:
            return StageResult("error", None, None, None, f"OR-Tools status {code}")
        values = [float(v.solution_value()) for v in self.vars]
        value = sum(a * values[i] for i, a in goal.items())
        bound: float | None = float(obj.BestBound()) if self.model.num_integer and not self.relaxed else value
        if bound is not None and not math.isfinite(bound):
            bound = None
        return StageResult(status, values, value, bound)
