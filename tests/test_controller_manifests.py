"""controllers/deploy manifests validate against the Kubernetes schemas (kubernetes-validate)
and the shipped controller config parses into ControllerConfig."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from controllers.config import ControllerConfig
from planner.io.schema import Fleet

DEPLOY = Path(__file__).resolve().parents[1] / "controllers" / "deploy"
K8S_VERSION = "1.30.0"  # oldest supported minor of the clusters we target (LWS needs >= 1.26)


def docs():
    for f in sorted(DEPLOY.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                yield f.name, d


@pytest.mark.parametrize("name,doc", list(docs()), ids=lambda x: x if isinstance(x, str) else x.get("kind"))
def test_manifest_validates(name, doc):
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_rbac_is_least_privilege():
    role = next(d for _, d in docs() if d["kind"] == "Role")
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert "delete" not in rule["verbs"]
        if rule["resources"] in (["deployments"], ["leaderworkersets"]):
            assert set(rule["verbs"]) <= {"get", "list"}  # replicas change only through /scale


def test_shipped_config_parses():
    cm = next(d for _, d in docs() if d["kind"] == "ConfigMap")
    cfg = ControllerConfig.model_validate(yaml.safe_load(cm["data"]["controller.yaml"]))
    assert cfg.actuator.kind == "kubernetes"
    Fleet.model_validate(yaml.safe_load(cm["data"]["fleet.yaml"]))
