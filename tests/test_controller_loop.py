"""The control loop with the real ILP (planner.planning.assemble) and KubernetesActuator on the FAKE
Kubernetes API server (tests/controller_k8s_fake.py: no kube-apiserver can run here).
Observations are given as records (what Prometheus would report), or come from an unreachable
Prometheus URL, to drive the safety scenarios: Prometheus down, API 500, solver infeasible -> hold.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from controllers.actuate import KubernetesActuator
from controllers.config import ControllerConfig, GuardConfig, ModelConfig, PrometheusConfig
from controllers.loop import Controller
from controllers.observe import ModelObservation, Observation, PrometheusObserver
from controller_k8s_fake import FakeK8sServer
from planner.io.schema import Fleet, FleetLimits, GpuInventory, Slo

MODEL, GPU, NS = "llama-2-70b", "H100-SXM-80GB", "llm"
P, D = f"{MODEL}/prefill/{GPU}/tp2", f"{MODEL}/decode/{GPU}/tp2"


class Given:
    """Observations handed to the loop one interval at a time (a stand-in for Prometheus answers)."""

    def __init__(self):
        self.next: Observation | None = None

    def observe(self) -> Observation:
        return self.next


def obs(rate: float, t: float, waiting_prefill: float = 0.0) -> Observation:
    return Observation(t_s=t, ok=True, models={MODEL: ModelObservation(
        model=MODEL, completion_rps=rate, arrival_rps=rate, mean_isl=1000, mean_osl=200,
        waiting={"prefill": waiting_prefill, "decode": 0.0}, running={"prefill": 1, "decode": 10})})


@pytest.fixture(scope="module")
def perf():
    from planner.perf.laws import PerfModel

    return PerfModel.load()


@pytest.fixture()
def env(perf):
    with FakeK8sServer() as srv:
        for role, pid, name in (("prefill", P, "p"), ("decode", D, "d")):
            srv.state.add_workload("deployment", NS, name, {"pd-planner.io/model": MODEL, "pd-planner.io/role": role,
                                                            "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "2"}, 1)
        clock = [0.0]
        cfg = ControllerConfig(interval_s=60, startup_s=60, fleet="-", models={MODEL: ModelConfig(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=99))},
                               guard=GuardConfig(scale_down_stabilization_s=180, scale_down_cooldown_s=0))
        fleet = Fleet(gpus={GPU: GpuInventory(available=64)}, limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"]))
        act = KubernetesActuator(srv.api_client(), NS, sleep=lambda s: None, max_retries=2)
        given = Given()
        ctl = Controller(cfg, fleet, given, act, perf, clock=lambda: clock[0])
        yield srv, ctl, given, clock


def reps(srv):
    return srv.state.replicas("deployment", NS, "p"), srv.state.replicas("deployment", NS, "d")


def test_scales_up_then_down_after_stabilization(env):
    srv, ctl, given, clock = env
    given.next = obs(8.0, 0)
    d = ctl.step()
    assert d.outcome == "applied"
    p_up, d_up = reps(srv)
    assert p_up + d_up > 2 and d.changes
    assert srv.state.objects[("configmap", NS, "pd-planner-routing")]
    # load gone at 60 s. Since issue 9 the peak is held by the recent-peak envelope (2 x (start-up 60 s
    # + lag 60 s) = 240 s: recommendations up to t=180 still see it) and then by the 180 s scale-down
    # stabilization window of the recommendations: no scale-down before 180 + 180 = 360 s (inclusive)
    for k in range(1, 7):
        clock[0] = 60 * k
        given.next = obs(0.2, clock[0])
        ctl.step()
        assert reps(srv) == (p_up, d_up), clock[0]
    clock[0] = 420
    given.next = obs(0.2, 420)
    ctl.step()
    assert sum(reps(srv)) < p_up + d_up


def test_backlog_drives_prefill_scale_up(env):
    srv, ctl, given, clock = env
    given.next = obs(1.0, 0)
    ctl.step()
    base = reps(srv)[0]
    clock[0] = 60
    given.next = obs(1.0, 60, waiting_prefill=600)  # 600 prompts queued on the prefill pool
    ctl.step()
    assert reps(srv)[0] > base


def test_prometheus_down_holds(env, perf):
    srv, ctl, given, clock = env
    ctl.observer = PrometheusObserver(PrometheusConfig(url="http://127.0.0.1:9", timeout_s=0.5), {MODEL: MODEL}, {MODEL: 99})
    n = len(srv.state.requests)
    d = ctl.step()
    assert d.outcome == "held" and "unreachable" in " ".join(d.reasons)
    assert not [r for r in srv.state.requests[n:] if r[0] in ("PUT", "PATCH", "POST")]


def test_solver_infeasible_holds(env):
    srv, ctl, given, clock = env
    given.next = obs(2.0, 0)
    ctl.step()
    before = reps(srv)
    ctl.fleet = ctl.fleet.model_copy(update={"gpus": {GPU: GpuInventory(available=0)}})
    clock[0] = 60
    given.next = obs(50.0, 60)
    d = ctl.step()
    assert d.outcome == "held" and reps(srv) == before


def test_api_500_reports_error_without_partial_unsafe_change(env):
    srv, ctl, given, clock = env
    srv.state.inject("PUT", r"/scale$", 500, count=100)
    given.next = obs(8.0, 0)
    d = ctl.step()
    assert d.outcome == "error" and d.errors
    assert reps(srv) == (1, 1)


def test_dry_run_changes_nothing(env):
    srv, ctl, given, clock = env
    ctl.dry_run = True
    given.next = obs(8.0, 0)
    d = ctl.step()
    assert d.outcome == "dry_run" and d.changes and reps(srv) == (1, 1)


def test_run_once_hands_the_decision_over_and_records_slo_metrics(env):
    """Controller.run is the only loop (`planner control` prints through on_decision); the record
    carries every SLO metric's observation and correction factor (planner.planning.slo_metrics)."""
    from planner.planning.slo_metrics import SloMetric

    srv, ctl, given, clock = env
    given.next = obs(8.0, 0)
    seen = []
    ctl.run(once=True, sleep=lambda s: pytest.fail("once: no sleep"), on_decision=seen.append)
    assert [d.outcome for d in seen] == ["applied"] and seen[0] is ctl.decisions[-1]
    assert set(seen[0].corrections) == {m.value for m in SloMetric}
    assert {m.key for m in SloMetric} <= set(seen[0].observed[MODEL])
    assert seen[0].observed[MODEL]["sources"] == {}  # this observer names no metric: nothing claimed
    for m in SloMetric:
        learnt = seen[0].corrections[m.value].get(MODEL)  # None before a factor was learnt: no series then
        assert ctl.metrics.registry.get_sample_value("pd_planner_correction_factor", {"model": MODEL, "metric": m.value}) == learnt


def test_the_decision_log_names_the_metrics_an_observation_came_from(env, tmp_path):
    """The observer says which histogram or gauge each value came from (itl_source, ttft_source, kv_usage_source,
    gateway_queue_source: a fallback to an older vLLM's or llm-d's name among them); the decision log records them
    under `sources` (found in QA at stop 59: nothing showed them, so a fallback was invisible to an operator). Fails on
    the old code (no `sources`)."""
    import json

    from controllers.metrics import DecisionLog

    srv, ctl, given, clock = env
    ctl.log = DecisionLog(tmp_path / "d.jsonl")
    o = obs(8.0, 0)
    o.models[MODEL].itl_source = "vllm:time_per_output_token_seconds (fallback)"
    o.models[MODEL].kv_usage_source = "vllm:gpu_cache_usage_perc (fallback)"
    given.next = o
    ctl.step()
    rec = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[-1])
    assert rec["observed"][MODEL]["sources"] == {"itl_ms": "vllm:time_per_output_token_seconds (fallback)",
                                                 "kv_usage": "vllm:gpu_cache_usage_perc (fallback)"}


def _lengths_obs(rate: float, isl: float, osl: float) -> Observation:
    return Observation(t_s=0.0, ok=True, models={MODEL: ModelObservation(
        model=MODEL, completion_rps=rate, arrival_rps=rate, mean_isl=isl, mean_osl=osl,
        waiting={"prefill": 0.0, "decode": 0.0}, running={"prefill": 1, "decode": 10})})


@pytest.mark.parametrize("token_rates", [True, False])
def test_planned_lengths_cover_length_swings_with_token_rates(perf, token_rates):
    """Constant request count, mean prompt length swinging from minute to minute (as on the Azure
    trace): with token-rate planning the class planned for carries a prompt-token rate above every
    recent minute's mean (the envelope of the prompt-token rate covers the swings); without, it is
    the last minute's lengths, which a longer-prompt minute then exceeds.
    (Since issue 9 this drives controllers.decide.decide(), which replaced Controller._forecast/_workload.)"""
    from controllers.config import ForecastConfig
    from controllers.decide import PoolStatus, Snapshot, decide, initial_state

    cfg = ControllerConfig(interval_s=60, startup_s=180, fleet="-", forecast=ForecastConfig(token_rates=token_rates),
                           models={MODEL: ModelConfig(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=99))})
    fleet = Fleet(gpus={GPU: GpuInventory(available=64)}, limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"]))
    from controllers.loop import default_plan_fn

    state = initial_state(cfg, default_plan_fn(), fleet, perf)
    isl_series = [800, 1400, 900, 1300, 1000, 1450, 850, 1200, 950, 1350, 800, 1250, 900, 1400, 1000, 850]
    pools = {P: PoolStatus(1, 1), D: PoolStatus(1, 1)}
    for k, isl in enumerate(isl_series):
        v, state = decide(state, Snapshot(metrics=_lengths_obs(5.0, isl, 200), pools=pools), 60.0 * k)
    cls = next(c for c in v.workload.classes if c.id == MODEL)
    planned_prompt_tps = cls.rate_rps * cls.isl
    if token_rates:
        assert planned_prompt_tps > 5.0 * sum(isl_series) / len(isl_series)
        assert planned_prompt_tps > 5.0 * isl_series[-1] * 1.2
    else:
        assert cls.isl == isl_series[-1]


def test_a_decision_goes_to_the_printer_or_the_log_not_both(env, caplog):
    """`planner control` prints every decision through on_decision; the loop's own INFO line repeated each reason
    on the same terminal (found by hand at stop 52). Without a printer the log still carries it, once."""
    import logging

    srv, ctl, given, clock = env
    given.next = obs(8.0, 0)
    with caplog.at_level(logging.INFO, logger="pd_planner.controller"):
        ctl.run(once=True, sleep=lambda s: None, on_decision=lambda d: None)
        assert not [r for r in caplog.records if r.getMessage().startswith("t=")]
        clock[0] = 60.0
        given.next = obs(8.0, 60)
        ctl.run(once=True, sleep=lambda s: None)
        lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("t=")]
    assert len(lines) == 1 and lines[0].startswith("t=60 ")


@pytest.mark.parametrize("scale_to_zero, last", [(False, (1, 1)), (True, (0, 0))])
def test_a_silent_model_keeps_one_replica_per_role_unless_scale_to_zero(env, scale_to_zero, last):
    """Found by hand at stop 52: 80 s after a model's last request the controller took both pools to 0 (its next
    request would wait a start-up). guard.scale_to_zero (off by default, as the HPA's minReplicas >= 1) opts in."""
    srv, ctl, given, clock = env
    ctl.cfg.guard.scale_to_zero = scale_to_zero
    seen = []
    for k in range(16):  # 8 req/s for a minute, then silence for 15 minutes (> envelope window + stabilization)
        clock[0] = 60.0 * k
        given.next = obs(8.0 if k == 0 else 0.0, clock[0])
        d = ctl.step()
        seen.append(reps(srv))
    assert min(min(r) for r in seen) == min(last) and seen[-1] == last
    if not scale_to_zero:  # said, and the guard neither plans a scale-down nor starts a cooldown for it (stop 52)
        assert any("has no traffic; guard.scale_to_zero is off" in r for r in d.reasons)
        assert not any("scale-down" in r for r in d.reasons), d.reasons


def test_without_leader_election_the_replica_reports_that_it_leads(env):
    """pd_planner_leader read 0 on a controller without election that was scaling the fleet (found by hand at stop 52):
    a dashboard's 'no leader' alert would fire on every single-replica deployment."""
    srv, ctl, given, clock = env
    assert ctl.elector is None
    assert ctl.metrics.registry.get_sample_value("pd_planner_leader") == 1.0


@pytest.mark.parametrize("other_replicas", [3, 62])
def test_pools_of_models_not_in_the_config_are_left_alone(env, other_replicas):
    """Found by hand at stop 52: a Deployment of another model (labelled alike: another team's service) went from 3
    replicas to 0 once the scale-down window had passed, and its GPUs counted as free. Now it keeps its replicas and
    its GPUs are not planned on: with 62 of the 64 GPUs held by it, the 12 GPUs llama-2-70b needs do not fit."""
    srv, ctl, given, clock = env
    srv.state.add_workload("deployment", NS, "other", {"pd-planner.io/model": "llama-3.1-8b", "pd-planner.io/role": "mixed",
                                                       "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "1"}, other_replicas)
    for k in range(8):
        clock[0] = 60.0 * k
        given.next = obs(8.0, clock[0])
        d = ctl.step()
        assert srv.state.replicas("deployment", NS, "other") == other_replicas
        assert "llama-3.1-8b/mixed/H100-SXM-80GB/tp1" not in d.target
    assert any("left as they are" in r and f"their {other_replicas} GPUs" in r for r in d.reasons)
    if other_replicas == 62:
        assert reps(srv) == (1, 1) and d.outcome == "held"  # nothing fits beside them: the last good fleet holds
    else:
        assert reps(srv) == (2, 4)


def test_a_pool_on_a_gpu_type_the_fleet_file_omits_is_left_alone(env):
    """A decode pool of the configured model on A100s, which the fleet file does not list (only H100s), went to 0 once
    the scale-down window had passed (found by hand at stop 52): it is outside the inventory the controller plans,
    so it keeps its replicas, and the reasons say why."""
    srv, ctl, given, clock = env
    srv.state.add_workload("deployment", NS, "d-a100", {"pd-planner.io/model": MODEL, "pd-planner.io/role": "decode",
                                                        "pd-planner.io/gpu": "A100-80GB", "pd-planner.io/tp": "2"}, 3)
    for k in range(8):
        clock[0] = 60.0 * k
        given.next = obs(8.0, clock[0])
        d = ctl.step()
        assert srv.state.replicas("deployment", NS, "d-a100") == 3
    assert any(r.startswith("left as they are (GPU types not in the fleet file): llama-2-70b/decode/A100-80GB/tp2 (3)")
               for r in d.reasons)


@pytest.mark.parametrize("floor", [0, 1])
def test_a_model_without_usable_metrics_is_held_on_its_own(env, floor):
    """Two configured models, one without vLLM series this interval (Observation.unusable): its pool keeps its replicas
    and GPUs, the other is planned (found by hand at stop 52: one model without series held every model's scaling).
    A floor on the held pool (guard.min_replicas) is left alone with it (found in review: the guard, which sees only
    the pools planned on, took the held pool of 2 replicas to its floor of 1)."""
    srv, ctl, given, clock = env
    ctl.cfg.models["llama-3.1-8b"] = ModelConfig(slo=Slo(ttft_ms=1000, itl_ms=50, percentile=90))
    if floor:
        ctl.cfg.guard.min_replicas = {"llama-3.1-8b/mixed/H100-SXM-80GB/tp1": floor}
    srv.state.add_workload("deployment", NS, "small", {"pd-planner.io/model": "llama-3.1-8b", "pd-planner.io/role": "mixed",
                                                       "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "1"}, 2)
    o = obs(8.0, 0)
    o.unusable = {"llama-3.1-8b": "no vLLM metrics for model llama-3.1-8b (model_name='llama-3.1-8b')"}
    given.next = o
    d = ctl.step()
    assert d.outcome == "applied" and reps(srv) == (2, 4)  # llama-2-70b scaled up as before
    assert srv.state.replicas("deployment", NS, "small") == 2 and "llama-3.1-8b/mixed/H100-SXM-80GB/tp1" not in d.target
    assert "hold llama-3.1-8b's pools: metrics unusable (no vLLM metrics for model llama-3.1-8b" in " ".join(d.reasons)


@pytest.mark.parametrize("held", [True, False])
def test_the_printed_proposal_leaves_out_the_pools_the_decision_leaves_alone(env, held):
    """Found by hand (`planner control --dry-run --once`, a held model's or another model's 3-replica pool): the printed
    'optimiser proposal (before the guard)' listed it as '... 3 -> 0' while the reasons said it was left as it is; the
    optimiser never planned it. `decision_text` (what the CLI prints) lists the controller's pools only. Observations
    are given (Given: a stand-in for Prometheus), Kubernetes is the fake API server."""
    from planner.cli.control import decision_text

    srv, ctl, given, clock = env
    small = "llama-3.1-8b/mixed/H100-SXM-80GB/tp1"
    if held:
        ctl.cfg.models["llama-3.1-8b"] = ModelConfig(slo=Slo(ttft_ms=1000, itl_ms=50, percentile=90))
    srv.state.add_workload("deployment", NS, "small", {"pd-planner.io/model": "llama-3.1-8b", "pd-planner.io/role": "mixed",
                                                       "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "1"}, 3)
    o = obs(8.0, 0)
    if held:
        o.unusable = {"llama-3.1-8b": "no vLLM metrics for model llama-3.1-8b (model_name='llama-3.1-8b')"}
    given.next = o
    d = ctl.step()
    assert d.proposal is not None and small not in d.proposal and d.current[small] == 3
    proposal_text = decision_text(d, dry_run=False).split("optimiser proposal (before the guard):")[1]
    assert small not in proposal_text, proposal_text
    assert f"{P}: 1 -> 2" in proposal_text and f"{D}: 1 -> 4" in proposal_text


def test_a_mixed_pool_replaced_by_prefill_and_decode_pools_is_released(env):
    """The floor keeps one replica per SIDE (a mixed replica serves both): with prefill and decode pools serving the
    model, its old mixed pool goes to 0 once the scale-down window has passed (found by hand at stop 52: a floor per
    ROLE kept one mixed replica forever beside them)."""
    srv, ctl, given, clock = env
    srv.state.add_workload("deployment", NS, "m", {"pd-planner.io/model": MODEL, "pd-planner.io/role": "mixed",
                                                   "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "2"}, 3)
    for k in range(8):
        clock[0] = 60.0 * k
        given.next = obs(8.0, clock[0])
        d = ctl.step()
    assert srv.state.replicas("deployment", NS, "m") == 0 and reps(srv) == (2, 4)
    assert not any("kept at 1 replica" in r for r in d.reasons)


def test_a_silent_model_that_runs_nothing_is_not_started(env):
    """A configured model with no traffic whose pools stand at 0 stays at 0: the floor keeps a running replica, it
    does not start one (found in stop 52's review: the floor after the guard, widened to silent models, started one
    replica per side for a model nobody asked anything of)."""
    srv, ctl, given, clock = env
    for role, name in (("prefill", "p"), ("decode", "d")):  # the env's two pools, at 0 replicas
        srv.state.add_workload("deployment", NS, name, {"pd-planner.io/model": MODEL, "pd-planner.io/role": role,
                                                        "pd-planner.io/gpu": GPU, "pd-planner.io/tp": "2"}, 0)
    for k in range(4):
        clock[0] = 60.0 * k
        given.next = obs(0.0, clock[0])
        ctl.step()
    assert reps(srv) == (0, 0)


@pytest.mark.parametrize("ttft_ms, rate_rps, code, said", [
    # an SLO below what any pool reaches unloaded: the least bound, from the bisection `planner solve` runs
    (5, 2.0, 3, "ms (the least bound the fleet as it stands plans from)"),
    # and the bound the fleet's load needs, beyond where a pool gets under it at all (one interval can afford it)
    (5, 10.0, 3, "; the fleet as it stands plans from a TTFT bound of "),
    (2000, 2.0, 0, None),
])
def test_once_exits_3_when_no_plan_meets_the_slos(tmp_path, monkeypatch, caplog, perf, ttft_ms, rate_rps, code, said):
    """Found by hand: `planner control --dry-run --once` on a TTFT SLO of 5 ms (no GPU's prefill gets under 118 ms)
    exited 0 with a [dry_run] decision holding the fleet; the loop would hold every interval, its reason printed like
    any decision's. --once, the one-shot check, exits 3 as `planner solve` does (with its refined diagnosis), and the
    holding decision is logged at WARNING. Observations are given (Given: a stand-in for Prometheus)."""
    import logging

    import yaml
    from typer.testing import CliRunner

    import planner.cli.control as control
    from planner.cli.main import app

    ctl_dir = Path(__file__).resolve().parents[1] / "examples/controller"
    cfg = yaml.safe_load((ctl_dir / "config.yaml").read_text())
    cfg["fleet"] = str(ctl_dir / "fleet.yaml")
    cfg["models"][MODEL]["slo"]["ttft_ms"] = ttft_ms
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr("planner.io.validate.check_prometheus_query", lambda *a, **k: None)
    given = Given()
    given.next = obs(rate_rps, 0)
    build = control.build_controller

    def with_given(*args, **kwargs):
        ctl = build(*args, perf=perf, **kwargs)
        ctl.observer = given
        return ctl

    monkeypatch.setattr(control, "build_controller", with_given)
    with caplog.at_level(logging.WARNING, logger="planner.control"):
        r = CliRunner().invoke(app, ["control", "--config", str(tmp_path / "c.yaml"), "--dry-run", "--once"])
    out, logged = " ".join(r.output.split()), " ".join(" ".join(rec.getMessage() for rec in caplog.records).split())
    assert r.exit_code == code, (out, logged)
    if said is None:
        assert "hold:" not in out + logged and "infeasible" not in out
    else:
        assert "c.yaml: no plan meets the models' SLOs" in out and "Traceback" not in out
        assert "hold: no usable plan from the solver (status infeasible: TTFT p99 5 ms" in logged and said in logged


@pytest.mark.parametrize("failure", ["exception", "status_error"])
def test_once_exits_1_when_the_solver_itself_fails(tmp_path, monkeypatch, perf, failure):
    """Found in QA: `planner control --once` exited 0 when the solver itself failed (an exception in the plan function,
    or the backend's status 'error', which exited 3 as if no plan met the SLOs); now exit 1 (EXIT_SOLVER_ERROR) with
    one line naming the config and the error, no traceback."""
    import yaml
    from typer.testing import CliRunner

    import controllers.loop as loop
    import planner.cli.control as control
    from planner.cli.main import app

    ctl_dir = Path(__file__).resolve().parents[1] / "examples/controller"
    cfg = yaml.safe_load((ctl_dir / "config.yaml").read_text())
    cfg["fleet"] = str(ctl_dir / "fleet.yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.setattr("planner.io.validate.check_prometheus_query", lambda *a, **k: None)
    given = Given()
    given.next = obs(2.0, 0)
    build, real_plan_fn = control.build_controller, loop.default_plan_fn

    def failing_plan_fn(*args, **kwargs):
        real = real_plan_fn(*args, **kwargs)

        def plan(workload, fleet, perf_source):
            if failure == "exception":
                raise RuntimeError("HiGHS crashed")
            p = real(workload, fleet, perf_source)
            return p.model_copy(update={"feasible": False, "solver": p.solver.model_copy(update={"status": "error"})})

        return plan

    def with_given(*args, **kwargs):
        ctl = build(*args, perf=perf, **kwargs)
        ctl.observer = given
        return ctl

    monkeypatch.setattr(loop, "default_plan_fn", failing_plan_fn)
    monkeypatch.setattr(control, "build_controller", with_given)
    r = CliRunner().invoke(app, ["control", "--config", str(tmp_path / "c.yaml"), "--dry-run", "--once"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1, out
    assert "solver error: " in out and "c.yaml: propose: " in out and "Traceback" not in out
    assert ("RuntimeError: HiGHS crashed" if failure == "exception" else "status error") in out


def test_a_holding_decision_is_a_warning_in_the_log(env, caplog):
    """The loop without a printer logs a decision that holds the fleet at WARNING, the others at INFO (a controller
    holding every interval on SLOs no plan meets must not read as one at work)."""
    import logging

    srv, ctl, given, clock = env
    given.next = obs(2.0, 0)
    with caplog.at_level(logging.INFO, logger="pd_planner.controller"):
        ctl.run(once=True, sleep=lambda s: None)
        ctl.cfg.models[MODEL].slo = Slo(ttft_ms=5, itl_ms=100, percentile=99)
        clock[0] = 60.0
        given.next = obs(2.0, 60)
        ctl.run(once=True, sleep=lambda s: None)
    levels = [(r.levelno, r.getMessage().split()[1]) for r in caplog.records if r.getMessage().startswith("t=")]
    assert levels == [(logging.INFO, "applied"), (logging.WARNING, "held")]
    assert ctl.decisions[-1].hold_reason == "solver"


def test_the_logged_cost_is_the_applied_targets(env, tmp_path):
    """The decision log's plan_cost_per_hour was the optimiser's plan's cost, not the target's the controller applies
    (found by a helper at stop 57 with a guard.min_replicas floor, which the ILP now plans itself). At 10 req/s the
    optimiser's plan holds 5 decode + 2 prefill replicas of tp2 ($41.86/h) where the proposal the controller applies
    after its decode factor (forecast.decode_factor) holds 4 + 2 ($35.88/h); the log said $41.86/h. Now it is the
    target's (replicas x TP x the plan's GPU price), the optimiser's kept as optimiser_cost_per_hour."""
    import json

    from controllers.metrics import DecisionLog
    from planner.io.catalog import Catalog

    srv, ctl, given, clock = env
    ctl.log = DecisionLog(tmp_path / "d.jsonl")
    given.next = obs(10.0, 0)
    d = ctl.step()
    price = Catalog.load().gpu(GPU).price_per_hour  # the fleet sets none: the catalog's, as the plan's pools are priced
    want = round(sum(n * 2 * price for n in d.target.values()), 4)
    record = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[-1])
    assert record["plan_cost_per_hour"] == pytest.approx(want) and d.plan_cost_per_hour == pytest.approx(want)
    plan_cost = ctl.last_plan.cost_per_hour
    assert record["optimiser_cost_per_hour"] == pytest.approx(plan_cost)
    assert want != pytest.approx(plan_cost), (d.target, plan_cost)  # the case that tells them apart


def test_a_dry_run_does_not_take_the_lease(env):
    """--dry-run changes nothing: it wrote the acting controller's Lease (POST /leases on the first interval), so a
    dry run beside the deployed controller could take its leadership."""
    from controllers.leader import LeaseElector

    srv, ctl, given, clock = env
    ctl.elector = LeaseElector(srv.api_client(), NS, "pd-planner-controller", "dry-runner")
    ctl.dry_run = True
    given.next = obs(8.0, 0)
    d = ctl.step()
    assert d.outcome == "dry_run" and d.changes
    assert [(m, path) for m, path in srv.state.requests if m != "GET"] == []
    assert not any(k[0] == "lease" for k in srv.state.objects)


@pytest.mark.parametrize("rate, waiting, said", [
    (float("nan"), 0.0, "arrival_rps = nan"),
    (float("inf"), 0.0, "arrival_rps = inf"),
    (-5.0, 0.0, "arrival_rps = -5"),
    (1e9, 0.0, "arrival_rps = 1e+09 req/s, above the 1e+06 req/s"),
    (1.0, float("nan"), "waiting[prefill] = nan"),
    (1.0, -100.0, "waiting[prefill] = -100"),
    (1.0, 1e12, "waiting[prefill] = 1e+12 requests"),
])
def test_an_implausible_observation_holds_with_its_reason_and_the_next_one_plans(env, rate, waiting, said):
    """A rate or queue no fleet can be planned for (NaN, negative, 1e9 req/s) holds the model's pools and says which
    value (was: a ValidationError or ValueError out of step(), and so out of run()); the next interval plans again."""
    srv, ctl, given, clock = env
    given.next = obs(2.0, 0)
    ctl.step()
    before = reps(srv)
    clock[0] = 60
    given.next = obs(rate, 60, waiting_prefill=waiting)
    d = ctl.step()
    assert d.outcome == "held" and d.hold_reason == "metrics" and reps(srv) == before
    assert said in " ".join(d.reasons)
    clock[0] = 120
    given.next = obs(2.0, 120)
    assert ctl.step().outcome == "applied"


def test_the_lease_is_renewed_again_right_before_the_writes(env):
    """A replica renews its Lease at the interval's start, then observes and solves (up to the solver's time limit);
    found in fault QA at stop 59: it then wrote without checking the Lease again, so a replica that lost it meanwhile
    wrote beside the new holder. Now it renews right before the writes, and one that lost the Lease writes nothing.
    Fails on the old code (the second renewal is not asked; the writes happen)."""

    class Elector:
        """Leads at the interval's start, loses the Lease before the writes (an external holder: a test double of
        controllers.leader.LeaseElector's one method the loop calls)."""

        def __init__(self) -> None:
            self.calls = 0
            self.last_error = ""

        def try_acquire_or_renew(self) -> bool:
            self.calls += 1
            return self.calls == 1

        def holds_lease(self) -> bool:
            return self.calls == 1

    srv, ctl, given, clock = env
    ctl.elector = Elector()
    given.next = obs(8.0, 0)
    before = reps(srv)
    d = ctl.step()
    assert ctl.elector.calls == 2
    assert d.outcome == "not_leader" and d.changes and "lost the Lease" in " ".join(d.errors)
    assert reps(srv) == before


def _lease_env(env, who: str = "a"):
    """The env's controller with a LeaseElector on the fake API server, on a fake clock (`t[0]`, seconds)."""
    import datetime as dt

    from controllers.leader import LeaseElector

    srv, ctl, given, clock = env
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    t = [0.0]
    ctl.elector = LeaseElector(srv.api_client(), NS, "pd-planner-controller", who, lease_duration_s=ctl.cfg.lease_duration_s,
                               clock=lambda: t0 + dt.timedelta(seconds=t[0]))
    return t


@pytest.mark.parametrize("method, path, status, said", [
    ("GET", r"leases/pd-planner-controller$", 500, "HTTP 500; not leading"),
    ("PUT", r"leases/pd-planner-controller$", 409, "HTTP 409 (another replica wrote it first); not leading"),
])
def test_a_failed_election_step_is_an_error_of_the_interval(env, method, path, status, said):
    """Found in fault QA at stop 60: an election step that failed (the API server answering 500, or a 409 because
    another replica wrote the Lease first) made the interval a plain not_leader with no error, like a healthy
    standby's, and pd_planner_errors_total did not count it. Now its errors say why; nothing is written either way.
    Fails on the old code (errors == [])."""
    srv, ctl, given, clock = env
    _lease_env(env)
    given.next = obs(2.0, 0)
    assert ctl.step().outcome == "applied"  # takes the Lease
    srv.state.inject(method, path, status)
    n = len(srv.state.requests)
    clock[0] = 60
    given.next = obs(8.0, 60)
    d = ctl.step()
    assert d.outcome == "not_leader" and [said in e for e in d.errors] == [True], d.errors
    assert not [r for r in srv.state.requests[n:] if r[0] != "GET" and "leases" not in r[1]]
    assert ctl.metrics.errors.labels(stage="leader")._value.get() == 1


def test_writes_stop_once_the_lease_renew_deadline_has_passed(env):
    """Found in fault QA at stop 60: the Lease is renewed right before the writes, but each write may take
    actuator.request_timeout_s an attempt, with retries, pool after pool, so the writes could go on past the Lease,
    beside the replica that took it. Now each write first asks the elector whether its last renewal is within the renew
    deadline (2/3 of the Lease, client-go's ratio); past it, nothing more is written and the interval is not_leader.
    Here the first pool's write takes 84 s of a 105-s Lease (deadline 70 s): the second pool and the routing are not
    written. Fails on the old code (both pools and the routing written, outcome applied)."""
    srv, ctl, given, clock = env
    t = _lease_env(env)
    slow_s = ctl.cfg.lease_duration_s * 0.8  # past the renew deadline (2/3), inside the Lease
    put = ctl.actuator.apps.replace_namespaced_deployment_scale

    def slow_put(*args, **kw):
        t[0] += slow_s  # the write takes past the renew deadline (fake clock: no wall-clock wait)
        return put(*args, **kw)

    ctl.actuator.apps.replace_namespaced_deployment_scale = slow_put
    given.next = obs(8.0, 0)
    d = ctl.step()
    assert d.outcome == "not_leader", (d.outcome, d.errors)
    assert "renew deadline has passed" in " ".join(d.errors)
    p_now, d_now = reps(srv)
    assert d_now > 1 and p_now == 1  # decode written first (pools in order), prefill not
    assert ("configmap", NS, "pd-planner-routing") not in srv.state.objects
    t[0] += ctl.cfg.interval_s
    clock[0] = 60
    ctl.actuator.apps.replace_namespaced_deployment_scale = put
    given.next = obs(8.0, 60)
    assert ctl.step().outcome == "applied" and reps(srv)[0] > 1  # renewed: the next interval writes the rest


def test_a_plan_at_the_solver_time_limit_is_said_in_the_record_and_the_log_line(env, tmp_path, caplog):
    """Found in QA: a plan the solver returned at its time limit (feasible, maybe not the cheapest) was applied with
    nothing in the decision log's fields to tell it from an optimal one. The record now has the plan's solver status
    and gap, and the reason (controllers.decide) is in the record and the log line; the plan is still applied."""
    import json
    import logging

    from controllers.metrics import DecisionLog
    from planner.io.schema import SolverInfo

    srv, ctl, given, clock = env
    ctl.log = DecisionLog(tmp_path / "d.jsonl")
    solve = ctl.state.planner.plan_fn

    def at_time_limit(workload, fleet, perf):
        plan = solve(workload, fleet, perf)
        return plan.model_copy(update={"solver": SolverInfo(backend="highs", status="time_limit", gap=0.032)})

    ctl.state = replace(ctl.state, planner=replace(ctl.state.planner, plan_fn=at_time_limit))
    given.next = obs(10.0, 0)
    with caplog.at_level(logging.INFO, logger="pd_planner.controller"):
        ctl.run(once=True, sleep=lambda s: None)
    record = json.loads((tmp_path / "d.jsonl").read_text().splitlines()[-1])
    assert record["outcome"] == "applied" and record["solver_status"] == "time_limit" and record["solver_gap"] == 0.032
    said = "solver stopped at its time limit (solver_time_limit_s 10 s; gap to its proven bound 3.2%)"
    assert any(r.startswith(said) for r in record["reasons"]), record["reasons"]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("t=")]
    assert len(lines) == 1 and said in lines[0], lines
