"""KubernetesActuator, MetricsActuator and leader election against a FAKE Kubernetes API server.

The API server is an external system that cannot run here (no kube-apiserver binary): the fake in
tests/controller_k8s_fake.py speaks its REST API over real HTTP, with resourceVersion/409
semantics, and the official `kubernetes` client talks to it unchanged.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from controllers.access import API_CALLS
from controllers.actuate import ROUTING_KEY, ApplyRequest, KubernetesActuator, MetricsActuator
from controllers.actuators.kubernetes import without_retry_after
from controllers.leader import LeaseElector
from controller_k8s_fake import FakeK8sServer

NS = "llm"
P = "llama-3.1-8b/prefill/H100-SXM-80GB/tp1"
D = "llama-3.1-8b/decode/H100-SXM-80GB/tp2"


def labels(role: str, tp: int) -> dict[str, str]:
    return {"pd-planner.io/model": "llama-3.1-8b", "pd-planner.io/role": role,
            "pd-planner.io/gpu": "H100-SXM-80GB", "pd-planner.io/tp": str(tp)}


@pytest.fixture()
def k8s():
    with FakeK8sServer() as srv:
        srv.state.add_workload("deployment", NS, "llama-prefill", labels("prefill", 1), 1)
        srv.state.add_workload("leaderworkerset", NS, "llama-decode", labels("decode", 2), 2)
        srv.state.add_workload("deployment", NS, "unrelated", {"app": "x"}, 3)
        yield srv


def actuator(srv, **kw) -> KubernetesActuator:
    return KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, **kw)


def test_discovers_pools_by_labels(k8s):
    pools = actuator(k8s).pools()
    assert set(pools) == {P, D}
    assert pools[P].desired == 1 and pools[D].desired == 2


def test_scale_through_subresource_routing_and_events(k8s):
    a = actuator(k8s)
    routing = {"llama-3.1-8b": {"c0": {P: 1.0}}}
    res = a.apply(ApplyRequest({P: 3, D: 1}, routing, "test"))
    assert res.ok, res.errors
    assert res.changed == {P: (1, 3), D: (2, 1)}
    assert k8s.state.replicas("deployment", NS, "llama-prefill") == 3
    assert k8s.state.replicas("leaderworkerset", NS, "llama-decode") == 1
    assert ("PUT", f"/apis/apps/v1/namespaces/{NS}/deployments/llama-prefill/scale") in k8s.state.requests
    assert ("PUT", f"/apis/leaderworkerset.x-k8s.io/v1/namespaces/{NS}/leaderworkersets/llama-decode/scale") in k8s.state.requests
    cm = k8s.state.objects[("configmap", NS, "pd-planner-routing")]
    assert json.loads(cm["data"][ROUTING_KEY]) == routing
    reasons = sorted(e["reason"] for e in k8s.state.events(NS))
    assert reasons == ["ScaledDown", "ScaledUp"]
    # idempotent: the same apply again writes nothing and emits no event
    n_req = len(k8s.state.requests)
    res2 = a.apply(ApplyRequest({P: 3, D: 1}, routing, "test"))
    assert res2.ok and res2.changed == {} and not res2.routing_changed
    assert not [r for r in k8s.state.requests[n_req:] if r[0] in ("PUT", "POST", "PATCH")]
    assert len(k8s.state.events(NS)) == 2


def test_conflict_and_5xx_are_retried(k8s):
    k8s.state.inject("PUT", r"deployments/llama-prefill/scale$", 409, count=2)
    k8s.state.inject("GET", r"deployments/llama-prefill/scale$", 503, count=1)
    res = actuator(k8s).apply(ApplyRequest({P: 4}, {}, "test"))
    assert res.ok, res.errors
    assert k8s.state.replicas("deployment", NS, "llama-prefill") == 4


def test_stale_resource_version_gives_conflict_then_converges(k8s):
    """A concurrent writer bumps the object between our read and our PUT: 409, re-read, retry."""
    a = actuator(k8s)
    orig = a.apps.read_namespaced_deployment_scale
    calls = {"n": 0}

    def racing_read(name, ns):
        sc = orig(name, ns)
        if calls["n"] == 0:  # someone else writes after our first read
            k8s.state.add_workload("deployment", NS, "llama-prefill", labels("prefill", 1), 2)
        calls["n"] += 1
        return sc

    a.apps.read_namespaced_deployment_scale = racing_read  # type: ignore[method-assign]
    res = a.apply(ApplyRequest({P: 5}, {}, "test"))
    assert res.ok and calls["n"] == 2
    assert k8s.state.replicas("deployment", NS, "llama-prefill") == 5
    assert res.changed == {P: (2, 5)}


def test_persistent_errors_are_reported_not_hidden(k8s):
    k8s.state.inject("PUT", r"deployments/llama-prefill/scale$", 500, count=100)
    res = actuator(k8s, max_retries=2).apply(ApplyRequest({P: 4, D: 3}, {}, "test"))
    assert not res.ok and any(P in e for e in res.errors)
    assert k8s.state.replicas("deployment", NS, "llama-prefill") == 1  # unchanged
    assert k8s.state.replicas("leaderworkerset", NS, "llama-decode") == 3  # other pools still applied


Q = "qwen-2.5-7b/mixed/H100-SXM-80GB/tp1"
QP = "qwen-2.5-7b/prefill/H100-SXM-80GB/tp1"


@pytest.mark.parametrize("problem", ["pool_without_workload", "misspelt_httproute", "forbidden_httproute"])
def test_one_problem_does_not_stop_the_other_writes(k8s, problem):
    """A pool with no workload, or a route that cannot be read, is the problem of its pool or its model only (was: the
    whole interval's writes, urgent scale-ups of other models included, were dropped with 'nothing written'). The
    model with the problem keeps its routing (ConfigMap entry included) and holds its scale-downs; its scale-ups and
    every other model's replicas and routing are written; each problem is reported."""
    k8s.state.add_workload("deployment", NS, "qwen", {"pd-planner.io/model": "qwen-2.5-7b", "pd-planner.io/role": "mixed",
                                                      "pd-planner.io/gpu": "H100-SXM-80GB", "pd-planner.io/tp": "1"}, 4)
    k8s.state.add_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pd-planner-routing"},
                          "data": {ROUTING_KEY: json.dumps({"qwen-2.5-7b": {"old": {Q: 1.0}}})}}, NS)
    k8s.state.add_object({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "qwen-route"},
                          "spec": {"rules": [{"backendRefs": [{"name": "qwen", "port": 8000, "weight": 100}]}]}}, NS)
    routes = {"qwen-2.5-7b": "qwen-route" if problem == "pool_without_workload" else "qwen-rout"}
    if problem == "forbidden_httproute":
        routes = {"qwen-2.5-7b": "qwen-route"}
        k8s.state.inject("GET", r"/httproutes/qwen-route$", 403)
    target = {P: 3, D: 1, Q: 2} | ({QP: 1} if problem == "pool_without_workload" else {})
    routing = {"llama-3.1-8b": {"c0": {P: 1.0, D: 1.0}}, "qwen-2.5-7b": {"c0": {Q: 1.0}}}
    res = actuator(k8s, httproutes=routes).apply(ApplyRequest(target, routing, "test"))
    assert not res.ok
    assert res.errors[-1] == "routing of qwen-2.5-7b not written (left as it was)", res.errors
    assert any(e.startswith(f"{Q}: scale-down 4 -> 2 held") for e in res.errors), res.errors
    assert res.changed == {P: (1, 3), D: (2, 1)}  # the other model's scale-up and scale-down
    assert k8s.state.replicas("deployment", NS, "qwen") == 4
    cm = json.loads(k8s.state.objects[("configmap", NS, "pd-planner-routing")]["data"][ROUTING_KEY])
    assert cm == {"llama-3.1-8b": routing["llama-3.1-8b"], "qwen-2.5-7b": {"old": {Q: 1.0}}}
    assert k8s.state.objects[("httproute", NS, "qwen-route")]["spec"]["rules"][0]["backendRefs"][0]["weight"] == 100


def test_a_model_with_a_problem_still_scales_up(k8s):
    """The scale-ups of the model whose route failed go ahead (more replicas take nothing from the old weights)."""
    res = actuator(k8s, httproutes={"llama-3.1-8b": "no-such-route"}).apply(
        ApplyRequest({P: 3, D: 1}, {"llama-3.1-8b": {"c0": {P: 1.0, D: 1.0}}}, "test"))
    assert res.changed == {P: (1, 3)}
    assert any("httproute no-such-route: HTTP 404" in e for e in res.errors), res.errors
    assert any(e.startswith(f"{D}: scale-down 2 -> 1 held") for e in res.errors), res.errors
    assert k8s.state.replicas("leaderworkerset", NS, "llama-decode") == 2
    assert ("configmap", NS, "pd-planner-routing") not in k8s.state.objects


def test_metrics_actuator_exports_desired_replicas():
    from prometheus_client import generate_latest

    m = MetricsActuator(initial={P: 1}, namespace=NS)
    res = m.apply(ApplyRequest({P: 2, D: 3}, {"llama-3.1-8b": {"c0": {P: 1.0}}}, "t"))
    assert res.changed == {P: (1, 2), D: (0, 3)}
    text = generate_latest(m.registry).decode()
    # without a cluster to read targets from, the series carry the pool's parts and no target
    assert ('pd_planner_desired_replicas{gpu="H100-SXM-80GB",model="llama-3.1-8b",namespace="llm",role="prefill",'
            'target_kind="",target_name="",tp="1"} 2.0') in text, text
    assert "/" not in "".join(line.split("}")[0] for line in text.splitlines() if line.startswith("pd_planner_desired"))


def test_lease_election_one_leader_and_takeover_after_expiry(k8s):
    t = [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)]
    clock = lambda: t[0]  # noqa: E731
    a = LeaseElector(k8s.api_client(), NS, "pd-planner", "a", lease_duration_s=15, clock=clock)
    b = LeaseElector(k8s.api_client(), NS, "pd-planner", "b", lease_duration_s=15, clock=clock)
    assert a.try_acquire_or_renew() is True
    assert b.try_acquire_or_renew() is False
    t[0] += dt.timedelta(seconds=10)
    assert a.try_acquire_or_renew() is True  # renew
    t[0] += dt.timedelta(seconds=10)
    assert b.try_acquire_or_renew() is False  # a renewed 10 s ago
    t[0] += dt.timedelta(seconds=20)  # a stopped renewing: expired
    assert b.try_acquire_or_renew() is True
    assert a.try_acquire_or_renew() is False
    lease = k8s.state.objects[("lease", NS, "pd-planner")]
    assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1


@pytest.mark.parametrize("interval_s, solver_s", [(30.0, 10.0), (10.0, 2.0), (60.0, 10.0)])
def test_two_replicas_renewing_once_per_interval_never_both_lead(k8s, interval_s, solver_s):
    """Found in QA at stop 58: the shipped controller runs two replicas that each renew the Lease once per interval
    (30 s), and the old default lease of 15 s expired between renewals: with their intervals 20 s apart both took it
    within one interval. The config's lease (ControllerConfig.lease_duration_s) outlasts an interval plus a step's
    solve, so the standby never takes a Lease its holder keeps renewing, each renewal as late as a full solve."""
    from controllers.config import ControllerConfig

    cfg = ControllerConfig.model_validate({"fleet": "f.yaml", "models": {"m": {"slo": {"ttft_ms": 1000}}}, "interval_s": interval_s,
                                           "solver_time_limit_s": solver_s})
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    t = [t0]
    clock = lambda: t[0]  # noqa: E731
    a = LeaseElector(k8s.api_client(), NS, "pd-planner", "a", lease_duration_s=cfg.lease_duration_s, clock=clock)
    b = LeaseElector(k8s.api_client(), NS, "pd-planner", "b", lease_duration_s=cfg.lease_duration_s, clock=clock)
    # a's steps start every interval and renew after a full solve; b's start 2/3 of an interval later, at once
    events = sorted([(k * interval_s + solver_s, "a") for k in range(10)]
                    + [(k * interval_s + 2 * interval_s / 3, "b") for k in range(10)])
    leaders = set()
    for at, who in events:
        t[0] = t0 + dt.timedelta(seconds=at)
        if (a if who == "a" else b).try_acquire_or_renew():
            leaders.add(who)
    assert leaders == {"a"}


@pytest.mark.parametrize("lease_s", [15, 40])
def test_a_lease_shorter_than_the_renewal_gap_is_refused(lease_s):
    """leader.lease_duration_s at or below interval_s + solver_time_limit_s (30 + 10 s) expires between two renewals:
    refused, naming the field (the old default, 15 s, was accepted)."""
    from pydantic import ValidationError

    from controllers.config import ControllerConfig

    with pytest.raises(ValidationError, match="leader.lease_duration_s"):
        ControllerConfig.model_validate({"fleet": "f.yaml", "models": {"m": {"slo": {"ttft_ms": 1000}}}, "leader": {"lease_duration_s": lease_s}})
    ok = ControllerConfig.model_validate({"fleet": "f.yaml", "models": {"m": {"slo": {"ttft_ms": 1000}}}, "leader": {"lease_duration_s": 41}})
    assert ok.lease_duration_s == 41
    off = ControllerConfig.model_validate({"fleet": "f.yaml", "models": {"m": {"slo": {"ttft_ms": 1000}}},
                                           "leader": {"enabled": False, "lease_duration_s": lease_s}})
    assert off.lease_duration_s == lease_s  # no election, nothing to expire


def test_lease_api_down_means_not_leader(k8s):
    a = LeaseElector(k8s.api_client(), NS, "pd-planner", "a")
    k8s.state.inject("GET", r"leases/pd-planner$", 500, count=1)
    assert a.try_acquire_or_renew() is False


@pytest.mark.parametrize("status, words", [
    (403, ["HTTP 403 Forbidden: injected fault 403", "rbac.yaml"]),
    (404, ["HTTP 404 Not Found: injected fault 404", "actuator.namespace"]),
    (409, ["HTTP 409 Conflict: injected fault 409"]),
    (500, ["HTTP 500 Internal Server Error: injected fault 500"]),
])
def test_api_errors_are_reported_in_one_line_with_the_status_message(k8s, status, words):
    """What the API server answered, as one line of the decision's errors: status, reason, its Status message (and
    what to do about 403 and 404), not the client's str(ApiException), lines of response headers and the raw body."""
    k8s.state.inject("PUT", r".*/deployments/llama-prefill/scale$", status, count=100)
    res = actuator(k8s, max_retries=1).apply(ApplyRequest({P: 3, D: 2}, {}, "t"))
    assert [e.split(": ", 1)[0] for e in res.errors] == [P], res.errors
    for e in res.errors:
        assert "\n" not in e and "HTTP response headers" not in e and all(w in e for w in words), e
    k8s.state.faults.clear()
    k8s.state.inject("GET", r".*/deployments$", status, count=100)
    with pytest.raises(Exception) as exc:
        actuator(k8s, max_retries=0).pools()
    assert "\n" not in str(exc.value) and all(w in str(exc.value) for w in words), str(exc.value)


@pytest.mark.parametrize("kind, problem, field, words", [
    ("kubernetes", "lease_forbidden", "leader.lease_name", "reading Lease llm/pd-planner-controller gave HTTP 403 Forbidden"),
    ("metrics", "lease_forbidden", "leader.lease_name", "may get, create and update (coordination.k8s.io leases in namespace llm)"),
    ("kubernetes", "no_namespace", "actuator.namespace", "llm does not exist"),
    ("metrics", "no_namespace", "actuator.namespace", "llm does not exist"),
])
def test_planner_control_refuses_a_forbidden_lease_or_a_missing_namespace_at_start(k8s, tmp_path, monkeypatch, kind,
                                                                                   problem, field, words):
    """Found in QA: a 403 on the Lease was one warning an interval and `not_leader` for ever (the controller never
    acted), and a namespace that does not exist showed only at the first write. Both are read once when the actuator
    is built: exit 2 naming the config file, the field, the Lease / namespace and (403) the verbs RBAC must grant."""
    import yaml
    from typer.testing import CliRunner

    import planner.cli.control as control
    from planner.cli.main import app

    if problem == "lease_forbidden":
        k8s.state.inject("GET", r"/leases/pd-planner-controller$", 403)
    else:
        k8s.state.namespaces = {"default"}
    monkeypatch.setattr(control, "kube_api_client", lambda in_cluster: k8s.api_client())
    monkeypatch.setattr("planner.io.validate.check_prometheus_query", lambda *a, **k: None)
    (tmp_path / "fleet.yaml").write_text("gpus: {H100-SXM-80GB: {available: 8}}\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"fleet": "fleet.yaml", "models": {"llama-3.1-8b": {"slo": {"ttft_ms": 1000}}},
                                    "actuator": {"kind": kind, "namespace": NS, "in_cluster": False},
                                    "export": {"read_cluster": True}}))
    res = CliRunner().invoke(app, ["control", "--config", str(conf), "--once"])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, out
    assert "c.yaml" in out and field in out and words in out and "Traceback" not in out


def test_a_lease_that_is_absent_or_readable_passes_the_start_up_probe(k8s):
    """The probe refuses only a 403: an absent Lease (the first step creates it) and an unreachable API (the steps
    report it) pass."""
    e = LeaseElector(k8s.api_client(), NS, "pd-planner-controller", "a")
    e.probe()
    k8s.state.inject("GET", r"/leases/pd-planner-controller$", 503)
    e.probe()
    assert e.try_acquire_or_renew()
    e.probe()


ALL_CALLS = {(c.group, c.resource, c.verb) for c in API_CALLS}
"""Every (apiGroup, resource, verb) the controller may make (controllers/access.py)."""


@pytest.mark.parametrize("kind, denied, fault, words", [
    # found in QA: a ServiceAccount that may get the Lease but not update it passed the start-up probe, then was
    # `not_leader` every interval with only a warning (the controller never acted)
    ("kubernetes", ("coordination.k8s.io", "leases", "update"), None,
     "may not: update coordination.k8s.io leases pd-planner-controller (leader.enabled)"),
    ("metrics", ("coordination.k8s.io", "leases", "create"), None,
     "may not: create coordination.k8s.io leases (leader.enabled)"),
    # one without update on deployments/scale started, and failed at its first write
    ("kubernetes", ("apps", "deployments/scale", "update"), None,
     "may not: update apps deployments/scale (actuator.kind kubernetes, actuator.workload_kinds)"),
    ("kubernetes", None, None, None),  # everything allowed: starts
    ("metrics", None, None, None),
    ("kubernetes", None, 500, "SelfSubjectAccessReview: HTTP 500"),  # API failing: a warning, and it starts
    ("kubernetes", None, 403, "SelfSubjectAccessReview: HTTP 403"),  # reviews not allowed: likewise
])
def test_planner_control_asks_the_api_server_what_it_may_do_at_start(k8s, tmp_path, monkeypatch, caplog, kind, denied,
                                                                       fault, words):
    """At start-up the controller asks the API server (one SelfSubjectAccessReview, `kubectl auth can-i`, per call and
    named object) whether it may make every call its config leads to in actuator.namespace: a call it may not is exit 2
    naming the config file, each missing verb and resource, the field that leads to it and where RBAC is granted (was:
    only a 403 on reading the Lease was caught). A review that cannot be made is one warning, and the controller starts.
    Every case fails on the old code (no review asked, no refusal, no warning)."""
    import logging

    import yaml
    from typer.testing import CliRunner

    import planner.cli.control as control
    from controllers.loop import Controller
    from planner.cli.main import app

    k8s.state.allowed = ALL_CALLS - {denied}
    if fault is not None:
        k8s.state.inject("POST", r"/selfsubjectaccessreviews$", fault, count=100)
    monkeypatch.setattr(control, "kube_api_client", lambda in_cluster: k8s.api_client())
    monkeypatch.setattr("planner.io.validate.check_prometheus_query", lambda *a, **k: None)
    monkeypatch.setattr(Controller, "run", lambda self, **kw: None)  # started is what is tested; no interval
    (tmp_path / "fleet.yaml").write_text("gpus: {H100-SXM-80GB: {available: 8}}\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"fleet": "fleet.yaml", "models": {"llama-3.1-8b": {"slo": {"ttft_ms": 1000}}},
                                    "actuator": {"kind": kind, "namespace": NS, "in_cluster": False}}))
    with caplog.at_level(logging.WARNING, logger="pd_planner.controller.access"):
        res = CliRunner().invoke(app, ["control", "--config", str(conf), "--once"])
    out = " ".join(res.output.split())
    asked = {(r.get("group", ""), r["resource"] + (f"/{r['subresource']}" if r.get("subresource") else ""), r["verb"],
              r.get("name"), r.get("namespace")) for r in k8s.state.reviews}
    assert ("coordination.k8s.io", "leases", "update", "pd-planner-controller", NS) in asked or fault
    if denied is not None:
        assert res.exit_code == 2, out
        assert "c.yaml" in out and "actuator.namespace" in out and words in out and "rbac.yaml" in out, out
        assert "Traceback" not in out
        return
    assert res.exit_code == 0, out
    if fault is None:
        call = ("apps", "deployments/scale", "update") if kind == "kubernetes" else ("apps", "deployments", "list")
        assert (*call, None, NS) in asked
        assert not caplog.records
    else:
        assert [p for _, p in k8s.state.requests if p.endswith("/selfsubjectaccessreviews")] == [
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"]  # one failed review: no more asked
        assert [r.getMessage() for r in caplog.records if words in r.getMessage()], caplog.text


@pytest.mark.parametrize("denied, code", [
    ({("apps", "deployments/scale", "update"), ("coordination.k8s.io", "leases", "update")}, 0),  # writes: warned of
    ({("apps", "deployments", "list")}, 2),  # a read a dry run makes: still refused
])
def test_a_dry_run_needs_only_what_it_reads(k8s, tmp_path, monkeypatch, caplog, denied, code):
    """`planner control --dry-run` writes nothing and elects no leader: an identity without the write verbs or the
    Lease may dry-run it (a warning names what the controller itself would need); a read it lacks is still exit 2.
    Found in review at stop 59: the start-up check refused a read-only identity's dry run. The first case fails on the
    old code (exit 2)."""
    import logging

    import yaml
    from typer.testing import CliRunner

    import planner.cli.control as control
    from controllers.loop import Controller
    from planner.cli.main import app

    k8s.state.allowed = ALL_CALLS - denied
    k8s.state.inject("GET", r"/leases/pd-planner-controller$", 403, count=100)  # no Lease rights at all
    monkeypatch.setattr(control, "kube_api_client", lambda in_cluster: k8s.api_client())
    monkeypatch.setattr("planner.io.validate.check_prometheus_query", lambda *a, **k: None)
    monkeypatch.setattr(Controller, "run", lambda self, **kw: None)
    (tmp_path / "fleet.yaml").write_text("gpus: {H100-SXM-80GB: {available: 8}}\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"fleet": "fleet.yaml", "models": {"llama-3.1-8b": {"slo": {"ttft_ms": 1000}}},
                                    "actuator": {"kind": "kubernetes", "namespace": NS, "in_cluster": False}}))
    with caplog.at_level(logging.WARNING, logger="pd_planner.controller.access"):
        res = CliRunner().invoke(app, ["control", "--config", str(conf), "--once", "--dry-run"])
    out = " ".join(res.output.split())
    assert res.exit_code == code, out
    if code == 0:
        assert "update apps deployments/scale" in caplog.text and "a dry run writes nothing" in caplog.text
    else:
        assert "may not: list apps deployments" in out and "Traceback" not in out


@pytest.mark.parametrize("headers, waits_s, ok", [
    ({}, [0.2], True),                             # a 429 without Retry-After: the backoff's delay
    ({"Retry-After": "1"}, [1.0], True),           # Retry-After longer than the backoff's delay: honoured
    ({"Retry-After": "0"}, [0.2], True),           # shorter: the backoff's delay
    ({"Retry-After": "soon"}, [0.2], True),        # unreadable: the backoff's delay
    ({"Retry-After": "3600"}, [], False),          # beyond the longest the backoff would wait: reported, not slept on
])
def test_too_many_requests_is_retried_after_what_the_api_server_asks(k8s, headers, waits_s, ok):
    """429 Too Many Requests (API Priority and Fairness) is retried as client-go does, after Retry-After where it
    says longer than the backoff, through the actuator's sleep (was: urllib3 under the client slept Retry-After itself,
    unbounded, three times; without the header the 429 was not retried, the pool's write failed the interval)."""
    from kubernetes import client

    k8s.state.inject("PUT", r"deployments/llama-prefill/scale$", 429, count=1, headers=headers)
    slept: list[float] = []
    api = client.ApiClient(without_retry_after(client.Configuration(host=k8s.url)))  # as kube_api_client makes it
    res = KubernetesActuator(api, NS, sleep=slept.append, max_retries=5, backoff_s=0.2).apply(ApplyRequest({P: 4}, {}, "test"))
    assert slept == waits_s
    assert res.ok is ok and (k8s.state.replicas("deployment", NS, "llama-prefill") == 4) is ok
    if not ok:
        assert "HTTP 429" in " ".join(res.errors) and "Retry-After 3600" in " ".join(res.errors)


def test_a_silent_api_server_is_a_reported_error_not_a_blocked_interval(k8s):
    """The official client sets no request timeout, so an API server that stops answering blocked the controller's
    step for ever (found in fault QA at stop 59; the liveness probe reads /metrics on another thread and never saw
    it). `with_request_timeout` (ActuatorContext.kube(), actuator.request_timeout_s) bounds every request: the delayed
    list is an error of the interval, reported. Fails on the old code (the list waits out the delay and succeeds).
    Not a timing assertion: whatever the machine's speed, a 0.3-s bound cannot see a 3-s answer."""
    from controllers.actuators.kubernetes import with_request_timeout

    k8s.state.inject("GET", r"/deployments$", 200, count=10, delay_s=3.0)  # urllib3 retries a timed-out read 3 times
    api = with_request_timeout(k8s.api_client(), 0.3)
    assert with_request_timeout(api, 99.0) is api and api.rest_client.timeout_s == 0.3  # bounded once
    res = KubernetesActuator(api, NS, sleep=lambda s: None, max_retries=0).apply(ApplyRequest({P: 3}, {}, "test"))
    assert not res.ok and "list pools" in " ".join(res.errors), res.errors
    assert k8s.state.replicas("deployment", NS, "llama-prefill") == 1


def test_the_request_timeout_is_a_config_field_and_reaches_the_client(k8s):
    """actuator.request_timeout_s (default 10 s, client-go's leader-election RenewDeadline) bounds the client the
    actuator context hands out; a timeout of 0 or inf is refused at config load."""
    from prometheus_client import CollectorRegistry

    from controllers.actuators import ActuatorContext
    from controllers.config import ActuatorConfig, ControllerConfig
    from planner.io.schema import Fleet

    assert ActuatorConfig().request_timeout_s == 10.0
    for bad in (0.0, float("inf")):
        with pytest.raises(ValueError):
            ActuatorConfig(request_timeout_s=bad)
    cfg = ControllerConfig.model_validate({"fleet": "-", "models": {"llama-3.1-8b": {"slo": {"ttft_ms": 1000}}},
                                           "actuator": {"request_timeout_s": 2.5}})
    ctx = ActuatorContext(cfg, Fleet(gpus={"H100-SXM-80GB": {"available": 8}}), CollectorRegistry(),
                          api_client=k8s.api_client())
    assert ctx.kube().rest_client.timeout_s == 2.5
