"""llm-d-shaped workloads are found and scaled (controllers/discover.py, KubernetesActuator).

The fixture tests/fixtures/llmd/output-pd.yaml is in the shape llm-d-modelservice renders a P/D
deployment (its examples/output-pd.yaml); the Kubernetes API is the FAKE server of
tests/controller_k8s_fake.py (no kube-apiserver binary can run here), talked to by the official
client over HTTP.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from controller_k8s_fake import FakeK8sServer
from controllers.actuate import ApplyRequest, DiscoveryError, KubernetesActuator
from planner.cli.control import label_scheme
from controllers.config import ControllerConfig, LabelsConfig, ModelConfig
from controllers.discover import discover, model_label_map, preset_scheme, sanitize_label_value, tp_from_args
from planner.io.schema import Slo

FIXTURE = Path(__file__).parent / "fixtures" / "llmd" / "output-pd.yaml"
NS = "llm-d"
MODEL, SERVED = "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"
P = f"{MODEL}/prefill/H100-SXM-80GB/tp2"
D = f"{MODEL}/decode/H100-SXM-80GB/tp2"


def docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(FIXTURE.read_text()) if d]


def scheme(**kw):
    cfg = ControllerConfig(fleet="-", models={MODEL: ModelConfig(served_name=SERVED, slo=Slo(ttft_ms=2000, itl_ms=100))},
                           labels=LabelsConfig(**kw))
    return label_scheme(cfg)


def test_served_name_sanitised_as_the_chart_does():
    assert sanitize_label_value("facebook/opt-125m") == "facebook-opt-125m"  # examples/output-pd.yaml
    assert sanitize_label_value(SERVED) == "meta-llama-llama-3-1-8b-instruct"
    assert model_label_map({MODEL: SERVED})["meta-llama-llama-3-1-8b-instruct"] == MODEL


@pytest.mark.parametrize("args,tp", [
    (["vllm", "serve", "m", "--tensor-parallel-size", "4"], 4),
    (["--tensor-parallel-size=8"], 8),
    (["-tp", "2"], 2),
    (["/bin/sh -c 'vllm serve m -tp 2 --port 8000'"], 2),
    (["vllm", "serve", "m"], None),
])
def test_tp_from_vllm_args(args, tp):
    assert tp_from_args([{"args": args}]) == tp
    assert tp_from_args([{"command": args}]) == tp


def test_llmd_fixture_discovered_as_prefill_and_decode_pools():
    found, problems = discover(docs(), scheme())
    assert problems == []
    assert set(found) == {P, D}
    assert found[D].kind == "Deployment" and found[D].name == "pd-llm-d-modelservice-decode"
    assert found[P].name == "pd-llm-d-modelservice-prefill"
    # the pd-planner preset does not see llm-d workloads (and says nothing: they are not labelled for it)
    assert discover(docs(), scheme(preset="pd-planner")) == ({}, [])


def test_role_both_is_mixed_and_gpu_from_node_selector():
    d = copy.deepcopy(docs()[1])
    d["spec"]["template"]["metadata"]["labels"]["llm-d.ai/role"] = "both"
    spec = d["spec"]["template"]["spec"]
    del spec["affinity"]
    spec["nodeSelector"] = {"nvidia.com/gpu.product": "NVIDIA-H200"}
    found, problems = discover([d], scheme())
    assert problems == [] and set(found) == {f"{MODEL}/mixed/H200-141GB/tp2"}


def test_unreadable_workloads_are_named_with_what_is_missing():
    d = copy.deepcopy(docs()[1])
    del d["spec"]["template"]["spec"]["affinity"]  # output-pd.yaml as shipped: no GPU type anywhere
    _, problems = discover([d], scheme())
    assert len(problems) == 1 and "pd-llm-d-modelservice-decode" in problems[0] and "no GPU type" in problems[0]
    found, problems = discover([d], scheme(default_gpu="H100-SXM-80GB"))
    assert problems == [] and set(found) == {D}
    d["spec"]["template"]["metadata"]["labels"].pop("llm-d.ai/role")
    _, problems = discover([d], scheme(default_gpu="H100-SXM-80GB"))
    assert "no llm-d.ai/role label" in problems[0]
    d["spec"]["template"]["metadata"]["labels"]["llm-d.ai/role"] = "encode"
    _, problems = discover([d], scheme(default_gpu="H100-SXM-80GB"))
    assert "'encode' is not one of" in problems[0]
    d2 = copy.deepcopy(docs()[1])
    d2["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0]["values"] = ["NVIDIA-Z9000"]
    _, problems = discover([d2], scheme())
    assert "NVIDIA-Z9000 is not in the catalog map" in problems[0]


def lws_of(dep: dict) -> dict:
    """The same pod template as a LeaderWorkerSet (llm-d-modelservice's decode-lws.yaml puts it in
    spec.leaderWorkerTemplate.workerTemplate)."""
    return {"apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
            "metadata": {"name": dep["metadata"]["name"] + "-lws"},
            "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 2, "workerTemplate": dep["spec"]["template"]}}}


def disaggregated_set(prefill: dict, decode: dict, nested: bool) -> dict:
    """A DisaggregatedSet with the two roles (disaggregatedset.x-k8s.io/v1; `nested`: replicas and
    leaderWorkerTemplate under roles[i].spec, as the v1 docs and llm-d's benchmark patches
    /spec/roles/0/spec/replicas have it; else directly on the role, the v1alpha1 shape)."""
    roles = []
    for name, dep, n in (("prefill", prefill, 2), ("decode", decode, 3)):
        tmpl = copy.deepcopy(dep["spec"]["template"])
        tmpl["metadata"]["labels"].pop("llm-d.ai/role")  # the role's name says it
        body = {"replicas": n, "leaderWorkerTemplate": {"size": 1, "workerTemplate": tmpl}}
        roles.append({"name": name, "spec": body} if nested else {"name": name, **body})
    return {"apiVersion": "disaggregatedset.x-k8s.io/v1", "kind": "DisaggregatedSet", "metadata": {"name": "llama-ds"},
            "spec": {"roles": roles}}


@pytest.mark.parametrize("nested", [True, False])
def test_disaggregated_set_roles_are_pools_and_scale(nested):
    ds = disaggregated_set(docs()[2], docs()[1], nested)
    found, problems = discover([ds], scheme())
    assert problems == [] and set(found) == {P, D}
    assert (found[P].desired, found[D].desired) == (2, 3) and found[D].role_index == 1
    with FakeK8sServer() as srv:
        srv.state.add_object(ds, NS)
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None)
        assert {p: s.desired for p, s in a.pools().items()} == {P: 2, D: 3}
        res = a.apply(ApplyRequest({P: 2, D: 5}, {}, "test"))
        assert res.ok and res.changed == {D: (3, 5)}
        role = srv.state.objects[("disaggregatedset", NS, "llama-ds")]["spec"]["roles"][1]
        assert (role["spec"] if nested else role)["replicas"] == 5
        ev = srv.state.events(NS)
        assert ev and ev[0]["involvedObject"]["kind"] == "DisaggregatedSet" and "decode role" in ev[0]["message"]


def test_llmd_fixture_scaled_on_the_api_server_deployment_and_lws():
    with FakeK8sServer() as srv:
        for d in docs():
            srv.state.add_object(d, NS)
        srv.state.add_object(lws_of(docs()[1]) | {"metadata": {"name": "other-lws"}}, "elsewhere")
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None)
        assert {p: (s.desired, s.ready) for p, s in a.pools().items()} == {P: (1, 1), D: (1, 1)}
        res = a.apply(ApplyRequest({P: 1, D: 3}, {}, "load"))
        assert res.ok and res.changed == {D: (1, 3)}
        assert srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-decode") == 3
        assert srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-prefill") == 1
        # the same decode template as a LeaderWorkerSet: two targets for one pool is an error, not a guess
        srv.state.add_object(lws_of(docs()[1]), NS)
        with pytest.raises(DiscoveryError, match="both serve pool"):
            a.pools()
        res = a.apply(ApplyRequest({D: 4}, {}, "load"))
        assert not res.ok and srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-decode") == 3


def test_lws_target_scaled():
    with FakeK8sServer() as srv:
        srv.state.add_object(lws_of(docs()[1]), NS)
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None)
        assert set(a.pools()) == {D}
        assert a.apply(ApplyRequest({D: 2}, {}, "t")).changed == {D: (1, 2)}
        assert srv.state.replicas("leaderworkerset", NS, "pd-llm-d-modelservice-decode-lws") == 2


def test_custom_preset_needs_its_keys():
    with pytest.raises(ValueError, match="model_label"):
        preset_scheme("custom")
    s = preset_scheme("custom", model_label="app/model", role_label="app/role", default_gpu="L4", models={"m": "m"})
    dep = {"kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app/model": "m", "app/role": "decode"}}, "spec": {}}}}
    found, problems = discover([dep], s)
    assert problems == [] and set(found) == {"m/decode/L4/tp1"}


def test_gpu_from_the_nodes_of_running_pods():
    """output-pd.yaml as llm-d-modelservice ships it names no GPU type; with gpu_from_nodes the
    nvidia.com/gpu.product label of the nodes its pods run on gives it."""
    f = {d["metadata"]["name"]: d for d in docs() if d.get("kind") == "Deployment"}
    for d in f.values():
        del d["spec"]["template"]["spec"]["affinity"]
    with FakeK8sServer() as srv:
        for d in f.values():
            srv.state.add_object(d, NS)
        dec = f["pd-llm-d-modelservice-decode"]["spec"]["selector"]["matchLabels"]
        pre = f["pd-llm-d-modelservice-prefill"]["spec"]["selector"]["matchLabels"]
        srv.state.add_pod(NS, "decode-0", dec, "gpu-node-1", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
        srv.state.add_pod(NS, "prefill-0", pre, "gpu-node-2", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
        srv.state.add_pod(NS, "prefill-1", pre, None)  # pending: says nothing
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None,
                               gpu_from_nodes=True)
        assert set(a.pools()) == {P, D}
        # pods on two GPU types: no single answer, the workload is reported
        srv.state.add_pod(NS, "decode-1", dec, "gpu-node-3", {"nvidia.com/gpu.product": "NVIDIA-H200"})
        with pytest.raises(DiscoveryError, match="no GPU type"):
            a.pools()
        off = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None)
        with pytest.raises(DiscoveryError, match="no GPU type"):
            off.pools()


def test_loop_holds_and_says_why_when_a_workload_cannot_be_read():
    """`planner control`'s wiring: a decode Deployment without llm-d.ai/role holds the loop with the
    workload and the missing label named, and nothing is scaled."""
    from planner.cli.control import build_controller
    from controllers.config import ActuatorConfig, LeaderConfig
    from planner.io.schema import Fleet

    d = docs()[1]
    d["spec"]["template"]["metadata"]["labels"].pop("llm-d.ai/role")
    cfg = ControllerConfig(fleet="-", models={MODEL: ModelConfig(served_name=SERVED, slo=Slo(ttft_ms=2000, itl_ms=100))},
                           actuator=ActuatorConfig(namespace=NS, in_cluster=False), leader=LeaderConfig(enabled=False))
    with FakeK8sServer() as srv:
        srv.state.add_object(d, NS)
        srv.state.add_object(docs()[2], NS)
        ctl = build_controller(cfg, Fleet(gpus={"H100-SXM-80GB": {"available": 8}}), dry_run=False, api_client=srv.api_client(), perf=object())
        dec = ctl.step()
        assert dec.outcome == "held"
        assert any("pd-llm-d-modelservice-decode" in e and "no llm-d.ai/role label" in e for e in dec.errors), dec.errors
        assert srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-decode") == 1


def test_external_mode_disaggregated_set_role_is_not_written_but_exported_for_its_scaler():
    """DisaggregatedSet docs: a role with scaling.mode External gets a DisaggregatedSetRoleScaler
    "<ds>-<role>" that KEDA/HPA scale; pd-planner must not write that role's replicas itself."""
    from controllers.actuate import MetricsActuator

    ds = disaggregated_set(docs()[2], docs()[1], nested=True)
    ds["spec"]["roles"][1]["scaling"] = {"mode": "External"}
    with FakeK8sServer() as srv:
        srv.state.add_object(ds, NS)
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None)
        res = a.apply(ApplyRequest({P: 3, D: 5}, {}, "t"))
        assert not res.ok and any("scaling.mode External" in e and "llama-ds-decode" in e for e in res.errors)
        roles = srv.state.objects[("disaggregatedset", NS, "llama-ds")]["spec"]["roles"]
        assert roles[1]["spec"]["replicas"] == 3  # the External role: untouched (5 asked)
        assert roles[0]["spec"]["replicas"] == 3  # the other role: 2 -> 3 (was held by its sibling's error)
        m = MetricsActuator(namespace=NS, targets=a.targets)
        assert m.apply(ApplyRequest({P: 3, D: 5}, {}, "t")).ok
        assert m.registry.get_sample_value("pd_planner_desired_replicas", {
            "namespace": NS, "target_kind": "DisaggregatedSetRoleScaler", "target_name": "llama-ds-decode",
            "model": MODEL, "role": "decode", "gpu": "H100-SXM-80GB", "tp": "2"}) == 5


def test_disaggregated_set_slices_multiply_replicas_and_scaling_rounds_up():
    """spec.slices identical copies: a role's pool has replicas x slices; a target that does not
    divide is rounded up per slice (never below the plan)."""
    ds = disaggregated_set(docs()[2], docs()[1], nested=True)
    ds["spec"]["slices"] = 2
    found, _ = discover([ds], scheme())
    assert (found[P].desired, found[D].desired) == (4, 6)
    with FakeK8sServer() as srv:
        srv.state.add_object(ds, NS)
        a = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, scheme=scheme(), routing_configmap=None)
        assert a.pools()[D].ready == 6  # status.roleStatuses[].readyReplicas: the role's total
        res = a.apply(ApplyRequest({P: 4, D: 7}, {}, "t"))
        assert srv.state.objects[("disaggregatedset", NS, "llama-ds")]["spec"]["roles"][1]["spec"]["replicas"] == 4
        # the result (the decision log's changes) and the Event say what was written, 8, not the plan's 7
        assert res.ok and res.changed == {D: (6, 8)}, res.changed
        assert [e["message"].split(": t")[0][-6:] for e in srv.state.events(NS)] == ["6 -> 8"]
        # 7 again: the role already holds 8 (two slices of 4), nothing is written, nothing is said to change
        again = a.apply(ApplyRequest({P: 4, D: 7}, {}, "t"))
        assert again.ok and again.changed == {}, again.changed
        assert len(srv.state.events(NS)) == 1
