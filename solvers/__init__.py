"""The optimisation: size the fleet (replicas per variant) and route classes to it.

`solve(problem, backend=...)` returns a `Solution`; `diagnose(problem)` explains an infeasible
one as `Relaxation` records. The model itself is in `formulation.py`; the backends that solve it
are registered in `runners/`, the objectives in `objectives.py`; bindings and relaxations name
their constraint by a `Family` (`constraints.py`). Imports nothing of the project (plain records
in, plain records out).
"""

from solvers.backends import BACKENDS, solve
from solvers.constraints import Binding, Family, TargetKind
from solvers.diagnose import Relaxation, diagnose
from solvers.objectives import OBJECTIVES, Objective, ObjectiveSpec, choices_text, objective_help, objective_names
from solvers.problem import ClassSpec, Problem, Solution, VariantSpec
from solvers.runners import SolverBackend, backend_help, backend_names

__all__ = ["BACKENDS", "OBJECTIVES", "Binding", "ClassSpec", "Family", "Objective", "ObjectiveSpec", "Problem",
           "Relaxation", "Solution", "SolverBackend", "TargetKind", "VariantSpec", "backend_help", "backend_names",
           "choices_text", "diagnose", "objective_help", "objective_names", "solve"]
