"""Metrics mode that HPA and KEDA accept as-is (MetricsActuator, ExportGate).

Two controller replicas export through their own /metrics; a REAL Prometheus (tests/controller_prom.py,
skips without the binary) scrapes both; the query of the shipped ScaledObject
(controllers/deploy/examples/keda-scaledobject.yaml) must return ONE series with the planner's number, as
KEDA requires. Kubernetes is the FAKE API server of tests/controller_k8s_fake.py (leases and the
llm-d fixture's Deployments; no kube-apiserver can run here).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import pytest
import yaml

from controller_k8s_fake import FakeK8sServer
from controller_prom import PrometheusServer, require_prometheus, wait_for
from controllers.actuate import DESIRED_LABELS, LABEL_VALUE_RE, ApplyRequest, KubernetesActuator, MetricsActuator, label_value
from controllers.discover import model_label_map, preset_scheme
from controllers.leader import ExportGate, LeaseElector
from llmd_exporters import serve

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "controllers" / "deploy" / "examples"
FIXTURE = Path(__file__).parent / "fixtures" / "llmd" / "output-pd.yaml"
NS = "llm-d"
MODEL, SERVED = "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct"
P = f"{MODEL}/prefill/H100-SXM-80GB/tp2"
D = f"{MODEL}/decode/H100-SXM-80GB/tp2"
SCHEME = preset_scheme("llm-d", models=model_label_map({MODEL: SERVED}))


def test_label_values_are_kubernetes_label_values():
    for v in ("llama-3.1-8b/decode", "H100-SXM-80GB", "-x/y-", "a" * 80):
        out = label_value(v)
        assert LABEL_VALUE_RE.match(out) and len(out) <= 63 and "/" not in out


def keda_query() -> str:
    so = yaml.safe_load((DEPLOY / "keda-scaledobject.yaml").read_text())
    (trig,) = so["spec"]["triggers"]
    assert trig["type"] == "prometheus" and trig["metadata"]["threshold"] == "1"
    return trig["metadata"]["query"]


def hpa_selector() -> dict[str, str]:
    hpa = next(d for d in yaml.safe_load_all((DEPLOY / "hpa-external.yaml").read_text()) if d["kind"] == "HorizontalPodAutoscaler")
    (m,) = hpa["spec"]["metrics"]
    assert m["external"]["metric"]["name"] == "pd_planner_desired_replicas"
    return m["external"]["metric"]["selector"]["matchLabels"]


def test_leader_only_export_real_counts_and_one_series_for_keda(tmp_path):
    require_prometheus()
    t = [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)]
    with FakeK8sServer() as srv:
        for d in yaml.safe_load_all(FIXTURE.read_text()):
            if d:
                srv.state.add_object(d, NS)
        srv.state.set_ready("deployment", NS, "pd-llm-d-modelservice-decode", 0)  # starting: not ready yet
        replicas = []
        for ident in ("a", "b"):
            reader = KubernetesActuator(srv.api_client(), NS, None, scheme=SCHEME, sleep=lambda s: None)
            m = MetricsActuator(namespace=NS, targets=reader.targets, export_initial=False)
            gate = ExportGate(LeaseElector(srv.api_client(), NS, "pd-planner", ident, 15, clock=lambda: t[0]), m.withdraw)
            replicas.append((m, gate, serve(m.registry, 0)))
        (ma, ga, sa), (mb, gb, sb) = replicas
        # real counts from the cluster: desired 1, ready 0 for decode
        assert ma.pools()[D].desired == 1 and ma.pools()[D].ready == 0
        assert ga.try_acquire_or_renew() and not gb.try_acquire_or_renew()
        assert ma.apply(ApplyRequest({P: 1, D: 4}, {}, "plan")).changed == {D: (1, 4)}
        mb.apply(ApplyRequest({P: 1, D: 9}, {}, "plan"))  # a non-leader would never get here; withdraw undoes it
        gb.try_acquire_or_renew()
        assert mb.registry.get_sample_value("pd_planner_desired_replicas", {
            "namespace": NS, "target_kind": "Deployment", "target_name": "pd-llm-d-modelservice-decode",
            "model": MODEL, "role": "decode", "gpu": "H100-SXM-80GB", "tp": "2"}) is None
        targets = {"controller": ("", [f"127.0.0.1:{s.server_address[1]}" for s in (sa, sb)])}
        try:
            with PrometheusServer(tmp_path, targets) as prom:
                def answer():
                    r = httpx.get(f"{prom.url}/api/v1/query", params={"query": keda_query()}).json()["data"]["result"]
                    return r if r else None
                res = wait_for(answer, 30)
                assert len(res) == 1 and float(res[0]["value"][1]) == 4.0
                # the HPA's selector picks one target's series too (prometheus-adapter adds namespace)
                sel = ",".join(f'{k}="{v}"' for k, v in hpa_selector().items())
                raw = httpx.get(f"{prom.url}/api/v1/query", params={"query": f"pd_planner_desired_replicas{{{sel}}}"}).json()
                assert len(raw["data"]["result"]) == 1
                for series in raw["data"]["result"]:
                    for k, v in series["metric"].items():
                        if k in DESIRED_LABELS:  # ours (Prometheus adds instance, job)
                            assert v and LABEL_VALUE_RE.match(v), (k, v)
                # leadership moves: a withdraws, b exports; still one series
                t[0] += dt.timedelta(seconds=30)
                assert gb.try_acquire_or_renew() and not ga.try_acquire_or_renew()
                mb.apply(ApplyRequest({P: 1, D: 5}, {}, "plan"))
                wait_for(lambda: (lambda r: r if r and len(r) == 1 and float(r[0]["value"][1]) == 5.0 else None)(answer()), 30)
                # a's series are gone (staleness markers once its scrape no longer has them): b's P and D only
                def count():
                    r = httpx.get(f"{prom.url}/api/v1/query", params={"query": "count(pd_planner_desired_replicas)"}).json()
                    return r["data"]["result"] and float(r["data"]["result"][0]["value"][1]) == 2.0
                wait_for(count, 30)
        finally:
            for _, _, s in replicas:
                s.shutdown()
                s.server_close()


def test_planner_control_wiring_in_metrics_mode():
    """`planner control` with actuator.kind metrics: targets read from the cluster, lease-gated export."""
    from planner.cli.control import build_controller
    from controllers.config import ControllerConfig, ModelConfig
    from planner.io.schema import Fleet, Slo

    cfg = ControllerConfig(fleet="-", models={MODEL: ModelConfig(served_name=SERVED, slo=Slo(ttft_ms=2000, itl_ms=50))},
                           actuator={"kind": "metrics", "namespace": NS, "in_cluster": False})
    with FakeK8sServer() as srv:
        for d in yaml.safe_load_all(FIXTURE.read_text()):
            if d:
                srv.state.add_object(d, NS)
        ctl = build_controller(cfg, Fleet(gpus={"H100-SXM-80GB": {"available": 8}}), dry_run=False, api_client=srv.api_client(), perf=object())
        assert isinstance(ctl.elector, ExportGate)
        assert set(ctl.actuator.pools()) == {P, D}
        assert ctl.actuator.registry.get_sample_value("pd_planner_desired_replicas", {
            "namespace": NS, "target_kind": "Deployment", "target_name": "pd-llm-d-modelservice-decode",
            "model": MODEL, "role": "decode", "gpu": "H100-SXM-80GB", "tp": "2"}) is None  # nothing before leading


def test_no_cluster_is_a_clear_input_error(monkeypatch, tmp_path):
    from planner.cli.control import build_controller
    from controllers.config import ControllerConfig, ModelConfig
    from planner.io.errors import InputError
    from planner.io.schema import Fleet, Slo

    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = ControllerConfig(fleet="-", models={MODEL: ModelConfig(served_name=SERVED, slo=Slo(ttft_ms=2000, itl_ms=50))},
                           actuator={"kind": "metrics", "namespace": NS, "in_cluster": False})
    with pytest.raises(InputError, match="actuator.in_cluster.*export.read_cluster false"):
        build_controller(cfg, Fleet(gpus={"H100-SXM-80GB": {"available": 8}}), dry_run=True, perf=object())
    cfg = cfg.model_copy(update={"export": cfg.export.model_copy(update={"read_cluster": False, "leader_only": False})})
    assert build_controller(cfg, Fleet(gpus={"H100-SXM-80GB": {"available": 8}}), dry_run=True, perf=object()).elector is None
