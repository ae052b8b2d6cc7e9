"""Observation under llm-d, through a REAL Prometheus (tests/controller_prom.py; skips without the
binary) that scrapes FAKE vLLM / endpoint-picker metric endpoints (tests/llmd_exporters.py: no GPU
here) with the relabelings of the shipped PodMonitor (controllers/deploy/examples/podmonitor.yaml); and the
whole loop on the llm-d-modelservice-shaped fixture on the FAKE Kubernetes API server
(tests/controller_k8s_fake.py): discovered, observed, scaled, routed.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml

from controller_k8s_fake import FakeK8sServer
from controller_prom import require_prometheus, terminate_together, wait_for
from controllers.config import ControllerConfig, LabelsConfig, ModelConfig, PrometheusConfig, RoutingConfig
from controllers.observe import PrometheusObserver
from llmd_exporters import FakeEpp, FakeVllmPod, PodLoad, PodMonitorPrometheus, podmonitor_relabelings
from planner.io.schema import Fleet, FleetLimits, GpuInventory, Slo

ROOT = Path(__file__).resolve().parents[1]
PODMONITOR = ROOT / "controllers" / "deploy" / "examples" / "podmonitor.yaml"
FIXTURE = Path(__file__).parent / "fixtures" / "llmd" / "output-pd.yaml"
MODEL, SERVED, LABEL = "llama-3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3-1-8b-instruct"
NS = "llm-d"
EPP_METRIC = "llm_d_epp_flow_control_queue_size"
EPP_METRIC_DEPRECATED = "inference_extension_flow_control_queue_size"  # its former name, the default's fallback
GATEWAY_TTFT = "gateway_request_ttft_seconds"  # whatever the gateway exports; named in the config


def pod_labels(role: str | None) -> dict[str, str]:
    out = {"llm-d.ai/inference-serving": "true", "llm-d.ai/model": LABEL}
    if role:
        out["llm-d.ai/role"] = role
    return out


# One request stream seen on both sides of P/D: the prefill pod finishes it with one token, the
# decode pod with OSL tokens. Latencies sit in distinct buckets of LAT_BUCKETS_S so the quantiles
# say which histogram was read: TTFT prefill 0.3 s in (0.25, 0.5], decode 0.04 s in (0.025, 0.05];
# per-request TPOT 0.04 s in (0.025, 0.05]; per-token ITL 0.02 s in (0.01, 0.025].
RATE, ISL, OSL = 4.0, 1000, 100
PREFILL = PodLoad(RATE, ISL, 1, ttft_s=0.3, tpot_request_s=0.0, itl_token_s=0.0)
DECODE = PodLoad(RATE, ISL, OSL, ttft_s=0.04, tpot_request_s=0.04, itl_token_s=0.02)


def settled(o, rate: float = RATE):
    """The observation once a whole rate window of samples is in (rate() is low before that)."""
    m = o.models.get(MODEL) if o.ok else None
    return o if m and m.mean_osl and m.itl_ms and m.completion_rps > 0.75 * rate else None


def observer(url: str, **kw) -> PrometheusObserver:
    cfg = PrometheusConfig(url=url, rate_window_s=4, staleness_s=10, timeout_s=2, **kw)
    return PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0})


# The heavy decode side of the end-to-end test: 60 requests/s of 1000 output tokens: 60,000 decode tokens/s, several
# TP2 H100 replicas of an 8B model at a 30 ms p90 ITL (bundled llama-3.1-8b profile), one is deployed
HEAVY_DECODE = PodLoad(60.0, ISL, 1000, ttft_s=0.04, tpot_request_s=0.02, itl_token_s=0.02, running=200.0)
HEAVY_PREFILL = PodLoad(60.0, ISL, 1, ttft_s=0.3, tpot_request_s=0.0, itl_token_s=0.0)


@pytest.fixture(scope="module")
def proms(tmp_path_factory):
    """Each test's own fake pods and its own REAL Prometheus scraping them (nothing is shared between two tests),
    all started together at the module's start. A Prometheus 2.x scrapes its first target ~5 s after it starts
    (its service discovery hands the static targets to the scrape manager on a fixed 5-s tick) and each observation
    then waits for a rate window of samples: started one test at a time these waits added up to ~9 s a test; started
    together they overlap, and a test finds its Prometheus already scraping (it still waits until its observation
    holds what it asserts). Test name -> its Prometheus."""
    require_prometheus()

    def pods_and_prom(stack: contextlib.ExitStack, name: str, loads, epp, relabelings):
        # each server is made (its port picked) right before it starts listening, as the tests' `with` did
        pods = [(stack.enter_context(FakeVllmPod(SERVED, load)).addr, pod_labels(role)) for role, load in loads]
        if epp is not None:
            pods.append((stack.enter_context(epp()).addr, {}))
        return stack.enter_context(PodMonitorPrometheus(tmp_path_factory.mktemp(name), pods, relabelings))

    relabel = podmonitor_relabelings(PODMONITOR)
    pd = [("prefill", PREFILL), ("decode", DECODE)]
    with contextlib.ExitStack() as stack:
        out = {
            "pd": pods_and_prom(stack, "pd", pd, lambda: FakeEpp(EPP_METRIC, SERVED, 7), relabel),
            # llm-d-modelservice's own PodMonitor: no relabelings, so no role on the series
            "no_role": pods_and_prom(stack, "no_role", pd, None, []),
            "gateway": pods_and_prom(stack, "gateway", pd, lambda: FakeEpp(EPP_METRIC_DEPRECATED, SERVED, 0, ttft_s=0.8,
                                                                           ttft_metric=GATEWAY_TTFT), relabel),
            "per_token": pods_and_prom(stack, "per_token", [("decode", DECODE)], None, relabel),
            "e2e": pods_and_prom(stack, "e2e", [("prefill", HEAVY_PREFILL), ("decode", HEAVY_DECODE)], None, relabel),
        }
        # the Prometheus servers are stopped together, not one after another
        stack.callback(terminate_together, list(out.values()))
        yield out


def test_pd_observation_with_podmonitor_roles_request_itl_prefill_ttft_and_epp_queue(proms):
    # prefill and decode pods labelled by role, the endpoint picker's queue at 7, the shipped PodMonitor's relabelings
    obs = observer(proms["pd"].url)
    o = wait_for(lambda: settled(obs.observe()), 40)
    m = o.models[MODEL]
    # rates and lengths from one side each: not doubled, not halved
    assert m.completion_rps == pytest.approx(RATE, rel=0.35)
    assert m.arrival_rps == pytest.approx(RATE, rel=0.5)
    assert m.mean_osl == pytest.approx(OSL, rel=0.01)
    assert m.mean_isl == pytest.approx(ISL, rel=0.01)
    # ITL: the per-request mean histogram (bucket (25, 50] ms), not the per-token one ((10, 25] ms)
    assert 25.0 < m.itl_ms <= 50.0 and m.itl_source == "vllm:request_time_per_output_token_seconds"
    # TTFT: prefill side (250-500 ms) + decode side (25-50 ms)
    assert 275.0 < m.ttft_ms <= 550.0 and m.ttft_source == "decode+prefill"
    assert set(m.running) == {"prefill", "decode"}
    # the endpoint picker's queue is backlog
    assert m.waiting.get("gateway") == pytest.approx(7.0) and m.gateway_queue_source == EPP_METRIC


def test_series_without_role_label_fail_the_observation(proms):
    # llm-d-modelservice's own PodMonitor: no relabelings, so no role on the series
    prom = proms["no_role"]
    obs = observer(prom.url)
    o = wait_for(lambda: (lambda x: x if "no 'role' label" in x.reason else None)(obs.observe()), 30)
    assert not o.ok and "llm-d.ai/role" in o.reason
    # the old behaviour, explicitly asked for, reads them as one mixed pool (and doubles the rate)
    mixed = wait_for(lambda: settled(observer(prom.url, missing_role="mixed").observe(), 2 * RATE), 40)
    assert mixed.models[MODEL].completion_rps == pytest.approx(2 * RATE, rel=0.35)
    assert mixed.models[MODEL].mean_osl < OSL * 0.6  # prefill's 1-token completions halve the mean


def test_gateway_ttft_when_configured(proms):
    # the endpoint picker's queue empty, and a gateway TTFT histogram fed 0.8 s
    o = wait_for(lambda: settled(observer(proms["gateway"].url, gateway_ttft_metric=GATEWAY_TTFT).observe()), 40)
    m = o.models[MODEL]
    assert m.ttft_source == "gateway" and 500.0 < m.ttft_ms <= 1000.0  # bucket (0.5, 1.0] s
    assert "gateway" not in m.waiting  # an empty EPP queue is no backlog
    # an EPP exporting the queue under its deprecated name only: read through the default's fallback
    assert m.gateway_queue_source == f"{EPP_METRIC_DEPRECATED} (fallback: no {EPP_METRIC})"


def test_per_token_itl_on_request(proms):
    # one decode pod
    obs = observer(proms["per_token"].url, itl_metric="per_token")
    o = wait_for(lambda: (lambda x: x if x.ok and x.models[MODEL].itl_ms else None)(obs.observe()), 30)
    assert 10.0 < o.models[MODEL].itl_ms <= 25.0


def test_llmd_fixture_end_to_end_discovered_observed_scaled_routed(proms):
    """`planner control`'s wiring (commands.build_controller) with the llm-d preset: the fixture's
    Deployments are found, the decode side's load (Prometheus) needs more decode replicas than
    the one deployed, the decode Deployment is scaled, the HTTPRoute's InferencePool backendRef
    gets the whole decode share, and no ConfigMap is written (export off by default)."""
    from planner.cli.control import build_controller
    from planner.perf.laws import PerfModel

    # the pods' load: HEAVY_PREFILL and HEAVY_DECODE (the decode side needs several replicas, one is deployed)
    prom = proms["e2e"]
    with FakeK8sServer() as srv:
        for d in yaml.safe_load_all(FIXTURE.read_text()):
            if d:
                srv.state.add_object(d, NS)
        cfg = ControllerConfig(
            interval_s=30, startup_s=0, fleet="-",
            models={MODEL: ModelConfig(served_name=SERVED, slo=Slo(ttft_ms=2000, itl_ms=30, percentile=90))},
            prometheus=PrometheusConfig(url=prom.url, rate_window_s=4, staleness_s=10, timeout_s=2),
            labels=LabelsConfig(),  # the default preset: llm-d
            routing=RoutingConfig(inference_pool_routes={MODEL: "llm-d-route"}),
            actuator={"namespace": NS, "in_cluster": False},
        )
        fleet = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=32)},
                      limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"], default_min_replicas=1))
        ctl = build_controller(cfg, fleet, dry_run=False, api_client=srv.api_client(), perf=PerfModel.load())
        wait_for(lambda: settled(ctl.observer.observe(), 60.0), 40)
        d = ctl.step()
    notes = f"{d.outcome} {d.reasons} {d.errors} current={d.current} target={d.target}"
    dec = f"{MODEL}/decode/H100-SXM-80GB/tp2"
    assert d.current == {f"{MODEL}/prefill/H100-SXM-80GB/tp2": 1, dec: 1}, notes
    assert d.outcome == "applied", notes
    assert srv.state.replicas("deployment", NS, "pd-llm-d-modelservice-decode") > 1, notes
    route = srv.state.objects[("httproute", NS, "llm-d-route")]
    assert route["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100
    assert ("configmap", NS, "pd-planner-routing") not in srv.state.objects
