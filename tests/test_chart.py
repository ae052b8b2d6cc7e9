"""charts/pd-planner renders (tests/helm_lite.py: no `helm` binary here) into manifests that validate
against the Kubernetes schemas (kubernetes-validate, strict), whose controller config and fleet
parse, whose RBAC is least privilege; the llm-d fixture's InferencePool and HTTPRoute, and the
routes the actuator writes, validate against the Gateway API / Inference Extension schemas in
tests/schemas (written after the CRDs, sources cited there); the Dockerfile is multi-stage,
non-root and runs `planner`.

Not validated: monitoring.coreos.com ServiceMonitor/PodMonitor and keda.sh ScaledObject (no
schema data for those CRDs here); their fields are checked by the tests that use them
(tests/test_llmd_observe.py applies the PodMonitor's relabelings in a real Prometheus,
tests/test_llmd_metrics.py runs the ScaledObject's query)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from controllers.access import API_CALLS, needed
from controllers.config import ControllerConfig
from helm_lite import Renderer, _merge
from planner.io.schema import Fleet

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts" / "pd-planner"
SCHEMAS = Path(__file__).parent / "schemas"
FIXTURE = Path(__file__).parent / "fixtures" / "llmd" / "output-pd.yaml"
K8S_VERSION = "1.30.0"
CRD_KINDS = {"ServiceMonitor", "PodMonitor"}

VARIANTS = {
    "defaults": {},
    "all-on": {"routing": {"inferencePoolRoutes": {"llama-3.1-8b": "llm-d-route"}, "exportConfigMap": True},
               "rbac": {"gatewayRouting": True, "httpRouteNames": ["llm-d-route"]},
               "labels": {"defaultGpu": "H100-SXM-80GB", "gpuFromNodes": True},
               "catalog": {"configMap": "my-catalog"}},
    "catalog-volume": {"catalog": {"volume": {"persistentVolumeClaim": {"claimName": "my-catalog", "readOnly": True}}}},
    "minimal": {"rbac": {"leaderWorkerSets": False, "disaggregatedSets": False},
                "monitoring": {"serviceMonitor": {"enabled": False}, "podMonitor": {"enabled": False}},
                "actuator": {"kind": "metrics"}},
}


MY_VALUES = {"controller": {"models": {"llama-3.1-8b": {"served_name": "meta-llama/Llama-3.1-8B-Instruct",
                                                      "slo": {"ttft_ms": 2000, "itl_ms": 50, "percentile": 99}}}},
             "fleet": {"gpus": {"H100-SXM-80GB": {"available": 16}}}}
"""What every install gives in its values file (the chart ships no model and no GPU type)."""


def render(values: dict, namespace: str = "llm-d", release: str = "pd-planner") -> list[dict]:
    return Renderer(CHART, _merge(MY_VALUES, values), release=release, namespace=namespace).manifests()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_chart_renders_and_validates(variant):
    docs = render(VARIANTS[variant], namespace="serving-" + variant)
    kinds = sorted(d["kind"] for d in docs)
    assert {"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment", "Service"} <= set(kinds)
    for d in docs:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == "serving-" + variant  # no hard-coded namespace
        if d["kind"] not in CRD_KINDS:
            kubernetes_validate.validate(d, K8S_VERSION, strict=True)
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"]))
    Fleet.model_validate(yaml.safe_load(cm["data"]["fleet.yaml"]))
    assert cfg.labels.preset == "llm-d" and cfg.actuator.namespace == "serving-" + variant
    assert cfg.prometheus.url == "http://prometheus-operated.monitoring:9090"
    assert cfg.leader.lease_name == "pd-planner-controller"
    dep = next(d for d in docs if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] and pod["serviceAccountName"] == "pd-planner-controller"


def test_chart_values_reach_the_config():
    docs = render(VARIANTS["all-on"] | {"prometheus": {"url": "http://prom.example:9090", "roleLabel": "role"}})
    cfg = ControllerConfig.model_validate(yaml.safe_load(next(d for d in docs if d["kind"] == "ConfigMap")["data"]["controller.yaml"]))
    assert cfg.prometheus.url == "http://prom.example:9090"
    assert cfg.routing.inference_pool_routes == {"llama-3.1-8b": "llm-d-route"} and cfg.routing.export_configmap
    assert cfg.labels.default_gpu == "H100-SXM-80GB"
    assert cfg.models["llama-3.1-8b"].served_name == "meta-llama/Llama-3.1-8B-Instruct"


def rules(docs: list[dict]) -> list[dict]:
    return next(d for d in docs if d["kind"] == "Role")["rules"]  # the namespaced Role


def test_rbac_least_privilege_and_optional_gateway_rights():
    for variant, values in VARIANTS.items():
        for r in rules(render(values)):
            assert "*" not in r["verbs"] and "*" not in r["resources"] and "delete" not in r["verbs"], (variant, r)
            if r["resources"] in (["deployments"], ["leaderworkersets"]):
                assert set(r["verbs"]) <= {"get", "list"}  # replicas change only through /scale
            if "update" in r["verbs"] and r["resources"] in (["httproutes"], ["configmaps"], ["leases"]):
                assert r.get("resourceNames"), r  # only the named objects
    default = {res for r in rules(render({})) for res in r["resources"]}
    assert "httproutes" not in default and "inferencepools" not in default and "configmaps" not in default
    on = rules(render(VARIANTS["all-on"]))
    route = next(r for r in on if r["resources"] == ["httproutes"])
    assert route["resourceNames"] == ["llm-d-route"] and set(route["verbs"]) == {"get", "update"}
    assert next(r for r in on if r["resources"] == ["inferencepools"])["verbs"] == ["get"]
    nodes = next(d for d in render(VARIANTS["all-on"]) if d["kind"] == "ClusterRole")["rules"]
    assert nodes == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}]  # the only cluster-wide right
    assert not any(d["kind"] == "ClusterRole" for d in render({}))
    minimal_docs = render(VARIANTS["minimal"])
    minimal = {res for r in rules(minimal_docs) for res in r["resources"]}
    assert "leaderworkersets" not in minimal and "disaggregatedsets" not in minimal
    cfg = yaml.safe_load(next(d for d in minimal_docs if d["kind"] == "ConfigMap")["data"]["controller.yaml"])
    assert cfg["actuator"]["workload_kinds"] == ["deployment"]  # lists only what the Role allows
    assert not any(d["kind"] in CRD_KINDS for d in render(VARIANTS["minimal"]))


def test_chart_podmonitor_matches_the_tested_one():
    pm = next(d for d in render({}) if d["kind"] == "PodMonitor")
    example = yaml.safe_load((ROOT / "controllers" / "deploy" / "examples" / "podmonitor.yaml").read_text())
    assert pm["spec"]["podMetricsEndpoints"][0]["relabelings"] == example["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert pm["spec"]["selector"] == example["spec"]["selector"]


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


def test_gateway_objects_validate():
    docs = [d for d in yaml.safe_load_all(FIXTURE.read_text()) if d]
    pools = [d for d in docs if d["kind"] == "InferencePool"]
    routes = [d for d in docs if d["kind"] == "HTTPRoute"]
    assert pools and routes
    for p in pools:
        jsonschema.validate(p, schema("inferencepool-v1.schema.json"))
    for r in routes:
        jsonschema.validate(r, schema("httproute-v1.schema.json"))
    # the schemas reject what they should: a selector value with '/', a weight below 0
    bad = json.loads(json.dumps(pools[0]))
    bad["spec"]["selector"]["matchLabels"]["llm-d.ai/model"] = "meta-llama/Llama"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("inferencepool-v1.schema.json"))
    bad = json.loads(json.dumps(routes[0]))
    bad["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema("httproute-v1.schema.json"))


def test_written_route_validates():
    """The HTTPRoute as KubernetesActuator leaves it (weights from a plan) is still a valid HTTPRoute."""
    from controller_k8s_fake import FakeK8sServer
    from controllers.actuate import ApplyRequest, KubernetesActuator
    from controllers.discover import model_label_map, preset_scheme

    docs = [d for d in yaml.safe_load_all(FIXTURE.read_text()) if d]
    with FakeK8sServer() as srv:
        for d in docs:
            srv.state.add_object(d, "llm-d")
        a = KubernetesActuator(srv.api_client(), "llm-d", None, sleep=lambda s: None,
                               scheme=preset_scheme("llm-d", models=model_label_map({"llama-3.1-8b": "meta-llama/Llama-3.1-8B-Instruct"})),
                               inference_pool_routes={"llama-3.1-8b": "llm-d-route"})
        d = "llama-3.1-8b/decode/H100-SXM-80GB/tp2"
        assert a.apply(ApplyRequest({d: 1}, {"llama-3.1-8b": {"llama-3.1-8b": {d: 1.0}}}, "t")).ok
        route = srv.state.objects[("httproute", "llm-d", "llm-d-route")]
    jsonschema.validate({k: v for k, v in route.items() if k != "status"}, schema("httproute-v1.schema.json"))


def test_example_manifests_validate():
    """controllers/deploy/examples: the HPA against the Kubernetes schema (the ScaledObject and
    PodMonitor are CRDs without schema data here, see the module docstring)."""
    for f in sorted((ROOT / "controllers" / "deploy" / "examples").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d and d["apiVersion"].split("/")[0] in ("autoscaling", "v1"):
                kubernetes_validate.validate(d, K8S_VERSION, strict=True)


def test_dockerfile_multistage_nonroot_planner_entrypoint():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2 and " AS " in froms[0]
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    entry = [line for line in text.splitlines() if line.startswith("ENTRYPOINT")]
    assert entry and json.loads(entry[-1].split(None, 1)[1])[0] == "planner"


def test_a_user_catalog_configmap_is_mounted_and_named_by_planner_catalog(monkeypatch):
    """catalog.configMap mounts the user's catalog (planner catalog import-hf's folder as a ConfigMap) read-only and
    points PLANNER_CATALOG at it; by default neither exists. With the variable set as the pod would have it, a
    controller config naming a model of that catalog passes the controller's own start-up check."""
    from planner.io.catalog import Catalog
    from planner.io.errors import InputError
    from planner.io.validate import check_controller_config

    for values, mounted in (({}, False), ({"catalog": {"configMap": "my-catalog"}}, True)):
        dep = next(d for d in render(values) if d["kind"] == "Deployment")
        pod = dep["spec"]["template"]["spec"]
        env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
        assert ("PLANNER_CATALOG" in env) == mounted and ("catalog" in vols) == mounted
        if mounted:
            assert vols["catalog"]["configMap"]["name"] == "my-catalog"
            assert mounts["catalog"]["readOnly"] and mounts["catalog"]["mountPath"] == env["PLANNER_CATALOG"]
    monkeypatch.setenv("PLANNER_CATALOG", str(ROOT / "examples" / "byo-model" / "catalog"))
    _check_catalog_model(monkeypatch)


def test_a_catalog_volume_mounts_a_whole_folder_with_its_profiles(monkeypatch, tmp_path):
    """catalog.volume (any volume source: a PVC, an image volume) mounts a catalog folder with its measured profiles
    (DIR/profiles/, which a ConfigMap's flat keys cannot hold; found by hand at stop 54: the chart had no way to give
    the controller a profile measured with `planner profile`), read-only, named by PLANNER_CATALOG; the controller
    then plans that model from the measured laws, not the roofline prior. Setting both catalog.configMap and
    catalog.volume stops the rendering, naming both (Helm's fail)."""
    import shutil

    from helm_lite import TemplateError
    from planner.io.catalog import Catalog
    from planner.perf.laws import PerfModel

    pvc = {"persistentVolumeClaim": {"claimName": "my-catalog", "readOnly": True}}
    dep = next(d for d in render({"catalog": {"volume": pvc}}) if d["kind"] == "Deployment")
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert vols["catalog"] == {"name": "catalog", **pvc}
    assert mounts["catalog"]["readOnly"] and mounts["catalog"]["mountPath"] == env["PLANNER_CATALOG"]
    with pytest.raises(TemplateError, match="catalog.configMap and catalog.volume"):
        render({"catalog": {"configMap": "my-catalog", "volume": pvc}})
    # the folder such a volume holds: the byo-model catalog and a measured profile of one of its models
    folder = tmp_path / "my-catalog"
    shutil.copytree(ROOT / "examples" / "byo-model" / "catalog", folder)
    measured = ROOT / "profiles" / "runs" / "2026-12-06-h4" / "mistral-nemo-12b" / "H100-SXM-80GB" / "tp1" / "vllm"
    shutil.copytree(measured, folder / "profiles" / "mistral-nemo-12b" / "H100-SXM-80GB" / "tp1" / "vllm")
    monkeypatch.setenv("PLANNER_CATALOG", str(folder))
    perf = PerfModel.load(Catalog.load())
    assert ("mistral-nemo-12b", "H100-SXM-80GB", 1, "bf16", "bf16") in perf.measured
    _check_catalog_model(monkeypatch)  # (leaves PLANNER_CATALOG empty)


def _check_catalog_model(monkeypatch) -> None:
    """A controller config naming a model of the PLANNER_CATALOG folder passes the controller's start-up check, and
    fails it (naming import-hf) without the folder."""
    from planner.io.catalog import Catalog
    from planner.io.errors import InputError
    from planner.io.validate import check_controller_config

    cfg = ControllerConfig.model_validate({"models": {"mixtral-8x7b": {"served_name": "mistralai/Mixtral-8x7B-v0.1",
                                                                          "slo": {"ttft_ms": 2000, "itl_ms": 60, "percentile": 99}}},
                                           "prometheus": {"url": "http://127.0.0.1:9090"}, "fleet": "fleet.yaml"})
    fleet = Fleet.model_validate({"gpus": {"H200-141GB": {"available": 8}}})
    check_controller_config(cfg, fleet, Catalog.load(), "controller.yaml", probe=False)
    monkeypatch.setenv("PLANNER_CATALOG", "")
    with pytest.raises(InputError, match="import-hf"):
        check_controller_config(cfg, fleet, Catalog.load(), "controller.yaml", probe=False)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML that refuses a mapping key given twice (PyYAML, which the controller reads with, keeps the last)."""

    def construct_mapping(self, node, deep=False):
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        assert not dup, f"duplicate keys {dup} at {node.start_mark}"
        return super().construct_mapping(node, deep=deep)


def test_controller_sections_in_values_keep_the_charts_fields():
    """Found by hand: `controller.leader.lease_duration_s` (or any field of controller.{prometheus, labels, actuator,
    routing, leader, record}) rendered a second `leader:` key after the chart's; the controller's YAML reader kept the
    last, so with release foo the lease became pd-planner-controller (the Role grants foo-controller: no replica ever
    leads), actuator.namespace 'default' and the Prometheus selector empty. Now those fields join the chart's
    section."""
    values = {"controller": {"leader": {"lease_duration_s": 90}, "actuator": {"max_retries": 3},
                             "prometheus": {"timeout_s": 10}, "record": {"decision_log": "/tmp/d.jsonl"}}}
    docs = render(values, namespace="serving", release="foo")
    raw = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["controller.yaml"]
    cfg = ControllerConfig.model_validate(yaml.load(raw, Loader=_UniqueKeyLoader))
    assert cfg.leader.lease_name == "foo-controller" and cfg.leader.lease_duration_s == 90
    assert next(r for r in rules(docs) if r.get("resourceNames") and r["resources"] == ["leases"])["resourceNames"] == [
        cfg.leader.lease_name]
    assert cfg.actuator.namespace == "serving" and cfg.actuator.max_retries == 3
    assert cfg.prometheus.selector == 'namespace="serving"' and cfg.prometheus.timeout_s == 10
    assert cfg.record.metrics_port == 9100 and cfg.record.decision_log == "/tmp/d.jsonl"
    assert cfg.models["llama-3.1-8b"].slo.itl_ms == 50


def test_a_values_file_replaces_the_models_and_gpus():
    """Found by hand: values.yaml shipped llama-3.1-8b and 16 H100-SXM-80GB as defaults, and Helm merges a values
    file's maps into the defaults: `-f my-values.yaml` with qwen2.5-7b on 8 A100-80GB rendered a config controlling
    llama-3.1-8b too, on a fleet of 8 A100s and 16 H100s the cluster does not have. The chart ships neither; rendering
    without them stops, naming the value (Helm's fail)."""
    from helm_lite import TemplateError

    mine = {"controller": {"models": {"qwen2.5-7b": {"slo": {"ttft_ms": 1000, "itl_ms": 40, "percentile": 90}}}},
            "fleet": {"gpus": {"A100-80GB": {"available": 8}}}}
    cm = next(d for d in Renderer(CHART, mine).manifests() if d["kind"] == "ConfigMap")
    assert list(ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"])).models) == ["qwen2.5-7b"]
    assert list(Fleet.model_validate(yaml.safe_load(cm["data"]["fleet.yaml"])).gpus) == ["A100-80GB"]
    with pytest.raises(TemplateError, match="controller.models"):
        Renderer(CHART, {"fleet": mine["fleet"]}).manifests()
    with pytest.raises(TemplateError, match="fleet.gpus"):
        Renderer(CHART, {"controller": mine["controller"]}).manifests()


def test_the_role_grants_no_read_of_a_single_workload():
    """Found by hand: the Role granted `get` on deployments and leaderworkersets, which no API call of the controller
    uses: KubernetesActuator lists them (list_namespaced_deployment, list_namespaced_custom_object) and reads only their
    /scale (read_namespaced_deployment_scale, get_namespaced_custom_object_scale); a DisaggregatedSet is read whole
    (get_namespaced_custom_object) to update a role, so it keeps `get`."""
    on = rules(render(VARIANTS["all-on"]))
    assert next(r for r in on if r["resources"] == ["deployments"])["verbs"] == ["list"]
    assert next(r for r in on if r["resources"] == ["leaderworkersets"])["verbs"] == ["list"]
    assert set(next(r for r in on if r["resources"] == ["disaggregatedsets"])["verbs"]) == {"get", "list", "update"}
    assert set(next(r for r in on if r["resources"] == ["deployments/scale"])["verbs"]) == {"get", "update"}


def test_the_chart_leaves_the_scale_down_window_to_the_controller():
    """Found in review at stop 56 (a helper's note): the chart set guard.scale_down_stabilization_s to 60 s since its
    first commit, the window issue 9 found letting the fleet shrink in a trough right before the next ramp; the
    controller's own default is start-up + observation lag + one interval (controllers.decide.stabilization_s)."""
    from controllers.decide import stabilization_s

    cm = next(d for d in render({}) if d["kind"] == "ConfigMap")
    cfg = ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"]))
    assert cfg.guard.scale_down_stabilization_s is None
    assert stabilization_s(cfg) >= cfg.startup_s + cfg.interval_s


def test_the_plain_manifests_grant_what_the_chart_grants():
    """controllers/deploy/rbac.yaml (pools labelled pd-planner.io/*) granted get on deployments and leaderworkersets and
    patch on their /scale, which no API call makes (the actuator lists the workloads, reads and replaces /scale)."""
    docs = list(yaml.safe_load_all((ROOT / "controllers" / "deploy" / "rbac.yaml").read_text()))
    plain = next(d for d in docs if d and d["kind"] == "Role")["rules"]
    chart = rules(render(VARIANTS["all-on"]))
    for res in ("deployments", "deployments/scale", "leaderworkersets", "leaderworkersets/scale"):
        want = set(next(r for r in chart if r["resources"] == [res])["verbs"])
        assert set(next(r for r in plain if r["resources"] == [res])["verbs"]) == want, res


def test_the_api_call_table_lists_every_call_the_controller_makes():
    """controllers.access.API_CALLS (what the Roles below are checked against, and what the controller asks the API
    server it may do at start-up) names every client method called in controllers/."""
    import re

    code = "\n".join(p.read_text() for p in (ROOT / "controllers").rglob("*.py"))
    verb = r"(?:read|list|get|create|replace|patch|delete)_(?:namespaced_\w+|node|namespace|self_subject_\w+)"
    made = set(re.findall(rf"\.({verb})[(,]", code))  # [(,]: functools.partial(f, x) too
    assert made == {c[0] for c in API_CALLS}


def _grants(rules: list[dict], group: str, res: str, verb: str, names: set[str] | None) -> bool:
    """Whether the rules allow `verb` on `res` (on each of `names`; None: on objects not named)."""
    fit = [r for r in rules if group in r["apiGroups"] and res in r["resources"] and verb in r["verbs"]]
    if any(not r.get("resourceNames") for r in fit):
        return True
    return names is not None and names <= {n for r in fit for n in r["resourceNames"]}


ROUTE_VARIANTS = {
    **VARIANTS,
    # found at stop 59: routing.inferencePoolRoutes without rbac.gatewayRouting rendered no HTTPRoute or InferencePool
    # rule, so the controller's reads of llm-d-route gave 403 every interval (the model's routing never written, its
    # scale-downs held); with gatewayRouting the names were a second list that had to repeat the routes
    "pool-routes-only": {"routing": {"inferencePoolRoutes": {"llama-3.1-8b": "llm-d-route"}}},
    "pool-routes-other-names": {"routing": {"inferencePoolRoutes": {"llama-3.1-8b": "llm-d-route"}},
                                "rbac": {"gatewayRouting": True, "httpRouteNames": ["other-route"]},
                                "controller": {"actuator": {"httproutes": {"llama-3.1-8b": "other-route"}}}},
    "no-leader": {"controller": {"leader": {"enabled": False}}, "labels": {"gpuFromNodes": True}},
    # found in QA: under actuator.kind metrics (which lists the workloads and exports, changing nothing) the Role still
    # granted /scale get/update, DisaggregatedSet get/update, Events create and the routes; with leader.enabled false,
    # the Lease rights
    "metrics-all-on": {**VARIANTS["all-on"], "actuator": {"kind": "metrics"}},
}


@pytest.mark.parametrize("variant", sorted(ROUTE_VARIANTS))
def test_the_role_grants_every_call_the_rendered_config_makes_and_no_other(variant):
    """Derived from API_CALLS: each call the rendered config leads to is granted (on its named object where the Role
    names objects), and each verb granted is one the rendered config leads to (not merely one some configuration
    needs: the metrics actuator's Role has no /scale, no Events)."""
    docs = render(ROUTE_VARIANTS[variant])
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    cfg = ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"]))
    rules = [r for d in docs if d["kind"] in ("Role", "ClusterRole") for r in d["rules"]]
    need = needed(cfg)
    missing = [k for k, names in need.items() if not _grants(rules, *k, names)]
    assert not missing, missing
    extra = [(g, res, v) for r in rules for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]
             if (g, res, v) not in need]
    assert not extra, extra


def test_the_plain_rbac_grants_every_call_its_config_makes():
    """controllers/deploy: rbac.yaml's Role against configmap.yaml's config, by the same table."""
    deploy = ROOT / "controllers" / "deploy"
    role = next(d for d in yaml.safe_load_all((deploy / "rbac.yaml").read_text()) if d and d["kind"] == "Role")
    cm = next(d for d in yaml.safe_load_all((deploy / "configmap.yaml").read_text()) if d)
    cfg = ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"]))
    need = needed(cfg)
    missing = [k for k, names in need.items() if not _grants(role["rules"], *k, names)]
    assert not missing, missing
    assert not [(g, res, v) for r in role["rules"] for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]
                if (g, res, v) not in need]


def test_an_empty_httproute_name_list_is_refused():
    """rbac.gatewayRouting with rbac.httpRouteNames empty rendered `resourceNames: []`, which RBAC reads as every
    HTTPRoute of the namespace (get and update); now rendering stops naming rbac.httpRouteNames."""
    from helm_lite import TemplateError

    with pytest.raises(TemplateError, match="rbac.httpRouteNames"):
        render({"rbac": {"gatewayRouting": True}})


@pytest.mark.parametrize("expr,want", [
    ('eq .Values.actuator.kind "kubernetes"', True),
    ('eq .Values.actuator.kind "metrics"', False),
    ('eq .Values.replicaCount 2', True),
    ('dig "leader" "enabled" true .Values.controller', True),  # no controller.leader: the default
    ('dig "interval_s" 0 .Values.controller', 30),
    ('eq .Values.replicaCount "2"', None),  # Go: incompatible types for comparison
])
def test_helm_lite_eq_and_dig_follow_go_and_sprig(expr, want):
    """tests/helm_lite.py's eq (Go's: basic values of one kind, else an error) and dig (Sprig's: the default where a key
    is missing), which the Role's actuator and leader conditions use."""
    from helm_lite import TemplateError

    r = Renderer(CHART, MY_VALUES)
    if want is None:
        with pytest.raises(TemplateError, match="incompatible types"):
            r.eval(expr, "t")
    else:
        assert r.eval(expr, "t") == want


def _plain_deployment() -> dict:
    return next(d for d in yaml.safe_load_all((ROOT / "controllers" / "deploy" / "deployment.yaml").read_text())
                if d and d["kind"] == "Deployment")


def test_the_plain_deployment_runs_as_the_charts_does():
    """Found in QA: controllers/deploy/deployment.yaml set runAsUser 65532 but no runAsGroup (the chart sets 65532), so
    the plain controller ran with the image's group; the pod's and the container's securityContext now agree."""
    chart = next(d for d in render({}) if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    plain = _plain_deployment()["spec"]["template"]["spec"]
    assert plain["securityContext"] == chart["securityContext"]
    assert plain["containers"][0]["securityContext"] == chart["containers"][0]["securityContext"]


@pytest.mark.parametrize("tag,want", [("", "appVersion"), ("1.2.3-rc1", "1.2.3-rc1")])
def test_the_image_tag_defaults_to_the_charts_app_version(tag, want):
    """Found in QA: `image.tag: ""` rendered `ghcr.io/pd-planner/pd-planner:` (no tag) where Helm charts fall back to
    .Chart.AppVersion; the chart's appVersion is the package's version (pyproject.toml), which the image is built
    from, and the plain manifest's image tag is the same."""
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert app_version == version
    dep = next(d for d in render({"image": {"tag": tag}}) if d["kind"] == "Deployment")
    image = dep["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/pd-planner/pd-planner:" + (version if want == "appVersion" else want)
    assert _plain_deployment()["spec"]["template"]["spec"]["containers"][0]["image"].rsplit(":", 1)[1] == version


def _probed(pod: dict) -> dict[str, dict]:
    """The container's probes by kind, each checked to GET /metrics on a port the container declares (by name)."""
    c = pod["containers"][0]
    ports = {p["name"] for p in c.get("ports", [])}
    out = {}
    for kind in ("livenessProbe", "readinessProbe"):
        if kind in c:
            get = c[kind]["httpGet"]
            assert get["path"] == "/metrics" and get["port"] in ports, (kind, get, ports)
            out[kind] = c[kind]
    return out


def test_the_controller_has_liveness_and_readiness_probes_on_its_metrics_port():
    """Found in QA: the controller's Deployment (chart and plain) had no probe, so a hung controller stayed 'Running'
    and Ready. Its only server is prometheus_client's /metrics on record.metrics_port (the port named metrics), served
    from start-up on every replica; both probes GET it, every 30 s, 3 failures. The chart's are values (probes.*)."""
    chart = next(d for d in render({}) if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    plain = _plain_deployment()["spec"]["template"]["spec"]
    for pod in (chart, plain):
        probes = _probed(pod)
        assert set(probes) == {"livenessProbe", "readinessProbe"}
        assert all(p["periodSeconds"] == 30 and p["failureThreshold"] == 3 for p in probes.values())
        assert next(p for p in pod["containers"][0]["ports"] if p["name"] == "metrics")["containerPort"] == 9100
    assert _probed(plain) == _probed(chart)
    cm = next(d for d in render({}) if d["kind"] == "ConfigMap")
    assert ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"])).record.metrics_port == 9100
    tuned = next(d for d in render({"probes": {"liveness": {"periodSeconds": 60}, "readiness": None}})  # Helm: null deletes a default
                 if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    assert _probed(tuned)["livenessProbe"]["periodSeconds"] == 60 and "readinessProbe" not in _probed(tuned)


def test_the_plain_rbac_shows_the_gateway_rules_the_chart_renders():
    """Found in QA: controllers/deploy/rbac.yaml showed the HTTPRoute rule to uncomment but not the InferencePool one
    beside it (get, both API groups), which routing.inference_pool_routes needs as well (the chart renders both). The
    commented rules, uncommented, are the chart's (the HTTPRoutes' names aside)."""
    import re

    text = (ROOT / "controllers" / "deploy" / "rbac.yaml").read_text()
    commented = yaml.safe_load("\n".join(m.group(1) for m in re.finditer(r"(?m)^  # ((?:- |  ).*)$", text)))
    chart = [{k: v for k, v in r.items() if k != "resourceNames"} for r in rules(render(VARIANTS["all-on"]))
             if set(r["resources"]) & {"httproutes", "inferencepools"}]
    plain = [{k: v for k, v in r.items() if k != "resourceNames"} for r in commented]
    assert all(r in chart for r in plain) and all(r in plain for r in chart), (plain, chart)
