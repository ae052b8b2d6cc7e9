"""The interface every solver backend implements, and the registry the CLI reads its choices from.

A backend drives one MILP library stage by stage on a `formulation.LinearModel`: `load` it once,
then `minimise` objectives under bounds, holds and hints that `solvers.backends` sets between
stages (LP relaxation, RENS neighbourhood, full MIP, lexicographic objectives). Adding a backend is
one module in `solvers/runners/` holding a class that satisfies `SolverBackend`, decorated with
`@register("name", ...)`; the package imports every module in it, so nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from solvers.formulation import LinearModel
from solvers.problem import Status

DEFAULT_BACKEND = "highs"
"""The backend the CLI and `solve` use when none is named (listed first among the choices)."""


@dataclass
class StageResult:
    """One minimisation: status, values of all variables, objective and best bound."""

    status: Status
    values: list[float] | None
    objective: float | None
    bound: float | None
    message: str = ""


class SolverBackend(Protocol):
    """A MILP library behind the seven calls the staged solve makes (see `solvers.backends`)."""

    name: str
    """What the solution reports as its backend (e.g. 'pulp-highs', 'ortools-scip'); set by `load` at the latest."""

    def load(self, model: LinearModel) -> None:
        """Build the library's model of `model` (all rows, cuts included)."""

    def relax(self, ints: list[int], on: bool) -> None:
        """Make the integer variables `ints` continuous (on) or integer again (off)."""

    def set_bounds(self, box: dict[int, tuple[float, float | None]]) -> None:
        """Set (lower, upper) bounds of the given variables; None is no upper bound."""

    def hint(self, values: list[float]) -> None:
        """A starting solution for the next MIP solves (integers rounded)."""

    def drop_cuts(self) -> None:
        """Leave the valid inequalities (`Row.cut`) out of later solves."""

    def hold(self, goal: dict[int, float], value: float) -> None:
        """Add the row sum(goal) <= value (an earlier objective held at its optimum)."""

    def minimise(self, goal: dict[int, float], time_limit_s: float, mip_gap: float) -> StageResult:
        """Minimise sum(goal[i] * x_i) within the time limit and relative gap."""
        ...


@dataclass(frozen=True)
class BackendEntry:
    """A registered backend: how to make one, and what the CLI and fall-back say of it."""

    key: str
    label: str
    """Display name in notes, e.g. 'HiGHS'."""
    summary: str
    """A few words for the CLI's help text."""
    factory: Callable[[], SolverBackend]
    available: Callable[[], bool]
    """Whether the library can run here (checked when the backend is chosen)."""
    fallback: str | None = None
    """Backend used instead when this one is not available (None: fail)."""


_REGISTRY: dict[str, BackendEntry] = {}
B = TypeVar("B", bound=SolverBackend)


def _always() -> bool:
    return True


def register(key: str, label: str, summary: str, *, available: Callable[[], bool] = _always,
             fallback: str | None = None) -> Callable[[type[B]], type[B]]:
    """Class decorator: register a `SolverBackend` (built with no arguments) under `key`."""
    def deco(cls: type[B]) -> type[B]:
        if key in _REGISTRY:
            raise ValueError(f"solver backend {key!r} registered twice")
        _REGISTRY[key] = BackendEntry(key, label, summary, cls, available, fallback)
        return cls
    return deco


def backend_names() -> list[str]:
    """Registered backend names: the default first, then alphabetically (the CLI's choices)."""
    return sorted(_REGISTRY, key=lambda k: (k != DEFAULT_BACKEND, k))


def backend_entry(key: str) -> BackendEntry:
    """The entry registered under `key`; ValueError naming the registered ones otherwise."""
    if key not in _REGISTRY:
        raise ValueError(f"backend must be one of {tuple(backend_names())}, got {key!r}")
    return _REGISTRY[key]


def backend_help() -> str:
    """'highs | cbc | ortools' for a CLI option's help text."""
    return " | ".join(backend_names())
