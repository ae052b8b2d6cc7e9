"""The objectives the fleet-sizing ILP can minimise, in one registry: name, unit, help and weight.

Adding an objective is one entry here (plus its tests): an `Objective` member and its
`ObjectiveSpec`. The formulation reads `weight` (what one replica of a variant adds to the
objective), the decomposition `separable`, and the CLI its choices and help text from `OBJECTIVES`;
the planner reads `unit` for the plan file. An objective that needs a per-replica quantity the
solver does not know yet also needs that field on `VariantSpec` (and the planner to fill it in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from solvers.problem import VariantSpec


class Objective(StrEnum):
    """What the ILP optimises (a `str`, so 'cost' == Objective.COST)."""

    COST = "cost"
    GPUS = "gpus"
    POWER = "power"
    MAX_LOAD = "max_load"


@dataclass(frozen=True)
class ObjectiveSpec:
    """How one objective is built and reported."""

    unit: str
    """What the objective value is counted in (the plan file's `solver.objective_unit`)."""
    summary: str
    """A few words for the CLI's help text."""
    weight: Callable[[VariantSpec], float]
    """What one replica of a variant adds to the fleet term of the objective (USD/h, GPUs, W)."""
    maximise_load: bool = False
    """Maximise the common load multiplier first; the fleet term (cost) only breaks ties."""
    tie_break: Callable[[VariantSpec], float] | None = None
    """What one replica adds to a second term, minimised among the plans of the least fleet term (a lexicographic
    second solve, solvers.formulation): for "gpus", cost, so that of two plans of as many GPUs the cheaper is chosen."""

    @property
    def separable(self) -> bool:
        """A sum over groups (models), so each group can be solved alone (`solvers.decompose`)."""
        return not self.maximise_load


def _cost(v: VariantSpec) -> float:
    return v.cost


def _gpus(v: VariantSpec) -> float:
    return float(v.units)


def _power(v: VariantSpec) -> float:
    return v.power_w


OBJECTIVES: dict[Objective, ObjectiveSpec] = {
    Objective.COST: ObjectiveSpec("USD/h", "price per hour", _cost),
    Objective.GPUS: ObjectiveSpec("GPUs", "GPUs used, the cheapest of as many", _gpus, tie_break=_cost),
    Objective.POWER: ObjectiveSpec("W", "board watts", _power),
    Objective.MAX_LOAD: ObjectiveSpec("x load", "how much more traffic fits", _cost, maximise_load=True),
}


def as_objective(name: Objective | str) -> Objective:
    """The member named `name`; ValueError naming the registered choices if there is none."""
    try:
        return Objective(name)
    except ValueError:
        raise ValueError(f"objective must be {choices_text(objective_names())}, got {name!r}") from None


def spec(objective: Objective | str) -> ObjectiveSpec:
    """The registry entry of `objective` (a name or a member)."""
    return OBJECTIVES[as_objective(objective)]


def objective_names() -> list[str]:
    """Registered objective names, in registry order (the CLI's choices)."""
    return [o.value for o in OBJECTIVES]


def objective_help() -> str:
    """'cost (price per hour) | gpus (GPUs used) | ...' for a CLI option's help text."""
    return " | ".join(f"{o.value} ({s.summary})" for o, s in OBJECTIVES.items())


def choices_text(names: list[str]) -> str:
    """'a, b or c': a list of choices in an error message."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


__all__ = ["OBJECTIVES", "Objective", "ObjectiveSpec", "as_objective", "choices_text", "objective_help",
           "objective_names", "spec"]
