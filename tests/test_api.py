"""The Python API (planner.api) does what the CLI does for the same input: the same defaults, the same checks.

A notebook user and a `planner` user who give the same trace, workload and fleet must get the same workload and plan;
where the CLI refuses an input, the API raises an error naming the keyword or the file's field (a ValueError for a
keyword, an InputError for a file's content), not a traceback from deep inside, and never a different answer.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from planner.api import headroom, save, solve, workload_from_trace
from planner.api import simulate as simulate_plan
from planner.cli.main import app
from planner.io.files import load_model
from planner.io.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, RequestClass, Slo, Workload

REPO = Path(__file__).resolve().parents[1]
# 1,943 requests of llama-3.1-8b in clusters (plan r1's replay trace): IDC 1 s 11.2, well away from Poisson's 1
CLUSTERED = REPO / "profiles" / "runs" / "2026-12-07-r1" / "traces" / "clustered.csv"
runner = CliRunner()


def _cli_workload(tmp_path: Path, trace: Path, *options: str) -> Workload:
    out = tmp_path / "cli.yaml"
    r = runner.invoke(app, ["workload", "from-trace", str(trace), *options, "-o", str(out)])
    assert r.exit_code == 0, r.output
    return load_model(Workload, out)


def test_workload_from_trace_measures_burstiness_as_the_cli_does(tmp_path) -> None:
    """Found by a helper: `workload_from_trace` bucketed without burstiness where `planner workload from-trace` measures
    it unless --poisson, so a notebook got Poisson classes from a bursty trace and a smaller plan (clustered.csv at TTFT
    300 / ITL 40 ms p90 on one H100 type: 1 GPU, $2.99/h, against the CLI's 3 GPUs, $8.97/h). The default is the
    CLI's workload; burstiness=False is --poisson's."""
    slo = Slo(ttft_ms=300, itl_ms=40, percentile=90)
    cli = _cli_workload(tmp_path, CLUSTERED, "--ttft-ms", "300", "--itl-ms", "40")
    api = workload_from_trace(CLUSTERED, slo)
    assert api.model_dump() == cli.model_dump()
    assert all(c.burstiness is not None and c.burstiness.idc_1s > 5 for c in api.classes)
    poisson = workload_from_trace(CLUSTERED, slo, burstiness=False)
    assert poisson.model_dump() == _cli_workload(tmp_path, CLUSTERED, "--ttft-ms", "300", "--itl-ms", "40",
                                                 "--poisson").model_dump()
    assert all(c.burstiness is None for c in poisson.classes)
    fleet = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=16)}, limits=FleetLimits(allowed_tp=[1]))
    bursty, flat = solve(api, fleet), solve(poisson, fleet)
    assert bursty.feasible and flat.feasible
    assert bursty.total_gpus > flat.total_gpus, "the clusters need replicas a Poisson stream of the same rate does not"


def _rows(n: int, model: str, isl: int, osl: int, step_s: float) -> str:
    return "".join(f"{i * step_s:g},{model},{isl + i % 7},{osl}\n" for i in range(n))


READ_CASES = [
    # llama-2-70b's context is 4,096 tokens: the 4,000 + 200 requests are refused by vLLM
    ("requests past the context", "timestamp,model,input_tokens,output_tokens\n"
     + _rows(60, "llama-2-70b", 500, 100, 0.5) + _rows(20, "llama-2-70b", 4000, 200, 1.5),
     "20 requests of llama-2-70b"),
    # milliseconds in a `timestamp` column: read as seconds, over a day, as the CLI reads it and says
    ("a unit not stated", "timestamp,model,input_tokens,output_tokens\n" + _rows(80, "llama-3.1-8b", 500, 100, 2000.0),
     "states no unit"),
]


@pytest.mark.parametrize("what, text, warned", READ_CASES, ids=[c[0] for c in READ_CASES])
def test_workload_from_trace_reads_the_trace_as_the_cli_does(tmp_path, what: str, text: str, warned: str) -> None:
    """Found by a helper: the API read the trace without the catalog's contexts, so requests vLLM refuses were bucketed
    into the classes (the Azure trace's 1,612 over-context requests of llama-2-70b: 5.53 req/s in classes up to a
    2,971-token mean where the CLI wrote 5.07 req/s and 1,999), and what the CLI notes of the reading was not said.
    The same workload as `planner workload from-trace`, and the CLI's note as a UserWarning."""
    trace = tmp_path / "t.csv"
    trace.write_text(text)
    with pytest.warns(UserWarning, match=warned):
        api = workload_from_trace(trace, Slo(ttft_ms=1000, itl_ms=50, percentile=90))
    assert api.model_dump() == _cli_workload(tmp_path, trace).model_dump(), what


def test_workload_from_trace_of_the_azure_trace_is_the_clis(tmp_path, shared_data: Path) -> None:
    """The README's Azure example through the API: its 1,612 requests past llama-2-70b's context are left out (said)."""
    trace = shared_data / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
    with pytest.warns(UserWarning, match="1,612 requests of llama-2-70b"):
        api = workload_from_trace(trace, Slo(ttft_ms=2000, itl_ms=100, percentile=99), model="llama-2-70b")
    cli = _cli_workload(tmp_path, trace, "--model", "llama-2-70b", "--ttft-ms", "2000", "--itl-ms", "100",
                        "--percentile", "99")
    assert api.model_dump() == cli.model_dump()
    assert max(c.isl + c.osl for c in api.classes) <= 4096


@pytest.mark.parametrize("kw, says", [
    ({"rate_quantile": 2.0}, "rate_quantile must be a quantile in [0, 1]"),
    ({"rate_quantile": -0.1}, "rate_quantile must be a quantile in [0, 1]"),
    ({"isl_buckets": 0}, "isl_buckets must be an integer in [1, 100]"),
    ({"isl_buckets": -1}, "isl_buckets must be an integer in [1, 100]"),
    ({"osl_buckets": 101}, "osl_buckets must be an integer in [1, 100]"),
    ({"osl_buckets": 2.5}, "osl_buckets must be an integer in [1, 100]"),
])
def test_workload_from_trace_refuses_what_the_cli_options_refuse(kw: dict, says: str) -> None:
    """Found by a helper: rate_quantile 2 was NumPy's 'Quantiles must be in the range [0, 1]' (naming no keyword), and
    isl_buckets 0 or -1 bucketed the trace into one input-length bucket without a word; the CLI's --rate-quantile,
    --isl-buckets and --osl-buckets refuse them."""
    with pytest.raises(ValueError, match=re.escape(says)):
        workload_from_trace(CLUSTERED, Slo(ttft_ms=1000, itl_ms=50), **kw)


@pytest.mark.parametrize("rows, says", [
    ("5,llama-3.1-8b,100,10\n", "it has one request"),
    ("5,llama-3.1-8b,100,10\n5,llama-3.1-8b,120,10\n", "all 2 are at the same time"),
])
def test_workload_from_trace_of_one_instant_has_no_rate(tmp_path, rows: str, says: str) -> None:
    """Found by a helper: one request (or several at one instant) was a class at 1 req/s over a made-up 1-s span; the
    CLI refuses it (exit 2, naming the file and its timestamp), and so does the API now, with the same InputError."""
    from planner.io.errors import InputError

    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,model,input_tokens,output_tokens\n" + rows)
    with pytest.raises(InputError, match="requests at more than one instant") as exc:
        workload_from_trace(trace, Slo(ttft_ms=1000, itl_ms=50))
    assert exc.value.path == str(trace) and exc.value.field == "timestamp" and says in str(exc.value)


# one llama-3.1-8b class on H100s: a plan that simulates in a fraction of a second
SMALL = Workload(models={"llama-3.1-8b": ModelEntry(slo=Slo(ttft_ms=1000, itl_ms=50, percentile=90))},
                 classes=[RequestClass(id="chat", model="llama-3.1-8b", isl=500, osl=50, rate_rps=0.5)])
H100 = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=8)}, limits=FleetLimits(allowed_tp=[1]))


def test_simulate_replays_the_whole_trace_by_default_as_the_cli_does(tmp_path) -> None:
    """Found by a helper: with a trace, `simulate_plan` replayed its first 600 s unless told otherwise, where `planner
    simulate --trace` replays all of it (the Azure trace: 2,662 of its 17,754 requests within llama-2-70b's context,
    600 of its 3,502 s). The default is the whole trace; `duration_s` its first seconds; Poisson arrivals 600 s."""
    trace = tmp_path / "t.csv"
    n = 450  # one request every 2 s: 900 s, past the Poisson default
    trace.write_text("timestamp,model,input_tokens,output_tokens\n" + _rows(n, "llama-3.1-8b", 500, 50, 2.0))
    plan = solve(SMALL, H100)
    assert len(simulate_plan(plan, SMALL, trace=trace).requests) == n
    assert len(simulate_plan(plan, SMALL, trace=trace, duration_s=300.0).requests) == 150
    assert simulate_plan(plan, SMALL, seed=1).arrivals_s <= 600.0


def test_simulate_can_leave_out_requests_past_the_context_as_the_cli_can(tmp_path) -> None:
    """Found by a helper: `simulate_plan(trace=...)` refused the Azure trace's requests past llama-2-70b's context with
    '--drop-over-context leaves them out', a flag the API did not have (a notebook had to read the trace itself). The
    keyword is `drop_over_context` (the CLI's default, off); the refusal names it, and what is left out is warned."""
    from planner.io.errors import InputError

    wl = Workload(models={"llama-2-70b": ModelEntry(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=90))},
                  classes=[RequestClass(id="chat", model="llama-2-70b", isl=500, osl=50, rate_rps=0.5)])
    fleet = Fleet(gpus={"H100-SXM-80GB": GpuInventory(available=8)}, limits=FleetLimits(allowed_tp=[2]))
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp,model,input_tokens,output_tokens\n" + _rows(40, "llama-2-70b", 500, 50, 2.0)
                     + _rows(5, "llama-2-70b", 4000, 200, 1.0))  # 4,000 + 200 tokens: past the 4,096-token context
    plan = solve(wl, fleet)
    with pytest.raises(InputError, match="drop_over_context=True leaves them out"):
        simulate_plan(plan, wl, trace=trace)
    with pytest.warns(UserWarning, match="5 requests of llama-2-70b"):
        rep = simulate_plan(plan, wl, trace=trace, drop_over_context=True)
    assert len(rep.requests) == 40


@pytest.mark.parametrize("rate_factor, duration_s, requests", [(1.0, 1e7, "~5,000,000"), (10000.0, None, "~3,000,000")])
def test_simulate_refuses_more_requests_than_the_simulator_holds(rate_factor: float, duration_s: float | None,
                                                                 requests: str) -> None:
    """Found by a helper: `simulate_plan(plan, wl, duration_s=1e6)` on the default example (57 req/s) drew 57 million
    arrivals and died of a MemoryError after 17 s (the machine's memory, without a limit), where `planner simulate
    --duration 1e6` refuses at once (MAX_SIM_REQUESTS). Refused before any work, naming duration_s and the longest
    that fits; the default 600 s too where the rates are that high."""
    plan = solve(SMALL, H100)
    with pytest.raises(ValueError, match=f"duration_s .* is {requests} requests, over the simulator's limit"):
        simulate_plan(plan, SMALL.scaled(rate_factor), duration_s=duration_s)


PROFILE_8B = REPO / "profiles" / "data" / "llama-3.1-8b" / "H100-SXM-80GB" / "tp1"


@pytest.mark.parametrize("folder, says", [
    (lambda tmp: tmp, "leave profiles_dir out for the bundled ones"),
    (lambda tmp: PROFILE_8B / "vllm", "This folder is itself one profile"),
    # a run's folder of trace replays, no profile root (found by a helper: clustered.csv's classes planned at $5.98/h
    # on the prior, where the bundled measured laws plan them at $2.99/h)
    (lambda tmp: REPO / "profiles" / "runs" / "2026-12-07-r1", "no profile found"),
], ids=["empty", "one profile", "not a root"])
def test_a_profiles_dir_without_a_profile_is_refused_as_the_cli_refuses_it(tmp_path, folder, says: str) -> None:
    """Found by a helper: `solve(..., profiles_dir=D)` and `simulate_plan(..., profiles_dir=D)` with a folder that holds
    no profile timed every pool with the roofline prior, without a word, where `--profiles D` is exit 2. An InputError
    naming the folder and `profiles_dir` now."""
    from planner.api import laws
    from planner.io.errors import InputError

    root = folder(tmp_path)
    for call in (lambda: laws(root), lambda: solve(SMALL, H100, profiles_dir=root)):
        with pytest.raises(InputError, match=says) as exc:
            call()
        assert exc.value.path == str(root) and exc.value.field == "profiles_dir"
    plan = solve(SMALL, H100)
    with pytest.raises(InputError, match="profiles_dir"):
        simulate_plan(plan, SMALL, profiles_dir=root)


def test_a_plan_solved_with_profiles_dir_is_simulated_with_its_laws() -> None:
    """Found by a helper: `solve(..., profiles_dir=R)` did not record R (`planner solve --profiles R` writes it as the
    plan's profiles_root), and `simulate_plan(plan, wl)` timed the pools with the bundled laws: a llama-3.1-8b class
    planned on profiles/runs/2026-12-06-h3 at ITL p90 10.08 ms simulated at 9.51 ms, where `planner simulate` gives
    10.10. The plan says its root, and simulate_plan times with it unless told otherwise; a root gone is an error."""
    from planner.io.errors import InputError

    root = REPO / "profiles" / "runs" / "2026-12-06-h3"
    plan = solve(SMALL, H100, profiles_dir=root)
    assert plan.profiles_root == str(root.resolve()) and solve(SMALL, H100).profiles_root is None
    own = simulate_plan(plan, SMALL, duration_s=120.0).requests
    assert own.equals(simulate_plan(plan, SMALL, duration_s=120.0, profiles_dir=root).requests)
    bundled = simulate_plan(plan.model_copy(update={"profiles_root": None}), SMALL, duration_s=120.0).requests
    assert not own["itl_ms"].equals(bundled["itl_ms"]), "the run's laws time the pool otherwise than the bundled ones"
    with pytest.raises(InputError, match="plan.profiles_root"):
        simulate_plan(plan.model_copy(update={"profiles_root": str(root / "gone")}), SMALL, duration_s=10.0)


EXAMPLE = REPO / "examples" / "default"
TYPE_CASES = [
    ("solve of paths", lambda plan: solve(str(EXAMPLE / "workload.yaml"), str(EXAMPLE / "fleet.yaml")),
     "workload must be a Workload (planner.load_workload(path) reads one), got str"),
    ("solve, arguments swapped", lambda plan: solve(H100, SMALL), "workload must be a Workload"),
    ("solve of a dict fleet", lambda plan: solve(SMALL, {"gpus": {}}), "fleet must be a Fleet"),
    ("headroom of a path", lambda plan: headroom(SMALL, EXAMPLE / "fleet.yaml"), "fleet must be a Fleet"),
    ("save of a workload", lambda plan: save(SMALL, "never-written.yaml"), "plan must be a Plan"),
    ("simulate of a plan file", lambda plan: simulate_plan("plan.yaml", SMALL), "plan must be a Plan"),
    ("simulate of a fleet", lambda plan: simulate_plan(plan, H100), "workload must be a Workload"),
    ("simulate, seed 1.5", lambda plan: simulate_plan(plan, SMALL, seed=1.5), "seed must be an integer >= 0"),
    ("simulate, seed '1'", lambda plan: simulate_plan(plan, SMALL, seed="1"), "seed must be an integer >= 0"),
]


@pytest.mark.parametrize("what, call, says", TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_the_api_names_an_argument_of_the_wrong_type(tmp_path, monkeypatch, what: str, call, says: str) -> None:
    """Found by a helper: solve(path, path) and solve(fleet, workload) were "'str' object has no attribute 'models'"
    deep inside, save(workload, path) wrote the workload as a plan file (exit 0; load_plan then refused it), and
    simulate_plan(seed=1.5) NumPy's "SeedSequence expects int". A TypeError (the seed: ValueError, as seed=-1 was)
    naming the argument and what makes one, and nothing written."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises((TypeError, ValueError), match=re.escape(says)):
        call(solve(SMALL, H100))
    assert not (tmp_path / "never-written.yaml").exists(), what


def test_a_solver_out_of_time_is_not_called_infeasible_in_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by a helper: a solve stopped at its time limit before any plan reads "No plan within the solver's time
    limit" in `planner solve`, but the API's plan showed "INFEASIBLE plan (pulp-highs time_limit)" (text and HTML,
    under "What binds and what would make it feasible") and `plan.explain()` / `planner explain` "The plan is
    INFEASIBLE", above a diagnosis saying it is not shown infeasible. The ILP runner is replaced by one that reports the
    time-out (as tests/test_cli_inputs.py does), so the test does not depend on the machine's speed."""
    from planner.planning import assemble
    from solvers.problem import Solution

    monkeypatch.setattr(assemble, "solve_problem", lambda problem, **kw: Solution(status="time_limit",
                                                                                  backend="pulp-highs", seconds=10.0))
    plan = solve(SMALL, H100)
    assert not plan.feasible and "not shown infeasible" in plan.diagnosis[0]
    for shown in (repr(plan), plan._repr_html_(), plan.explain()):
        assert "INFEASIBLE" not in shown and "What binds" not in shown, shown
        assert "time limit" in shown, shown


def test_a_plans_pools_show_what_the_cli_table_shows() -> None:
    """Found by a helper: with FP8 allowed, the plan's text repr read "mixed H100-SXM-80GB tp1 x1" for a pool of FP8
    weights and FP8 KV cache (`planner solve`'s table: tp "1-fp8-kvfp8"), and `plan.pools()` had no precision, per-pool
    TTFT / ITL or law source column, so a table grouped by (gpu, tp) merged bf16 and FP8 pools."""
    fleet = H100.model_copy(update={"limits": H100.limits.model_copy(update={"allowed_dtypes": ["bf16", "fp8"]})})
    plan = solve(SMALL.scaled(60.0), fleet)
    pools = plan.pools().set_index("pool")
    for p in plan.models["llama-3.1-8b"].pools:
        row = pools.loc[p.id]
        assert (row.weight_dtype, row.kv_dtype, row.ttft_ms, row.itl_ms) == (p.weight_dtype, p.kv_dtype, p.ttft_ms,
                                                                               p.itl_ms)
        assert row.law_source == p.law_source
        assert f"tp{p.id.split('/tp')[1]} x{p.replicas}" in repr(plan), repr(plan)
    assert (pools.weight_dtype == "fp8").any() or (pools.kv_dtype == "fp8").any(), "FP8 is the cheaper plan here"


def test_simulate_takes_the_model_of_a_trace_without_one_as_the_cli_does(tmp_path) -> None:
    """Found by a helper: `simulate_plan(plan, wl, trace=AZURE)` with a workload of two models refused with "an Azure
    trace names no model: pass the model name (--model)", a flag the API did not have (`planner simulate --model`).
    The keyword is `model`; the refusal names it; a model the workload does not have is a ValueError naming it."""
    from planner.io.errors import InputError

    two = Workload(models={**SMALL.models, "qwen3-14b": ModelEntry(slo=Slo(ttft_ms=1000, itl_ms=50, percentile=90))},
                   classes=[*SMALL.classes, RequestClass(id="qa", model="qwen3-14b", isl=300, osl=30, rate_rps=0.5)])
    plan = solve(two, H100)
    trace = tmp_path / "azure.csv"  # the Azure format: no model column
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n"
                     + "".join(f"2023-11-16 00:00:{i:02d},{500 + i},50\n" for i in range(30)))
    with pytest.raises(InputError, match=re.escape("pass the model name (model=)")):
        simulate_plan(plan, two, trace=trace)
    rep = simulate_plan(plan, two, trace=trace, model="qwen3-14b")
    assert len(rep.requests) == 30 and set(rep.requests["class_id"]) == {"qa"}
    with pytest.raises(ValueError, match="model must be a model of the workload"):
        simulate_plan(plan, two, trace=trace, model="llama-9")
