"""A FAKE Kubernetes API server (an external system) for the controller's tests.

No kube-apiserver binary can be had on these machines, so this is a small aiohttp server that
speaks the parts of the Kubernetes REST API the controller uses, over real HTTP, so that the
official `kubernetes` Python client talks to it unchanged:
  - apps/v1 Deployments: list (labelSelector), get, and the `scale` subresource (get, PUT, PATCH);
  - leaderworkerset.x-k8s.io/v1 LeaderWorkerSets: the same, as custom objects with a scale subresource;
  - core/v1 ConfigMaps (get, create, PUT), Events (create), Pods (list by labelSelector), Nodes (get);
  - core/v1 Namespaces (get: every namespace exists unless `FakeK8s.namespaces` lists those that do; the
    controller reads its namespace at start-up);
  - coordination.k8s.io/v1 Leases (get, create, PUT);
  - authorization.k8s.io/v1 SelfSubjectAccessReviews (create: what `kubectl auth can-i` asks, and the controller at
    start-up): allowed when `FakeK8s.allowed` is None (the default: every call allowed, so a test that does not set
    it is unaffected) or holds the review's (group, resource, verb), resource as "deployments/scale" for a subresource;
    each review's spec.resourceAttributes is logged in `FakeK8s.reviews`;
  - gateway.networking.k8s.io/v1 HTTPRoutes (get, create, PUT), as custom objects;
  - disaggregatedset.x-k8s.io/v1 DisaggregatedSets and inference.networking.k8s.io/v1 (or
    x-k8s.io/v1alpha2) InferencePools: list, get, create, PUT (no scale subresource: a
    DisaggregatedSet role is scaled by a PUT of the whole object, as on a real API server).
It keeps the API server's optimistic concurrency: every object has a metadata.resourceVersion that
every write bumps; a PUT carrying a stale resourceVersion gets 409 Conflict, a create of an
existing name gets 409 AlreadyExists. Faults can be injected (status codes for the next N
matching requests) to test retries and holds. kmock's KubernetesEmulator was considered; it has no
scale subresource, label selectors or resourceVersion checks, so extending it would have meant
replacing most of its request handling.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from planner.io.webserve import serve_app

LWS_GROUP = "leaderworkerset.x-k8s.io"
KIND_OF_OBJECT = {"Deployment": "deployment", "LeaderWorkerSet": "leaderworkerset", "DisaggregatedSet": "disaggregatedset",
                  "InferencePool": "inferencepool", "HTTPRoute": "httproute", "ConfigMap": "configmap"}


@dataclass
class Fault:
    method: str
    path_re: str
    status: int
    count: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    """Response headers of the fault (e.g. Retry-After of a 429 Too Many Requests)."""
    delay_s: float = 0.0
    """Seconds the fault's answer waits (an API server gone silent: the client's request timeout must end it)."""


@dataclass
class FakeK8s:
    """State: objects[(kind, ns, name)] = dict; requests: a log of (method, path)."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    rv: int = 100
    namespaces: set[str] | None = None
    """The namespaces that exist (GET /api/v1/namespaces/<name>); None: every one does."""
    allowed: set[tuple[str, str, str]] | None = None
    """(apiGroup, resource[/subresource], verb) a SelfSubjectAccessReview allows, in any namespace, on any name; None:
    every one ("" is the core group)."""
    reviews: list[dict[str, Any]] = field(default_factory=list)
    """The resourceAttributes of every SelfSubjectAccessReview asked, in order."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------------ seeding helpers
    def _bump(self, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)

    def add_workload(self, kind: str, ns: str, name: str, labels: dict[str, str], replicas: int) -> None:
        api = "apps/v1" if kind == "deployment" else f"{LWS_GROUP}/v1"
        k = "Deployment" if kind == "deployment" else "LeaderWorkerSet"
        obj = {
            "apiVersion": api, "kind": k,
            "metadata": {"name": name, "namespace": ns, "labels": dict(labels), "uid": f"uid-{name}"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name, **labels}},
                             "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.10.0"}]}},
            },
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }
        with self.lock:
            self._bump(obj)
            self.objects[(kind, ns, name)] = obj

    def add_object(self, obj: dict[str, Any], ns: str, ready: bool = True) -> None:
        """Seed any object of a manifest (e.g. a rendered chart): Deployments get a status with every
        replica ready unless `ready` is False; DisaggregatedSets a per-role status likewise."""
        obj = copy.deepcopy(obj)
        k = obj["kind"]
        key_kind = KIND_OF_OBJECT.get(k)
        if key_kind is None:
            return
        meta = obj.setdefault("metadata", {})
        meta["namespace"] = ns
        meta.setdefault("uid", f"uid-{meta['name']}")
        spec = obj.get("spec") or {}
        if k in ("Deployment", "LeaderWorkerSet"):
            n = int(spec.get("replicas", 1))
            obj["status"] = {"replicas": n, "readyReplicas": n if ready else 0}
        elif k == "DisaggregatedSet":
            roles = []  # DisaggregatedSetStatus.roleStatuses: totals over spec.slices
            for r in spec.get("roles") or []:
                rs = r.get("spec") if isinstance(r.get("spec"), dict) else r
                n = int(rs.get("replicas", 1)) * max(1, int(spec.get("slices") or 1))
                roles.append({"name": r.get("name"), "replicas": n, "readyReplicas": n if ready else 0})
            obj["status"] = {"roleStatuses": roles}
        with self.lock:
            self._bump(obj)
            self.objects[(key_kind, ns, meta["name"])] = obj

    def add_pod(self, ns: str, name: str, labels: dict[str, str], node: str | None, node_labels: dict[str, str] | None = None) -> None:
        """A pod (scheduled on `node`, created with `node_labels` when given), as the scheduler leaves it."""
        with self.lock:
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": dict(labels)},
                   "spec": {"containers": [{"name": "vllm", "image": "x"}], **({"nodeName": node} if node else {})}}
            self._bump(pod)
            self.objects[("pod", ns, name)] = pod
            if node and node_labels is not None:
                n = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": dict(node_labels)}}
                self._bump(n)
                self.objects[("node", "", node)] = n

    def replicas(self, kind: str, ns: str, name: str) -> int:
        return int(self.objects[(kind, ns, name)]["spec"]["replicas"])

    def set_ready(self, kind: str, ns: str, name: str, ready: int) -> None:
        """What the Deployment controller and kubelets report once pods pass readiness."""
        with self.lock:
            o = self.objects[(kind, ns, name)]
            o["status"]["readyReplicas"] = int(ready)
            self._bump(o)

    def inject(self, method: str, path_re: str, status: int, count: int = 1, headers: dict[str, str] | None = None,
               delay_s: float = 0.0) -> None:
        self.faults.append(Fault(method.upper(), path_re, status, count, dict(headers or {}), delay_s))

    def events(self, ns: str) -> list[dict[str, Any]]:
        return [o for (k, n, _), o in self.objects.items() if k == "event" and n == ns]


def _match_labels(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("=", 1)
            if labels.get(k.rstrip("=")) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def _status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": code, "reason": reason, "message": message},
        status=code,
    )


def _merge(dst: dict[str, Any], patch: dict[str, Any]) -> None:
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        elif v is None:
            dst.pop(k, None)
        else:
            dst[k] = v


def build_app(state: FakeK8s) -> web.Application:
    WL = r"/apis/(?P<api>apps/v1|leaderworkerset\.x-k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>deployments|leaderworkersets)"
    routes: list[tuple[str, re.Pattern[str], Any]] = []

    def route(method: str, pattern: str):
        def deco(fn):
            routes.append((method, re.compile("^" + pattern + "$"), fn))
            return fn
        return deco

    def kind_of(plural: str) -> str:
        return "deployment" if plural == "deployments" else "leaderworkerset"

    @route("GET", WL)
    async def list_wl(req, m, body):
        kind = kind_of(m["plural"])
        items = [
            copy.deepcopy(o) for (k, ns, _), o in state.objects.items()
            if k == kind and ns == m["ns"] and _match_labels(o["metadata"].get("labels", {}), req.query.get("labelSelector"))
        ]
        k = "DeploymentList" if kind == "deployment" else "LeaderWorkerSetList"
        return web.json_response({"apiVersion": m["api"], "kind": k, "metadata": {"resourceVersion": str(state.rv)}, "items": items})

    @route("GET", WL + r"/(?P<name>[^/]+)")
    async def get_wl(req, m, body):
        o = state.objects.get((kind_of(m["plural"]), m["ns"], m["name"]))
        return web.json_response(o) if o else _status(404, "NotFound", f"{m['plural']} \"{m['name']}\" not found")

    def scale_of(o: dict[str, Any]) -> dict[str, Any]:
        return {
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": o["metadata"]["name"], "namespace": o["metadata"]["namespace"],
                         "resourceVersion": o["metadata"]["resourceVersion"], "uid": o["metadata"]["uid"]},
            "spec": {"replicas": o["spec"]["replicas"]},
            "status": {"replicas": o["status"].get("replicas", 0), "selector": ""},
        }

    @route("GET", WL + r"/(?P<name>[^/]+)/scale")
    async def get_scale(req, m, body):
        o = state.objects.get((kind_of(m["plural"]), m["ns"], m["name"]))
        return web.json_response(scale_of(o)) if o else _status(404, "NotFound", "not found")

    @route("PUT", WL + r"/(?P<name>[^/]+)/scale")
    async def put_scale(req, m, body):
        o = state.objects.get((kind_of(m["plural"]), m["ns"], m["name"]))
        if not o:
            return _status(404, "NotFound", "not found")
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != o["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", "Operation cannot be fulfilled: the object has been modified; please apply your changes to the latest version and try again")
        o["spec"]["replicas"] = int(body["spec"]["replicas"])
        o["status"]["replicas"] = o["spec"]["replicas"]
        state._bump(o)
        return web.json_response(scale_of(o))

    @route("PATCH", WL + r"/(?P<name>[^/]+)/scale")
    async def patch_scale(req, m, body):
        o = state.objects.get((kind_of(m["plural"]), m["ns"], m["name"]))
        if not o:
            return _status(404, "NotFound", "not found")
        o["spec"]["replicas"] = int(body["spec"]["replicas"])
        o["status"]["replicas"] = o["spec"]["replicas"]
        state._bump(o)
        return web.json_response(scale_of(o))

    CORE = r"/api/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>configmaps|events)"
    LEASE = r"/apis/coordination\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>leases)"
    ROUTE = r"/apis/gateway\.networking\.k8s\.io/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>httproutes)"
    DSET = r"/apis/disaggregatedset\.x-k8s\.io/v1/namespaces/(?P<ns>[^/]+)/(?P<plural>disaggregatedsets)"
    IPOOL = r"/apis/(?P<api>inference\.networking\.k8s\.io/v1|inference\.networking\.x-k8s\.io/v1alpha2)/namespaces/(?P<ns>[^/]+)/(?P<plural>inferencepools)"
    KIND = {"configmaps": ("configmap", "v1", "ConfigMap"), "events": ("event", "v1", "Event"),
            "leases": ("lease", "coordination.k8s.io/v1", "Lease"),
            "httproutes": ("httproute", "gateway.networking.k8s.io/v1", "HTTPRoute"),
            "disaggregatedsets": ("disaggregatedset", "disaggregatedset.x-k8s.io/v1", "DisaggregatedSet"),
            "inferencepools": ("inferencepool", "inference.networking.k8s.io/v1", "InferencePool")}

    @route("GET", r"/api/v1/namespaces/(?P<ns>[^/]+)/pods")
    async def list_pods(req, m, body):
        items = [copy.deepcopy(o) for (k, ns, _), o in state.objects.items()
                 if k == "pod" and ns == m["ns"] and _match_labels(o["metadata"].get("labels", {}), req.query.get("labelSelector"))]
        return web.json_response({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": str(state.rv)}, "items": items})

    @route("GET", r"/api/v1/namespaces/(?P<name>[^/]+)")
    async def get_namespace(req, m, body):
        if state.namespaces is not None and m["name"] not in state.namespaces:
            return _status(404, "NotFound", f"namespaces \"{m['name']}\" not found")
        return web.json_response({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": m["name"]},
                                  "status": {"phase": "Active"}})

    @route("POST", r"/apis/authorization\.k8s\.io/v1/selfsubjectaccessreviews")
    async def access_review(req, m, body):
        attrs = dict((body.get("spec") or {}).get("resourceAttributes") or {})
        state.reviews.append(attrs)
        res = attrs.get("resource", "") + (f"/{attrs['subresource']}" if attrs.get("subresource") else "")
        ok = state.allowed is None or (attrs.get("group", ""), res, attrs.get("verb", "")) in state.allowed
        return web.json_response({**body, "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                                  "status": {"allowed": ok, **({} if ok else {"reason": "no RBAC rule allows it"})}},
                                 status=201)

    @route("GET", r"/api/v1/nodes/(?P<name>[^/]+)")
    async def get_node(req, m, body):
        o = state.objects.get(("node", "", m["name"]))
        return web.json_response(o) if o else _status(404, "NotFound", f"nodes \"{m['name']}\" not found")

    async def list_objs(req, m, body):
        kind, api, k = KIND[m["plural"]]
        items = [copy.deepcopy(o) for (kk, ns, _), o in state.objects.items() if kk == kind and ns == m["ns"]]
        return web.json_response({"apiVersion": api, "kind": k + "List", "metadata": {"resourceVersion": str(state.rv)}, "items": items})

    async def create(req, m, body):
        kind, api, k = KIND[m["plural"]]
        meta = body.setdefault("metadata", {})
        name = meta.get("name") or f"{meta.get('generateName', 'obj-')}{state.rv + 1}"
        meta["name"], meta["namespace"] = name, m["ns"]
        if (kind, m["ns"], name) in state.objects:
            return _status(409, "AlreadyExists", f"{m['plural']} \"{name}\" already exists")
        body["apiVersion"], body["kind"] = api, k
        state._bump(body)
        state.objects[(kind, m["ns"], name)] = body
        return web.json_response(body, status=201)

    async def get_obj(req, m, body):
        o = state.objects.get((KIND[m["plural"]][0], m["ns"], m["name"]))
        return web.json_response(o) if o else _status(404, "NotFound", f"{m['plural']} \"{m['name']}\" not found")

    async def put_obj(req, m, body):
        key = (KIND[m["plural"]][0], m["ns"], m["name"])
        o = state.objects.get(key)
        if not o:
            return _status(404, "NotFound", "not found")
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv and rv != o["metadata"]["resourceVersion"]:
            return _status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again")
        body.setdefault("metadata", {}).update(name=m["name"], namespace=m["ns"])
        state._bump(body)
        state.objects[key] = body
        return web.json_response(body)

    for base in (DSET, IPOOL):
        route("GET", base)(list_objs)
    for base in (CORE, LEASE, ROUTE, DSET, IPOOL):
        route("POST", base)(create)
        route("GET", base + r"/(?P<name>[^/]+)")(get_obj)
        route("PUT", base + r"/(?P<name>[^/]+)")(put_obj)

    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        raw = await request.read()
        body = json.loads(raw) if raw else {}
        hit: Fault | None = None
        with state.lock:
            state.requests.append((request.method, path))
            for f in state.faults:
                if f.count > 0 and f.method == request.method and re.search(f.path_re, path):
                    f.count -= 1
                    hit = f
                    break
        if hit is not None:
            if hit.delay_s > 0:
                await asyncio.sleep(hit.delay_s)  # outside the lock: other requests are answered meanwhile
            resp = _status(hit.status, "Injected", f"injected fault {hit.status}")
            resp.headers.update(hit.headers)
            return resp
        for method, pat, fn in routes:
            m = pat.match(path)
            if m and method == request.method:
                with state.lock:
                    return await fn(request, m, body)
        return _status(404, "NotFound", f"no route for {request.method} {path}")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


class FakeK8sServer:
    """Runs the fake API server on 127.0.0.1 in a background thread; `.url` for the client."""

    def __init__(self, state: FakeK8s | None = None):
        self.state = state or FakeK8s()
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> "FakeK8sServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        self._runner, self.port = await serve_app(build_app(self.state), "127.0.0.1", 0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api_client(self):
        """An official-client ApiClient pointed at this server."""
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        return client.ApiClient(cfg)

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
