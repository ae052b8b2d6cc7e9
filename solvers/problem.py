"""The solver's input and output: plain records, no knowledge of models, GPUs or SLOs.

`solvers` imports nothing of the project, so the ILP can be tested and benchmarked alone. The
planner translates its domain (request classes, variants, capacities under SLO) into a `Problem`
and reads a `Solution` back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from solvers.constraints import Binding
from solvers.objectives import Objective, as_objective

Side = Literal["prefill", "decode", "mixed"]
Status = Literal["optimal", "feasible", "infeasible", "time_limit", "error"]


@dataclass(frozen=True)
class ClassSpec:
    """A demand: `rate` requests/s of one group (model) that must be served."""

    id: str
    group: str
    rate: float
    kv_bytes: float = 0.0
    """Bytes of KV cache shipped prefill -> decode per request (isl x kv_bytes_per_token)."""


@dataclass(frozen=True)
class VariantSpec:
    """A replica kind that can serve some classes of its group.

    `units` are GPUs per replica (the tensor-parallel size); `resource` the GPU type drawn on;
    `cost` the price of one replica per hour; `utilization` the target share of capacity used.
    """

    id: str
    group: str
    side: Side
    resource: str
    units: int
    cost: float
    utilization: float = 1.0
    min_replicas: int = 0
    """A floor on the pool's replicas (row pool_floor[v]: the fleet's limits.pool_min_replicas), inside the inventory;
    the step limit yields to it (a pool below its floor goes up to it at once)."""
    max_replicas: int | None = None
    current: int = 0
    link_bytes_per_s: float | None = None
    """KV transfer bandwidth of one replica (None: unconstrained)."""
    power_w: float = 0.0
    """Board power of one replica, W (objective "power")."""
    pair_key: str = ""
    """What pairing rules see of this variant (e.g. its GPU type, or GPU type and TP); '' means `resource`."""
    min_when_used: int = 0
    """Replicas its capacities assume once it serves anything: n = 0 or n >= this (a bursty class's pool size
    n*, planner.planning.capacity.pool_class_capacities: its clusters spread over n* replicas, and fewer
    would not carry the per-replica capacity given). 0 or 1: no such floor."""

    @property
    def key(self) -> str:
        return self.pair_key or self.resource


@dataclass
class Problem:
    """Mélange-style fleet sizing with P/D pairing.

    capacity[(class_id, variant_id)] is the rate (req/s) one replica of the variant can take of
    that class alone under its SLO; pairs absent or <= 0 cannot be routed.
    """

    classes: list[ClassSpec]
    variants: list[VariantSpec]
    capacity: dict[tuple[str, str], float]
    inventory: dict[str, int] = field(default_factory=dict)
    """GPUs available per resource; a resource absent here is unlimited."""
    min_replicas_per_group: dict[str, int] = field(default_factory=dict)
    """Per group: each side (prefill+mixed, decode+mixed) of a group with demand gets at least this many replicas."""
    pd_ratio_bounds: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    """Per group: (min, max) of prefill GPUs / decode GPUs."""
    max_step: int | None = None
    """Largest |n_v - current_v| allowed per variant (controller step limit)."""
    churn_cost: float = 0.0
    """Objective penalty per replica added or removed against `current`."""
    objective: Objective = Objective.COST
    """What to optimise (see `solvers.objectives`); a name such as 'cost' is accepted and converted."""
    forbidden_pairs: frozenset[tuple[str, str]] = frozenset()
    """(prefill pair key, decode pair key) pairs whose KV transfer the fleet cannot run. Empty: any
    prefill variant may hand off to any decode variant of its group (one pairing row per class)."""

    def __post_init__(self) -> None:
        self.objective = as_objective(self.objective)  # ValueError for an unknown name, before any work

    def pair_allowed(self, prefill_key: str, decode_key: str) -> bool:
        return (prefill_key, decode_key) not in self.forbidden_pairs


@dataclass
class Solution:
    status: Status
    backend: str
    replicas: dict[str, int] = field(default_factory=dict)
    flow: dict[tuple[str, str], float] = field(default_factory=dict)
    """Rate (req/s) of class c routed to variant v."""
    pair_flow: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """(class, prefill pair key, decode pair key) -> req/s handed off along that pairing; filled only
    when the problem forbids some pairs (otherwise any prefill may pair with any decode)."""
    objective: float | None = None
    bound: float | None = None
    gap: float | None = None
    """Relative gap |objective - bound| / max(|objective|, 1e-9)."""
    seconds: float = 0.0
    load_multiplier: float | None = None
    binding: list[Binding] = field(default_factory=list)
    """Constraints that are tight at the solution (`str()` of one reads e.g. 'inventory[H100]')."""
    message: str = ""

    @property
    def ok(self) -> bool:
        """A usable answer: proven optimal, or an incumbent found before the time limit."""
        return self.status in ("optimal", "feasible") or (self.status == "time_limit" and bool(self.replicas))
