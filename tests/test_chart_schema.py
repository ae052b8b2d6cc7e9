"""charts/pd-planner/values.schema.json (draft-07, what Helm 3 validates the merged values against on install, upgrade,
template and lint; no `helm` binary here, so jsonschema's Draft7Validator stands in): it is what
controllers/chart_schema.py writes from the controller's config model, the chart's values and every values set the
chart tests render pass it, and it refuses a wrong type, a misspelt key, a number out of range and an unknown choice,
as the controller's loader does for the config the chart renders. The one rule it cannot state (a route of
controller.actuator.httproutes granted in rbac.httpRouteNames) stops the rendering instead."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pydantic
import pytest
import yaml

from controllers import chart_schema
from controllers.config import ControllerConfig
from helm_lite import Renderer, TemplateError, _merge
from test_chart import CHART, MY_VALUES, ROUTE_VARIANTS, render

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)


def merged(values: dict[str, Any]) -> dict[str, Any]:
    """The values Helm validates: values.yaml with the user's merged in."""
    return _merge(DEFAULTS, _merge(MY_VALUES, values))


def test_the_schema_is_what_the_config_model_gives():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    assert (CHART / "values.schema.json").read_text() == chart_schema.render(), \
        "out of date: run python -m controllers.chart_schema"
    assert chart_schema.main(["--check"]) == 0


def test_values_yaml_and_every_rendered_values_set_pass():
    assert not list(VALIDATOR.iter_errors(DEFAULTS))
    for name, values in ROUTE_VARIANTS.items():
        errors = [f"{e.json_path}: {e.message}" for e in VALIDATOR.iter_errors(merged(values))]
        assert not errors, (name, errors)
    # README's install: --set routing.inferencePoolRoutes.llama-3\.1-8b=llm-d-route, probes.readiness=null
    assert VALIDATOR.is_valid(merged({"routing": {"inferencePoolRoutes": {"llama-3.1-8b": "llm-d-route"}},
                                      "probes": {"readiness": None}}))


def _paths(tree: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.append(prefix + (k,))
            out += _paths(v, prefix + (k,))
    return out


def _schema_at(path: tuple[str, ...]) -> dict[str, Any] | None:
    node: dict[str, Any] = SCHEMA
    for k in path:
        if "$ref" in node:
            node = SCHEMA["definitions"][node["$ref"].rsplit("/", 1)[1]]
        props, extra = node.get("properties", {}), node.get("additionalProperties", True)
        if k in props:
            node = props[k]
        elif isinstance(extra, dict):  # a map of entries of one schema (controller.models)
            node = extra
        elif extra is False:
            return None
        else:
            return node  # a free-form map (resources, a probe's httpGet): its keys are Kubernetes'
    return node


def test_every_key_of_values_yaml_is_in_the_schema():
    missing = [".".join(p) for p in _paths(DEFAULTS) if _schema_at(p) is None]
    assert not missing, missing


def test_every_controller_field_the_chart_leaves_to_the_user_is_in_the_schema():
    """ControllerConfig's sections and fields under `controller`, but for those the chart writes (FIXED_BY_CHART)."""
    ctrl = _schema_at(("controller",))
    assert ctrl is not None
    top = set(ControllerConfig.model_fields) - set(chart_schema.FIXED_BY_CHART[""])
    assert set(ctrl["properties"]) == top and ctrl["additionalProperties"] is False
    for name, field in ControllerConfig.model_fields.items():
        section = field.annotation
        if isinstance(section, type) and issubclass(section, pydantic.BaseModel):
            sub = _schema_at(("controller", name, "x"))  # resolves the section's $ref
            assert sub is None
            node = SCHEMA["definitions"][section.__name__]
            assert set(node["properties"]) == set(section.model_fields) - set(chart_schema.FIXED_BY_CHART.get(section.__name__, ())), name


BAD = [
    # (values, the path the schema names, also refused by the controller's loader as controller.<...>)
    ({"replicaCount": "two"}, "$.replicaCount", None),  # wrong type
    ({"replicaCount": -1}, "$.replicaCount", None),  # out of range
    ({"rbac": {"gatewayRoutes": True}}, "$.rbac", None),  # misspelt key (gatewayRouting)
    ({"monitoring": {"serviceMonitor": {"intervall": "30s"}}}, "$.monitoring.serviceMonitor", None),
    ({"monitoring": {"podMonitor": {"interval": "15 seconds"}}}, "$.monitoring.podMonitor.interval", None),
    ({"image": {"pullPolicy": "IfNotExists"}}, "$.image.pullPolicy", None),  # bad enum
    ({"actuator": {"kind": "kubernetess"}}, "$.actuator.kind", None),
    ({"actuator": {"kind": "file"}}, "$.actuator.kind", None),  # registered, but the chart's Role knows it not
    ({"labels": {"preset": "llmd"}}, "$.labels.preset", None),
    ({"labels": {"gpuFromNodes": "yes"}}, "$.labels.gpuFromNodes", None),
    ({"probes": {"liveness": {"periodSeconds": 0}}}, "$.probes.liveness.periodSeconds", None),
    ({"probes": {"liveness": {"periodSecond": 60}}}, "$.probes.liveness", None),
    ({"rbac": {"httpRouteNames": ["Route_1"]}}, "$.rbac.httpRouteNames[0]", None),
    ({"fleet": {"gpus": {"H100-SXM-80GB": {"available": -1}}}}, "$.fleet.gpus['H100-SXM-80GB'].available", None),
    ({"fleet": {"limits": {"roles": ["prefil"]}}}, "$.fleet.limits.roles[0]", None),
    ({"fleet": {"limit": {}}}, "$.fleet", None),
    # controller.*: the config model's own rules
    ({"controller": {"interval_s": 0}}, "$.controller.interval_s", "interval_s"),
    ({"controller": {"interval_s": "30s"}}, "$.controller.interval_s", "interval_s"),
    ({"controller": {"intervall_s": 30}}, "$.controller", "intervall_s"),
    ({"controller": {"backend": "gurobi"}}, "$.controller.backend", "backend"),
    ({"controller": {"forecast": {"short": "arima"}}}, "$.controller.forecast.short", "forecast.short"),
    ({"controller": {"forecast": {"quantile": 1.5}}}, "$.controller.forecast.quantile", "forecast.quantile"),
    ({"controller": {"prometheus": {"missing_role": "drop"}}}, "$.controller.prometheus.missing_role", "prometheus.missing_role"),
    ({"controller": {"models": {"m": {"slo": {"ttft_ms": 2000, "percentile": 100}}}}},
     "$.controller.models.m.slo.percentile", "models.m.slo.percentile"),
    ({"controller": {"models": {"m": {"served": "x", "slo": {}}}}}, "$.controller.models.m", "models.m.served"),
    ({"controller": {"models": {"m": {"served_name": "x"}}}}, "$.controller.models.m", "models.m.slo"),  # slo required
    ({"controller": {"actuator": {"options": {"path": "/tmp/x"}}}}, "$.controller.actuator.options", "actuator.options"),
]


@pytest.mark.parametrize("values,path,controller_field", BAD, ids=[p + ":" + json.dumps(v)[:40] for v, p, _ in BAD])
def test_the_schema_refuses_bad_values(values, path, controller_field):
    """Each was rendered (or dropped) before the schema; under controller.* the controller's loader refuses the same
    value in the config the chart renders, at start-up in the cluster (the schema moves that to `helm install`)."""
    errors = list(VALIDATOR.iter_errors(merged(values)))
    assert errors and any(e.json_path == path for e in errors), [(e.json_path, e.message) for e in errors]
    if controller_field:
        cfg = copy.deepcopy(merged(values)["controller"]) | {"fleet": "fleet.yaml"}
        with pytest.raises(pydantic.ValidationError, match=controller_field.split(".")[0]):
            ControllerConfig.model_validate(cfg)


@pytest.mark.parametrize("section,field", [(s, f) for s, fs in {
    "prometheus": ("url", "selector", "role_label"), "labels": ("preset", "default_gpu"), "leader": ("lease_name",),
    "actuator": ("kind", "namespace", "workload_kinds"), "routing": ("inference_pool_routes",), "record": ("metrics_port",),
}.items() for f in fs] + [("", "fleet")])
def test_the_schema_refuses_a_controller_field_the_chart_writes(section, field):
    """controller.leader.lease_name (or another field the chart renders from its own values) rendered a second key in
    the section; PyYAML, which the controller reads with, keeps the last: the Lease foo-controller the Role grants was
    replaced (no replica ever led), actuator.namespace left the release's namespace, controller.fleet named a file the
    pod does not have. The schema refuses them, naming the chart's value to set instead (the module's FIXED_BY_CHART)."""
    values = {"controller": {section: {field: "x"}} if section else {field: "other.yaml"},
              "labels": {"defaultGpu": "H100-SXM-80GB"}}  # the chart writes labels.default_gpu when this is set
    rendered = Renderer(CHART, merged(values)).render()["configmap.yaml"]
    assert rendered.count(f" {field}:") >= 2  # the duplicate key the schema prevents
    errors = list(VALIDATOR.iter_errors(merged(values)))
    assert any(e.validator == "additionalProperties" and field in e.message for e in errors), errors


@pytest.mark.parametrize("rbac,want", [
    ({"gatewayRouting": True, "httpRouteNames": ["llm-d-route"]}, 'rbac.httpRouteNames: add "other-route"'),
    ({}, 'rbac.gatewayRouting: set it to true and list "other-route"'),
    ({"gatewayRouting": True, "httpRouteNames": ["llm-d-route", "other-route"]}, None),
])
def test_a_route_of_the_actuator_missing_from_the_role_stops_the_rendering(rbac, want):
    """controller.actuator.httproutes names HTTPRoutes the controller reads and writes; the Role grants only those of
    rbac.httpRouteNames (with rbac.gatewayRouting). One left out rendered, and every write to it was refused (403)
    every interval; the schema cannot relate two values, so the template stops naming the route and the value. Under
    actuator.kind metrics no route is written: nothing to grant."""
    values = {"controller": {"actuator": {"httproutes": {"llama-3.1-8b": "other-route", "qwen": "llm-d-route"}}},
              "rbac": rbac}
    assert VALIDATOR.is_valid(merged(values))
    if want is None:
        role = next(d for d in render(values) if d["kind"] == "Role")
        granted = {n for r in role["rules"] if r["resources"] == ["httproutes"] for n in r["resourceNames"]}
        assert {"llm-d-route", "other-route"} <= granted
    else:
        with pytest.raises(TemplateError, match=want) as err:
            render(values)
        assert "the HTTPRoute of controller.actuator.httproutes.llama-3.1-8b" in str(err.value)
    render(values | {"actuator": {"kind": "metrics"}})


def test_helm_lite_range_has_printf_follow_go_and_sprig():
    """tests/helm_lite.py's range (a map's entries in key order, nothing for a missing value), has and printf | fail,
    which the Role's route check uses."""
    r = Renderer(CHART, MY_VALUES)
    text = '{{- range $k, $v := .Values.fleet.gpus }}[{{ $k }}={{ $v.available }}{{ if has $k $.Values.rbac.httpRouteNames }}!{{ end }}]{{- end }}'
    r.ctx["Values"]["fleet"]["gpus"] = {"b": {"available": 2}, "a": {"available": 1}}
    r.ctx["Values"]["rbac"]["httpRouteNames"] = ["b"]
    assert r.render_text(text, "t") == "[a=1][b=2!]"
    assert r.render_text("{{- range $k, $v := .Values.nothing }}x{{- end }}y", "t") == "y"
    with pytest.raises(TemplateError, match='t: route "r" of m'):
        r.render_text('{{ printf "route %q of %s" "r" "m" | fail }}', "t")


def test_the_readme_documents_the_schema():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "values.schema.json" in text and "python -m controllers.chart_schema" in text
