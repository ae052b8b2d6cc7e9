"""FileActuator: write what the controller wants to one JSON file and change nothing else.

For GitOps set-ups (a pipeline commits the file and the platform follows it) and for runs that must
leave a record without a cluster. The document is {"replicas": {pool: n}, "routing": {model:
{class: {pool: weight}}}, "pairing": {...}, "reason": "..."}, written atomically (readers see the
old or the whole new file) with sorted keys, so applying the same request twice leaves the file as
it was. `pools()` reads the file back: a file cannot tell readiness, so ready = desired (the loop
then plans as if every replica it asked for were up; the Kubernetes actuator is the one that knows).
Before the first write, the fleet's current replicas stand in.

Registered as actuator.kind `file`; options (actuator.options in the controller config):
    path   the JSON file to write (required); checked when the controller starts: not a directory, and a file
           already there must be one this actuator wrote (else every interval would hold on it)
"""

from __future__ import annotations

import json
from pathlib import Path

from controllers.actuators.base import ACTUATORS, Actuation, ActuatorContext, ApplyRequest, ApplyResult, PoolState
from planner.io.errors import InputError
from planner.io.files import write_atomic


class FileActuator:
    """Desired replicas, routing and pairing as one JSON document at `path`."""

    def __init__(self, path: str | Path, initial: dict[str, int] | None = None):
        self.path = Path(path)
        self._initial = dict(initial or {})

    def _read(self) -> dict[str, object] | None:
        if not self.path.exists():
            return None
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(str(self.path), None, f"a JSON document this actuator wrote ({exc})") from exc
        if not isinstance(doc, dict):
            raise InputError(str(self.path), None, "a JSON object with a 'replicas' mapping")
        return doc

    def desired(self) -> dict[str, int]:
        """The replicas last written (the fleet's current ones before any write)."""
        doc = self._read()
        if doc is None:
            return dict(self._initial)
        reps = doc.get("replicas")
        if not isinstance(reps, dict):
            raise InputError(str(self.path), "replicas", "a mapping of pool id to an integer replica count")
        for p, n in reps.items():  # a hand-edited -3 or true was read as replicas (a cost of -11.96 USD/h was logged)
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InputError(str(self.path), f"replicas.{p}", f"an integer replica count >= 0, got {n!r}")
        return {str(p): int(n) for p, n in reps.items()}

    def pools(self) -> dict[str, PoolState]:
        return {p: PoolState(p, n, n) for p, n in self.desired().items()}

    def apply(self, request: ApplyRequest) -> ApplyResult:
        res = ApplyResult()
        try:
            before = self.desired()
        except InputError as exc:
            res.errors.append(str(exc))
            return res
        after = {**before, **request.target}
        res.changed = {p: (before.get(p, 0), n) for p, n in sorted(request.target.items()) if before.get(p, 0) != n}
        old = self._read() or {}
        # no routing in the request (a held decision): the routing and pairing written before stay, as the Kubernetes
        # actuator leaves its routes and ConfigMap (was: both written as {}, erasing the routing of the last plan)
        routing, pairing = ((request.routing, request.pairing) if request.routing
                            else (old.get("routing", {}), old.get("pairing", {})))
        doc = {"replicas": after, "routing": routing, "pairing": pairing, "reason": request.reason}
        res.routing_changed = bool(request.routing) and old.get("routing") != request.routing
        try:
            write_atomic(self.path, json.dumps(doc, sort_keys=True, indent=1) + "\n")
        except InputError as exc:
            res.errors.append(str(exc))
        return res


OPTIONS = ("path",)
"""The keys of actuator.options the file actuator reads."""


@ACTUATORS.register("file", "write replicas and routing to a JSON file (actuator.options.path), for GitOps or a record",
                    options=OPTIONS)
def build(ctx: ActuatorContext) -> Actuation:
    # a key other than OPTIONS is refused at config load (controllers.config.ActuatorConfig, from the registry's entry)
    path = ctx.cfg.actuator.options.get("path")
    if not isinstance(path, str) or not path:
        raise InputError(None, "actuator.options.path", "the JSON file the file actuator writes (a path)")
    if Path(path).is_dir():  # was found only by the first interval, which then held as 'platform unreachable'
        raise InputError(None, "actuator.options.path", f"the JSON file the file actuator writes; {path} is a directory")
    actuator = FileActuator(path, initial=dict(ctx.fleet.current))
    actuator.desired()  # a file there that this actuator cannot read back: InputError naming it, before any work
    return Actuation(actuator)
