"""Fleet-level simulation: plans and traces, time-varying fleet for the controller, verification,
the CLI path, and bad input (clear InputError, never a hang)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planner.errors import InputError
from planner.fileio import dump_yaml, write_atomic
from planner.perf import VariantPerf
from planner.schema import ModelPlan, Plan, PoolPlan, SolverInfo, Workload
from planner.simulate.arrivals import normalise_trace, poisson_arrivals, trace_arrivals
from planner.simulate.cli_run import run_simulate
from planner.simulate.fleet import FleetSimulator
from planner.simulate.report import build_report, plot_report
from planner.simulate.verify import tightened_utilization, verify

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

    from planner.cli import app

    r = CliRunner().invoke(app, ["simulate", "--plan", str(tmp_path / "missing.yaml"), "--workload", str(tmp_path / "w.yaml")])
    assert r.exit_code == 2 and "file not found" in r.output
    r = CliRunner().invoke(app, ["emulate", "--variant", "not-a-pool-id"])
    assert r.exit_code == 2 and "model/role/gpu/tpN" in r.output
