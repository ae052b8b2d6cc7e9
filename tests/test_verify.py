"""`planner solve --verify`: simulation finds a short plan, tightening fixes it."""

from __future__ import annotations

from planner.io.catalog import Catalog
from planner.perf.laws import PerfModel
from planner.planning.assemble import plan_workload
from planner.io.schema import Fleet, ModelEntry, RequestClass, Slo, Workload
from planner.planning.verify import verify_and_resolve


def test_under_provisioned_plan_is_caught_and_re_solved() -> None:
    cat = Catalog.load()
    perf = PerfModel.load(catalog=cat)
    wl = Workload(models={"llama-3.1-8b": ModelEntry(slo=Slo(ttft_ms=600, itl_ms=40, percentile=90))},
                  classes=[RequestClass(id="chat", model="llama-3.1-8b", isl=1500, osl=150, rate_rps=60.0)])
    fleet = Fleet(gpus={"H100-SXM-80GB": {"available": 32}}, limits={"roles": ["prefill", "decode"], "allowed_tp": [1]})
    # A plan sized for 30% of the load, then verified against the full load: it must fall short. (At 30 req/s the 30%
    # plan's one prefill replica of the measured H100 vLLM laws, bundled at stop 37, met p90 at 90.8%: too close.)
    small = plan_workload(wl.scaled(0.3), fleet, perf, cat)
    fixed = verify_and_resolve(wl, fleet, perf, cat, small, rounds=3, duration_s=120.0, seed=3)
    note = fixed.notes[-1]
    assert "re-solve" in note and "after 0 re-solve" not in note
    assert "all classes meet their SLO" in note
    assert fixed.cost_per_hour > small.cost_per_hour


def test_a_verdict_on_too_few_requests_is_said_unsupported() -> None:
    """Found by hand at stop 50: `--verify-trace` on a three-request trace (or --verify of a 0.01-req/s class over
    600 s) noted 'all classes meet their SLO' as surely as on thousands of requests. The note now says when the
    attainment's 95% Wilson interval holds the percentile claim; more seconds of arrivals decide it."""
    cat = Catalog.load()
    perf = PerfModel.load(catalog=cat)
    wl = Workload(models={"llama-3.1-8b": ModelEntry(slo=Slo(ttft_ms=600, itl_ms=40, percentile=90))},
                  classes=[RequestClass(id="rare", model="llama-3.1-8b", isl=1000, osl=100, rate_rps=0.01)])
    fleet = Fleet(gpus={"H100-SXM-80GB": {"available": 4}}, limits={"allowed_tp": [1]})
    plan = plan_workload(wl, fleet, perf, cat)
    short = verify_and_resolve(wl, fleet, perf, cat, plan.model_copy(deep=True), duration_s=600.0, seed=1)
    assert any("rare:" in n and "cannot tell its attainment" in n and "p90 claim" in n for n in short.notes), short.notes
    # the verdict's own line says so too (found by hand at stop 51: "all classes meet their SLO" stood unqualified)
    assert any(n.startswith("verified by simulation") and "(1 of 1 on too few requests to tell" in n for n in short.notes)
    long = verify_and_resolve(wl, fleet, perf, cat, plan.model_copy(deep=True), duration_s=60_000.0, seed=1)
    assert not any("cannot tell" in n for n in long.notes), long.notes
    assert any("all classes meet their SLO;" in n for n in long.notes)


def _verify_a_crowd(tmp_path, rates_rps: list[float], seed: int, fleet_limits: str) -> str:
    """`planner solve --verify-trace` on a drawn trace (Poisson within each minute at `rates_rps`, one per minute) of a
    workload written at its mean rate, on up to 8 A100s at tp1, mixed pools; the command's output, whitespace joined."""
    import numpy as np
    from typer.testing import CliRunner

    from planner.cli.main import app

    rng = np.random.default_rng(seed)
    rows = []
    for minute, rate in enumerate(rates_rps):
        for t in np.sort(60.0 * minute + rng.uniform(0, 60.0, rng.poisson(rate * 60.0))):
            rows.append(f"{t:.3f},llama-3.1-8b,{int(rng.integers(300, 2000))},{int(rng.integers(50, 300))}\n")
    trace = tmp_path / "crowd.csv"
    trace.write_text("timestamp,model,input_tokens,output_tokens\n" + "".join(rows))
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("gpus:\n  A100-80GB: {available: 8}\nlimits:\n  allowed_tp: [1]\n  roles: [mixed]\n" + fleet_limits)
    runner = CliRunner()
    wl = tmp_path / "w.yaml"
    assert runner.invoke(app, ["workload", "from-trace", str(trace), "--poisson", "--isl-buckets", "1", "--osl-buckets",
                               "1", "-o", str(wl)]).exit_code == 0
    r = runner.invoke(app, ["solve", "-w", str(wl), "-f", str(fleet), "--verify-trace", str(trace), "-o",
                            str(tmp_path / "plan.yaml")])
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())


def test_a_round_asks_for_more_where_the_pool_sits_below_its_target(tmp_path) -> None:
    """Found by hand at stop 56: `planner solve --verify-trace` of a flash crowd's trace (its busiest minute 6x the
    mean the workload plans for) re-solved the same one-A100 plan three times at ~52% attainment: one replica at 35% of
    its SLO capacity is not bound by a target of 0.85 (or the 0.52 three rounds reach), so tightening the target alone
    changed nothing. A pool at fault is now tightened from its planned utilization: the first re-solve buys capacity.
    The trace is drawn here (6x in two minutes of ten)."""
    import re

    text = _verify_a_crowd(tmp_path, [2.0] * 4 + [12.0] * 2 + [2.0] * 4, seed=56, fleet_limits="")
    costs = [float(c.replace(",", "")) for c in re.findall(r"verify round \d+: cost \$([\d,.]+)/h", text)]
    assert len(costs) >= 2 and costs[0] < costs[1], text  # the first re-solve bought more than the plan it verified
    assert all(a < b for a, b in zip(costs, costs[1:])), costs  # no round re-solved to the fleet before it
    # the plan says what it was solved with (explain's binding constraints do not show a verify's targets)
    assert "utilization targets tightened" in text and "llama-3.1-8b/mixed/A100-80GB/tp1 0." in text, text


def test_a_round_that_re_solves_to_the_same_fleet_stops(tmp_path) -> None:
    """At the tightening's floor (a fleet whose limits.utilization is already 0.2) a re-solve gives the fleet it had;
    simulating it again would say the same: verify stops there and says so instead of spending its rounds."""
    text = _verify_a_crowd(tmp_path, [2.0] * 5 + [40.0] + [2.0] * 4, seed=57, fleet_limits="  utilization: 0.2\n")
    assert "verify round 1" not in text and "round 1's tightened utilization re-solved to the same pools" in text, text
    assert "after 0 re-solve(s): SHORT" in text


def test_the_shortfall_hint_counts_a_burst_in_the_traces_last_part_minute() -> None:
    """`--verify-trace`'s hint sets the trace's busiest minute against the rate planned. It counted whole minutes from
    the start only, so a burst in a trace's last part minute was left out (the twin of `workload from-trace`'s
    windows, fixed there at stop 56): the minute ending at the last request is counted as a whole minute too."""
    import numpy as np

    from planner.simulate.arrivals import Arrivals
    from planner.planning.verify import trace_shortfall_hints

    # 150 s: 2 req/s, then 20 req/s in the last 30 s (the busiest minute, 90-150 s, holds 60 + 600 requests)
    t = np.sort(np.concatenate([np.linspace(0.0, 119.5, 240), np.linspace(120.0, 150.0, 600, endpoint=False)]))
    n = t.size
    arr = Arrivals(t, np.zeros(n, dtype=np.int64), np.full(n, 500), np.full(n, 50), ("c",))
    wl = Workload(models={"llama-3.1-8b": ModelEntry(slo=Slo(ttft_ms=600, itl_ms=40, percentile=90))},
                  classes=[RequestClass(id="c", model="llama-3.1-8b", isl=500, osl=50, rate_rps=n / 150.0)])
    hints = [h for h in trace_shortfall_hints(arr, wl) if "busiest minute" in h]
    assert len(hints) == 1 and "runs 11.00 req/s" in hints[0], hints


def test_verify_trace_of_one_model_says_the_other_models_classes_are_not_checked(tmp_path) -> None:
    """Found in QA: `planner solve -w examples/default/workload.yaml -f examples/default/fleet.yaml --verify-trace T`
    with T a llama-2-70b trace (`planner workload synth step`) noted "all classes meet their SLO; attainment
    llama-2-70b/chat 100.0%, llama-2-70b/rag 100.0%": the two llama-3.1-8b classes had no request to replay and were
    never simulated, yet the verdict covered them. Now each is named as not checked and the verdict says so."""
    from typer.testing import CliRunner

    from planner.cli.main import app

    rows = [f"{0.25 * i:.2f},llama-2-70b,{1024 if i % 2 else 3000},{200 if i % 2 else 100}\n" for i in range(400)]
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,model,input_tokens,output_tokens\n" + "".join(rows))
    r = CliRunner().invoke(app, ["solve", "-w", "examples/default/workload.yaml", "-f", "examples/default/fleet.yaml",
                                 "--verify-trace", str(trace), "--no-slo-cost", "-o", str(tmp_path / "plan.yaml")])
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    for cid in ("llama-3.1-8b/chat", "llama-3.1-8b/summarise"):
        assert f"{cid}: no request of it in the arrivals replayed: its SLO is not checked" in out, out
    assert "(2 of 4 on too few requests to tell: notes below)" in out, out


def test_a_verified_plans_advice_to_verify_says_it_was_done() -> None:
    """Found in QA: a plan's note "... `planner solve --verify` simulates it so" was still printed after --verify had
    passed, as if still to do. A verified plan's advising notes now say it was done; other notes, and the verification
    notes themselves, are kept as they are (applying it twice changes nothing)."""
    from planner.planning.verify import verified_advice

    notes = ["pool p: sized for least-loaded routing; `planner solve --verify` simulates it so", "note: other",
             "verify: utilization targets tightened (`planner solve --verify`)"]
    once = verified_advice(notes)
    assert once[0].startswith(notes[0]) and once[0].endswith("(done: the verification note below)")
    assert once[1:] == notes[1:]
    assert verified_advice(once) == once
