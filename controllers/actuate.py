"""Apply a decision to the platform, behind one interface.

`Actuator` is what the loop needs: the pools and their replicas (desired and ready), and
`apply(target, routing, reason)`. Three implementations:
  - KubernetesActuator: pools are Deployments (apps/v1) or LeaderWorkerSets
    (leaderworkerset.x-k8s.io/v1) labelled pd-planner.io/{model,role,gpu,tp}; replicas change only
    through the `scale` subresource, with a read-then-PUT carrying the read resourceVersion
    (optimistic concurrency: a concurrent writer gives 409 and we re-read and retry); 409 and 5xx
    are retried with exponential backoff; a pool already at its target is not written, so applying
    twice, or again after a restart half-way, converges to the same state (idempotent). Routing
    weights are written as JSON into a ConfigMap the router reads; one Kubernetes Event per change.
  - MetricsActuator: exports `desired_replicas{pool}` for an HPA (External metric) or KEDA to act on.
  - SimulatorActuator: drives the discrete-event FleetSimulator (planner.simulate) for replays,
    where new replicas become ready after the configured start-up time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from planner.errors import InputError
from planner.schema import Variant, parse_tp_part

log = logging.getLogger("pd_planner.controller.actuate")

LABEL_MODEL = "pd-planner.io/model"
LABEL_ROLE = "pd-planner.io/role"
LABEL_GPU = "pd-planner.io/gpu"
LABEL_TP = "pd-planner.io/tp"
LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
ROUTING_KEY = "routing.json"
"""ConfigMap key of the routing weights: {model: {class: {pool: weight}}} (ModelPlan.routing per model)."""
PAIRING_KEY = "pairing.json"
"""ConfigMap key of the P->D pairing, written only when the fleet restricts it:
{model: {class: {prefill pool: {decode pool: weight}}}} (ModelPlan.pairing per model)."""


@dataclass(frozen=True)
class PoolState:
    pool: str
    desired: int
    ready: int


@dataclass
class ApplyResult:
    changed: dict[str, tuple[int, int]] = field(default_factory=dict)
    routing_changed: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class Actuator(Protocol):
    def pools(self) -> dict[str, PoolState]: ...

    def apply(self, target: dict[str, int], routing: dict[str, Any], reason: str,
              pairing: dict[str, Any] | None = None) -> ApplyResult: ...


GATEWAY_GROUP, GATEWAY_VERSION = "gateway.networking.k8s.io", "v1"
HTTPROUTE_WEIGHT_TOTAL = 100
"""HTTPRoute backendRef weights are relative integers; a total of 100 reads as percent."""


def integer_weights(shares: list[float], total: int = HTTPROUTE_WEIGHT_TOTAL) -> list[int]:
    """Shares as non-negative integers summing to `total` (largest remainders); all zero stays zero."""
    s = sum(x for x in shares if x > 0)
    if s <= 0:
        return [0] * len(shares)
    exact = [max(x, 0.0) / s * total for x in shares]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: exact[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def pool_id_from_labels(labels: dict[str, str]) -> str | None:
    """model/role/gpu/tpN[-fp8][-kvfp8] from the pd-planner.io labels (the tp label may carry the
    precision suffix, e.g. "tp1-fp8"); None when any is missing or malformed."""
    try:
        tp_label = labels[LABEL_TP]
        tp, w, kv = parse_tp_part(tp_label if tp_label.startswith("tp") else f"tp{tp_label}")
        v = Variant(model=labels[LABEL_MODEL], role=labels[LABEL_ROLE], gpu=labels[LABEL_GPU],  # type: ignore[arg-type]
                    tp=tp, weight_dtype=w, kv_dtype=kv)
    except (KeyError, ValueError):
        return None
    return v.id


# ---------------------------------------------------------------------------------------- k8s
@dataclass(frozen=True)
class _Workload:
    kind: str  # "deployment" | "leaderworkerset"
    name: str
    desired: int
    ready: int


class KubernetesActuator:
    """Scale labelled Deployments / LeaderWorkerSets, write routing, emit Events (official client)."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        routing_configmap: str = "pd-planner-routing",
        workload_kinds: tuple[str, ...] = ("deployment", "leaderworkerset"),
        max_retries: int = 5,
        backoff_s: float = 0.2,
        component: str = "pd-planner-controller",
        sleep: Callable[[float], None] = time.sleep,
        httproutes: dict[str, str] | None = None,
    ):
        from kubernetes import client

        self._client = client
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self.ns = namespace
        self.configmap = routing_configmap
        self.kinds = workload_kinds
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.component = component
        self.sleep = sleep
        self.httproutes = dict(httproutes or {})

    # -- retries ------------------------------------------------------------------------------
    def _retry(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run fn; on 409 (conflict) or 5xx retry with exponential backoff; other errors raise."""
        from kubernetes.client.exceptions import ApiException

        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                return fn()
            except ApiException as exc:
                retryable = exc.status == 409 or (exc.status or 0) >= 500
                if not retryable or attempt == self.max_retries:
                    raise
                log.warning("%s: HTTP %s, retry %d/%d in %.2fs", what, exc.status, attempt + 1, self.max_retries, delay)
                self.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    # -- discovery ----------------------------------------------------------------------------
    def _workloads(self) -> dict[str, _Workload]:
        out: dict[str, _Workload] = {}
        sel = LABEL_MODEL  # existence selector: every labelled pool
        if "deployment" in self.kinds:
            deps = self._retry("list deployments", lambda: self.apps.list_namespaced_deployment(self.ns, label_selector=sel))
            for d in deps.items:
                pid = pool_id_from_labels(d.metadata.labels or {})
                if pid:
                    out[pid] = _Workload("deployment", d.metadata.name, d.spec.replicas or 0,
                                         (d.status.ready_replicas or 0) if d.status else 0)
        if "leaderworkerset" in self.kinds:
            from kubernetes.client.exceptions import ApiException

            try:
                lws = self._retry("list leaderworkersets", lambda: self.custom.list_namespaced_custom_object(
                    LWS_GROUP, LWS_VERSION, self.ns, LWS_PLURAL, label_selector=sel))
            except ApiException as exc:
                if exc.status != 404:  # CRD not installed: no LWS pools
                    raise
                lws = {"items": []}
            for o in lws.get("items", []):
                pid = pool_id_from_labels(o.get("metadata", {}).get("labels", {}))
                if pid:
                    st = o.get("status") or {}
                    out[pid] = _Workload("leaderworkerset", o["metadata"]["name"], int(o.get("spec", {}).get("replicas", 0)),
                                         int(st.get("readyReplicas", 0)))
        return out

    def pools(self) -> dict[str, PoolState]:
        return {p: PoolState(p, w.desired, w.ready) for p, w in self._workloads().items()}

    # -- scaling ------------------------------------------------------------------------------
    def _scale(self, w: _Workload, replicas: int) -> int:
        """Set spec.replicas through the scale subresource; returns the previous value (no write if equal)."""

        def attempt() -> int:
            if w.kind == "deployment":
                sc = self.apps.read_namespaced_deployment_scale(w.name, self.ns)
                before, rv = sc.spec.replicas or 0, sc.metadata.resource_version
            else:
                sc = self.custom.get_namespaced_custom_object_scale(LWS_GROUP, LWS_VERSION, self.ns, LWS_PLURAL, w.name)
                before, rv = int(sc.get("spec", {}).get("replicas", 0)), sc["metadata"].get("resourceVersion")
            if before == replicas:
                return before
            body = {"apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": w.name, "namespace": self.ns, "resourceVersion": rv},
                    "spec": {"replicas": replicas}}
            if w.kind == "deployment":
                self.apps.replace_namespaced_deployment_scale(w.name, self.ns, body)
            else:
                self.custom.replace_namespaced_custom_object_scale(LWS_GROUP, LWS_VERSION, self.ns, LWS_PLURAL, w.name, body)
            return before

        return self._retry(f"scale {w.kind}/{w.name}", attempt)

    def _event(self, w: _Workload, before: int, after: int, reason: str) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        api_version = "apps/v1" if w.kind == "deployment" else f"{LWS_GROUP}/{LWS_VERSION}"
        kind = "Deployment" if w.kind == "deployment" else "LeaderWorkerSet"
        ev = self._client.CoreV1Event(
            metadata=self._client.V1ObjectMeta(generate_name=f"{w.name}.", namespace=self.ns),
            involved_object=self._client.V1ObjectReference(api_version=api_version, kind=kind, name=w.name, namespace=self.ns),
            reason="ScaledUp" if after > before else "ScaledDown",
            message=f"pd-planner: replicas {before} -> {after}: {reason}"[:1024],
            type="Normal",
            source=self._client.V1EventSource(component=self.component),
            first_timestamp=now, last_timestamp=now, count=1,
            reporting_component=self.component, reporting_instance=self.component,
        )
        self._retry("create event", lambda: self.core.create_namespaced_event(self.ns, ev))

    # -- routing ------------------------------------------------------------------------------
    def _write_routing(self, routing: dict[str, Any], pairing: dict[str, Any] | None = None) -> bool:
        """Create or update the routing ConfigMap (and its pairing key, when the plan pins P->D pairs);
        no write when unchanged. Returns True if written."""
        from kubernetes.client.exceptions import ApiException

        data = {ROUTING_KEY: json.dumps(routing, sort_keys=True, indent=1)}
        if any(pairing.values() if pairing else ()):
            data[PAIRING_KEY] = json.dumps(pairing, sort_keys=True, indent=1)

        def attempt() -> bool:
            try:
                cm = self.core.read_namespaced_config_map(self.configmap, self.ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                body = self._client.V1ConfigMap(metadata=self._client.V1ObjectMeta(name=self.configmap, namespace=self.ns),
                                                data=data)
                self.core.create_namespaced_config_map(self.ns, body)
                return True
            old = dict(cm.data or {})
            new = {k: v for k, v in old.items() if k != PAIRING_KEY}  # a pairing no longer planned is removed
            new.update(data)
            if new == old:
                return False
            cm.data = new
            self.core.replace_namespaced_config_map(self.configmap, self.ns, cm)  # carries the read resourceVersion
            return True

        return self._retry("write routing configmap", attempt)

    def apply(self, target: dict[str, int], routing: dict[str, Any], reason: str,
              pairing: dict[str, Any] | None = None) -> ApplyResult:
        res = ApplyResult()
        try:
            wls = self._workloads()
        except Exception as exc:  # noqa: BLE001 - reported, the loop holds
            res.errors.append(f"list pools: {exc}")
            return res
        for pool, n in sorted(target.items()):
            w = wls.get(pool)
            if w is None:
                if n > 0:
                    res.errors.append(f"{pool}: no Deployment or LeaderWorkerSet labelled for this pool")
                continue
            try:
                before = self._scale(w, n)
            except Exception as exc:  # noqa: BLE001
                res.errors.append(f"{pool}: scale failed: {exc}")
                continue
            if before != n:
                res.changed[pool] = (before, n)
                try:
                    self._event(w, before, n, reason)
                except Exception as exc:  # noqa: BLE001 - an event lost is not a failed apply
                    log.warning("event for %s not recorded: %s", pool, exc)
        if routing:
            try:
                res.routing_changed = self._write_routing(routing, pairing)
            except Exception as exc:  # noqa: BLE001
                res.errors.append(f"routing configmap: {exc}")
            for model, route in sorted(self.httproutes.items()):
                if model not in routing:
                    continue
                try:
                    res.routing_changed |= self._write_httproute(route, routing[model], wls)
                except Exception as exc:  # noqa: BLE001
                    res.errors.append(f"httproute {route}: {exc}")
        return res

    def _write_httproute(self, name: str, classes: dict[str, dict[str, float]], wls: dict[str, _Workload]) -> bool:
        """Set the backendRef weights of HTTPRoute `name` from one model's prefill-side routing.

        Requests enter a P/D fleet at its prefill side (prefill or mixed pools); the hand-off to a
        decode pool happens behind it (the P/D sidecar or the inference scheduler), so only those
        pools' weights belong in the route. Classes are summed (the controller plans one class per
        model). A backendRef is matched to a pool by the name of the pool's workload; unmatched
        refs get 0; weights are integers summing to 100 (largest remainders). Returns True if written."""
        share: dict[str, float] = {}
        for weights in classes.values():
            for pool, w in weights.items():
                if Variant.parse(pool).role != "decode":
                    share[pool] = share.get(pool, 0.0) + w
        by_name = {w.name: share.get(pool, 0.0) for pool, w in wls.items()}

        def attempt() -> bool:
            obj = self.custom.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.ns, "httproutes", name)
            rules = (obj.get("spec") or {}).get("rules") or []
            refs = [ref for rule in rules for ref in rule.get("backendRefs") or []]
            if not any(ref.get("name") in by_name and by_name[ref["name"]] > 0 for ref in refs):
                raise ValueError(f"no backendRef names a workload of the planned pools ({', '.join(sorted(by_name))})")
            new = integer_weights([by_name.get(ref.get("name"), 0.0) for ref in refs])
            if [ref.get("weight", 1) for ref in refs] == new:
                return False
            for ref, w in zip(refs, new):
                ref["weight"] = w
            self.custom.replace_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.ns, "httproutes", name, obj)
            return True

        return self._retry(f"write httproute {name}", attempt)


# ---------------------------------------------------------------------------------------- metrics
class MetricsActuator:
    """Exports desired replicas as `desired_replicas{pool}` for an HPA/KEDA; changes nothing itself."""

    def __init__(self, registry: Any = None, initial: dict[str, int] | None = None):
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = registry if registry is not None else CollectorRegistry()
        self.gauge = Gauge("desired_replicas", "Replicas the pd-planner controller wants per pool", ["pool"], registry=self.registry)
        self.routing = Gauge("routing_weight", "Share of a class routed to a pool", ["model", "class_id", "pool"], registry=self.registry)
        self.pairing = Gauge("pairing_weight", "Share of a prefill pool's KV cache (for one class) sent to a decode pool",
                             ["model", "class_id", "prefill_pool", "decode_pool"], registry=self.registry)
        self._desired = dict(initial or {})
        for p, n in self._desired.items():
            self.gauge.labels(pool=p).set(n)

    def pools(self) -> dict[str, PoolState]:
        # Without a platform to read from, the last desired value is the best knowledge of the fleet.
        return {p: PoolState(p, n, n) for p, n in self._desired.items()}

    def apply(self, target: dict[str, int], routing: dict[str, Any], reason: str,
              pairing: dict[str, Any] | None = None) -> ApplyResult:
        res = ApplyResult()
        for p, n in target.items():
            if self._desired.get(p, 0) != n:
                res.changed[p] = (self._desired.get(p, 0), n)
            self._desired[p] = n
            self.gauge.labels(pool=p).set(n)
        for model, classes in routing.items():
            for cid, weights in classes.items():
                for p, w in weights.items():
                    self.routing.labels(model=model, class_id=cid, pool=p).set(w)
        for model, classes in (pairing or {}).items():
            for cid, by_prefill in classes.items():
                for pre, weights in by_prefill.items():
                    for dec, w in weights.items():
                        self.pairing.labels(model=model, class_id=cid, prefill_pool=pre, decode_pool=dec).set(w)
        return res


# ---------------------------------------------------------------------------------------- simulator
class SimFleet(Protocol):
    """What the actuator needs of planner.simulate's FleetSimulator."""

    def set_replicas(self, pool: str, n: int, ready_at_s: float) -> None: ...


class SimulatorActuator:
    """Drives a FleetSimulator: added replicas become ready `startup_s` after the decision."""

    def __init__(self, sim: Any, startup_s: float, clock: Callable[[], float], initial: dict[str, int] | None = None):
        self.sim = sim
        self.startup_s = startup_s
        self.clock = clock
        self._desired: dict[str, int] = dict(initial or {})
        self._ready_at: dict[str, list[float]] = {p: [float("-inf")] * n for p, n in self._desired.items()}

    def pools(self) -> dict[str, PoolState]:
        now = self.clock()
        return {p: PoolState(p, n, sum(1 for t in self._ready_at.get(p, []) if t <= now)) for p, n in self._desired.items()}

    def apply(self, target: dict[str, int], routing: dict[str, Any], reason: str,
              pairing: dict[str, Any] | None = None) -> ApplyResult:
        res = ApplyResult()
        now = self.clock()
        for p, n in sorted(target.items()):
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
        if routing and hasattr(self.sim, "set_routing"):
            try:
                by_class = self._sim_routing(routing)
                pairs = self._sim_routing(pairing) if pairing else {}
                if by_class:
                    self.sim.set_routing(by_class, pairing={c: p for c, p in pairs.items() if c in by_class} or None)
                    res.routing_changed = True
            except InputError as exc:  # unknown class or pool, bad weights: reported, as the other actuators do
                res.errors.append(f"routing: {exc}")
        return res

    def _sim_routing(self, routing: dict[str, Any]) -> dict[str, Any]:
        """The loop's {model: {class: {pool: weight}}} as the simulator's {class: {pool: weight}}.

        The controller plans one class per model, named after the model; a replay's classes are
        finer (e.g. length buckets), so a class the simulator does not know but whose id is a
        model gets applied to every simulator class of that model (sim.class_model); a class the
        simulator knows is applied to itself (and wins over its model's entry); anything else is
        passed on for the simulator to reject by name. The pairing ({model: {class: {prefill pool:
        {decode pool: weight}}}}) maps onto classes the same way."""
        class_model: dict[str, str] = getattr(self.sim, "class_model", {})
        out: dict[str, Any] = {}
        direct: dict[str, Any] = {}
        for model, classes in routing.items():
            for cid, weights in classes.items():
                mine = [c for c, m in class_model.items() if m == model] if cid == model and cid not in class_model else []
                if not mine:
                    direct[cid] = dict(weights)
                for c in mine:
                    out[c] = dict(weights)
        out.update(direct)
        return out
