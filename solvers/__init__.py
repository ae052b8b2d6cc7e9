"""The optimisation: size the fleet (replicas per variant) and route classes to it.

`solve(problem, backend=...)` returns a `Solution`; `diagnose(problem)` explains an infeasible
one as `Relaxation` records. The model itself is in `formulation.py`. Imports nothing of the
project (plain records in, plain records out).
"""

from solvers.backends import BACKENDS, solve
from solvers.diagnose import Relaxation, diagnose
from solvers.problem import ClassSpec, Problem, Solution, VariantSpec

__all__ = ["BACKENDS", "ClassSpec", "Problem", "Relaxation", "Solution", "VariantSpec", "diagnose", "solve"]
