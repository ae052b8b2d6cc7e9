"""Requests beyond their model's context in a trace (found by hand at stop 54: the README's Azure example bucketed
Llama-2-70B's 1,612 over-context requests into the workload's classes, and `planner simulate` then refused the same
trace with no way on): `workload from-trace` leaves them out and says how many, `planner simulate` refuses them naming
a row and the count, or leaves them out with --drop-over-context; vLLM refuses such a request (HTTP 400)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from planner.cli.main import app
from planner.io.errors import InputError
from planner.io.traces import read_trace

REPO = Path(__file__).resolve().parents[1]
HEAD = "timestamp,model,input_tokens,output_tokens\n"
# llama-3.1-8b's context is 131,072 tokens (profiles/models.yaml): the first request is beyond it
ROWS = "0.0,llama-3.1-8b,131000,100\n2.0,llama-3.1-8b,1000,100\n4.0,llama-3.1-8b,2000,100\n10.0,llama-3.1-8b,500,50\n"
CTX = {"llama-3.1-8b": 131_072}


def test_a_request_beyond_the_context_is_refused_with_its_row_and_the_count(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(HEAD + ROWS)
    with pytest.raises(InputError) as e:
        read_trace(f, contexts=CTX)
    says = str(e.value)
    assert "row 2 has 131,000 + 100" in says and "1 of the 4 requests" in says and "--drop-over-context" in says


def test_left_out_requests_are_counted_and_the_trace_keeps_its_own_start(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text(HEAD + ROWS)
    df = read_trace(f, contexts=CTX, drop_over_context=True)
    assert len(df) == 3 and df.attrs["over_context"] == {"llama-3.1-8b": 1}
    assert df["t_s"].tolist() == [2.0, 4.0, 10.0]  # times from the trace's first request, the one left out
    assert read_trace(f).attrs["over_context"] == {}  # no contexts: nothing checked, nothing left out
    g = tmp_path / "all.csv"
    g.write_text(HEAD + "0,llama-3.1-8b,131000,100\n1,llama-3.1-8b,140000,1\n")
    with pytest.raises(InputError, match="none of its 2 requests"):
        read_trace(g, contexts=CTX, drop_over_context=True)


def test_from_trace_leaves_them_out_of_the_classes_and_says_so(tmp_path: Path) -> None:
    f, out = tmp_path / "t.csv", tmp_path / "w.yaml"
    f.write_text(HEAD + ROWS)
    r = CliRunner().invoke(app, ["workload", "from-trace", str(f), "--isl-buckets", "1", "--osl-buckets", "1",
                                 "--poisson", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "left out, as vLLM refuses them: 1 request of llama-3.1-8b beyond its 131,072-token context" in \
        " ".join(r.output.split())
    (cls,) = yaml.safe_load(out.read_text())["classes"]
    assert cls["isl"] == round((1000 + 2000 + 500) / 3) and cls["rate_rps"] == pytest.approx(3 / 8.0)  # over the kept requests' span


def test_simulate_drop_over_context_replays_the_rest(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    r = CliRunner().invoke(app, ["solve", "-w", str(REPO / "examples/default/workload.yaml"), "-f",
                                 str(REPO / "examples/default/fleet.yaml"), "-o", str(plan)])
    assert r.exit_code == 0, r.output
    f = tmp_path / "t.csv"
    f.write_text(HEAD + ROWS)
    args = ["simulate", "--plan", str(plan), "--trace", str(f), "--workload", str(REPO / "examples/default/workload.yaml"),
            "--png", str(tmp_path / "s.png")]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--drop-over-context" in refused.output
    ok = CliRunner().invoke(app, [*args, "--drop-over-context"])
    assert ok.exit_code == 0, ok.output
    assert "1 request of llama-3.1-8b beyond its 131,072-token context" in " ".join(ok.output.split())
    assert "3 requests" in " ".join(ok.output.split())  # the class table's count: the three kept


def test_solve_verify_trace_drop_over_context(tmp_path: Path) -> None:
    """`planner solve --verify-trace` reads the trace as `planner simulate` does: refused with the row and the count,
    or verified on the requests vLLM would take with --drop-over-context."""
    wl = tmp_path / "w.yaml"
    wl.write_text("models:\n  llama-3.1-8b: {slo: {ttft_ms: 1000, itl_ms: 50, percentile: 90}}\n"
                  "classes:\n  - {id: c, model: llama-3.1-8b, isl: 1200, osl: 90, rate_rps: 0.4}\n")
    f = tmp_path / "t.csv"
    f.write_text(HEAD + ROWS)
    args = ["solve", "-w", str(wl), "-f", str(REPO / "examples/default/fleet.yaml"), "--verify-trace", str(f),
            "--no-slo-cost"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--drop-over-context" in refused.output
    ok = CliRunner().invoke(app, [*args, "--drop-over-context"])
    assert ok.exit_code == 0, ok.output
    assert "1 request of llama-3.1-8b beyond its 131,072-token context" in " ".join(ok.output.split())


@pytest.mark.parametrize("rows, note", [
    ("0.5,m,100,20\n1.0,m,90,20\n", None),
    # one request is, two are (found in QA: "1 requests ... are counted")
    ("0.5,m,0,20\n1.0,m,90,20\n", "1 request of 0 input_tokens (of 2) is counted as 1 token"),
    ("0.5,m,90,0\n1.0,m,90,0\n", "2 requests of 0 output_tokens (of 2) are counted as 1 token"),
    ("0.5,m,0,0\n1.0,m,90,0\n", "1 request of 0 input_tokens and 2 requests of 0 output_tokens (of 2) are counted"),
])
def test_zero_token_requests_are_said(tmp_path, rows, note):
    """A trace's 0-token requests are served as 1 token, as `workload from-trace` buckets them, and `planner simulate`
    says how many (found in QA: they were raised to 1 without a word)."""
    from planner.io.traces import read_trace, zero_token_note

    p = tmp_path / "t.csv"
    p.write_text("timestamp,model,input_tokens,output_tokens\n" + rows)
    df = read_trace(p)
    said = zero_token_note(df)
    assert (said is None) if note is None else (note in str(said) and str(p) in str(said)), said
    assert df["input_tokens"].min() >= 1 and df["output_tokens"].min() >= 1
    # `workload from-trace` buckets them as 1 token and says so, once (found in QA: it said nothing)
    out = " ".join(CliRunner().invoke(app, ["workload", "from-trace", str(p), "--isl-buckets", "1", "--osl-buckets", "1",
                                            "--poisson"]).output.split())
    assert out.count("counted as 1 token") == (0 if note is None else 1) and (note is None or note in out), out
    # and so does `planner solve --verify-trace`, where it reads the trace (found in QA: it said nothing)
    wl, named = tmp_path / "w.yaml", tmp_path / "named.csv"
    wl.write_text("models:\n  llama-3.1-8b: {slo: {ttft_ms: 1000, itl_ms: 50, percentile: 90}}\n"
                  "classes:\n  - {id: c, model: llama-3.1-8b, isl: 100, osl: 20, rate_rps: 0.4}\n")
    named.write_text("timestamp,model,input_tokens,output_tokens\n" + rows.replace(",m,", ",llama-3.1-8b,"))
    r = CliRunner().invoke(app, ["solve", "-w", str(wl), "-f", str(REPO / "examples/default/fleet.yaml"),
                                 "--verify-trace", str(named), "--no-slo-cost"])
    out = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert out.count("counted as 1 token") == (0 if note is None else 1) and (note is None or note in out), out


def test_simulate_with_a_duration_counts_the_requests_left_out_of_that_part(tmp_path: Path) -> None:
    """Found in QA: `planner simulate --drop-over-context --duration 120` said the whole trace's count of requests
    left out; it now counts those of the part simulated (the arrivals' first 120 s from the first request kept)."""
    plan = tmp_path / "plan.yaml"
    wl = REPO / "examples/default/workload.yaml"
    r = CliRunner().invoke(app, ["solve", "-w", str(wl), "-f", str(REPO / "examples/default/fleet.yaml"), "-o", str(plan)])
    assert r.exit_code == 0, r.output
    f = tmp_path / "t.csv"  # over-context requests at 0 s (before the first kept one), 50 s, 200 s and 300 s
    f.write_text(HEAD + "0.0,llama-3.1-8b,131000,100\n2.0,llama-3.1-8b,1000,100\n50.0,llama-3.1-8b,140000,1\n"
                 "60.0,llama-3.1-8b,2000,100\n200.0,llama-3.1-8b,131000,100\n250.0,llama-3.1-8b,500,50\n"
                 "300.0,llama-3.1-8b,131000,100\n")
    args = ["simulate", "--plan", str(plan), "--trace", str(f), "--workload", str(wl), "--no-png", "--drop-over-context"]
    part = CliRunner().invoke(app, [*args, "--duration", "120"])
    assert part.exit_code == 0, part.output
    said = " ".join(part.output.split())
    assert "2 requests of llama-3.1-8b beyond its 131,072-token context (prompt + output) (in the 120 s simulated" \
        in said, said
    whole = CliRunner().invoke(app, args)
    assert whole.exit_code == 0, whole.output
    assert "4 requests of llama-3.1-8b beyond its 131,072-token context (prompt + output)" in " ".join(whole.output.split())


def test_simulate_refuses_a_workload_class_beyond_its_models_context(tmp_path: Path) -> None:
    """`planner solve` refuses a class whose isl + osl exceeds its model's context; `planner simulate --workload` ran it
    without a word (found in QA: llama-3.1-8b/summarise at isl 200000, beyond 131,072), timing requests vLLM refuses."""
    plan, wl = tmp_path / "plan.yaml", tmp_path / "w.yaml"
    default = REPO / "examples/default/workload.yaml"
    r = CliRunner().invoke(app, ["solve", "-w", str(default), "-f", str(REPO / "examples/default/fleet.yaml"),
                                 "--no-slo-cost", "--no-verify", "-o", str(plan)])
    assert r.exit_code == 0, r.output
    wl.write_text(default.read_text().replace("isl: 6000", "isl: 200000"))
    refused = CliRunner().invoke(app, ["simulate", str(plan), "--workload", str(wl), "--duration", "5", "--no-png"])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and str(wl) in said and "classes[1].isl" in said and "131072" in said, refused.output
