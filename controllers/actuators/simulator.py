"""SimulatorActuator: drives the discrete-event FleetSimulator (planner.simulate) for replays,
where new replicas become ready after the configured start-up time. Registered as actuator.kind
`simulator` (replays only: it needs the simulator, which `planner control` does not have).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from controllers.actuators.base import ACTUATORS, Actuation, ActuatorContext, ApplyRequest, ApplyResult, PoolState
from planner.io.errors import InputError

V = TypeVar("V")


@runtime_checkable
class SimFleet(Protocol):
    """What the actuator needs of planner.simulate's FleetSimulator."""

    def set_replicas(self, pool: str, n: int, ready_at_s: float | None = None) -> None: ...

    def set_routing(self, routing: dict[str, dict[str, float]], at_s: float | None = None,
                    pairing: dict[str, dict[str, dict[str, float]]] | None = None) -> None: ...


class SimulatorActuator:
    """Drives a FleetSimulator: added replicas become ready `startup_s` after the decision."""

    def __init__(self, sim: SimFleet, startup_s: float, clock: Callable[[], float], initial: dict[str, int] | None = None):
        self.sim = sim
        self.startup_s = startup_s
        self.clock = clock
        self._desired: dict[str, int] = dict(initial or {})
        self._ready_at: dict[str, list[float]] = {p: [float("-inf")] * n for p, n in self._desired.items()}

    def pools(self) -> dict[str, PoolState]:
        now = self.clock()
        return {p: PoolState(p, n, sum(1 for t in self._ready_at.get(p, []) if t <= now)) for p, n in self._desired.items()}

    def apply(self, request: ApplyRequest) -> ApplyResult:
        res = ApplyResult()
        now = self.clock()
        for p, n in sorted(request.target.items()):
            before = self._desired.get(p, 0)
            if n == before:
                continue
            ready_at = now + self.startup_s if n > before else now
            self.sim.set_replicas(p, n, ready_at_s=ready_at)
            times = sorted(self._ready_at.get(p, []))
            # scale-down removes the newest (not yet ready) replicas first, as a Deployment does
            self._ready_at[p] = times[:n] if n < before else times + [ready_at] * (n - before)
            self._desired[p] = n
            res.changed[p] = (before, n)
        if request.routing and hasattr(self.sim, "set_routing"):
            try:
                by_class = self._sim_routing(request.routing)
                pairs = self._sim_routing(request.pairing) if request.pairing else {}
                if by_class:
                    self.sim.set_routing(by_class, pairing={c: p for c, p in pairs.items() if c in by_class} or None)
                    res.routing_changed = True
            except InputError as exc:  # unknown class or pool, bad weights: reported, as the other actuators do
                res.errors.append(f"routing: {exc}")
        return res

    def _sim_routing(self, routing: dict[str, dict[str, dict[str, V]]]) -> dict[str, dict[str, V]]:
        """The loop's {model: {class: {pool: weight}}} as the simulator's {class: {pool: weight}}.

        The controller plans one class per model, named after the model; a replay's classes are
        finer (e.g. length buckets), so a class the simulator does not know but whose id is a
        model gets applied to every simulator class of that model (sim.class_model); a class the
        simulator knows is applied to itself (and wins over its model's entry); anything else is
        passed on for the simulator to reject by name. The pairing ({model: {class: {prefill pool:
        {decode pool: weight}}}}) maps onto classes the same way."""
        class_model: dict[str, str] = getattr(self.sim, "class_model", {})
        out: dict[str, dict[str, V]] = {}
        direct: dict[str, dict[str, V]] = {}
        for model, classes in routing.items():
            for cid, weights in classes.items():
                mine = [c for c, m in class_model.items() if m == model] if cid == model and cid not in class_model else []
                if not mine:
                    direct[cid] = dict(weights)
                for c in mine:
                    out[c] = dict(weights)
        out.update(direct)
        return out


@ACTUATORS.register("simulator", "drives planner.simulate's FleetSimulator (replays: bench/autoscale_trace.py)")
def build(ctx: ActuatorContext) -> Actuation:
    """A SimulatorActuator on `ctx.sim`, its replicas starting from the fleet's current ones."""
    if not isinstance(ctx.sim, SimFleet) or ctx.clock is None:
        raise InputError(None, "actuator.kind",
                         "'simulator' is for replays (bench/autoscale_trace.py), not `planner control`: "
                         f"one of {', '.join(n for n in ACTUATORS.names() if n != 'simulator')}")
    return Actuation(SimulatorActuator(ctx.sim, ctx.cfg.startup_s, ctx.clock, initial=dict(ctx.fleet.current)))
