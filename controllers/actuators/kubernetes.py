"""KubernetesActuator: pools are Deployments (apps/v1), LeaderWorkerSets
(leaderworkerset.x-k8s.io/v1) or DisaggregatedSet roles, found by `controllers.discover` under a
label scheme; replicas change only through the `scale` subresource (a DisaggregatedSet role by a
read-modify-PUT of the object), with a read-then-PUT carrying the read resourceVersion (optimistic
concurrency: a concurrent writer gives 409 and we re-read and retry); 409, 429 and 5xx are retried with
exponential backoff (after Retry-After where longer); a pool already at its target is not written, so applying twice, or again
after a restart half-way, converges to the same state (idempotent). Routing weights go to
HTTPRoutes (InferencePool or workload backendRefs) and/or as JSON into a ConfigMap the router
reads; one Kubernetes Event per change. Registered as actuator.kind `kubernetes`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from controllers.actuators.base import (
    ACTUATORS,
    Actuation,
    ActuatorContext,
    ApplyRequest,
    ApplyResult,
    ClassWeights,
    Pairing,
    PoolState,
    Routing,
)
from controllers.config import ControllerConfig
from controllers.discover import (
    GPU_NODE_LABELS,
    K8sObject,
    LabelScheme,
    Target,
    discover,
    gpu_named,
    model_label_map,
    preset_scheme,
)
from planner.io.errors import InputError
from planner.io.schema import Variant, parse_tp_part

if TYPE_CHECKING:
    from kubernetes.client import ApiClient, Configuration
    from kubernetes.client.rest import RESTClientObject

log = logging.getLogger("pd_planner.controller.actuate")

T = TypeVar("T")


def _json(answer: object) -> K8sObject:
    """A CustomObjectsApi answer (typed `object` by the client; a JSON object on the wire)."""
    return cast(K8sObject, answer)

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
        v = Variant.model_validate({"model": labels[LABEL_MODEL], "role": labels[LABEL_ROLE], "gpu": labels[LABEL_GPU],
                                    "tp": tp, "weight_dtype": w, "kv_dtype": kv})
    except (KeyError, ValueError):
        return None
    return v.id


# ---------------------------------------------------------------------------------------- k8s
DS_GROUP, DS_VERSION, DS_PLURAL = "disaggregatedset.x-k8s.io", "v1", "disaggregatedsets"
IP_GROUP, IP_VERSION, IP_PLURAL = "inference.networking.k8s.io", "v1", "inferencepools"
"""InferencePool, GA API of the Gateway API Inference Extension (config/crd/bases/
inference.networking.k8s.io_inferencepools.yaml): spec.selector.matchLabels, spec.targetPorts."""
IP_GROUP_ALPHA, IP_VERSION_ALPHA = "inference.networking.x-k8s.io", "v1alpha2"
"""The earlier InferencePool API (spec.selector is a plain label map), still in older llm-d guides."""
IP_GROUPS = (IP_GROUP, IP_GROUP_ALPHA)


class DiscoveryError(RuntimeError):
    """Workloads carry a configured model's label but cannot be read as pools: the loop holds."""


API_ERROR_HINTS = {
    403: "the controller's ServiceAccount lacks this permission; controllers/deploy/rbac.yaml lists what it needs",
    404: "the object is gone, or actuator.namespace is not its namespace",
}
"""What an operator does about an API status that is not retried (Kubernetes API conventions: 403 Forbidden is RBAC)."""


def api_error_text(exc: BaseException) -> str:
    """One line for an error of the API server: 'HTTP <status> <reason>: <the Status message>' (+ a hint for 403
    and 404), not the client's str(ApiException), which spans lines of response headers and the raw body; any other
    error as str()."""
    from kubernetes.client.exceptions import ApiException

    if not isinstance(exc, ApiException):
        return str(exc)
    message = ""
    try:
        body = json.loads(exc.body) if exc.body else {}
        message = str(body.get("message") or "") if isinstance(body, dict) else ""
    except (TypeError, ValueError):
        message = ""
    text = f"HTTP {exc.status} {exc.reason or ''}".rstrip() + (f": {' '.join(message.split())}" if message else "")
    after = retry_after_s(exc)
    text += f" (Retry-After {after:g}s)" if after is not None else ""
    hint = API_ERROR_HINTS.get(exc.status or 0)
    return f"{text}; {hint}" if hint else text


def retry_after_s(exc: BaseException) -> float | None:
    """The seconds an API error's Retry-After header asks to wait (RFC 9110: delay-seconds; an HTTP date, or no
    header, reads as None)."""
    headers = getattr(exc, "headers", None) or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None


class LeaseLost(RuntimeError):
    """`ApplyRequest.may_write` said no before a write: this replica's Lease is past its renew deadline."""


def _or_error(res: ApplyResult, what: str, write: Callable[[], T]) -> T | None:
    """`write()`'s result, or None with "<what>: <the API's error>" in `res.errors` (one write's failure does not stop
    the others); LeaseLost passes through: past the Lease's renew deadline no write follows."""
    try:
        return write()
    except LeaseLost:
        raise
    except Exception as exc:  # noqa: BLE001
        res.errors.append(f"{what}: {api_error_text(exc)}")
        return None


class RoutingShapeError(ValueError):
    """The route or pools do not have the shape the plan can be written into; nothing is written."""


@dataclass(frozen=True)
class _RouteWrite:
    name: str
    weights: list[int]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


class KubernetesActuator:
    """Scale the Deployments / LeaderWorkerSets / DisaggregatedSet roles of the pools, write routing,
    emit Events (official client).

    Pools are found by `controllers.discover` under a label scheme (default here: the pd-planner
    preset, this class's original contract; `planner control` passes the config's, llm-d by
    default). Routing goes, in this order of preference, to HTTPRoutes whose backendRefs are
    InferencePools (`inference_pool_routes`, llm-d's routing), to HTTPRoutes whose backendRefs
    name workloads (`httproutes`, other gateways), and to the `routing_configmap` (None: not
    written). All routes are read and checked before anything is written: an unknown shape is an
    error of its model, whose routing is left as it was and whose scale-downs are held; its scale-ups
    and the other models' writes go ahead."""

    def __init__(
        self,
        api_client: ApiClient,
        namespace: str,
        routing_configmap: str | None = "pd-planner-routing",
        workload_kinds: tuple[str, ...] = ("deployment", "leaderworkerset", "disaggregatedset"),
        max_retries: int = 5,
        backoff_s: float = 0.2,
        component: str = "pd-planner-controller",
        sleep: Callable[[float], None] = time.sleep,
        httproutes: dict[str, str] | None = None,
        scheme: LabelScheme | None = None,
        inference_pool_routes: dict[str, str] | None = None,
        gpu_from_nodes: bool = False,
    ):
        from kubernetes import client

        self._client = client
        self._api = api_client
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
        self.pool_routes = dict(inference_pool_routes or {})
        self.scheme = scheme or preset_scheme("pd-planner")
        self.gpu_from_nodes = gpu_from_nodes

    # -- retries ------------------------------------------------------------------------------
    def _retry(self, what: str, fn: Callable[[], T], may_write: Callable[[], bool] | None = None) -> T:
        """Run fn; on 409 (conflict), 429 (too many requests: the API server's priority and fairness) or 5xx retry with
        exponential backoff, a 429's or 503's after its Retry-After where that is longer (as client-go does; was: a 429
        was not retried, the pool's write failed the interval), unless it is longer than the longest wait of the
        backoff (backoff_s x 2^max_retries): then it raises, the error is reported and the next interval retries.
        Other errors raise. `may_write` (a write's): asked before each attempt, False raises LeaseLost."""
        from kubernetes.client.exceptions import ApiException

        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            if may_write is not None and not may_write():
                raise LeaseLost(f"{what}: not written, the Lease's renew deadline has passed since its last renewal")
            try:
                return fn()
            except ApiException as exc:
                retryable = exc.status in (409, 429) or (exc.status or 0) >= 500
                if not retryable or attempt == self.max_retries:
                    raise
                after = retry_after_s(exc)
                if after is not None and after > self.backoff_s * 2 ** self.max_retries:
                    raise
                wait = max(delay, after or 0.0)
                log.warning("%s: HTTP %s, retry %d/%d in %.2fs", what, exc.status, attempt + 1, self.max_retries, wait)
                self.sleep(wait)
                delay *= 2
        raise AssertionError("unreachable")

    # -- discovery ----------------------------------------------------------------------------
    def _list_custom(self, group: str, version: str, plural: str) -> list[K8sObject]:
        from kubernetes.client.exceptions import ApiException

        try:
            res = self._retry(f"list {plural}", lambda: _json(self.custom.list_namespaced_custom_object(group, version, self.ns, plural)))
        except ApiException as exc:
            if exc.status != 404:  # CRD not installed: none of these
                raise
            return []
        return [dict(o, kind=o.get("kind") or res.get("kind", "").removesuffix("List")) for o in res.get("items", [])]

    def _objects(self) -> list[K8sObject]:
        """Every candidate workload of the namespace as the API returns it (camelCase dicts). The
        llm-d labels live on pod templates, which a label selector cannot reach, so all are listed."""
        objs: list[K8sObject] = []
        if "deployment" in self.kinds:
            deps = self._retry("list deployments", lambda: self.apps.list_namespaced_deployment(self.ns))
            for d in deps.items:
                o: K8sObject = self._api.sanitize_for_serialization(d)
                o["kind"] = "Deployment"
                objs.append(o)
        if "leaderworkerset" in self.kinds:
            objs += [dict(o, kind="LeaderWorkerSet") for o in self._list_custom(LWS_GROUP, LWS_VERSION, LWS_PLURAL)]
        if "disaggregatedset" in self.kinds:
            objs += [dict(o, kind="DisaggregatedSet") for o in self._list_custom(DS_GROUP, DS_VERSION, DS_PLURAL)]
        if self.gpu_from_nodes:
            for o in objs:
                self._gpu_from_pods(o)
        return objs

    def _gpu_from_pods(self, obj: K8sObject) -> None:
        """For a Deployment or LeaderWorkerSet whose pod template names no GPU, put the GPU product
        label of the nodes its pods run on into the template's nodeSelector (in this copy only), so
        discovery finds it: llm-d-modelservice's examples/output-pd.yaml requests `nvidia.com/gpu`
        without saying which. Only when all scheduled pods agree; pods not scheduled yet say nothing."""
        if obj.get("kind") == "Deployment":
            sel = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            tmpl = (obj.get("spec") or {}).get("template") or {}
        elif obj.get("kind") == "LeaderWorkerSet":
            sel = {"leaderworkerset.sigs.k8s.io/name": obj["metadata"]["name"]}  # the LWS controller's pod label
            lwt = (obj.get("spec") or {}).get("leaderWorkerTemplate") or {}
            tmpl = lwt.get("leaderTemplate") or lwt.get("workerTemplate") or {}
        else:
            return
        spec = tmpl.get("spec")
        if not sel or not isinstance(spec, dict):
            return
        labels = {**((obj.get("metadata") or {}).get("labels") or {}), **((tmpl.get("metadata") or {}).get("labels") or {})}
        if self.scheme.model_of(labels.get(self.scheme.model_label)) is None:
            return  # not a pool of ours: no API calls for it
        if (self.scheme.gpu_label and self.scheme.gpu_label in labels) or gpu_named(spec):
            return
        selector = ",".join(f"{k}={v}" for k, v in sorted(sel.items()))
        pods = self._retry("list pods", lambda: self.core.list_namespaced_pod(self.ns, label_selector=selector))
        products: set[str] = set()
        for node in sorted({p.spec.node_name for p in pods.items if p.spec and p.spec.node_name}):
            n = self._retry(f"read node {node}", functools.partial(self.core.read_node, node))
            nl = (n.metadata.labels if n.metadata is not None else None) or {}
            products |= {nl[k] for k in GPU_NODE_LABELS[:1] if k in nl}
        if len(products) == 1:
            spec.setdefault("nodeSelector", {})[GPU_NODE_LABELS[0]] = products.pop()

    def targets(self) -> dict[str, Target]:
        """The pools of the namespace; an API error is a DiscoveryError of one line (api_error_text)."""
        from kubernetes.client.exceptions import ApiException

        try:
            objects = self._objects()
        except ApiException as exc:
            raise DiscoveryError(f"list workloads in namespace {self.ns}: {api_error_text(exc)}") from exc
        found, problems = discover(objects, self.scheme)
        if problems:
            raise DiscoveryError("; ".join(problems))
        return found

    def pools(self) -> dict[str, PoolState]:
        return {p: PoolState(p, t.desired, t.ready) for p, t in self.targets().items()}

    # -- scaling ------------------------------------------------------------------------------
    def _scale(self, w: Target, replicas: int, may_write: Callable[[], bool] | None = None) -> tuple[int, int]:
        """Set the replicas of `w`; returns (before, after): the previous value and the one the workload now
        asks for (no write if equal). Deployments and LeaderWorkerSets through the `scale` subresource, after =
        `replicas`; a DisaggregatedSet role (no scale subresource per role) by a read-modify-PUT of the object
        carrying the read resourceVersion, after = `replicas` rounded up to whole slices (what is written, which
        the decision log and the Event must say, not the plan's number)."""

        def attempt() -> tuple[int, int]:
            rv: str | None
            if w.kind == "Deployment":
                sc = self.apps.read_namespaced_deployment_scale(w.name, self.ns)
                before = (sc.spec.replicas if sc.spec is not None else 0) or 0
                rv = sc.metadata.resource_version if sc.metadata is not None else None
            elif w.kind == "LeaderWorkerSet":
                lws = _json(self.custom.get_namespaced_custom_object_scale(LWS_GROUP, LWS_VERSION, self.ns, LWS_PLURAL, w.name))
                before, rv = int(lws.get("spec", {}).get("replicas", 0)), lws["metadata"].get("resourceVersion")
            else:
                obj = _json(self.custom.get_namespaced_custom_object(DS_GROUP, DS_VERSION, self.ns, DS_PLURAL, w.name))
                role = obj["spec"]["roles"][w.role_index]
                rs = role["spec"] if isinstance(role.get("spec"), dict) else role
                slices = max(1, int(obj["spec"].get("slices") or 1))
                before = int(rs.get("replicas") if rs.get("replicas") is not None else 1) * slices
                per_slice = -(-replicas // slices)  # replicas are per slice: round up, never below the plan
                if before == per_slice * slices:
                    return before, before
                rs["replicas"] = per_slice
                self.custom.replace_namespaced_custom_object(DS_GROUP, DS_VERSION, self.ns, DS_PLURAL, w.name, obj)
                return before, per_slice * slices
            if before == replicas:
                return before, before
            c = self._client
            scale = c.V1Scale(api_version="autoscaling/v1", kind="Scale",
                              metadata=c.V1ObjectMeta(name=w.name, namespace=self.ns, resource_version=rv),
                              spec=c.V1ScaleSpec(replicas=replicas))
            if w.kind == "Deployment":
                self.apps.replace_namespaced_deployment_scale(w.name, self.ns, scale)
            else:
                body = self._api.sanitize_for_serialization(scale)
                self.custom.replace_namespaced_custom_object_scale(LWS_GROUP, LWS_VERSION, self.ns, LWS_PLURAL, w.name, body)
            return before, replicas

        return self._retry(f"scale {w.kind}/{w.name}", attempt, may_write)

    def _event(self, w: Target, before: int, after: int, reason: str) -> None:
        now = dt.datetime.now(dt.UTC)
        api_version = {"Deployment": "apps/v1", "LeaderWorkerSet": f"{LWS_GROUP}/{LWS_VERSION}",
                       "DisaggregatedSet": f"{DS_GROUP}/{DS_VERSION}"}[w.kind]
        where = f" ({w.role_name} role)" if w.kind == "DisaggregatedSet" else ""
        ev = self._client.CoreV1Event(
            metadata=self._client.V1ObjectMeta(generate_name=f"{w.name}.", namespace=self.ns),
            involved_object=self._client.V1ObjectReference(api_version=api_version, kind=w.kind, name=w.name, namespace=self.ns),
            reason="ScaledUp" if after > before else "ScaledDown",
            message=f"pd-planner: {w.pool}{where} replicas {before} -> {after}: {reason}"[:1024],
            type="Normal",
            source=self._client.V1EventSource(component=self.component),
            first_timestamp=now, last_timestamp=now, count=1,
            reporting_component=self.component, reporting_instance=self.component,
        )
        self._retry("create event", lambda: self.core.create_namespaced_event(self.ns, ev))

    # -- routing: ConfigMap export --------------------------------------------------------------
    def _write_routing(self, routing: Routing, pairing: Pairing | None = None, keep: set[str] | None = None,
                       may_write: Callable[[], bool] | None = None) -> bool:
        """Create or update the routing ConfigMap (and its pairing key, when the plan pins P->D pairs);
        no write when unchanged. `keep`: models whose routing and pairing stay as the ConfigMap has them (their
        new routing could not be written elsewhere this interval). Returns True if written."""
        from kubernetes.client.exceptions import ApiException

        assert self.configmap is not None
        name = self.configmap

        def doc(routing: Routing, pairing: Pairing | None) -> dict[str, str]:
            data = {ROUTING_KEY: json.dumps(routing, sort_keys=True, indent=1)}
            if any(pairing.values() if pairing else ()):
                data[PAIRING_KEY] = json.dumps(pairing, sort_keys=True, indent=1)
            return data

        def kept(old: dict[str, str], key: str) -> dict[str, dict[str, object]]:
            try:
                prev = json.loads(old.get(key) or "{}")
            except ValueError:
                return {}
            return {m: v for m, v in prev.items() if m in (keep or ())} if isinstance(prev, dict) else {}

        def attempt() -> bool:
            try:
                cm = self.core.read_namespaced_config_map(name, self.ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                data = doc(routing, pairing)
                body = self._client.V1ConfigMap(metadata=self._client.V1ObjectMeta(name=name, namespace=self.ns), data=data)
                self.core.create_namespaced_config_map(self.ns, body)
                return True
            old = dict(cm.data or {})
            data = doc(cast(Routing, {**kept(old, ROUTING_KEY), **routing}),
                       cast(Pairing, {**kept(old, PAIRING_KEY), **(pairing or {})}))
            new = {k: v for k, v in old.items() if k != PAIRING_KEY}  # a pairing no longer planned is removed
            new.update(data)
            if new == old:
                return False
            cm.data = new
            self.core.replace_namespaced_config_map(name, self.ns, cm)  # carries the read resourceVersion
            return True

        return self._retry("write routing configmap", attempt, may_write)

    # -- routing: HTTPRoutes -------------------------------------------------------------------
    def _get_route(self, name: str) -> K8sObject:
        return self._retry(f"read httproute {name}", lambda: _json(self.custom.get_namespaced_custom_object(
            GATEWAY_GROUP, GATEWAY_VERSION, self.ns, "httproutes", name)))

    def _pool_selector(self, ref: K8sObject) -> dict[str, str]:
        """matchLabels of the InferencePool a backendRef names (v1, else v1alpha2's plain map)."""
        from kubernetes.client.exceptions import ApiException

        group = ref.get("group") or IP_GROUP
        version = IP_VERSION if group == IP_GROUP else IP_VERSION_ALPHA
        try:
            pool = self._retry(f"read inferencepool {ref['name']}", lambda: _json(self.custom.get_namespaced_custom_object(
                group, version, self.ns, IP_PLURAL, ref["name"])))
        except ApiException as exc:
            if exc.status == 404:
                raise RoutingShapeError(f"InferencePool {ref['name']} ({group}) not found in namespace {self.ns}") from exc
            raise
        sel = (pool.get("spec") or {}).get("selector") or {}
        return dict(sel.get("matchLabels") or {}) if "matchLabels" in sel else {k: v for k, v in sel.items() if isinstance(v, str)}

    def inference_pool_weights(self, model: str, route: str, classes: dict[str, ClassWeights],
                               targets: dict[str, Target]) -> _RouteWrite:
        """Weights of `route`'s InferencePool backendRefs from `model`'s decode routing.

        llm-d's endpoint picker chooses a decode pod first (then a prefill pod for it), so traffic
        is split between decode variants: each InferencePool must select the decode (or `both`)
        workloads of exactly one variant (model, GPU, TP) of this model, and every variant the
        plan sends traffic to must have one. Anything else raises RoutingShapeError (this model's routing is not written)."""
        obj = self._get_route(route)
        refs = [ref for rule in (obj.get("spec") or {}).get("rules") or [] for ref in rule.get("backendRefs") or []]
        pool_refs = [r for r in refs if r.get("kind") == "InferencePool" and (r.get("group") or IP_GROUP) in IP_GROUPS]
        if not pool_refs:
            kinds = sorted({f"{r.get('kind', 'Service')}" for r in refs}) or ["none"]
            raise RoutingShapeError(f"HTTPRoute {route} has no backendRef of kind InferencePool (found: {', '.join(kinds)})")
        if len(pool_refs) != len(refs):
            raise RoutingShapeError(f"HTTPRoute {route} mixes InferencePool and other backendRefs; weights of one kind only")
        share: dict[tuple[str, int], float] = {}
        for weights in classes.values():
            for pool, w in weights.items():
                v = Variant.parse(pool)
                if v.role != "prefill":
                    share[(v.gpu, v.tp)] = share.get((v.gpu, v.tp), 0.0) + w
        decode_targets = [t for t in targets.values() if Variant.parse(t.pool).model == model and Variant.parse(t.pool).role != "prefill"]
        per_ref: list[float] = []
        covered: set[tuple[str, int]] = set()
        for ref in pool_refs:
            sel = self._pool_selector(ref)
            variants = {(Variant.parse(t.pool).gpu, Variant.parse(t.pool).tp) for t in decode_targets if _selects(sel, t.pod_labels)}
            if not variants:
                raise RoutingShapeError(f"InferencePool {ref['name']} (selector {sel}) selects no decode workload of model {model}")
            if len(variants) > 1:
                names = ", ".join(f"{g}/tp{tp}" for g, tp in sorted(variants))
                raise RoutingShapeError(f"InferencePool {ref['name']} selects decode workloads of several variants ({names}); "
                                        "llm-d weights traffic per InferencePool, so make one InferencePool per decode variant "
                                        "(model, GPU, TP)")
            var = variants.pop()
            if var in covered:
                raise RoutingShapeError(f"two InferencePools of HTTPRoute {route} select decode variant {var[0]}/tp{var[1]}")
            covered.add(var)
            per_ref.append(share.get(var, 0.0))
        missing = sorted(v for v, w in share.items() if w > 0 and v not in covered)
        if missing:
            raise RoutingShapeError(f"the plan routes {model} traffic to decode variant(s) "
                                    f"{', '.join(f'{g}/tp{tp}' for g, tp in missing)} that no InferencePool of HTTPRoute {route} selects")
        return _RouteWrite(route, integer_weights(per_ref))

    def workload_route_weights(self, route: str, classes: dict[str, ClassWeights], targets: dict[str, Target]) -> _RouteWrite:
        """Weights of `route`'s backendRefs named like the workloads of the prefill-side pools.

        Requests enter a P/D fleet at its prefill side (prefill or mixed pools) when the gateway
        routes to workloads directly (no endpoint picker); the hand-off to a decode pool happens
        behind it. Classes are summed (the controller plans one class per model); unmatched refs
        get 0; integers summing to 100 (largest remainders)."""
        share: dict[str, float] = {}
        for weights in classes.values():
            for pool, w in weights.items():
                if Variant.parse(pool).role != "decode":
                    share[pool] = share.get(pool, 0.0) + w
        by_name = {t.name: share.get(pool, 0.0) for pool, t in targets.items()}
        obj = self._get_route(route)
        refs = [ref for rule in (obj.get("spec") or {}).get("rules") or [] for ref in rule.get("backendRefs") or []]
        if any(r.get("kind") == "InferencePool" for r in refs):
            raise RoutingShapeError(f"HTTPRoute {route} routes to InferencePools: list it under routing.inference_pool_routes")
        if not any(ref.get("name") in by_name and by_name[ref["name"]] > 0 for ref in refs):
            raise RoutingShapeError(f"no backendRef of HTTPRoute {route} names a workload of the planned pools "
                                    f"({', '.join(sorted(by_name))})")
        return _RouteWrite(route, integer_weights([by_name.get(ref.get("name"), 0.0) for ref in refs]))

    def _put_route_weights(self, rw: _RouteWrite, may_write: Callable[[], bool] | None = None) -> bool:
        def attempt() -> bool:
            obj = _json(self.custom.get_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.ns, "httproutes", rw.name))
            refs = [ref for rule in (obj.get("spec") or {}).get("rules") or [] for ref in rule.get("backendRefs") or []]
            if len(refs) != len(rw.weights):
                raise RoutingShapeError(f"HTTPRoute {rw.name} changed while being written ({len(refs)} backendRefs)")
            if [ref.get("weight", 1) for ref in refs] == rw.weights:
                return False
            for ref, w in zip(refs, rw.weights, strict=True):  # lengths checked above
                ref["weight"] = w
            self.custom.replace_namespaced_custom_object(GATEWAY_GROUP, GATEWAY_VERSION, self.ns, "httproutes", rw.name, obj)
            return True

        return self._retry(f"write httproute {rw.name}", attempt, may_write)

    # -- apply --------------------------------------------------------------------------------
    def apply(self, request: ApplyRequest) -> ApplyResult:
        target, routing, reason, pairing = request.target, request.routing, request.reason, request.pairing
        res = ApplyResult()
        try:
            wls = self.targets()
        except Exception as exc:  # noqa: BLE001 - reported, the loop holds
            res.errors.append(f"list pools: {api_error_text(exc)}")
            return res
        # every check before any write. A problem is the problem of its pool, or of its model's routing, only (was: any
        # one error, a pool with no workload or a misspelt HTTPRoute name, stopped every write of the interval, urgent
        # scale-ups of other models included): a pool with an error is not written; a model with an error (one of its
        # pools', or its route's) keeps its routing as it was and holds its scale-downs, since the old weights may
        # still send traffic to the pool; its scale-ups and every other model's writes go ahead.
        bad_pools: set[str] = set()
        for p, n in sorted(target.items()):
            t = wls.get(p)
            if t is not None and t.external_scaler and n != t.desired:
                bad_pools.add(p)
                res.errors.append(f"{p}: DisaggregatedSet {t.name} role {t.role_name} has scaling.mode External (its replicas "
                                  f"belong to DisaggregatedSetRoleScaler {t.external_scaler}): use actuator.kind metrics "
                                  f"and point KEDA/HPA at that scaler")
        missing = [p for p, n in sorted(target.items()) if n > 0 and p not in wls]
        for p in missing:
            bad_pools.add(p)
            res.errors.append(f"{p}: no Deployment, LeaderWorkerSet or DisaggregatedSet role found for this pool "
                              f"(labels: {self.scheme.model_label}, {self.scheme.role_label})")
        bad_models = {Variant.parse(p).model for p in bad_pools}
        writes: list[_RouteWrite] = []
        if routing:
            checks = [(model, route, functools.partial(self.inference_pool_weights, model, route, routing[model], wls))
                      for model, route in sorted(self.pool_routes.items()) if model in routing]
            checks += [(model, route, functools.partial(self.workload_route_weights, route, routing[model], wls))
                       for model, route in sorted(self.httproutes.items()) if model in routing]
            checked: list[tuple[str, _RouteWrite]] = []
            for model, route, check in checks:
                try:
                    checked.append((model, check()))
                except Exception as exc:  # noqa: BLE001
                    bad_models.add(model)
                    res.errors.append(f"httproute {route}: {api_error_text(exc)}")
            writes = [rw for model, rw in checked if model not in bad_models]
        may_write = request.may_write
        try:
            for pool, n in sorted(target.items()):
                w = wls.get(pool)
                if w is None or pool in bad_pools:
                    continue
                model = Variant.parse(pool).model
                if model in bad_models and n < w.desired:
                    res.errors.append(f"{pool}: scale-down {w.desired} -> {n} held: {model} has an error above, its routing "
                                      "is left as it was and may still send traffic to this pool")
                    continue
                scaled = _or_error(res, f"{pool}: scale failed", functools.partial(self._scale, w, n, may_write))
                if scaled is None:
                    continue
                before, after = scaled
                if before != after:  # what was written: a DisaggregatedSet role rounds up to whole slices
                    res.changed[pool] = (before, after)
                    try:
                        self._event(w, before, after, reason)
                    except Exception as exc:  # noqa: BLE001 - an event lost is not a failed apply
                        log.warning("event for %s not recorded: %s", pool, api_error_text(exc))
            for rw in writes:
                res.routing_changed |= bool(_or_error(res, f"httproute {rw.name}",
                                                      functools.partial(self._put_route_weights, rw, may_write)))
            written = {m: r for m, r in routing.items() if m not in bad_models}
            if written and self.configmap:
                res.routing_changed |= bool(_or_error(res, "routing configmap", lambda: self._write_routing(
                    written, {m: q for m, q in pairing.items() if m in written}, keep=bad_models, may_write=may_write)))
        except LeaseLost as exc:  # the renew deadline passed: no write after it (client-go's leader election stops acting)
            res.lost_lease = True
            res.errors.append(f"{exc}; the interval's writes after it are not made")
            return res
        if bad_models & set(routing):
            res.errors.append(f"routing of {', '.join(sorted(bad_models & set(routing)))} not written (left as it was)")
        return res




# ---------------------------------------------------------------------------------------- wiring
def kube_api_client(in_cluster: bool) -> ApiClient:
    """The official client's ApiClient: in-cluster service account, or the local kubeconfig."""
    from kubernetes import client, config

    try:
        if in_cluster:
            config.load_incluster_config()
        else:
            config.load_kube_config()
    except config.ConfigException as exc:
        raise InputError(None, "actuator.in_cluster",
                         f"a Kubernetes API to talk to ({'in-cluster service account' if in_cluster else 'kubeconfig'}): {exc}; "
                         "without a cluster use actuator.kind metrics with export.read_cluster false and leader.enabled false") from exc
    return client.ApiClient(without_retry_after(client.Configuration.get_default_copy()))


def with_request_timeout(api: ApiClient, timeout_s: float) -> ApiClient:
    """`api` with every request it makes bounded by `timeout_s` (connect + read) where the call gives none: the
    official client passes no timeout by default, and urllib3 then waits for ever (found in fault QA at stop 59: an
    API server that stops answering blocked Controller.step, and the liveness probe, which reads /metrics on another
    thread, never saw it). Idempotent: a client already bounded keeps its bound."""
    cls = _timed_rest_client_class()
    if not isinstance(api.rest_client, cls):
        api.rest_client.close()
        api.rest_client = cast(Callable[["Configuration", float], "RESTClientObject"], cls)(api.configuration, timeout_s)
    return api


@functools.cache
def _timed_rest_client_class() -> type[RESTClientObject]:
    """The client's REST layer with a default request timeout (`with_request_timeout`); made on first use, as the
    client is imported lazily here."""
    from kubernetes.client import rest

    class TimedRESTClient(rest.RESTClientObject):
        def __init__(self, configuration: Configuration, timeout_s: float) -> None:
            super().__init__(configuration)
            self.timeout_s = timeout_s

        def request(self, method: str, url: str, headers: object = None, body: object = None,
                    post_params: object = None, _request_timeout: object = None) -> object:
            return super().request(method, url, headers=headers, body=body,  # type: ignore[no-untyped-call]
                                   post_params=post_params, _request_timeout=_request_timeout or self.timeout_s)

    return TimedRESTClient


URLLIB3_CONNECT_RETRIES = 3
"""Retries of a failed connection or read by the HTTP pool under the client (urllib3's default, Retry.DEFAULT)."""


def without_retry_after(configuration: Configuration) -> Configuration:
    """`configuration` with urllib3's retries of the responses that carry Retry-After turned off (connection retries
    kept): urllib3 by default retried a 429 or 503 with Retry-After three times, sleeping what the header asked with
    time.sleep and no bound (found in fault QA: 'Retry-After: 3600' stopped the controller's loop for hours, past its
    Lease, whose next holder then acted alongside it). KubernetesActuator._retry retries those, with its own bound and
    the actuator's injectable sleep."""
    import urllib3

    configuration.retries = urllib3.Retry(URLLIB3_CONNECT_RETRIES, respect_retry_after_header=False)
    return configuration


def label_scheme(cfg: ControllerConfig) -> LabelScheme:
    """The discovery LabelScheme of `cfg.labels` (controllers/discover.py), with the models' label values."""
    lc = cfg.labels
    served = {m: mc.served_name or m for m, mc in cfg.models.items()}
    return preset_scheme(lc.preset, model_label=lc.model_label, role_label=lc.role_label, role_values=dict(lc.role_values),
                         gpu_label=lc.gpu_label, tp_label=lc.tp_label, default_gpu=lc.default_gpu,
                         gpu_products=dict(lc.gpu_products), models=model_label_map(served, dict(lc.models)))


def probe_namespace(api_client: ApiClient, namespace: str) -> None:
    """Read `namespace` once at start-up: absent (HTTP 404) is an InputError naming actuator.namespace (was found only
    by the first write, every interval then failing on it). A 403 (the ServiceAccount may not read Namespace objects,
    which a namespaced Role may not grant) or an unreachable API says nothing either way: the intervals report those."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    try:
        client.CoreV1Api(api_client).read_namespace(namespace)
    except ApiException as exc:
        if exc.status == 404:
            raise InputError(None, "actuator.namespace", f"an existing namespace of the cluster; {namespace} does not exist "
                                                         "(the namespace of the pools, routes and Lease)") from None
    except Exception:  # noqa: BLE001 - not reachable now: each interval says so
        return


@ACTUATORS.register("kubernetes", "scale Deployments / LeaderWorkerSets / DisaggregatedSet roles, write routing")
def build(ctx: ActuatorContext) -> Actuation:
    """A KubernetesActuator for the config's namespace, routes and label scheme; with leader.enabled
    the Lease elector gates it (one acting controller replica)."""
    from controllers.access import check_access
    from controllers.leader import LeaseElector, default_identity

    cfg, a = ctx.cfg, ctx.cfg.actuator
    api_client = ctx.kube()
    actuator = KubernetesActuator(
        api_client, a.namespace, a.routing_configmap if cfg.routing.export_configmap else None, tuple(a.workload_kinds),
        a.max_retries, a.backoff_s, httproutes=dict(a.httproutes), scheme=label_scheme(cfg),
        inference_pool_routes=dict(cfg.routing.inference_pool_routes), gpu_from_nodes=cfg.labels.gpu_from_nodes)
    probe_namespace(api_client, a.namespace)
    check_access(api_client, cfg, dry_run=ctx.dry_run)
    if not cfg.leader.enabled:
        return Actuation(actuator)
    elector = LeaseElector(api_client, a.namespace, cfg.leader.lease_name, cfg.leader.identity or default_identity(),
                           cfg.lease_duration_s)
    if not ctx.dry_run:  # a dry run elects no leader (controllers/loop.py)
        elector.probe()
    return Actuation(actuator, elector)
