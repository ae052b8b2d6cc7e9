"""The actuator seam: what the loop hands an actuator, what it gets back, and the registry of actuators.

An actuator is what the loop needs of a platform: the pools and their replicas (`pools()`:
desired and ready) and `apply(ApplyRequest) -> ApplyResult` (replicas per pool, routing weights,
optionally the P->D pairing, and the reason recorded with the change). An implementation
registers a builder under a name with `@ACTUATORS.register(name, summary, options=(keys of actuator.options
it reads))`; the builder gets an
`ActuatorContext` (the controller config, the fleet, the controller's metrics registry, a
Kubernetes client when there is one) and returns an `Actuation` (the actuator and, when it needs
one, the leader elector that gates it). `actuator.kind` in the controller config is validated
against the registry, and `planner control` builds whatever is registered under it, so adding an
actuator is one module in controllers/actuators/ (plus its tests): the package imports every
module in it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from controllers.config import ControllerConfig
from controllers.registry import Registry
from planner.io.errors import InputError
from planner.io.schema import Fleet

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from prometheus_client import CollectorRegistry

ClassWeights = dict[str, float]
"""{pool id: weight} of one request class (the weights of a class sum to 1 over each side)."""
Routing = dict[str, dict[str, ClassWeights]]
"""{model: {class id: {pool id: weight}}}: ModelPlan.routing per model."""
Pairing = dict[str, dict[str, dict[str, ClassWeights]]]
"""{model: {class id: {prefill pool: {decode pool: weight}}}}: ModelPlan.pairing per model."""


@dataclass(frozen=True)
class PoolState:
    pool: str
    desired: int
    ready: int


@dataclass(frozen=True)
class ApplyRequest:
    """One change to apply: replicas per pool, the routing (and pairing) to write, and why.

    `routing` empty: leave the routing as it is (a held decision); `pairing` empty: the plan does
    not restrict which decode pool a prefill pool hands off to."""

    target: Mapping[str, int]
    routing: Routing = field(default_factory=dict)
    reason: str = "re-plan"
    pairing: Pairing = field(default_factory=dict)
    may_write: Callable[[], bool] | None = None
    """Asked before each write (each attempt of it): False stops the writes, the rest of the request is not written
    (`ApplyResult.lost_lease`); the loop passes the elector's `holds_lease`. None: always write."""


@dataclass
class ApplyResult:
    changed: dict[str, tuple[int, int]] = field(default_factory=dict)
    routing_changed: bool = False
    errors: list[str] = field(default_factory=list)
    lost_lease: bool = False
    """`ApplyRequest.may_write` said no before a write: that write and the ones after it were not made."""

    @property
    def ok(self) -> bool:
        return not self.errors


class Actuator(Protocol):
    """A platform the controller scales: read its pools, apply a request."""

    def pools(self) -> dict[str, PoolState]: ...

    def apply(self, request: ApplyRequest) -> ApplyResult: ...


class Elector(Protocol):
    """Leader election step the loop calls each interval (controllers.leader)."""

    def try_acquire_or_renew(self) -> bool: ...

    @property
    def last_error(self) -> str:
        """Why the last step failed ('' if it did not: leading, or another replica holds the Lease)."""
        ...

    def holds_lease(self) -> bool:
        """Whether the last renewal is still within the renew deadline (asked before each write)."""
        ...


@dataclass
class ActuatorContext:
    """What an actuator builder may use; the parts tests swap (Kubernetes client, simulator) are fields."""

    cfg: ControllerConfig
    fleet: Fleet
    metrics_registry: CollectorRegistry
    api_client: ApiClient | None = None
    """A Kubernetes client given by the caller (tests: the fake API server); None: `kube()` makes one."""
    make_api_client: Callable[[bool], ApiClient] | None = None
    """How `kube()` connects when no client was given (in_cluster -> client); the kubernetes actuator's default."""
    sim: object | None = None
    """A discrete-event simulator (planner.simulate.FleetSimulator) for replays; None in `planner control`."""
    clock: Callable[[], float] | None = None
    """Simulated clock of `sim` (replays)."""
    dry_run: bool = False
    """`planner control --dry-run`: the actuator changes nothing and no Lease is used, so the start-up checks require
    only what a dry run reads (controllers.access.check_access)."""

    def kube(self) -> ApiClient:
        """The given Kubernetes client, else one from the kubeconfig / service account (cached), its requests bounded
        by actuator.request_timeout_s (`with_request_timeout`)."""
        from controllers.actuators.kubernetes import with_request_timeout

        if self.api_client is None:
            if self.make_api_client is None:
                raise InputError(None, "actuator.kind", "a Kubernetes client, and none was given")
            self.api_client = self.make_api_client(self.cfg.actuator.in_cluster)
        return with_request_timeout(self.api_client, self.cfg.actuator.request_timeout_s)


@dataclass(frozen=True)
class Actuation:
    """What a builder returns: the actuator, and the elector that gates it (None: act unconditionally)."""

    actuator: Actuator
    elector: Elector | None = None


ActuatorBuilder = Callable[[ActuatorContext], Actuation]
ACTUATORS: Registry[ActuatorBuilder] = Registry("actuator.kind", default="kubernetes")
"""Every actuator by name (`actuator.kind` in the controller config)."""


def build_actuator(ctx: ActuatorContext) -> Actuation:
    """The actuator registered under `ctx.cfg.actuator.kind`, built for `ctx`."""
    return ACTUATORS.get(ctx.cfg.actuator.kind).factory(ctx)
