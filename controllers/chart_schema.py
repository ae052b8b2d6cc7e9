"""charts/pd-planner/values.schema.json: the JSON Schema (draft-07) of the chart's values, written from the controller's
own config model so that the two cannot drift.

Helm 3 validates the merged values against the chart's values.schema.json on install, upgrade, template and lint,
before any template runs: a misspelt key, a string for a number, a value outside a field's range or an unknown choice
stops Helm naming the value, where the chart would otherwise render it (or drop it) and only the controller, at
start-up in the cluster, would refuse it (or never read it). `controller` is ControllerConfig's schema and `fleet`
Fleet's (pydantic's, in draft-07 form), less the fields the chart writes itself from other values (a second key of the
same name would replace the chart's: FIXED_BY_CHART); the registered names (actuators, observers, forecasters, MILP
backends) are enums. The chart's own values are CHART below. Not expressible here, and left to the templates' `fail`
guards: at least one model and one GPU type; catalog.configMap and catalog.volume not both; the routes of
controller.actuator.httproutes listed in rbac.httpRouteNames.

    python -m controllers.chart_schema           # rewrite the file
    python -m controllers.chart_schema --check   # exit 1 if it is not what the models give (tests/test_chart_schema.py)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from controllers.config import ControllerConfig, LabelsConfig
from planner.io.schema import Fleet

PATH = Path(__file__).resolve().parents[1] / "charts" / "pd-planner" / "values.schema.json"

FIXED_BY_CHART: dict[str, tuple[str, ...]] = {
    "": ("fleet",),  # fleet: fleet.yaml, the chart's `fleet` value
    "PrometheusConfig": ("url", "selector", "role_label"),  # prometheus.url, the release's namespace, prometheus.roleLabel
    "LabelsConfig": ("preset", "gpu_from_nodes", "default_gpu"),  # labels.*
    "ActuatorConfig": ("kind", "namespace", "routing_configmap", "workload_kinds"),  # actuator.kind, the namespace,
    # routing.configMapName, the kinds rbac.* lets the controller list
    "RoutingConfig": ("export_configmap", "inference_pool_routes"),  # routing.exportConfigMap, routing.inferencePoolRoutes
    "LeaderConfig": ("lease_name",),  # <release>-controller, the Lease the Role grants
    "RecordConfig": ("metrics_port",),  # 9100, the container port named metrics the probes and Service use
}
"""Config fields the chart renders from its own values: refused under controller.* (additionalProperties false)."""

CHART_ACTUATORS = ("kubernetes", "metrics")
"""The actuators the chart's Role is written for (templates/role.yaml: kubernetes scales and writes routes, any other
kind gets list rights only); file and simulator write local files or nothing, for runs outside a cluster."""

# Prometheus Operator's Duration (monitoring.coreos.com/v1 ServiceMonitor/PodMonitor CRDs, `interval`'s pattern)
PROM_DURATION = "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
# RFC 1123 DNS subdomain, Kubernetes' object names (ConfigMaps, HTTPRoutes)
K8S_NAME = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def _name(description: str) -> dict[str, Any]:
    return {"type": "string", "maxLength": 253, "pattern": K8S_NAME, "description": description}


def _obj(props: dict[str, Any], description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": props}
    return out | ({"description": description} if description else {})


def _probe(description: str) -> dict[str, Any]:
    """A core/v1 Probe (its fields, minimums as the API server checks them), or null: no probe."""
    seconds = {"type": "integer", "minimum": 0}
    return {"type": ["object", "null"], "additionalProperties": False, "description": description, "properties": {
        "httpGet": {"type": "object"}, "tcpSocket": {"type": "object"}, "exec": {"type": "object"},
        "grpc": {"type": "object"}, "initialDelaySeconds": seconds, "periodSeconds": {"type": "integer", "minimum": 1},
        "timeoutSeconds": {"type": "integer", "minimum": 1}, "successThreshold": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1}, "terminationGracePeriodSeconds": seconds}}


def _free(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description}


def _pydantic(model: type[Any]) -> dict[str, Any]:
    """The model's JSON Schema in draft-07 form: $defs -> definitions, no titles."""
    text = json.dumps(model.model_json_schema()).replace('"$defs"', '"definitions"').replace("#/$defs/", "#/definitions/")
    schema: dict[str, Any] = json.loads(text)

    def strip(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("title"), str):
                del node["title"]
            for k, v in node.items():
                if k != "properties":
                    strip(v)
                else:
                    for field in v.values():
                        strip(field)
        elif isinstance(node, list):
            for v in node:
                strip(v)

    strip(schema)
    return schema


def controller_schema() -> dict[str, Any]:
    """ControllerConfig's schema for the `controller` value: the chart's fields left out, registered names as enums,
    nothing required (the chart's values.yaml leaves models empty; the template's fail asks for them)."""
    from controllers.actuators import ACTUATORS
    from controllers.forecasters import FORECASTERS
    from controllers.observers import OBSERVERS
    from solvers import backend_names

    s = _pydantic(ControllerConfig)
    defs = s["definitions"]
    for where, fields in FIXED_BY_CHART.items():
        node = s if not where else defs[where]
        for f in fields:
            del node["properties"][f]
            if f in node.get("required", []):
                node["required"].remove(f)
    s.pop("required", None)
    s["properties"]["models"].pop("minProperties", None)
    s["properties"]["observer"]["enum"] = OBSERVERS.names()
    s["properties"]["backend"]["enum"] = list(backend_names())
    defs["ForecastConfig"]["properties"]["short"]["enum"] = FORECASTERS.names()
    # options: keys the actuators of the chart's actuator.kind read (the controller refuses others)
    opts = sorted({k for n in CHART_ACTUATORS for k in ACTUATORS.get(n).options})
    defs["ActuatorConfig"]["properties"]["options"] |= {"propertyNames": {"enum": opts}} if opts else {"maxProperties": 0}
    return s


def fleet_schema() -> dict[str, Any]:
    """Fleet's schema for the `fleet` value; gpus not required (the chart's values.yaml leaves it empty)."""
    s = _pydantic(Fleet)
    s.pop("required", None)
    return s


def build() -> dict[str, Any]:
    ctrl, fleet = controller_schema(), fleet_schema()
    defs = {**ctrl.pop("definitions"), **{k: v for k, v in fleet.pop("definitions").items()}}
    preset = LabelsConfig.model_fields["preset"].annotation.__args__  # type: ignore[union-attr]
    chart = _obj({
        "image": _obj({
            "repository": {"type": "string", "minLength": 1},
            "tag": {"type": "string", "description": "empty: the chart's appVersion"},
            "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},  # core/v1 Container imagePullPolicy
        }),
        "replicaCount": {"type": "integer", "minimum": 0, "description": "one acts (Lease election), the others stand by"},
        "prometheus": _obj({
            "url": {"type": "string", "pattern": "^https?://", "description": "Prometheus HTTP API"},
            "roleLabel": {"type": "string", "minLength": 1, "description": "the controller's prometheus.role_label"},
        }),
        "labels": _obj({
            "preset": {"enum": list(preset), "description": "the controller's labels.preset"},
            "defaultGpu": {"type": "string", "description": "labels.default_gpu; empty: none"},
            "gpuFromNodes": {"type": "boolean"},
        }),
        "actuator": _obj({
            "kind": {"enum": list(CHART_ACTUATORS), "description": "the controller's actuator.kind"},
        }),
        "routing": _obj({
            "inferencePoolRoutes": {"type": "object", "additionalProperties": _name("HTTPRoute"),
                                    "description": "model -> HTTPRoute (routing.inference_pool_routes)"},
            "exportConfigMap": {"type": "boolean"},
            "configMapName": _name("actuator.routing_configmap"),
        }),
        "controller": ctrl,
        "catalog": _obj({
            "configMap": {"anyOf": [{"const": ""}, _name("ConfigMap of the user's catalog")]},
            "volume": _free("a core/v1 volume source holding the catalog folder"),
        }),
        "fleet": fleet,
        "rbac": _obj({
            "leaderWorkerSets": {"type": "boolean"},
            "disaggregatedSets": {"type": "boolean"},
            "gatewayRouting": {"type": "boolean"},
            "httpRouteNames": {"type": "array", "uniqueItems": True, "items": _name("HTTPRoute"),
                               "description": "the HTTPRoutes of controller.actuator.httproutes (the template checks)"},
        }),
        "monitoring": _obj({
            "serviceMonitor": _obj({"enabled": {"type": "boolean"}, "interval": {"type": "string", "pattern": PROM_DURATION}}),
            "podMonitor": _obj({"enabled": {"type": "boolean"}, "portName": {"type": "string", "minLength": 1},
                                "interval": {"type": "string", "pattern": PROM_DURATION}}),
        }),
        "probes": _obj({"liveness": _probe("livenessProbe; null: none"), "readiness": _probe("readinessProbe; null: none")}),
        "resources": _free("core/v1 ResourceRequirements"),
    }, "pd-planner chart values (written by controllers/chart_schema.py from controllers/config.py; do not edit)")
    return {"$schema": "http://json-schema.org/draft-07/schema#", **chart, "definitions": defs}


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the file differs from what the models give")
    args = ap.parse_args(argv)
    if args.check:
        if not PATH.is_file() or PATH.read_text() != render():
            print(f"{PATH}: out of date; run python -m controllers.chart_schema", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
