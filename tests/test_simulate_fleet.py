"""Fleet-level simulation: plans and traces, time-varying fleet for the controller, verification,
the CLI path, and bad input (clear InputError, never a hang)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.io.errors import InputError
from planner.io.files import dump_yaml, write_atomic
from planner.perf.laws import VariantPerf
from planner.io.schema import ModelPlan, Plan, PoolPlan, SolverInfo, Workload
from planner.simulate.arrivals import normalise_trace, poisson_arrivals, trace_arrivals
from planner.cli.simulate_run import run_simulate
from planner.simulate.fleet import FleetSimulator
from planner.simulate.report import build_report, plot_report
from planner.simulate.attainment import tightened_utilization, verify

pytestmark = pytest.mark.timeout(120)

P = VariantPerf(model="m", gpu="H100", tp=1, source="prior", prefill_a_ms=15.0, prefill_b_ms_per_token=0.06,
                prefill_c_ms_per_token2=2e-6, decode_alpha_ms=7.0, decode_beta_ms_per_seq=0.05, decode_gamma_ms_per_token=5e-5,
                kv_capacity_tokens=300_000, kv_bytes_per_token=131072, kv_link_gb_s=50.0)
WL = Workload.model_validate({
    "models": {"m": {"slo": {"ttft_ms": 400, "itl_ms": 20, "percentile": 90}}},
    "classes": [{"id": "m/chat", "model": "m", "isl": 1000, "osl": 100, "rate_rps": 10},
                {"id": "m/long", "model": "m", "isl": 4000, "osl": 50, "rate_rps": 2}]})


def lookup(perfs: dict | None = None):
    def f(model: str, gpu: str, tp: int):
        if model != "m":
            return None
        return (perfs or {}).get(gpu, P)
    return f


def pool(role: str, n: int, gpu: str = "H100") -> PoolPlan:
    return PoolPlan(id=f"m/{role}/{gpu}/tp1", role=role, gpu=gpu, tp=1, replicas=n, gpus=n, cost_per_hour=1.0, utilization=0.8)


def make_plan(n_pre: int = 2, n_dec: int = 2, n_mix: int = 1, mix_share: float = 0.25) -> Plan:
    pools = [pool("prefill", n_pre), pool("decode", n_dec), pool("mixed", n_mix)]
    w = {"m/prefill/H100/tp1": 1 - mix_share, "m/mixed/H100/tp1": mix_share, "m/decode/H100/tp1": 1.0}
    return Plan(solver=SolverInfo(backend="test", status="optimal"),
                models={"m": ModelPlan(pools=pools, routing={"m/chat": w, "m/long": w}, predicted={})})


def test_plan_simulation_report_and_plot(tmp_path: Path):
    arr = poisson_arrivals(WL, 120, np.random.default_rng(0))
    sim = FleetSimulator.from_plan(make_plan(), lookup(), arr, WL, seed=1)
    sim.run()
    rep = build_report(sim)
    assert set(rep.classes.class_id) == {"m/chat", "m/long"}
    assert rep.requests.finished.all()
    chat = rep.classes.set_index("class_id").loc["m/chat"]
    assert chat.ttft_p50_ms <= chat.ttft_p90_ms <= chat.ttft_p99_ms
    assert chat.ttft_p50_ms >= P.prefill_ms(1000)  # no request beats the law
    assert 0 < chat.goodput_rps <= 10 * 1.2
    assert set(rep.pools.columns) >= {"t_s", "pool_id", "waiting", "kv_usage", "utilization"}
    assert rep.pools[rep.pools.role == "prefill"].utilization.between(0, 1).all()
    plot_report(rep, tmp_path / "x.png")
    assert (tmp_path / "x.png").stat().st_size > 10_000


@pytest.mark.parametrize(("drain_s", "stops_at"), [
    # found in QA: the drain loop steps 10 sample intervals (100 s) at a time, and duration_s read the step's end
    # (130 s where the last request finished at 39.1 s): now the last request's end
    (1800.0, "last finish"),
    (1.0, "drain limit"),  # requests still in the fleet 1 s past the last arrival: the drain limit
])
def test_duration_is_when_the_last_request_finished_or_the_drain_limit(drain_s: float, stops_at: str):
    arr = poisson_arrivals(WL.scaled(4.0) if stops_at == "drain limit" else WL, 30, np.random.default_rng(0))
    sim = FleetSimulator.from_plan(make_plan(), lookup(), arr, WL, seed=1)
    sim.run(drain_s=drain_s)
    rep = build_report(sim)
    last_done = float((rep.requests.t_arr_s + rep.requests.e2e_ms / 1e3).max())
    if stops_at == "last finish":
        assert rep.requests.finished.all()
        assert rep.duration_s == pytest.approx(last_done, abs=1e-9)
    else:
        assert not rep.requests.finished.all()
        assert rep.duration_s == arr.duration_s + drain_s


def test_a_plot_of_many_classes_counts_them_instead_of_a_legend(tmp_path: Path, recwarn: pytest.WarningsRecorder):
    """Found by hand at stop 53: a 7-model plan's 84 classes made legends taller than their panels and matplotlib
    warned 'Tight layout not applied' on the user's terminal: past LEGEND_MAX_ENTRIES lines a panel says how many."""
    import dataclasses

    from planner.simulate.report import LEGEND_MAX_ENTRIES

    arr = poisson_arrivals(WL, 60, np.random.default_rng(0))
    sim = FleetSimulator.from_plan(make_plan(), lookup(), arr, WL, seed=1)
    sim.run()
    rep = build_report(sim)
    many = LEGEND_MAX_ENTRIES + 78  # 90: the old legends overflowed their panels from about 60
    reqs = pd.concat([rep.requests.assign(class_id=f"c{i}") for i in range(many)], ignore_index=True)
    plot_report(dataclasses.replace(rep, requests=reqs), tmp_path / "many.png")
    assert (tmp_path / "many.png").stat().st_size > 10_000
    assert not [w for w in recwarn if "layout" in str(w.message).lower()]


def test_azure_trace_mapping_by_nearest_class(shared_data: Path):
    raw = pd.read_csv(shared_data / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv", nrows=3000)
    arr = trace_arrivals(raw, WL, "azure", model="m", duration_s=60)
    assert len(arr) > 100 and arr.t_s[0] == 0 and np.all(np.diff(arr.t_s) >= 0)
    long_idx = arr.class_ids.index("m/long")
    assert np.all(arr.isl[arr.cls == long_idx] > np.median(arr.isl))  # long prompts map to the long class
    sim = FleetSimulator.from_plan(make_plan(4, 4, 1), lookup(), arr, WL)
    sim.run()
    assert build_report(sim).requests.finished.mean() > 0.99


def test_time_varying_fleet_for_the_controller():
    """Start with too few decode replicas, add some with a start-up delay; observe like Prometheus."""
    wl = WL.scaled(3.0)
    arr = poisson_arrivals(wl, 300, np.random.default_rng(1))
    sim = FleetSimulator.from_plan(make_plan(4, 1, 1), lookup(), arr, wl, startup_delay_s=30.0)
    sim.run_until(60)
    o1 = sim.observe()
    dec = o1.pools["m/decode/H100/tp1"]
    assert dec.replicas_ready == 1 and dec.requests_total > 0 and dec.itl_s.size > 0
    assert sum(o1.arrivals_total.values()) == sim.next_arrival
    sim.set_replicas("m/decode/H100/tp1", 4)  # ready at 90 s
    sim.run_until(80)
    assert sim.observe().pools["m/decode/H100/tp1"].replicas_starting == 3
    sim.run_until(200)
    o3 = sim.observe()
    d3 = o3.pools["m/decode/H100/tp1"]
    assert d3.replicas_ready == 4 and d3.replicas_starting == 0
    assert d3.requests_total > dec.requests_total
    # ITL after scale-out is lower than before (smaller batches per replica)
    assert np.median(d3.itl_s) < np.median(dec.itl_s)
    # scale a pool to zero: arrivals wait in the pool queue, nothing is lost; scale back up
    sim.set_replicas("m/mixed/H100/tp1", 0)
    sim.run_until(250)
    assert sim.observe().pools["m/mixed/H100/tp1"].waiting > 0
    sim.set_replicas("m/mixed/H100/tp1", 1, ready_at_s=260)
    sim.run(drain_s=600)
    assert build_report(sim).requests.finished.all()
    with pytest.raises(InputError, match="unknown pool"):
        sim.set_replicas("m/decode/A100/tp1", 1)


def test_verify_finds_the_pool_at_fault():
    ok = verify(make_plan(4, 3, 1), WL, lookup(), duration_s=120)
    assert ok.ok and not ok.pools_at_fault
    # decode with a tiny KV cache: requests wait for admission, the decode pool is to blame
    small = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": 12_000})
    plan = make_plan(4, 1, 1, mix_share=0.0)
    plan = plan.model_copy(update={"models": {"m": plan.models["m"].model_copy(update={"pools": [
        pool("prefill", 4), pool("decode", 1, gpu="L4"), pool("mixed", 1)]})}})
    w = {"m/prefill/H100/tp1": 1.0, "m/decode/L4/tp1": 1.0}
    plan.models["m"].routing.update({"m/chat": w, "m/long": w})
    bad = verify(plan, WL, lookup({"L4": small}), duration_s=120)
    assert not bad.ok and "m/chat" in bad.failing
    assert next(iter(bad.pools_at_fault)) == "m/decode/L4/tp1"
    new = tightened_utilization({"m/decode/L4/tp1": 0.8, "m/prefill/H100/tp1": 0.8}, bad)
    assert new["m/decode/L4/tp1"] < 0.8
    # an overloaded prefill pool is blamed instead
    pre = verify(make_plan(1, 4, 1, mix_share=0.0), WL.scaled(2.0), lookup(), duration_s=120)
    assert not pre.ok and next(iter(pre.pools_at_fault)) == "m/prefill/H100/tp1"


def test_cli_run_with_plan_file_and_trace_file(tmp_path: Path):
    plan_path = tmp_path / "plan.yaml"
    write_atomic(plan_path, dump_yaml(make_plan().model_dump(mode="json")))
    wl_path = tmp_path / "wl.yaml"
    write_atomic(wl_path, dump_yaml(WL.model_dump(mode="json")))
    rng = np.random.default_rng(0)
    n = 400
    trace = pd.DataFrame({"timestamp": np.sort(rng.uniform(0, 40, n)), "model": "m",
                          "input_tokens": rng.integers(200, 5000, n), "output_tokens": rng.integers(5, 200, n)})
    trace.to_csv(tmp_path / "t.csv", index=False)
    rep = run_simulate(plan=plan_path, trace=tmp_path / "t.csv", workload=wl_path, duration=None, seed=0,
                       png=tmp_path / "o.png", perf_lookup=lookup())
    assert len(rep.requests) == n and (tmp_path / "o.png").exists()
    rep2 = run_simulate(plan=plan_path, trace=None, workload=wl_path, duration=30, seed=0, png=None, perf_lookup=lookup())
    assert rep2.arrivals_s <= 30


# ---------------------------------------------------------------- bad input
def test_bad_traces():
    with pytest.raises(InputError, match="no requests"):
        normalise_trace(pd.DataFrame({"timestamp": [], "input_tokens": [], "output_tokens": []}), "t.csv", "m")
    with pytest.raises(InputError, match="sorted by time"):
        normalise_trace(pd.DataFrame({"timestamp": [0, 2, 1], "input_tokens": [1, 1, 1], "output_tokens": [1, 1, 1]}), "t.csv", "m")
    with pytest.raises(InputError, match="missing column"):
        normalise_trace(pd.DataFrame({"time": [0], "input_tokens": [1], "output_tokens": [1]}), "t.csv", "m")
    with pytest.raises(InputError, match="not in the plan/workload"):
        trace_arrivals(pd.DataFrame({"timestamp": [0, 1], "model": ["zz", "m"], "input_tokens": [5, 5], "output_tokens": [5, 5]}), WL, "t.csv")
    with pytest.raises(InputError, match="unknown classes"):
        trace_arrivals(pd.DataFrame({"timestamp": [0], "model": ["m"], "input_tokens": [5], "output_tokens": [5], "class_id": ["nope"]}), WL, "t.csv")


def test_bad_plans():
    arr = poisson_arrivals(WL, 10, np.random.default_rng(0))
    with pytest.raises(InputError, match="0 replicas"):
        FleetSimulator.from_plan(make_plan(n_dec=0), lookup(), arr, WL)
    zero_kv = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": 0})
    with pytest.raises(InputError, match="zero-capacity"):
        FleetSimulator.from_plan(make_plan(), lookup({"H100": zero_kv}), arr, WL)
    frozen = VariantPerf(**{**P.__dict__, "decode_alpha_ms": 0.0, "decode_beta_ms_per_seq": 0.0})
    with pytest.raises(InputError, match="positive"):
        FleetSimulator.from_plan(make_plan(), lookup({"H100": frozen}), arr, WL)
    plan = make_plan()
    plan.models["m"].routing["m/chat"] = {"m/prefill/B200/tp1": 1.0, "m/decode/H100/tp1": 1.0}
    with pytest.raises(InputError, match="not among the plan's pools"):
        FleetSimulator.from_plan(plan, lookup(), arr, WL)
    del plan.models["m"].routing["m/chat"]
    with pytest.raises(InputError, match="no routing weights"):
        FleetSimulator.from_plan(plan, lookup(), arr, WL)
    with pytest.raises(InputError, match="no performance model"):
        FleetSimulator.from_plan(make_plan(), lambda m, g, t: None, arr, WL)
    other = Workload.model_validate({"models": {"x": {"slo": {"ttft_ms": 1}}}, "classes": [{"id": "x/c", "model": "x", "isl": 5, "osl": 5, "rate_rps": 1}]})
    with pytest.raises(InputError, match="not in the plan"):
        FleetSimulator.from_plan(make_plan(), lookup(), poisson_arrivals(other, 10, np.random.default_rng(0)), other)


def test_cli_bad_input_exits_2(tmp_path: Path):
    from typer.testing import CliRunner

    from planner.cli.main import app

    r = CliRunner().invoke(app, ["simulate", "--plan", str(tmp_path / "missing.yaml"), "--workload", str(tmp_path / "w.yaml")])
    assert r.exit_code == 2 and "file not found" in r.output
    r = CliRunner().invoke(app, ["emulate", "--variant", "not-a-pool-id"])
    assert r.exit_code == 2 and "model/role/gpu/tpN" in r.output


# ---------------------------------------------------------------- routing changes mid-run
PRE_H, DEC_H, MIX_H = "m/prefill/H100/tp1", "m/decode/H100/tp1", "m/mixed/H100/tp1"
PRE_L, DEC_L = "m/prefill/L4/tp1", "m/decode/L4/tp1"


def plan_with_spare_pools() -> Plan:
    """make_plan's pools plus an L4 prefill and decode pool with 0 replicas (declared up front)."""
    plan = make_plan(4, 3, 1)
    mp = plan.models["m"]
    return plan.model_copy(update={"models": {"m": mp.model_copy(update={"pools": mp.pools + [pool("prefill", 0, "L4"), pool("decode", 0, "L4")]})}})


def test_set_routing_redraws_only_requests_not_yet_arrived():
    from scipy.stats import chisquare

    arr = poisson_arrivals(WL, 240, np.random.default_rng(3))
    sim = FleetSimulator.from_plan(plan_with_spare_pools(), lookup(), arr, WL, seed=5)
    idx = {pid: p.idx for pid, p in sim.pools.items()}
    before_pf, before_dc = list(sim.req.pf_pool), list(sim.req.dc_pool)
    sim.run_until(60.0)
    arrived = sim.next_arrival
    assert 0 < arrived < len(arr)
    sim.set_replicas(PRE_L, 2)
    sim.set_replicas(DEC_L, 2)
    w_pre = {PRE_L: 0.5, PRE_H: 0.3, MIX_H: 0.2}
    w_dec = {DEC_L: 0.6, DEC_H: 0.4}
    sim.set_routing({"m/chat": {**w_pre, **w_dec}})
    pf, dc = np.asarray(sim.req.pf_pool), np.asarray(sim.req.dc_pool)
    chat = np.asarray(sim.req.cls) == arr.class_ids.index("m/chat")
    # arrived requests and the other class keep their draws
    assert pf[:arrived].tolist() == before_pf[:arrived] and dc[:arrived].tolist() == before_dc[:arrived]
    assert np.array_equal(pf[~chat], np.asarray(before_pf)[~chat])
    assert not np.isin(pf[:arrived], [idx[PRE_L]]).any()
    # later chat requests follow the new weights (chi-square on counts; seeded, so deterministic)
    new = np.flatnonzero(chat & (np.arange(len(arr)) >= arrived))
    assert new.size > 1500
    counts = [int((pf[new] == idx[p]).sum()) for p in w_pre]
    assert sum(counts) == new.size
    assert chisquare(counts, np.array(list(w_pre.values())) * new.size).pvalue > 0.01
    on_pre = new[pf[new] != idx[MIX_H]]
    assert (dc[new[pf[new] == idx[MIX_H]]] == -1).all()
    dcounts = [int((dc[on_pre] == idx[p]).sum()) for p in w_dec]
    assert sum(dcounts) == on_pre.size
    assert chisquare(dcounts, np.array(list(w_dec.values())) * on_pre.size).pvalue > 0.01
    # and the run serves them there: the L4 pools do work only for chat requests after 60 s
    sim.run(drain_s=600)
    rep = build_report(sim).requests
    assert rep.finished.all()
    o = sim.observe().pools
    assert o[PRE_L].requests_total == int((pf == idx[PRE_L]).sum()) > 0
    assert o[DEC_L].requests_total == int((dc == idx[DEC_L]).sum()) > 0


def test_set_routing_at_a_later_time_keeps_the_requests_before_it():
    arr = poisson_arrivals(WL, 120, np.random.default_rng(4))
    sim = FleetSimulator.from_plan(plan_with_spare_pools(), lookup(), arr, WL, seed=0)
    before = list(sim.req.pf_pool)
    sim.run_until(30.0)
    sim.set_routing({"m/long": {PRE_L: 1.0, DEC_L: 1.0}}, at_s=80.0)
    sim.set_routing({"m/chat": {MIX_H: 1.0}}, at_s=10.0)  # in the past: only not-yet-arrived requests change
    t = np.asarray(sim.req.t_arr)
    pf = np.asarray(sim.req.pf_pool)
    long_ = np.asarray(sim.req.cls) == arr.class_ids.index("m/long")
    assert (pf[long_ & (t > 80)] == sim.pools[PRE_L].idx).all() and (long_ & (t > 80)).any()
    assert np.array_equal(pf[long_ & (t <= 80)], np.asarray(before)[long_ & (t <= 80)])
    chat = ~long_
    assert (pf[chat & (t > 30)] == sim.pools[MIX_H].idx).all()
    assert np.array_equal(pf[chat & (t <= 30)], np.asarray(before)[chat & (t <= 30)])
    assert sim.routes["m/long"].prefill == ((sim.pools[PRE_L].idx, 1.0),)


def test_set_routing_bad_input_changes_nothing():
    arr = poisson_arrivals(WL, 30, np.random.default_rng(0))
    sim = FleetSimulator.from_plan(make_plan(), lookup(), arr, WL, seed=0)
    pf, dc = list(sim.req.pf_pool), list(sim.req.dc_pool)
    with pytest.raises(InputError, match=r"m/chat.*unknown pool 'm/prefill/B200/tp1'"):
        sim.set_routing({"m/long": {MIX_H: 1.0}, "m/chat": {"m/prefill/B200/tp1": 1.0, DEC_H: 1.0}})
    with pytest.raises(InputError, match="prefill-side .* sum to 0.8"):
        sim.set_routing({"m/chat": {PRE_H: 0.5, MIX_H: 0.3, DEC_H: 1.0}})
    with pytest.raises(InputError, match="decode weights sum to 0.5"):
        sim.set_routing({"m/chat": {PRE_H: 1.0, DEC_H: 0.5}})
    with pytest.raises(InputError, match="no decode pool"):
        sim.set_routing({"m/chat": {PRE_H: 1.0}})
    with pytest.raises(InputError, match="no prefill or mixed pool"):
        sim.set_routing({"m/chat": {DEC_H: 1.0}})
    with pytest.raises(InputError, match="weight >= 0"):
        sim.set_routing({"m/chat": {PRE_H: 1.5, MIX_H: -0.5, DEC_H: 1.0}})
    with pytest.raises(InputError, match="unknown class 'm/nope'"):
        sim.set_routing({"m/nope": {MIX_H: 1.0}})
    assert sim.req.pf_pool == pf and sim.req.dc_pool == dc  # validated before anything changed
    # rounded weights as planner/planning/assemble.py writes them (4 decimals) are accepted
    sim.set_routing({"m/chat": {PRE_H: 0.3333, MIX_H: 0.6666, DEC_H: 1.0}})


def test_add_pool_then_route_to_it():
    from planner.simulate.fleet import PoolSpec

    arr = poisson_arrivals(WL, 90, np.random.default_rng(2))
    sim = FleetSimulator.from_plan(make_plan(4, 3, 1), lookup(), arr, WL, seed=0, startup_delay_s=20.0)
    sim.run_until(30.0)
    with pytest.raises(InputError, match="unknown pool 'm/mixed/L4/tp1'"):
        sim.set_routing({"m/chat": {"m/mixed/L4/tp1": 1.0}})
    sim.add_pool(PoolSpec("m/mixed/L4/tp1", "mixed", P, 2))  # ready at 50 s
    with pytest.raises(InputError, match="already exists"):
        sim.add_pool(PoolSpec("m/mixed/L4/tp1", "mixed", P, 1))
    sim.set_routing({"m/chat": {"m/mixed/L4/tp1": 1.0}})
    sim.run_until(40.0)
    new = sim.observe().pools["m/mixed/L4/tp1"]
    assert new.replicas_starting == 2 and new.waiting > 0  # routed before ready: they queue
    sim.run(drain_s=600)
    assert build_report(sim).requests.finished.all()
    assert sim.observe().pools["m/mixed/L4/tp1"].requests_total == int(
        (np.asarray(sim.req.pf_pool) == sim.pools["m/mixed/L4/tp1"].idx).sum()) > 100


def test_controller_replay_moves_a_class_to_a_new_pool():
    """The real control loop (controllers.loop.Controller) with SimulatorObserver and
    SimulatorActuator on the simulator; its planner is replaced by one fixed plan that serves the
    model on pool B (mixed L4) instead of A (mixed H100). The loop routes per model ({m: {m: ...}}),
    the actuator applies it to the simulator's classes m/chat and m/long."""
    from controllers.actuate import SimulatorActuator
    from controllers.config import ControllerConfig, CorrectConfig, GuardConfig, ModelConfig, RecordConfig
    from controllers.loop import Controller
    from controllers.metrics import ControllerMetrics
    from controllers.observe import SimulatorObserver
    from planner.perf.laws import PerfModel
    from planner.io.schema import Fleet, FleetLimits, GpuInventory, Slo

    A, B = MIX_H, "m/mixed/L4/tp1"
    start = Plan(solver=SolverInfo(backend="test", status="optimal"), models={"m": ModelPlan(
        pools=[pool("mixed", 3), pool("mixed", 0, "L4")], routing={"m/chat": {A: 1.0}, "m/long": {A: 1.0}}, predicted={})})
    target = Plan(solver=SolverInfo(backend="test", status="optimal"), models={"m": ModelPlan(
        pools=[pool("mixed", 3, "L4")], routing={"m": {B: 1.0}}, predicted={})})
    arr = poisson_arrivals(WL, 300, np.random.default_rng(7))
    sim = FleetSimulator.from_plan(start, lookup(), arr, WL, seed=0, startup_delay_s=30.0)
    cfg = ControllerConfig(interval_s=30, startup_s=30, fleet="-", models={"m": ModelConfig(slo=WL.models["m"].slo)},
                           guard=GuardConfig(scale_down_stabilization_s=0, scale_down_cooldown_s=0),
                           record=RecordConfig(metrics_port=None),
                           correct=CorrectConfig(min_rate_rps=1e9))  # no learning: model 'm' is not in the catalog
    fleet = Fleet(gpus={"H100": GpuInventory(available=8), "L4": GpuInventory(available=8)},
                  limits=FleetLimits(allowed_tp=[1], roles=["mixed"]))
    observer = SimulatorObserver(sim, {A: "m", B: "m"}, {"m": 90}, model_of_class={"m/chat": "m", "m/long": "m"})
    act = SimulatorActuator(sim, 30.0, clock=lambda: sim.now, initial={A: 3, B: 0})
    ctl = Controller(cfg, fleet, observer, act, PerfModel.load(), plan_fn=lambda w, f, p: target,
                     metrics=ControllerMetrics(), clock=lambda: sim.now)
    for k in range(10):
        sim.run_until(k * 30.0)
        ctl.step()
    applied = [d for d in ctl.decisions if d.outcome == "applied" and d.changes.get(B)]
    assert applied and not any(d.errors for d in ctl.decisions), [(d.outcome, d.errors) for d in ctl.decisions]
    t_switch = applied[0].t_s
    assert act._desired[B] == 3 and act._desired[A] == 0
    sim.run(drain_s=600)
    t = np.asarray(sim.req.t_arr)
    pf = np.asarray(sim.req.pf_pool)
    assert (pf[t > t_switch] == sim.pools[B].idx).all() and (t > t_switch).sum() > 1000
    assert (pf[t <= t_switch] == sim.pools[A].idx).all()
    rep = build_report(sim).requests
    assert rep.finished.all()  # A's draining replicas finished what they held; B served the rest
    o = sim.observe().pools
    assert o[B].requests_total == int((t > t_switch).sum()) and o[A].requests_total == int((t <= t_switch).sum())


def test_requests_still_in_the_frontend_at_the_end_of_the_trace_are_served():
    """With a per-request TTFT overhead, requests that arrive last are still in the frontend when the
    trace ends; the run must wait for them (a burst at t=0 once ended the run with every request unserved)."""
    import dataclasses

    from planner.io.schema import Slo
    from planner.simulate.arrivals import Arrivals
    from planner.simulate.fleet import ClassRoute, PoolSpec

    perf = dataclasses.replace(P, ttft_overhead_ms=8.0)
    n = 4
    arr = Arrivals(np.zeros(n), np.zeros(n, dtype=np.int64), np.full(n, 512), np.full(n, 16), ("c",))
    sim = FleetSimulator([PoolSpec("p", "prefill", perf, 1), PoolSpec("d", "decode", perf, 1)],
                         {"c": ClassRoute("m", ((0, 1.0),), ((1, 1.0),))}, arr, {"c": Slo(ttft_ms=1e9, itl_ms=1e9)})
    sim.run()
    assert np.all(np.isfinite(sim.req.t_done)), sim.req.t_done
    assert np.all(np.asarray(sim.req.t_pf_start) >= 8.0e-3 - 1e-12)  # the overhead delays the engine's start


def test_mixed_frontend_delay_per_running_request():
    """On a mixed replica whose laws carry a frontend (ttft_overhead_ms > 0) a request reaches the engine
    `ttft_overhead_ms + per_running x running` after arrival (laws.frontend_delay_ms): an idle replica's
    first request is not delayed by the per-running term, one arriving while others run is, by at least
    the term less one decode step (it joins at a step boundary); without a frontend nothing changes."""
    from planner.simulate.arrivals import Arrivals
    from planner.simulate.fleet import ClassRoute, PoolSpec
    from planner.io.schema import Slo

    def ttfts(perf: VariantPerf, per_running: float) -> np.ndarray:
        t = np.array([0.0, 0.05, 0.10, 0.15])  # the last three arrive while the earlier ones decode
        arr = Arrivals(t, np.zeros(4, dtype=np.int64), np.full(4, 256), np.full(4, 200), ("c",))
        sim = FleetSimulator([PoolSpec("m/mixed/g/tp1", "mixed", perf, 1)], {"c": ClassRoute("m", ((0, 1.0),), ())}, arr,
                             {"c": Slo(ttft_ms=1e9, itl_ms=1e9)}, frontend_ms_per_running=per_running)
        sim.run()
        return build_report(sim).requests.ttft_ms.to_numpy()

    import dataclasses

    fe = dataclasses.replace(P, ttft_overhead_ms=5.0)
    base, slow = ttfts(fe, 0.0), ttfts(fe, 20.0)
    assert slow[0] == pytest.approx(base[0])  # idle replica: only the fixed overhead
    step_ms = 7.0 + 0.05 * 4 + 5e-5 * 4 * 456  # one decode step of the batch, at most
    for k in (1, 2, 3):  # k requests running at its arrival
        assert slow[k] >= base[k] + 20.0 * k - step_ms - 1e-6
    bare = P  # no frontend in the laws: the per-running term does nothing
    assert np.allclose(ttfts(bare, 20.0), ttfts(bare, 0.0))


@pytest.mark.parametrize(("mix_share", "kv_tokens", "pool"), [
    (0.9, 12_000, "m/mixed/H100/tp1"),   # the mixed replica binds
    (0.1, 6_000, "m/decode/H100/tp1"),   # the decode replica binds: --kv-policy sets it too (stop 35)
])
def test_simulate_runs_a_plan_with_either_kv_policy(tmp_path: Path, mix_share: float, kv_tokens: int, pool: str):
    """run_simulate (planner simulate --kv-policy) on a plan whose replicas have a small cache: on demand (the
    default) the binding pool preempts and its pool table counts it; reserving, nothing is preempted; both serve
    every request."""
    import yaml

    from planner.cli.simulate_run import run_simulate

    plan_file, w_file = tmp_path / "plan.yaml", tmp_path / "w.yaml"
    plan_file.write_text(yaml.safe_dump(make_plan(n_pre=1, n_dec=1, n_mix=1, mix_share=mix_share).model_dump(mode="json")))
    w_file.write_text(yaml.safe_dump(WL.model_dump(mode="json", exclude_none=True)))
    small = VariantPerf(**{**P.__dict__, "kv_capacity_tokens": kv_tokens})
    pre = {}
    for policy in ("on_demand", "reserve"):
        rep = run_simulate(plan=plan_file, trace=None, workload=w_file, duration=30.0, seed=0, png=None,
                           perf_lookup=lookup({"H100": small}), kv_policy=policy)
        pre[policy] = int(rep.pool_summary().loc[pool, "preemptions"])
        assert rep.requests.finished.all()
    assert pre["on_demand"] > 0 and pre["reserve"] == 0


# Goodput is per second of what the arrivals stand for (Arrivals.span_s). Found in QA: 2 requests drawn over 0.05 s read
# 49.18 req/s of goodput (over the last arrival's 0.041 s), and one request in a 1-ms cut of a trace 1,000,000,000 req/s
# (over the 1e-9 s floor). Each row: how the arrivals are made, then the span they stand for (None: NaN goodput).
_SHORT_TRACE = pd.DataFrame({"timestamp": [0.0, 0.02, 0.5, 3.0], "model": "m", "input_tokens": 500, "output_tokens": 20})


@pytest.mark.parametrize("make,span", [
    (lambda: poisson_arrivals(WL, 0.5, np.random.default_rng(3)), 0.5),      # Poisson draws: the duration asked
    (lambda: trace_arrivals(_SHORT_TRACE, WL, duration_s=1.0), 1.0),          # a trace cut: its first second
    (lambda: trace_arrivals(_SHORT_TRACE, WL), 3.0),                          # the whole trace: its last arrival
    (lambda: trace_arrivals(_SHORT_TRACE, WL, duration_s=60.0), 3.0),         # a cut past its end: the trace's own span
    (lambda: trace_arrivals(_SHORT_TRACE.iloc[:1], WL), None),                # one instant: no rate
])
def test_goodput_is_per_second_of_the_arrivals_window(make, span):
    arr = make()
    sim = FleetSimulator.from_plan(make_plan(), lookup(), arr, WL, seed=1)
    sim.run()
    rep = build_report(sim)
    met = rep.requests.groupby("class_id")["met_slo"].sum()
    for r in rep.classes.itertuples():
        if span is None:
            assert np.isnan(r.goodput_rps), r
        else:
            assert r.goodput_rps == pytest.approx(met[r.class_id] / span), (r.class_id, r.goodput_rps)
    assert rep.arrivals_s == (span or 0.0)


# `planner simulate`'s notes on classes whose verdict its requests cannot support. Found in QA: 0.05 s of a workload
# showed 2 and 1 requests at 100.0% attainment in green against a p90 claim, and left a third class out of the table
# without a word. Each row: a class's simulated requests and attainment (None: not simulated), then the note's words.
@pytest.mark.parametrize("requests,attainment,says", [
    (None, None, "no simulated request"),
    (1, 1.0, "1 simulated request cannot tell its attainment (100.0%"),  # found in QA: "1 simulated requests"
    (10, 1.0, "10 simulated requests cannot tell"),       # 95% interval 72.2-100%: holds 90%
    (100, 1.0, None),                                      # 96.3-100%: above the claim
    (400, 0.5, None),                                      # well below it: SHORT stands
])
def test_simulate_notes_classes_too_thin_to_judge(requests, attainment, says):
    from planner.cli.simulate_run import sample_notes
    from planner.simulate.report import SimReport

    rows = [] if requests is None else [{"class_id": "m/chat", "requests": requests, "attainment": attainment,
                                         "slo_percentile": 90.0}]
    rows.append({"class_id": "m/long", "requests": 1000, "attainment": 0.99, "slo_percentile": 90.0})
    rep = SimReport(pd.DataFrame(), pd.DataFrame(rows), pd.DataFrame(), 1.0, 0)
    notes = sample_notes(rep, WL)
    assert not any("m/long" in n for n in notes), notes
    assert (notes == []) if says is None else (len(notes) == 1 and notes[0].startswith("m/chat: ") and says in notes[0]), notes
    if requests is None:  # a class of another model than the one replayed (simulate --model) is not expected
        assert sample_notes(rep, WL, model="other") == []
