"""The controller's registries: actuators, observers and forecasters are found by name, the config's
choices come from them, and a new actuator is one registration that `planner control`'s wiring
(commands.build_controller) then runs through the loop with the real ILP.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from controllers.actuators import ACTUATORS, Actuation, ActuatorContext, ApplyRequest, ApplyResult, PoolState
from controllers.actuators.file import FileActuator
from planner.cli.control import build_controller
from controllers.config import ActuatorConfig, ControllerConfig, ForecastConfig, ModelConfig
from controllers.correct import Corrections
from controllers.forecasters import FORECASTERS, ForecastInputs
from controllers.observers import OBSERVERS, ModelObservation, Observation, ObserverContext
from controllers.registry import Registry
from planner.io.errors import InputError
from planner.io.schema import Fleet, FleetLimits, GpuInventory, Slo
from planner.planning.slo_metrics import SloMetric

MODEL, GPU = "llama-2-70b", "H100-SXM-80GB"
P, D = f"{MODEL}/prefill/{GPU}/tp2", f"{MODEL}/decode/{GPU}/tp2"
FLEET = Fleet(gpus={GPU: GpuInventory(available=64)}, limits=FleetLimits(allowed_tp=[2], roles=["prefill", "decode"]),
              current={P: 1, D: 1})


def cfg(**kw: object) -> ControllerConfig:
    return ControllerConfig(interval_s=60, startup_s=60, fleet="-", models={MODEL: ModelConfig(slo=Slo(ttft_ms=2000, itl_ms=100))},
                            **kw)


def busy(t_s: float, rate_rps: float = 8.0) -> Observation:
    return Observation(t_s=t_s, ok=True, models={MODEL: ModelObservation(
        model=MODEL, completion_rps=rate_rps, arrival_rps=rate_rps, mean_isl=1000, mean_osl=200,
        waiting={"prefill": 0.0, "decode": 0.0}, running={"prefill": 1, "decode": 10})})


@pytest.fixture(scope="module")
def perf():
    from planner.perf.laws import PerfModel

    return PerfModel.load()


@pytest.fixture()
def given_observer():
    """An observer registered for the test: hands the loop the observation in `box[0]`."""
    box: list[Observation] = [busy(0.0)]

    class Given:
        def observe(self) -> Observation:
            return box[0]

    OBSERVERS.add("given-test", "observations handed in by the test", lambda ctx: Given())
    yield box
    OBSERVERS.remove("given-test")


# ------------------------------------------------------------------ the registry itself
def test_registry_lists_default_first_and_refuses_duplicates_and_unknown_names():
    r: Registry[int] = Registry("thing", default="m")
    r.add("z", "last", 1)
    r.add("m", "default", 2)
    r.add("a", "first", 3)
    assert r.names() == ["m", "a", "z"]
    assert r.help().startswith("m: default | a: first")
    with pytest.raises(ValueError, match="registered twice"):
        r.add("a", "again", 4)
    with pytest.raises(ValueError, match="thing must be one of m, a, z; got 'q'"):
        r.get("q")


def test_built_in_actuators_and_observers_are_registered():
    assert ACTUATORS.names()[0] == "kubernetes"
    assert {"kubernetes", "metrics", "simulator", "file"} <= set(ACTUATORS.names())
    assert OBSERVERS.names()[0] == "prometheus"
    assert {"prometheus", "simulator"} <= set(OBSERVERS.names())


def test_config_choices_come_from_the_registries():
    with pytest.raises(ValidationError, match="one of kubernetes, .*file.*controllers/actuators/.*kafka"):
        ActuatorConfig(kind="kafka")
    with pytest.raises(ValidationError, match="one of prometheus, .*simulator.*statsd"):
        cfg(observer="statsd")
    with pytest.raises(ValidationError, match="one of highs, .*solvers/runners/.*gurobi"):
        cfg(backend="gurobi")  # the solver backends' registry (solvers/runners/)
    ACTUATORS.add("late-test", "registered after the config module was imported", lambda ctx: Actuation(FileActuator("x")))
    try:
        assert ActuatorConfig(kind="late-test").kind == "late-test"
    finally:
        ACTUATORS.remove("late-test")
    with pytest.raises(ValidationError):
        ActuatorConfig(kind="late-test")


# ------------------------------------------------------------------ a new actuator: one registration
class Recording:
    """An actuator written in the test: keeps every request, reports the replicas it was last given."""

    def __init__(self, initial: dict[str, int]):
        self.desired = dict(initial)
        self.requests: list[ApplyRequest] = []

    def pools(self) -> dict[str, PoolState]:
        return {p: PoolState(p, n, n) for p, n in self.desired.items()}

    def apply(self, request: ApplyRequest) -> ApplyResult:
        self.requests.append(request)
        res = ApplyResult(changed={p: (self.desired.get(p, 0), n) for p, n in request.target.items()
                                   if self.desired.get(p, 0) != n})
        self.desired.update(request.target)
        return res


def test_a_new_actuator_registered_under_a_name_runs_through_the_loop(perf, given_observer):
    built: list[Recording] = []

    @ACTUATORS.register("recording-test", "keeps the requests (test)")
    def build(ctx: ActuatorContext) -> Actuation:
        built.append(Recording(dict(ctx.fleet.current)))
        return Actuation(built[-1])

    try:
        c = cfg(observer="given-test", actuator={"kind": "recording-test"}, leader={"enabled": False})
        ctl = build_controller(c, FLEET, dry_run=False, perf=perf, clock=lambda: 0.0)
        assert ctl.actuator is built[0] and ctl.elector is None
        d = ctl.step()
        assert d.outcome == "applied", d.errors
        (req,) = built[0].requests
        # 8 req/s of 1000-token prompts need more than the one prefill and one decode replica running
        assert sum(req.target.values()) > 2 and d.changes == {p: (1, n) for p, n in req.target.items() if n != 1}
        weights = req.routing[MODEL][MODEL]
        assert weights[P] == pytest.approx(1.0) and weights[D] == pytest.approx(1.0)
        assert req.reason and isinstance(req.pairing, dict)
        assert ctl.actuator.pools()[P].desired == req.target[P]  # the loop reads back what it applied
    finally:
        ACTUATORS.remove("recording-test")


# ------------------------------------------------------------------ the file actuator (a built-in one)
def test_file_actuator_through_the_loop_writes_replicas_and_routing(perf, given_observer, tmp_path):
    out = tmp_path / "gitops" / "replicas.json"
    c = cfg(observer="given-test", actuator={"kind": "file", "options": {"path": str(out)}}, leader={"enabled": False})
    ctl = build_controller(c, FLEET, dry_run=False, perf=perf, clock=lambda: 0.0)
    assert ctl.actuator.pools() == {P: PoolState(P, 1, 1), D: PoolState(D, 1, 1)}  # nothing written yet: the fleet's
    d = ctl.step()
    assert d.outcome == "applied", d.errors
    doc = json.loads(out.read_text())
    assert doc["replicas"] == {**FLEET.current, **d.target} and sum(doc["replicas"].values()) > 2
    assert set(doc["routing"][MODEL][MODEL]) == {P, D}
    assert {p: s.desired for p, s in ctl.actuator.pools().items()} == doc["replicas"]
    text = out.read_text()
    again = FileActuator(out).apply(ApplyRequest(doc["replicas"], doc["routing"], doc["reason"], doc["pairing"]))
    assert again.ok and not again.changed and not again.routing_changed and out.read_text() == text  # idempotent


def test_file_actuator_names_its_missing_option_and_a_broken_file(tmp_path):
    with pytest.raises(InputError, match="actuator.options.path"):
        build_controller(cfg(actuator={"kind": "file"}, leader={"enabled": False}), FLEET, dry_run=True, perf=object())
    bad = tmp_path / "r.json"
    bad.write_text("[1, 2]")
    res = FileActuator(bad).apply(ApplyRequest({P: 2}))
    assert not res.ok and str(bad) in res.errors[0]


def test_simulator_kinds_need_a_simulator():
    with pytest.raises(InputError, match="for replays"):
        build_controller(cfg(observer="simulator", actuator={"kind": "metrics"}, export={"read_cluster": False},
                             leader={"enabled": False}), FLEET, dry_run=True, perf=object())
    with pytest.raises(InputError, match="for replays"):
        build_controller(cfg(actuator={"kind": "simulator"}), FLEET, dry_run=True, perf=object())


def test_observer_context_carries_the_config_names():
    c = ControllerConfig(fleet="-", models={"m": ModelConfig(served_name="org/m", slo=Slo(itl_ms=50, percentile=95))})
    ctx = ObserverContext(c)
    assert ctx.served_names == {"m": "org/m"} and ctx.percentile == {"m": 95.0}


# ------------------------------------------------------------------ forecasters
def test_forecasters_are_the_configs_short_choices_and_call_the_same_functions():
    from controllers.decide import fit_forecast, short_forecast
    from controllers.forecast import forecast_upper

    assert {"trend", "fit", "ets"} <= set(FORECASTERS.names())
    with pytest.raises(ValueError, match="one of .*trend"):
        ForecastConfig(short="nope")
    c = cfg()
    f = c.forecast
    y = np.array([1.0, 1.2, 1.1, 1.5, 1.9, 2.6, 3.0, 3.4])
    x = ForecastInputs(c, steps=3, horizon_s=120.0, count_per_interval=200.0)
    assert FORECASTERS.get("trend").factory(y, x) == short_forecast(y, 3, f.trend_points, None, f.trend_noise_sigmas, 200.0)
    assert FORECASTERS.get("fit").factory(y, x) == fit_forecast(y, 3, f.trend_fit_points, f.trend_fit_z)
    assert FORECASTERS.get("ets").factory(y, x) == forecast_upper(list(y), 60.0, 120.0, f.quantile, f.season_s,
                                                                  f.min_points_trend).upper
    assert FORECASTERS.get("trend").factory(y, x) > y[-1]  # a sustained ramp is extrapolated


@pytest.mark.parametrize(("min_history", "series", "extrapolated"), [
    (2, [3.17, 4.42], True),          # today's default: the first two observations' rise is a trend (the Azure case)
    (3, [3.17, 4.42], False),         # rule R9's row: too young a history, the last value
    (3, [3.17, 4.42, 5.48], True),    # from the third observation on, the same trend as before
    (3, [], False),
])
def test_the_trend_waits_for_trend_min_history_observations(min_history, series, extrapolated):
    """forecast.trend_min_history (rule R9, stop 44): the short trend extrapolates only once the history holds that
    many observations; below it the forecast is the last value (0 with no history)."""
    c = cfg()
    c = c.model_copy(update={"forecast": c.forecast.model_copy(update={"trend_min_history": min_history})})
    y = np.array(series, dtype=float)
    got = FORECASTERS.get("trend").factory(y, ForecastInputs(c, steps=4, horizon_s=240.0, count_per_interval=None))
    last = float(y[-1]) if y.size else 0.0
    assert (got > last) == extrapolated and got >= last


# ------------------------------------------------------------------ SLO metrics as data
def test_every_slo_metric_is_a_bound_an_observation_and_a_correction():
    fields = set(Slo.model_fields)
    for metric in SloMetric:
        assert metric.key in fields  # the SLO bounds it
        assert metric.key in ModelObservation.__dataclass_fields__  # the observers measure it
        assert Corrections().factor(metric, "any") == 1.0  # the controller learns a factor for it
        assert metric.spec.unit == "ms" and metric.spec.law in ("prefill", "decode")
    assert [m.value for m in SloMetric] == ["ttft", "itl"]  # the metric label values of the controller's metrics


def test_planner_control_refuses_an_unregistered_actuator_naming_file_field_and_choices(tmp_path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    (tmp_path / "fleet.yaml").write_text("gpus: {H100-SXM-80GB: {available: 8}}\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(f"fleet: fleet.yaml\nmodels:\n  {MODEL}: {{slo: {{ttft_ms: 1000}}}}\nactuator: {{kind: kafka}}\n")
    res = CliRunner().invoke(app, ["control", "--config", str(conf), "--dry-run", "--once"])
    assert res.exit_code == 2, res.output
    out = res.output
    assert "c.yaml" in out and "actuator.kind" in out and "kafka" in out
    assert all(name in out for name in ACTUATORS.names())


@pytest.mark.parametrize("kind, options, accepted", [
    ("kubernetes", {"namespce": "llm"}, "it accepts no options"),
    ("metrics", {"port": 9090}, "it accepts no options"),
    ("simulator", {"speed": 2}, "it accepts no options"),
    ("file", {"path": "out.json", "pth": "x"}, "it accepts path"),
])
def test_planner_control_refuses_an_unknown_actuator_option_naming_file_field_and_keys(tmp_path, kind, options, accepted):
    """Found in QA: every actuator but the file one dropped an unknown actuator.options key without a word (exit 0,
    the option never read). Now it is exit 2 at config load naming the config file, the field and the keys the
    chosen actuator accepts (its registry entry's `options`)."""
    import yaml
    from typer.testing import CliRunner

    from planner.cli.main import app

    (tmp_path / "fleet.yaml").write_text("gpus: {H100-SXM-80GB: {available: 8}}\n")
    conf = tmp_path / "c.yaml"
    conf.write_text(yaml.safe_dump({"fleet": "fleet.yaml", "models": {MODEL: {"slo": {"ttft_ms": 1000}}},
                                    "actuator": {"kind": kind, "options": options}}))
    res = CliRunner().invoke(app, ["control", "--config", str(conf), "--dry-run", "--once"])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, out
    unknown = sorted(set(options) - {"path"})[0]
    assert "c.yaml" in out and "actuator.options" in out and f"unknown key '{unknown}' for actuator.kind {kind}" in out
    assert accepted in out and "Traceback" not in out


def test_builders_of_the_built_in_observer_and_simulator_actuator():
    from prometheus_client import CollectorRegistry

    from controllers.actuators import build_actuator
    from controllers.actuators.simulator import SimulatorActuator
    from controllers.observers import build_observer
    from controllers.observers.prometheus import PrometheusObserver

    c = ControllerConfig(fleet="-", actuator={"kind": "simulator"}, startup_s=30,
                         models={MODEL: ModelConfig(served_name="org/m", slo=Slo(itl_ms=50, percentile=95))},
                         prometheus={"url": "http://127.0.0.1:9"})
    obs = build_observer(ObserverContext(c))
    assert isinstance(obs, PrometheusObserver) and obs.served == {MODEL: "org/m"} and obs.percentile == {MODEL: 95.0}

    class Sim:  # what the simulator actuator needs of planner.simulate's FleetSimulator
        def __init__(self):
            self.calls = []
            self.class_model = {"chat": MODEL, "long": MODEL}

        def set_replicas(self, pool, n, ready_at_s=None):
            self.calls.append(("replicas", pool, n, ready_at_s))

        def set_routing(self, routing, at_s=None, pairing=None):
            self.calls.append(("routing", routing, pairing))

    sim, now = Sim(), [100.0]
    act = build_actuator(ActuatorContext(c, FLEET, CollectorRegistry(), sim=sim, clock=lambda: now[0])).actuator
    assert isinstance(act, SimulatorActuator)
    res = act.apply(ApplyRequest({P: 3}, {MODEL: {MODEL: {P: 1.0, D: 1.0}}}))
    assert res.changed == {P: (1, 3)} and res.routing_changed
    # the new replicas are ready one start-up (30 s) later; the model's routing reaches each of its classes
    assert sim.calls[0] == ("replicas", P, 3, 130.0)
    assert sim.calls[1] == ("routing", {"chat": {P: 1.0, D: 1.0}, "long": {P: 1.0, D: 1.0}}, None)
    assert act.pools()[P] == PoolState(P, 3, 1)
    now[0] = 130.0
    assert act.pools()[P] == PoolState(P, 3, 3)


def test_a_new_forecaster_is_one_registration_and_decide_uses_it():
    """forecast.short accepts any registered name, and controllers.decide calls the registered function."""
    from controllers.decide import ModelMemory, model_forecast

    calls: list[int] = []

    def const(series: np.ndarray, x: ForecastInputs) -> float:
        calls.append(x.steps)
        return 50.0

    FORECASTERS.add("test-const", "a constant 50 (test)", const)
    try:
        c = cfg()
        c.forecast = ForecastConfig(short="test-const")
        mem = ModelMemory(t_s=(0.0, 60.0, 120.0, 180.0), rate_rps=(1.0, 1.1, 1.0, 1.2))
        got = model_forecast(mem, c, waiting=0.0)
    finally:
        FORECASTERS.remove("test-const")
    assert calls and got.short_rps == 50.0 and got.rate_rps >= 50.0
    with pytest.raises(ValueError):
        ForecastConfig(short="test-const")  # gone with its registration


def test_the_controller_names_the_models_it_can_only_plan_from_the_roofline_prior(monkeypatch):
    """A model without a profile on any of the fleet's GPU types is planned from the roofline prior alone; `planner
    control` warns of it at start-up as `planner solve` notes it (found by hand at stop 54: an imported model on a
    cluster was planned from the prior without a word). A bundled model measured on the fleet's GPU is not named; the
    same model on a fleet of only unprofiled GPUs is."""
    from pathlib import Path

    from planner.cli.control import prior_only_models, prior_only_warning
    from planner.io.catalog import Catalog
    from planner.perf.laws import PerfModel

    monkeypatch.setenv("PLANNER_CATALOG", str(Path(__file__).resolve().parents[1] / "examples" / "byo-model" / "catalog"))
    perf = PerfModel.load(Catalog.load())
    assert "H100-SXM-80GB" in perf.measured_gpus("llama-3.1-8b") and not perf.measured_gpus("mistral-nemo-12b")
    got = prior_only_models(["llama-3.1-8b", "mistral-nemo-12b"], ["H100-SXM-80GB", "L4"], perf.measured_gpus)
    assert got == {"mistral-nemo-12b": ["H100-SXM-80GB", "L4"]}
    assert prior_only_models(["llama-3.1-8b"], ["MI300X"], perf.measured_gpus) == {"llama-3.1-8b": ["MI300X"]}
    says = prior_only_warning("mistral-nemo-12b", ["H100-SXM-80GB"])
    assert "roofline prior" in says and "--model mistral-nemo-12b" in says and "catalog.volume" in says


@pytest.mark.parametrize("options, field, words", [
    ({"path": "{dir}"}, "actuator.options.path", "is a directory"),
    ({"path": "{bad}"}, None, "a JSON object with a 'replicas' mapping"),
])
def test_file_actuator_refuses_an_unusable_path_or_option_before_any_work(tmp_path, options, field, words):
    """A path that is a directory, or a file there that the actuator cannot read back, was found only by the first
    interval, which then held as 'platform unreachable' every interval (planner control --once: exit 0); a misspelt
    option was dropped without a word. Now each is an InputError when the controller is built."""
    (tmp_path / "bad.json").write_text("[1, 2]")
    paths = {"dir": str(tmp_path), "bad": str(tmp_path / "bad.json"), "new": str(tmp_path / "new.json")}
    opts = {k: v.format(**paths) for k, v in options.items()}
    with pytest.raises(InputError, match=words) as exc:
        build_controller(cfg(actuator={"kind": "file", "options": opts}, leader={"enabled": False}), FLEET, dry_run=True,
                         perf=object())
    assert exc.value.field == field


def test_file_actuator_keeps_the_routing_on_a_held_decision(tmp_path):
    """A held decision that changes replicas (the last good plan re-applied) carries no routing: ApplyRequest says
    'leave the routing as it is', which the file actuator broke by writing routing and pairing as {}."""
    out = tmp_path / "replicas.json"
    routing = {MODEL: {MODEL: {P: 1.0, D: 1.0}}}
    pairing = {MODEL: {MODEL: {P: {D: 1.0}}}}
    a = FileActuator(out, initial={P: 1, D: 1})
    assert a.apply(ApplyRequest({P: 2, D: 2}, routing, "re-plan", pairing)).routing_changed
    res = a.apply(ApplyRequest({P: 3, D: 2}, {}, "hold: metrics unusable"))
    doc = json.loads(out.read_text())
    assert res.ok and res.changed == {P: (2, 3)} and not res.routing_changed
    assert (doc["replicas"], doc["routing"], doc["pairing"]) == ({P: 3, D: 2}, routing, pairing), doc


@pytest.mark.parametrize("count", [-3, True, 1.5, "2"])
def test_file_actuator_refuses_a_replica_count_that_is_not_a_count(tmp_path, count):
    """The file is the GitOps record, edited by people too: -3 (and true, read as 1) were taken as replicas, the
    decision log then holding current -3 and a plan cost of -11.96 USD/h."""
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"replicas": {P: count, D: 1}}))
    with pytest.raises(InputError, match=r"replica count >= 0") as exc:
        FileActuator(out).pools()
    assert exc.value.field == f"replicas.{P}"


def test_an_empty_workload_kinds_is_refused():
    """actuator.workload_kinds [] was accepted: the Kubernetes and metrics actuators then find no pool, and every
    interval fails on 'no Deployment, LeaderWorkerSet or DisaggregatedSet role found' for each pool of the plan."""
    with pytest.raises(ValidationError, match="at least 1 item"):
        ActuatorConfig(workload_kinds=[])
    assert ActuatorConfig(workload_kinds=["deployment"]).workload_kinds == ["deployment"]
