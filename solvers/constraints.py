"""Constraint families and the typed records that name a constraint across the solver seam.

A solution reports its binding constraints as `Binding(family, target)` and a diagnosis its
relaxations with a `Family` as kind, so the planner dispatches on the enum instead of parsing
strings back. `str(Binding(Family.INVENTORY, "H100"))` is 'inventory[H100]', the text these
records had when they were strings (logs and tests keep reading the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TargetKind(StrEnum):
    """What the `target` of a constraint names."""

    CLASS = "class"
    """A request class id."""
    VARIANT = "variant"
    """A variant (pool) id."""
    RESOURCE = "resource"
    """A GPU type."""
    GROUP = "group"
    """A group (model) id."""
    BACKEND = "backend"
    """A solver backend name (only for Family.SOLVER)."""


class Family(StrEnum):
    """A family of constraints, as reported in bindings and relaxations (a `str`: 'inventory' == Family.INVENTORY)."""

    INVENTORY = "inventory"
    """GPUs of one type in use <= available (target: GPU type)."""
    CAPACITY = "capacity"
    """A pool at its target utilisation (target: variant)."""
    KV_LINK = "kv_link"
    """KV-transfer bandwidth of a prefill (out) or decode (in) pool (target: variant)."""
    PD_RATIO = "pd_ratio"
    """Prefill GPUs / decode GPUs of a group within bounds (target: group; detail min|max)."""
    MIN_REPLICAS = "min_replicas"
    """Replicas of each side of a group with demand (target: group; detail prefill|decode)."""
    STEP = "step"
    """|replicas - current| <= max_step (target: variant; detail up|down)."""
    POOL_SIZE = "pool_size"
    """A pool at the fewest replicas its capacities assume (0 or >= k: a bursty class's clusters, or a shared queue,
    spread over k; target: variant). Reported as binding only; never relaxed (a structural fact, not a policy)."""
    POOL_FLOOR = "pool_floor"
    """A pool at its floor (the fleet's limits.pool_min_replicas, the controller's guard.min_replicas; target: variant).
    Reported as binding only; never relaxed (only GPUs make room for a floor: the inventory's slack)."""
    UNSERVED = "unserved"
    """Demand of a class no allowed fleet serves (target: class)."""
    NO_VARIANT = "no_variant"
    """No variant of positive capacity on one side of a class (target: class; detail the side)."""
    NO_PAIRING = "no_pairing"
    """Every prefill->decode pairing able to serve a class is forbidden (target: class)."""
    SOLVER = "solver"
    """The solver itself failed (target: backend)."""

    @property
    def target_kind(self) -> TargetKind:
        return _TARGET[self]


_TARGET = {
    Family.INVENTORY: TargetKind.RESOURCE, Family.CAPACITY: TargetKind.VARIANT, Family.KV_LINK: TargetKind.VARIANT,
    Family.PD_RATIO: TargetKind.GROUP, Family.MIN_REPLICAS: TargetKind.GROUP, Family.STEP: TargetKind.VARIANT,
    Family.POOL_SIZE: TargetKind.VARIANT, Family.POOL_FLOOR: TargetKind.VARIANT, Family.UNSERVED: TargetKind.CLASS,
    Family.NO_VARIANT: TargetKind.CLASS,
    Family.NO_PAIRING: TargetKind.CLASS,
    Family.SOLVER: TargetKind.BACKEND,
}

UNITS = {Family.UNSERVED: "req/s", Family.NO_VARIANT: "req/s", Family.NO_PAIRING: "req/s", Family.INVENTORY: "GPUs",
         Family.MIN_REPLICAS: "replicas", Family.PD_RATIO: "GPUs", Family.STEP: "replicas"}
"""What a relaxation of each family is counted in."""


@dataclass(frozen=True)
class Binding:
    """A constraint tight at a solution: its family and what it is about (see `Family.target_kind`)."""

    family: Family
    target: str

    def __str__(self) -> str:
        return f"{self.family.value}[{self.target}]"


__all__ = ["UNITS", "Binding", "Family", "TargetKind"]
