"""Routing the way llm-d routes: HTTPRoute backendRefs of kind InferencePool, one per decode
variant, weighted from the plan's decode routing; unknown shapes are errors before any routing write.
Kubernetes is the FAKE API server of tests/controller_k8s_fake.py (no kube-apiserver here).
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from controller_k8s_fake import FakeK8sServer
from controllers.actuate import ApplyRequest, KubernetesActuator
from controllers.discover import model_label_map, preset_scheme

FIXTURE = Path(__file__).parent / "fixtures" / "llmd" / "output-pd.yaml"
NS = "llm-d"
MODEL, SERVED = "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"
P = f"{MODEL}/prefill/H100-SXM-80GB/tp2"
D1 = f"{MODEL}/decode/H100-SXM-80GB/tp2"
D2 = f"{MODEL}/decode/H200-141GB/tp1"
SCHEME = preset_scheme("llm-d", models=model_label_map({MODEL: SERVED}))


def fixture() -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(FIXTURE.read_text()) if d}


def h200_decode(base: dict) -> dict:
    """A second decode variant: the fixture's decode Deployment on H200 nodes at TP 1."""
    d = copy.deepcopy(base)
    d["metadata"]["name"] = "h200-decode"
    spec = d["spec"]["template"]["spec"]
    spec.pop("affinity")
    spec["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-H200"}
    args = spec["containers"][0]["args"]
    i = args.index("--tensor-parallel-size")
    del args[i:i + 2]
    return d


def pool(name: str, selector: dict[str, str]) -> dict:
    return {"apiVersion": "inference.networking.k8s.io/v1", "kind": "InferencePool", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": selector}, "targetPorts": [{"number": 8000}],
                     "endpointPickerRef": {"name": f"{name}-epp", "port": {"number": 9002}}}}


def route(refs: list[dict]) -> dict:
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "llm-d-route"},
            "spec": {"parentRefs": [{"name": "infra-gateway"}], "rules": [{"backendRefs": refs}]}}


def ipref(name: str, weight: int = 1) -> dict:
    return {"group": "inference.networking.k8s.io", "kind": "InferencePool", "name": name, "weight": weight}


def variant_label(d: dict, value: str) -> dict:
    d["spec"]["template"]["metadata"]["labels"]["variant"] = value
    return d


@pytest.fixture()
def two_variants():
    """Decode on H100 TP2 and on H200 TP1, one InferencePool each, told apart by a `variant` label the
    operator puts on each modelservice release's pods (modelArtifacts.labels); the prefill pods are
    in the H100 pool (only decode workloads decide a pool's variant)."""
    f = fixture()
    with FakeK8sServer() as srv:
        srv.state.add_object(variant_label(f["pd-llm-d-modelservice-decode"], "h100-tp2"), NS)
        srv.state.add_object(variant_label(h200_decode(f["pd-llm-d-modelservice-decode"]), "h200-tp1"), NS)
        srv.state.add_object(variant_label(f["pd-llm-d-modelservice-prefill"], "h100-tp2"), NS)
        label = "meta-llama-llama-3-1-8b-instruct"
        srv.state.add_object(pool("llama-h100-tp2", {"llm-d.ai/model": label, "variant": "h100-tp2"}), NS)
        srv.state.add_object(pool("llama-h200-tp1", {"llm-d.ai/model": label, "variant": "h200-tp1"}), NS)
        srv.state.add_object(route([ipref("llama-h100-tp2"), ipref("llama-h200-tp1")]), NS)
        yield srv


def weights(srv) -> list[int]:
    return [r["weight"] for r in srv.state.objects[("httproute", NS, "llm-d-route")]["spec"]["rules"][0]["backendRefs"]]


def test_inferencepool_backendrefs_weighted_from_decode_routing(two_variants):
    srv = two_variants
    a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=SCHEME, routing_configmap=None,
                           inference_pool_routes={MODEL: "llm-d-route"})
    assert set(a.pools()) == {P, D1, D2}
    # the prefill split (P) does not enter the route weights: the EPP picks a decode pod first
    res = a.apply(ApplyRequest({P: 1, D1: 3, D2: 1}, {MODEL: {MODEL: {P: 1.0, D1: 0.7, D2: 0.3}}}, "plan"))
    assert res.ok, res.errors
    assert weights(srv) == [70, 30] and res.routing_changed
    assert srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-decode") == 3
    assert ("configmap", NS, "pd-planner-routing") not in srv.state.objects  # export is off
    # idempotent: the same plan writes nothing
    assert not a.apply(ApplyRequest({P: 1, D1: 3, D2: 1}, {MODEL: {MODEL: {P: 1.0, D1: 0.7, D2: 0.3}}}, "plan")).routing_changed


def test_configmap_export_when_asked(two_variants):
    a = KubernetesActuator(two_variants.api_client(), NS, sleep=lambda s: None, scheme=SCHEME,
                           inference_pool_routes={MODEL: "llm-d-route"})
    assert a.apply(ApplyRequest({}, {MODEL: {MODEL: {P: 1.0, D1: 0.5, D2: 0.5}}}, "plan")).ok
    assert ("configmap", NS, "pd-planner-routing") in two_variants.state.objects and weights(two_variants) == [50, 50]


def assert_routing_not_written(srv, before: dict) -> None:
    assert srv.state.objects[("httproute", NS, "llm-d-route")] == before["route"]
    assert ("configmap", NS, "pd-planner-routing") not in srv.state.objects


@pytest.mark.parametrize("case,message", [
    ("pool_selects_two_variants", "selects decode workloads of several variants"),
    ("service_backend", "has no backendRef of kind InferencePool"),
    ("missing_pool", "InferencePool llama-gone (inference.networking.k8s.io) not found"),
    ("variant_without_pool", "no InferencePool of HTTPRoute llm-d-route selects"),
])
def test_unknown_shapes_are_errors_and_leave_the_routing_as_it_was(two_variants, case, message):
    """The route is checked before any write; its model's routing stays as it was (HTTPRoute and ConfigMap), while the
    scale-up of its decode pool goes ahead (it was held too: one misspelt route stopped every replica write)."""
    srv = two_variants
    label = "meta-llama-llama-3-1-8b-instruct"
    key = ("httproute", NS, "llm-d-route")
    if case == "pool_selects_two_variants":  # the guide's single pool over every pod of the model
        srv.state.add_object(pool("llama-all", {"llm-d.ai/model": label}), NS)
        srv.state.add_object(route([ipref("llama-all")]), NS)
    elif case == "service_backend":
        srv.state.add_object(route([{"kind": "Service", "name": "pd-llm-d-modelservice-decode", "port": 8000, "weight": 1}]), NS)
    elif case == "missing_pool":
        srv.state.add_object(route([ipref("llama-h100-tp2"), ipref("llama-gone")]), NS)
    else:
        srv.state.add_object(route([ipref("llama-h100-tp2")]), NS)
    before = {"route": copy.deepcopy(srv.state.objects[key])}
    a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=SCHEME,
                           inference_pool_routes={MODEL: "llm-d-route"})
    res = a.apply(ApplyRequest({P: 1, D1: 4, D2: 1}, {MODEL: {MODEL: {P: 1.0, D1: 0.7, D2: 0.3}}}, "plan"))
    assert not res.ok and any(message in e for e in res.errors), res.errors
    assert res.errors[-1] == f"routing of {MODEL} not written (left as it was)"
    assert_routing_not_written(srv, before)
    assert srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-decode") == 4  # 1 -> 4, a scale-up


def test_alpha_inferencepool_plain_selector():
    """The earlier inference.networking.x-k8s.io/v1alpha2 InferencePool: spec.selector is a plain map."""
    f = fixture()
    with FakeK8sServer() as srv:
        srv.state.add_object(f["pd-llm-d-modelservice-decode"], NS)
        srv.state.add_object({"apiVersion": "inference.networking.x-k8s.io/v1alpha2", "kind": "InferencePool",
                              "metadata": {"name": "old"},
                              "spec": {"selector": {"llm-d.ai/model": "meta-llama-llama-3-1-8b-instruct"},
                                       "targetPortNumber": 8000, "extensionRef": {"name": "old-epp"}}}, NS)
        srv.state.add_object(route([{"group": "inference.networking.x-k8s.io", "kind": "InferencePool", "name": "old"}]), NS)
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=SCHEME, routing_configmap=None,
                               inference_pool_routes={MODEL: "llm-d-route"})
        assert a.apply(ApplyRequest({D1: 1}, {MODEL: {MODEL: {D1: 1.0}}}, "plan")).ok
        assert weights(srv) == [100]
