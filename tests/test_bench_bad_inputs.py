"""Every bench refuses bad input before any work: exit code 2, a one-line message naming the argument or the file
and what was expected, no traceback (the project's standard for user input; benches take --trace / --workload /
--model so that any input of the same format runs through them). Table-driven, in-process (each bench's main)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

NOPE_YAML, NOPE_CSV = "/nonexistent/w.yaml", "/nonexistent/t.csv"
ONE = str(REPO / "tests" / "fixtures" / "one_request_trace.csv")

CASES = [
    ("baselines", ["--workload", NOPE_YAML], NOPE_YAML),
    ("baselines", ["--trace", NOPE_CSV], "--trace /nonexistent/t.csv: file not found"),
    ("baselines", ["--model", "no-such-model"], "--model: "),
    ("fidelity", ["--workload", NOPE_YAML], NOPE_YAML),
    ("fidelity", ["--load-sweep", NOPE_CSV], "--load-sweep /nonexistent/t.csv: file not found"),
    ("fidelity_burst", ["--workload", NOPE_YAML], NOPE_YAML),
    # found by hand: a traceback (ValueError: invalid literal for int() with base 10: 'abc')
    ("fidelity_burst", ["--sizes", "abc"], "--sizes: expected comma-separated replica counts"),
    ("fidelity_burst", ["--sizes", "0"], "--sizes: expected replica counts >= 1"),
    ("fidelity_burst", ["--held-out-idc", "4,x"], "--held-out-idc: expected comma-separated IDC levels"),
    ("fidelity_lengths", ["--model", "no-such-model"], "--model: unknown model 'no-such-model'"),
    ("fidelity_lengths", ["--model", "llama-3.1-8b", "--gpu", "h100"], "--gpu: unknown GPU type 'h100' (did you mean"),
    # found by hand at stop 53: an unknown --gpu was a traceback (heldout_model) or blamed on the bundled gpus.yaml
    ("heldout_model", ["--gpu", "no-such-gpu"], "--gpu: unknown GPU type 'no-such-gpu'"),
    ("heldout_model", ["--model", "no-such-model"], "--model: unknown model 'no-such-model'"),
    ("profile_cost", ["--gpu", "h200"], "--gpu: unknown GPU type 'h200' (did you mean 'H200-141GB'?)"),
    ("vllm_vs_reference", ["--gpu", "no-such-gpu"], "--gpu: unknown GPU type 'no-such-gpu'"),
    ("burst_sizing", ["--gpu", "no-such-gpu"], "--gpu: unknown GPU type"),
    ("burst_sizing", ["--trace-model", "no-such-model"], "--trace-model: unknown model"),
    # found by hand at stop 53: a --workload without llama-2-70b was refused as 'no model llama-2-70b' (the default)
    ("burst_sizing", ["--workload", str(REPO / "tests" / "fixtures" / "two_model_workload.yaml")], "name the one whose"),
    ("burst_sizing", ["--model", "no-such-model"], "--model no-such-model: not a model of"),
    ("profile_cost", ["--model", "no-such-model"], "--model: unknown model 'no-such-model'"),
    ("profile_cost", ["--only-real", "--profiles", "/nonexistent/profile"], "/nonexistent/profile/meta.yaml"),
    ("profile_cost", ["--tp", "3"], "--model/--gpu/--tp: no performance law"),
    ("simulate_scaling", ["--workload", NOPE_YAML], NOPE_YAML),
    ("simulate_scaling", ["--trace", NOPE_CSV], NOPE_CSV),
    ("simulate_scaling", ["--trace", str(REPO / "README.md")], "not a CSV request trace"),
    ("simulate_scaling", ["--rate", "-1"], "--rate: expected a number > 0"),
    ("engine_account", ["--run", "no-equals-sign"], "expected RUN_DIR=PROFILE_DIR"),
    ("verify_verdicts", ["--referee-seeds", "0,11"], "--referee-seeds: expected a comma list of integers >= 2"),
    ("verify_verdicts", ["--model", "no-such-model"], "--model: unknown model 'no-such-model'"),
    ("verify_verdicts", ["--limit", "0"], "--limit: expected >= 1"),
    ("autoscale_trace", ["--startup-s", "-5"], "--startup-s: expected a finite number of seconds >= 0"),
    ("autoscale_trace", ["--gpu", "no-such-gpu"], "--gpu: "),
    ("autoscale_trace", ["--interval-s", "0"], "--interval-s: expected a finite number of seconds > 0"),
    # found by a helper's QA: tracebacks (OverflowError; 'simulation exceeded 1137612 events'; IsADirectoryError and
    # NotADirectoryError after the references' work), a --slo key given twice run at its last value, and --only /
    # --reseed ignored with --trace
    ("autoscale_trace", ["--trace", ONE, "--startup-s", "inf"], "--startup-s: expected a finite number of seconds >= 0, got inf"),
    ("autoscale_trace", ["--trace", ONE, "--interval-s", "inf"], "--interval-s: expected a finite number of seconds > 0, got inf"),
    ("autoscale_trace", ["--trace", ONE, "--decision-log", str(REPO / "tests")], "field '--decision-log': is a directory"),
    ("autoscale_trace", ["--trace", ONE, "--out", str(REPO / "README.md")], "field '--out': is a file; expected a folder"),
    ("autoscale_trace", ["--trace", ONE, "--slo", "ttft_ms=100,ttft_ms=200"], "--slo: ttft_ms given more than once"),
    ("autoscale_trace", ["--trace", ONE, "--only", "azure-conv"], "--only: chooses among the scenario suite's scenarios"),
    ("autoscale_trace", ["--trace", ONE, "--reseed", "100"], "--reseed: draws anew the scenario suite's scenarios"),
    ("autoscale_trace", ["--trace", str(REPO / "tests" / "fixtures" / "long_prompts_trace.csv"), "--model", "llama-2-70b",
                         "--drop-over-context"], "--drop-over-context: no request of long_prompts_trace.csv fits"),
    # found in QA: a traceback (numpy: expected non-negative integer) once mmpp-onoff (seed 1) was drawn at seed -1
    ("autoscale_trace", ["--only", "mmpp-onoff", "--reseed", "0,-2"], "--reseed: expected offsets >= -1"),
    # found in QA: an empty profile root was a KeyError traceback after part A, an unknown --h100-gpu ran parts A-B0b
    # and predicted nothing in part C, and these messages went to stdout
    ("calibrate_prior", ["--profiles", str(REPO / "bench")], "--profiles " + str(REPO / "bench") + ": expected a profile root"),
    ("calibrate_prior", ["--h100-gpu", "no-such-gpu"], "--h100-gpu: unknown GPU type 'no-such-gpu'"),
    ("calibrate_prior", ["--losses", "bogus"], "--losses: unknown bogus; known: linear"),
    ("calibrate_prior", ["--profiles", NOPE_CSV], "--profiles /nonexistent/t.csv: profile root directory not found"),
    # found in QA: parts 1 and 1b ran, then part 2 was skipped with a warning and exit 0 (measured_*_mape_pct=nan)
    ("fidelity", ["--data", "/nonexistent"], "--data /nonexistent: expected a folder holding splitwise-perf/perf_model.csv"),
    ("fidelity", ["--data", str(REPO / "tests")], "(Splitwise's measured batches)"),
    # found in QA: tracebacks after Prometheus had run (IndexError at --repeats 0, ZeroDivisionError at --osl 0), a
    # wait that could not end at --rate-rps 0
    ("llmd_observe", ["--repeats", "0"], "--repeats: expected a whole number >= 1, got 0"),
    ("llmd_observe", ["--osl", "0"], "--osl: expected a whole number >= 1, got 0"),
    ("llmd_observe", ["--rate-rps", "0"], "--rate-rps: expected a finite number of requests per second > 0"),
    # found in QA: --tp 0 was a ZeroDivisionError traceback; an empty prefill.csv an EmptyDataError one; the messages
    # named no flag
    ("heldout_model", ["--tp", "0"], "--tp: expected a whole number >= 1, got 0"),
    ("heldout_model", ["--dir", "/nonexistent"], "--dir /nonexistent: expected a profile's prefill.csv in it"),
    ("heldout_model", ["--dir", str(REPO / "tests" / "fixtures"), "--decode-dir", str(REPO / "tests")],
     "--dir " + str(REPO / "tests" / "fixtures") + ": expected a profile's prefill.csv"),
    # found in QA: on stdout without 'error:' (law_forms), or naming --model for --models (pd_mix_prediction)
    ("law_forms", ["--profiles", NOPE_CSV], "--profiles /nonexistent/t.csv: profile root directory not found"),
    ("law_forms", ["--profiles", str(REPO / "bench")], "expected a profile root with vLLM-measured profiles"),
    ("pd_mix_prediction", ["--models", "no-such-model"], "--models: unknown model 'no-such-model'"),
    ("mixed_grid", ["--loads", "2"], "--loads shares of saturation in (0, 1)"),
    # found in QA: "expected comma-separated numbers, got 'abc'" named no flag
    ("mixed_grid", ["--isl", "abc"], "--isl: expected comma-separated numbers, got 'abc'"),
    ("mixed_grid", ["--models", "no-such-model"], "--models: unknown model 'no-such-model'"),
    # found in QA: --goal-pct -1 ran to a RESULT (exit 0); an unknown --gpu read "no vLLM profile of ... under it"
    ("gpu_heldout", ["--held-out-set", "--goal-pct", "-1"], "--goal-pct: expected a finite share of error > 0"),
    ("gpu_heldout", ["--held-out-set", "--gpu", "no-such-gpu"], "--gpu: unknown GPU type 'no-such-gpu'"),
    ("plan_scaling", ["--sizes", "9x4"], "--sizes 9x4: 1 to 7 bundled models"),
    ("plan_scaling", ["--sizes", "3by4"], "--sizes: expected MxC"),
    # found in QA: a traceback (numpy: expected non-negative integer)
    ("plan_scaling", ["--seed", "-1"], "--seed: expected a whole number >= 0, got -1"),
    ("plan_scaling", ["--workload", NOPE_YAML], NOPE_YAML),
    ("autoscale_trace", ["--trace", str(REPO / "tests" / "fixtures" / "two_models_trace.csv")], "--model: "),
    ("baselines", ["--trace", str(REPO / "tests" / "fixtures" / "two_models_trace.csv")], "--model: "),
    # found by hand at stop 56 (a helper): a folder was "file not found", a bad number list a traceback
    ("autoscale_trace", ["--trace", str(REPO / "tests")], "--trace: is a folder, expected a file"),
    ("baselines", ["--trace", str(REPO / "tests")], "is a folder, expected a file"),
    ("fidelity", ["--load-sweep", str(REPO / "tests")], "is a folder, expected a file"),
    ("simulate_scaling", ["--trace", str(REPO / "tests")], "is a folder, expected a file"),
    ("baselines", ["--itl-sweep", "abc"], "--itl-sweep: expected comma-separated positive numbers, got 'abc'"),
    ("baselines", ["--scales", "4,0"], "--scales: expected comma-separated positive numbers, got '4,0'"),
    # found by a helper's QA: a one-request trace was bucketed at a made-up 1 req/s (its span 0 s taken as 1 s), exit 0
    ("baselines", ["--trace", ONE], "requests at more than one instant (a rate is requests over the trace's span); it has"),
    ("burst_sizing", ["--trace", ONE], "requests at more than one instant"),
    ("burst_sizing", ["--trace", str(REPO / "tests" / "fixtures" / "long_prompts_trace.csv"), "--trace-duration-s", "0.5"],
     "requests at more than one instant"),
    ("mixed_classes", ["--trace", ONE], "requests at more than one instant"),
    # found in QA: autoscale_trace ran it to RESULT gpu_hours_vs_oracle=1.000 slo_attainment=1.0000, exit 0
    ("autoscale_trace", ["--trace", ONE], "requests at more than one instant (a rate is requests over the trace's span); it has"),
    ("autoscale_trace", ["--trace", str(REPO / "tests" / "fixtures" / "one_instant_trace.csv")], "all 3 are at the same time"),
    # found by a helper's QA: messages that named no flag, and a model with no tp-1 law ran to RESULT nan (exit 0)
    ("mixed_classes", ["--families", "sine"], "--families: expected synth families with a rate_rps (clustered, heavytail)"),
    ("mixed_classes", ["--seeds", "-1"], "--seeds: expected a comma list of integers >= 0, got '-1'"),
    ("mixed_classes", ["--model", "llama-2-70b"], "--model/--gpu: llama-2-70b has no performance law on H100-SXM-80GB at tp1"),
    # found by a helper's QA: a traceless run of part 1 with no law said "[red]no profile ..." without "error:"; --trace
    # with --no-plans ran part 1 alone and ignored the trace (exit 0)
    ("fidelity_lengths", ["--model", "llama-2-70b"], "--model/--gpu/--tp: llama-2-70b has no performance law on H100"),
    ("fidelity_lengths", ["--trace", ONE, "--no-plans"], "--trace: runs part 2 on that trace, which --no-plans skips"),
    # found by a helper's QA: numbers out of range were tracebacks (many after minutes of work) or nonsense, exit 0
    ("baselines", ["--repeats", "0"], "--repeats: expected a whole number >= 1, got 0"),
    ("baselines", ["--ttft-ms", "0"], "--ttft-ms: expected a finite number of milliseconds > 0"),
    ("baselines", ["--percentile", "100"], "--percentile: expected 0 < percentile < 100"),
    ("baselines", ["--rate-quantile", "2"], "--rate-quantile: expected a quantile in [0, 1]"),
    ("baselines", ["--itl-sweep", "40,inf"], "--itl-sweep: expected comma-separated positive numbers, got '40,inf'"),
    ("burst_sizing", ["--seeds", "0"], "--seeds: expected a whole number >= 1, got 0"),
    ("burst_sizing", ["--rate-scales", "0"], "--rate-scales: expected finite multiples > 0"),
    ("burst_sizing", ["--itl-ms", "0"], "--itl-ms: expected a finite number of ms > 0"),
    ("burst_sizing", ["--ttft-ms", "-5"], "--ttft-ms: expected a finite number of ms > 0 (0: the workload's SLO)"),
    ("burst_sizing", ["--rate-quantile", "2"], "--rate-quantile: expected a quantile in [0, 1]"),
    ("burst_sizing", ["--trace-duration-s", "-5"], "--trace-duration-s: expected a finite number of seconds >= 0"),
    ("burst_sizing", ["--retime-idc", "inf"], "--retime-idc: expected a finite 1-s IDC >= 0"),
    ("burst_sizing", ["--retime-seed", "-1"], "--retime-seed: expected a whole number >= 0, got -1"),
    ("burst_sizing", ["--no-trace", "--tp", "3"], "--model/--gpu/--tp: llama-2-70b has no performance law on H100-SXM-80GB at tp3"),
    ("fidelity", ["--requests", "0"], "--requests: expected a whole number >= 10 (a p90 of fewer is their largest)"),
    ("fidelity", ["--burst-seeds", "0"], "--burst-seeds: expected a whole number >= 1"),
    ("fidelity_burst", ["--requests", "1"], "--requests: expected a whole number >= 10"),
    ("fidelity_burst", ["--seeds", "0"], "--seeds: expected a whole number >= 1"),
    # found in QA: --tp 0, and --gpu or --tp without --model, ran every part with exit 0 (they are --model's)
    ("fidelity_lengths", ["--model", "llama-3.1-8b", "--tp", "0"], "--tp: expected a whole number >= 1, got 0"),
    ("fidelity_lengths", ["--tp", "2"], "--gpu/--tp: choose the variant of --model's held-out run"),
    ("fidelity_lengths", ["--gpu", "H200-141GB"], "--gpu/--tp: choose the variant of --model's held-out run"),
    ("fidelity_lengths", ["--requests", "50"], "--requests: expected a whole number >= 100 (a p99 of fewer is their largest)"),
    # found in QA: --repeats 0 was a StatisticsError traceback after building the first instance, --seed -1 a numpy one
    ("solve_scaling", ["--repeats", "0"], "--repeats: expected a whole number >= 1, got 0"),
    ("solve_scaling", ["--seed", "-1"], "--seed: expected a whole number >= 0, got -1"),
    ("solve_scaling", ["--gap", "nan"], "--gap: expected a relative gap in [0, 1), got nan"),
    ("solve_scaling", ["--robustness-seeds", "2,x"], "--robustness-seeds: expected comma-separated whole numbers"),
    ("solve_scaling", ["--sizes", "0x1x1"], "--sizes: expected comma-separated MxGxT (whole numbers >= 1)"),
    ("profile_cost", ["--time-scale", "0"], "--time-scale: expected a finite number >= 0.0001, got 0.0"),
    # found in QA: a traceback (ZeroDivisionError: integer modulo by zero)
    ("profile_cost", ["--tp", "0"], "--tp: expected a whole number >= 1, got 0"),
    ("profile_cost", ["--repeats", "0"], "--repeats: expected a whole number >= 1"),
    ("profile_cost", ["--budget-frac", "0"], "--budget-frac: expected a share in [0.05, 1]"),
    ("profile_cost", ["--decode-tokens", "0"], "--decode-tokens: expected a whole number >= 16"),
]


@pytest.mark.parametrize("bench, argv, says", CASES, ids=[f"{b}:{' '.join(a)}" for b, a, _ in CASES])
def test_bad_input_is_exit_2_with_a_message_and_no_work(bench, argv, says, capsys):
    main = importlib.import_module(bench).main
    try:
        rc = main(argv)
    except SystemExit as e:  # benches whose main exits itself
        rc = e.code
    out = capsys.readouterr()
    assert rc == 2, out.err
    assert says in out.err and "Traceback" not in out.err
    assert "RESULT" not in out.out  # refused before any work


def test_simulate_scalings_trace_replaces_the_poisson_arrivals(tmp_path, capsys):
    """`bench/simulate_scaling.py --trace` (accepted and ignored until stop 47): the trace's requests in the first
    --duration seconds are the ones simulated, whatever --rate says."""
    import pandas as pd

    trace = tmp_path / "t.csv"
    pd.DataFrame({"timestamp": [0.5 * i for i in range(30)], "input_tokens": 512, "output_tokens": 32}).to_csv(
        trace, index=False)
    main = importlib.import_module("simulate_scaling").main
    assert main(["--trace", str(trace), "--duration", "10", "--repeats", "1", "--rate", "500",
                 "--prefill", "2", "--decode", "2"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│") and line.split("│")[1].strip() == "0")
    assert row.split("│")[2].strip() == "20"  # requests: the 20 arrivals before t = 10 s, not 500 req/s x 10 s
    assert out.strip().splitlines()[-1].startswith("RESULT seconds=")


def test_benches_run_the_traces_own_model(tmp_path):
    """`bench/autoscale_trace.py --trace T` and `bench/baselines.py --trace T` of one model plan that model (found by
    hand at stop 51: a llama-3.1-8b trace was refused, 'no request of model llama-2-70b in the trace', the default
    --model); --model still names one (bench_input.trace_model)."""
    import pandas as pd

    bench = importlib.import_module("bench_input")
    trace = tmp_path / "t.csv"
    pd.DataFrame({"timestamp": [0.5 * i for i in range(10)], "model": "llama-3.1-8b", "input_tokens": 512,
                  "output_tokens": 32}).to_csv(trace, index=False)
    assert bench.trace_model(trace) == "llama-3.1-8b"
    assert bench.trace_model(None) is None
    azure = tmp_path / "a.csv"  # the Azure columns carry no model: the default stands
    pd.DataFrame({"TIMESTAMP": ["2024-01-01 00:00:00"], "ContextTokens": [10], "GeneratedTokens": [5]}).to_csv(azure, index=False)
    assert bench.trace_model(azure) is None


def test_burst_sizing_sizes_the_workloads_own_model():
    """`bench/burst_sizing.py --workload W` without --model (found by hand at stop 53: refused unless W held the
    default example's llama-2-70b): a one-model workload's model is the one sized, any case of --model finds its
    model, and the default example keeps llama-2-70b."""
    from planner.io.files import load_model
    from planner.io.schema import Workload

    bench = importlib.import_module("burst_sizing")
    two = REPO / "tests" / "fixtures" / "two_model_workload.yaml"
    wl = load_model(Workload, two)
    one = wl.model_copy(update={"models": {"qwen3-14b": wl.models["qwen3-14b"]},
                                "classes": [c for c in wl.classes if c.model == "qwen3-14b"]})
    assert bench.workload_model(one, None, two) == "qwen3-14b"
    assert bench.workload_model(wl, "QWEN3-14B", two) == "qwen3-14b"
    default = load_model(Workload, REPO / "examples" / "default" / "workload.yaml")
    assert bench.workload_model(default, None, two) == "llama-2-70b"


def test_burst_sizing_runs_the_traces_own_model_and_reads_it_before_part_1(tmp_path, monkeypatch, capsys):
    """`bench/burst_sizing.py --trace T` of a llama-3.1-8b trace (found by hand: refused after part 1's work, 'no
    request of model 'llama-2-70b' in the trace', the default --trace-model overriding the trace's model column; a
    missing --trace likewise failed only after part 1): part 2 plans the trace's own model, and its inputs are read
    before part 1 runs."""
    import pandas as pd

    bench = importlib.import_module("burst_sizing")
    case = bench.Case("held_out", 2.0, 1.0, 1, True, 1, True, 1.0, 1)
    monkeypatch.setattr(bench, "synthetic", lambda *a: [case, bench.Case("tuning", 3.0, 1.0, 1, True, 1, True, 1.0, 1)])
    trace = tmp_path / "t.csv"
    pd.DataFrame({"timestamp": [0.5 * i for i in range(20)], "model": "llama-3.1-8b", "input_tokens": 512,
                  "output_tokens": 32}).to_csv(trace, index=False)
    assert bench.main(["--trace", str(trace), "--retime-idc", "2"]) == 0
    out = capsys.readouterr().out
    assert "RESULT" in out and "trace_cost_burst=" in out

    def part_1(*a):
        raise AssertionError("part 1 ran before --trace was read")

    monkeypatch.setattr(bench, "synthetic", part_1)
    assert bench.main(["--trace", NOPE_CSV]) == 2
    assert NOPE_CSV in capsys.readouterr().err


def test_simulate_scalings_title_states_the_workloads_rate(tmp_path, capsys):
    """`bench/simulate_scaling.py --workload W` (found by hand: a 4.6 req/s workload's table was titled '50 rps', the
    --rate its classes replace): the title states the workload's rate and classes."""
    wl = tmp_path / "w.yaml"
    wl.write_text("models: {llama-3.1-8b: {slo: {ttft_ms: 1000, itl_ms: 50}}}\nclasses:\n"
                  "- {id: a, model: llama-3.1-8b, isl: 512, osl: 32, rate_rps: 1.5}\n"
                  "- {id: b, model: llama-3.1-8b, isl: 1024, osl: 64, rate_rps: 2.5}\n")
    main = importlib.import_module("simulate_scaling").main
    assert main(["--workload", str(wl), "--duration", "10", "--repeats", "1", "--prefill", "2", "--decode", "2"]) == 0
    title = " ".join(capsys.readouterr().out.split("┏")[0].split())
    assert "4 rps, the 2 classes of w.yaml" in title and "50 rps" not in title


def test_simulate_scalings_latency_is_every_requests(tmp_path, monkeypatch, capsys):
    """`bench/simulate_scaling.py --workload W` of several classes (found by hand: a 6-class workload's 'TTFT p90 ms'
    read 44, the first class's, of 461 of its 2,745 requests; every request's was 73): the table's p90s are over every
    request of the run."""
    import numpy as np

    from planner.simulate.report import build_report as build

    bench = importlib.import_module("simulate_scaling")
    reports = []
    monkeypatch.setattr(bench, "build_report", lambda sim: reports.append(build(sim)) or reports[-1])
    wl = tmp_path / "w.yaml"
    wl.write_text("models: {llama-3.1-8b: {slo: {ttft_ms: 1000, itl_ms: 50}}}\nclasses:\n"
                  "- {id: short, model: llama-3.1-8b, isl: 128, osl: 32, rate_rps: 5}\n"
                  "- {id: long, model: llama-3.1-8b, isl: 8000, osl: 400, rate_rps: 5}\n")
    argv = ["--workload", str(wl), "--duration", "20", "--repeats", "1", "--prefill", "2", "--decode", "2"]
    assert bench.main(argv) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("│"))
    ttft, itl = (float(x) for x in row.split("│")[6:8])
    req = reports[0].requests
    assert ttft == round(float(np.nanpercentile(req.ttft_ms, 90)))
    assert itl == round(float(np.nanpercentile(req.itl_ms, 90)), 1)


def test_fidelity_bursts_help_names_only_options_it_takes(capsys):
    """`bench/fidelity_burst.py --help` (found by hand: its usage read `python bench/fidelity_burst.py --pools ...`,
    and `--pools` was refused, 'unrecognized arguments: --pools'): every option the help names is one it takes."""
    import re

    main = importlib.import_module("fidelity_burst").main
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    taken = set(re.findall(r"^  (--[a-z-]+)", text, re.M)) | {"--help"}
    named = set(re.findall(r"(--[a-z][a-z-]*)", text))
    assert named <= taken, named - taken


def _trace(path: Path, models: list[str]) -> Path:
    """A small trace of `models`' requests (one per row, cycled), 0.5 s apart."""
    import pandas as pd

    n = 20
    pd.DataFrame({"timestamp": [0.5 * i for i in range(n)], "model": [models[i % len(models)] for i in range(n)],
                  "input_tokens": 512, "output_tokens": 32}).to_csv(path, index=False)
    return path


def test_a_traces_model_column_in_any_case_is_the_catalogs_model(tmp_path, monkeypatch, capsys):
    """A trace of 'LLAMA-3.1-8B' (found by a helper's QA: bench/autoscale_trace.py, bench/baselines.py and
    bench/burst_sizing.py found llama-3.1-8b in its model column, then refused it, "no request of model 'llama-3.1-8b'
    in the trace"): its requests are the catalog's llama-3.1-8b's; a model spelled two ways in one trace is refused."""
    from argparse import Namespace

    from planner.io.errors import InputError

    upper = _trace(tmp_path / "upper.csv", ["LLAMA-3.1-8B"])
    autoscale = importlib.import_module("autoscale_trace")
    autoscale.main(["--trace", str(upper), "--tp", "1", "--out", str(tmp_path / "out")])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("RESULT ")

    baselines = importlib.import_module("baselines")
    cases = []
    monkeypatch.setattr(baselines, "run_case", lambda name, wl, *a: cases.append(wl) or {
        "case": name, "classes": len(wl.classes), "rate_rps": 1.0, "ours": 1.0, "a": 1.0, "a_gpu": 1, "b": 1.0,
        "b_gpu": 1, "c": 1.0, "saving_pct": 0.0, "solve_s": 0.0})
    assert baselines.main(["--trace", str(upper), "--itl-sweep", "50", "--scales", "2"]) == 0
    assert {c.model for c in cases[1].classes} == {"llama-3.1-8b"}

    burst = importlib.import_module("burst_sizing")
    args = Namespace(trace=upper, trace_model="llama-3.1-8b", trace_duration_s=0.0,
                     fleet=REPO / "examples" / "default" / "fleet.yaml")
    assert set(burst.part2_inputs(args)[0]["model"]) == {"llama-3.1-8b"}

    bench = importlib.import_module("bench_input")
    tr = bench.read_model_trace(upper, "llama-3.1-8b")
    assert len(tr) == 20 and set(tr["model"]) == {"llama-3.1-8b"}
    with pytest.raises(InputError, match="one spelling of model llama-3.1-8b"):
        bench.read_model_trace(_trace(tmp_path / "two.csv", ["Llama-3.1-8B", "llama-3.1-8b"]), "llama-3.1-8b")


def test_mixed_classes_runs_the_traces_own_model_in_any_case(tmp_path, capsys):
    """`bench/mixed_classes.py --trace T` (found by a helper's QA: a trace of any model but llama-3.1-8b was refused, "no
    request of model 'llama-3.1-8b' in the trace", and --model LLAMA-3.1-8B / --gpu h100-sxm-80gb were unknown names,
    where the other benches take any case): the trace's own model is the one planned, --model and --gpu in any case."""
    main = importlib.import_module("mixed_classes").main
    qwen = _trace(tmp_path / "qwen.csv", ["qwen3-32b"])
    assert main(["--trace", str(qwen)]) == 0
    out = capsys.readouterr().out
    assert "qwen3-32b on one H100-SXM-80GB mixed replica" in " ".join(out.split())
    assert out.strip().splitlines()[-1].startswith("RESULT classes=")
    assert main(["--trace", str(_trace(tmp_path / "l.csv", ["llama-3.1-8b"])), "--model", "LLAMA-3.1-8B",
                 "--gpu", "h100-sxm-80gb"]) == 0
    assert "llama-3.1-8b on one H100-SXM-80GB" in " ".join(capsys.readouterr().out.split())


def test_fidelity_lengths_reads_the_trace_before_part_1_and_plans_its_own_model(tmp_path, monkeypatch, capsys):
    """`bench/fidelity_lengths.py --trace T` (found by a helper's QA: T was read after part 1's minutes of work, and a
    trace of any model but llama-2-70b was refused there, "no request of model 'llama-2-70b' in the trace"): T is read
    and checked before part 1, and part 2 plans its own model (any case)."""
    bench = importlib.import_module("fidelity_lengths")

    def part_1(*a):
        raise AssertionError("part 1 ran before --trace was read")

    monkeypatch.setattr(bench, "part1", part_1)
    with pytest.raises(SystemExit) as exc:
        bench.main(["--trace", ONE])
    assert exc.value.code == 2 and "requests at more than one instant" in capsys.readouterr().err
    upper = _trace(tmp_path / "upper.csv", ["LLAMA-3.1-8B"])
    bench.main(["--trace", str(upper), "--no-fidelity"])
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("RESULT held_out_plans_meeting_mean_len=")


SWEEP_HEADER = "isl,osl,rate_rps,seed,request,sent_s,ttft_ms,itl_ms,tokens,e2e_ms\n"
REPLAY_HEADER = "sent_s,ttft_ms,itl_ms,prompt_tokens,tokens\n"
ROWS_CASES = [  # (bench, file's bytes, what the message says); found by a helper's QA: tracebacks, or exit 0
    ("fidelity", b"", "expected the profiler's load_sweep.csv, could not read it as a CSV"),
    ("fidelity", b"\xff\xfe\x00\x01", "expected the profiler's load_sweep.csv, could not read it as a CSV"),
    ("fidelity", SWEEP_HEADER.encode(), "expected the profiler's load_sweep.csv, a row per request; it has none"),
    ("fidelity", (SWEEP_HEADER + "1024,128,3,0,0,0.0,20.5,7.1,128,900\n").encode(),
     "expected two requests or more per rate point (isl, osl, rate_rps); isl 1024, osl 128, rate_rps 3 has one"),
    ("fidelity", (SWEEP_HEADER + "1024,128,3,0,0,0.0,abc,7.1,128,900\n1024,128,3,0,1,0.3,20.5,7.1,128,900\n").encode(),
     "field 'ttft_ms': expected a finite number on every row; row 2 has 'abc'"),
    ("vllm_trace_replay", b"", "expected the profiler's trace_replay.csv, could not read it as a CSV"),
    ("vllm_trace_replay", (REPLAY_HEADER + "0.0,20.5,7.1,512,64\n0.4,abc,7.0,480,70\n").encode(),
     "field 'ttft_ms': expected a finite number on every row; row 3 has 'abc'"),
    ("vllm_trace_replay", (REPLAY_HEADER + "0.0,20.5,7.1,-7,64\n0.4,21.0,7.0,480,70\n").encode(),
     "field 'prompt_tokens': expected a whole count >= 0 on every row; row 2 has -7"),
    ("vllm_trace_replay", (REPLAY_HEADER + "0.0,20.5,7.1,512,64\n,21.0,7.0,480,70\n").encode(),
     "field 'sent_s': expected a finite number on every row; row 3 has nothing"),
]


@pytest.mark.parametrize("bench, content, says", ROWS_CASES, ids=[f"{b}:{s[:40]}" for b, _, s in ROWS_CASES])
def test_measured_rows_are_read_before_any_work(bench, content, says, tmp_path, capsys):
    """`bench/fidelity.py --load-sweep CSV` and `bench/vllm_trace_replay.py --replay CSV` of an unreadable file, a word
    where a number was, a negative token count, no rows or a one-request rate point: exit 2 naming the flag, the file,
    the field and the row, before any work (bench_input.read_rows; fidelity read its sweep only in part 4, after parts
    1-3)."""
    path = tmp_path / ("load_sweep.csv" if bench == "fidelity" else "trace_replay.csv")
    path.write_bytes(content)
    argv = (["--load-sweep", str(path), "--load-profile", str(REPO / "profiles" / "data" / "llama-3.1-8b" / "H200-141GB"
                                                               / "tp1" / "vllm"), "--requests", "10", "--seeds", "1",
             "--no-bursty"] if bench == "fidelity" else ["--replay", str(path)])
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(bench).main(argv)
    out = capsys.readouterr()
    assert exc.value.code == 2, out.err
    flag = "--load-sweep" if bench == "fidelity" else "--replay"
    assert f"{flag} {path}: {says}" in out.err and "Traceback" not in out.err
    assert "RESULT" not in out.out and "MAPE" not in out.out  # nothing ran


def test_read_rows_lets_an_empty_itl_through(tmp_path):
    """The profiler writes no ITL for a one-token output (profiles/backends/vllm.py: nan): an empty itl_ms is a row
    (bench_input.read_rows' may_be_empty), an empty TTFT is not."""
    bench = importlib.import_module("bench_input")
    path = tmp_path / "trace_replay.csv"
    path.write_text(REPLAY_HEADER + "0.0,20.5,,512,1\n0.4,21.0,7.0,480,70\n")
    df = bench.read_rows(path, "--replay", "rows", ("sent_s", "ttft_ms", "itl_ms"), may_be_empty=("itl_ms",))
    assert len(df) == 2 and df["itl_ms"].isna().sum() == 1


BENCHES = sorted(p.stem for p in (REPO / "bench").glob("*.py") if p.stem != "bench_input")


@pytest.mark.parametrize("bench", BENCHES)
def test_every_benchs_help_describes_each_option(bench, monkeypatch, capsys):
    """`bench/<name>.py --help` works and says what each option is (found in QA: 52 options of 14 benches, e.g.
    `bench/baselines.py --help`'s --workload, --fleet, --trace, showed their name alone): the parser main builds is
    caught as it parses, every option of it carries a help text."""
    import argparse

    parsers: list[argparse.ArgumentParser] = []
    parse = argparse.ArgumentParser.parse_args

    def caught(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        parsers.append(self)
        return parse(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", caught)
    monkeypatch.setattr(sys, "argv", [f"{bench}.py", "--help"])  # a main that reads sys.argv (llmd_observe)
    main = importlib.import_module(bench).main
    with pytest.raises(SystemExit) as exc:
        main(["--help"]) if main.__code__.co_argcount else main()
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out
    bare = [a.option_strings[-1] for p in parsers for a in p._actions if not (a.help or "").strip()]
    assert parsers and not bare, f"{bench}: options without a help text: {bare}"


def test_mixed_grids_models_are_the_catalogs_in_any_case(monkeypatch):
    """`bench/mixed_grid.py --models LLAMA-3.1-8B` (found in QA: "no swept profile of ['LLAMA-3.1-8B']", the profiles'
    model names compared as typed): the swept profiles of llama-3.1-8b are the ones chosen. The real swept_laws runs;
    the grid after it is not (the spy stops main once it has the laws)."""
    mixed_grid = importlib.import_module("mixed_grid")
    real, chosen = mixed_grid.swept_laws, []

    class Chosen(Exception):
        pass

    def spy(models):  # type: ignore[no-untyped-def]
        chosen.extend(real(models))
        raise Chosen

    monkeypatch.setattr(mixed_grid, "swept_laws", spy)
    with pytest.raises(Chosen):
        mixed_grid.main(["--models", "LLAMA-3.1-8B"])
    assert chosen and {vp.model for vp in chosen} == {"llama-3.1-8b"}


def test_heldout_models_profile_files_are_read_before_any_work(tmp_path, capsys):
    """`bench/heldout_model.py --dir D` with an empty prefill.csv (found in QA: an EmptyDataError traceback): exit 2
    naming --dir and the file, nothing printed on stdout."""
    (tmp_path / "prefill.csv").write_text("")
    (tmp_path / "decode.csv").write_text("batch,context_tokens,itl_ms\n1,512,8.4\n")
    with pytest.raises(SystemExit) as exc:
        importlib.import_module("heldout_model").main(["--dir", str(tmp_path)])
    out = capsys.readouterr()
    assert exc.value.code == 2 and not out.out
    assert f"--dir {tmp_path / 'prefill.csv'}: expected a profile's prefill.csv, could not read it as a CSV" in out.err


def test_gpu_heldouts_gpu_in_any_case_is_the_catalogs(capsys):
    """`bench/gpu_heldout.py --held-out-set --gpu h100-sxm-80gb` (found in QA: "no vLLM profile of h100-sxm-80gb under
    it", exit 2): the catalog's GPU in any case scores the same runs as its own spelling."""
    main = importlib.import_module("gpu_heldout").main
    assert main(["--held-out-set", "--gpu", "H100-SXM-80GB"]) == 0
    own = capsys.readouterr().out.splitlines()[-1]
    assert main(["--held-out-set", "--gpu", "h100-sxm-80gb"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == own and own.startswith("RESULT variants=")
