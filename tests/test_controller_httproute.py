"""Optional Gateway API routing: the controller writes a model's prefill-side weights into an HTTPRoute.

Against the FAKE Kubernetes API server of tests/controller_k8s_fake.py (no kube-apiserver binary can
run here); the official `kubernetes` client talks to it over HTTP, with resourceVersion/409 semantics.
"""

from __future__ import annotations

import pytest

from controllers.actuate import ApplyRequest, KubernetesActuator, integer_weights
from controller_k8s_fake import FakeK8sServer

NS = "llm"
M = "llama-3.1-8b"
P = f"{M}/prefill/H100-SXM-80GB/tp1"
X = f"{M}/mixed/H100-SXM-80GB/tp1"
D = f"{M}/decode/H100-SXM-80GB/tp2"


def labels(role: str, tp: int) -> dict[str, str]:
    return {"pd-planner.io/model": M, "pd-planner.io/role": role, "pd-planner.io/gpu": "H100-SXM-80GB", "pd-planner.io/tp": str(tp)}


def route(refs: list[dict]) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "llama-route"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": refs}]}}


@pytest.fixture()
def k8s():
    with FakeK8sServer() as srv:
        srv.state.add_workload("deployment", NS, "llama-prefill", labels("prefill", 1), 1)
        srv.state.add_workload("deployment", NS, "llama-mixed", labels("mixed", 1), 1)
        srv.state.add_workload("deployment", NS, "llama-decode", labels("decode", 2), 1)
        srv.state.objects[("httproute", NS, "llama-route")] = route(
            [{"name": "llama-prefill", "port": 8000, "weight": 50}, {"name": "llama-mixed", "port": 8000, "weight": 50},
             {"name": "legacy", "port": 8000, "weight": 10}])
        srv.state._bump(srv.state.objects[("httproute", NS, "llama-route")])
        yield srv


def test_integer_weights_sum_to_the_total() -> None:
    assert integer_weights([0.7, 0.3]) == [70, 30]
    assert integer_weights([1, 1, 1]) == [34, 33, 33]
    assert sum(integer_weights([0.123, 0.456, 0.421])) == 100
    assert integer_weights([0.0, 0.0]) == [0, 0]


def test_prefill_side_weights_reach_the_httproute(k8s) -> None:
    a = KubernetesActuator(k8s.api_client(), NS, sleep=lambda s: None, httproutes={M: "llama-route"})
    routing = {M: {M: {P: 0.75, X: 0.25, D: 1.0}}}
    res = a.apply(ApplyRequest({}, routing, "test"))
    assert res.ok and res.routing_changed, res.errors
    refs = k8s.state.objects[("httproute", NS, "llama-route")]["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("llama-prefill", 75), ("llama-mixed", 25), ("legacy", 0)]
    # idempotent: the same routing writes nothing
    assert not a.apply(ApplyRequest({}, routing, "test")).routing_changed
    # a 409 on the write is retried with the fresh object
    k8s.state.inject("PUT", r".*/httproutes/llama-route$", 409)
    res = a.apply(ApplyRequest({}, {M: {M: {P: 0.2, X: 0.8, D: 1.0}}}, "test"))
    assert res.ok, res.errors
    assert all(f.count == 0 for f in k8s.state.faults)  # the fault was met, and retried past
    puts = [p for m, p in k8s.state.requests if m == "PUT" and p.endswith("/httproutes/llama-route")]
    assert len(puts) == 3  # first write, then the 409 and its retry
    refs = k8s.state.objects[("httproute", NS, "llama-route")]["spec"]["rules"][0]["backendRefs"]
    assert [r["weight"] for r in refs] == [20, 80, 0]


def test_a_route_without_planned_backends_is_an_error_not_a_zeroing(k8s) -> None:
    k8s.state.objects[("httproute", NS, "llama-route")] = route([{"name": "other", "port": 80, "weight": 100}])
    k8s.state._bump(k8s.state.objects[("httproute", NS, "llama-route")])
    a = KubernetesActuator(k8s.api_client(), NS, sleep=lambda s: None, httproutes={M: "llama-route"})
    res = a.apply(ApplyRequest({}, {M: {M: {P: 1.0, D: 1.0}}}, "test"))
    assert any("names a workload of the planned pools" in e for e in res.errors)
    assert k8s.state.objects[("httproute", NS, "llama-route")]["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100
    # an unknown route shape is an error before any routing write: no routing ConfigMap either
    assert ("configmap", NS, "pd-planner-routing") not in k8s.state.objects
