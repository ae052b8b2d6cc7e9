"""What a trace's cells and header may hold (found in QA of how traces are read, planner/io/traces.py,
planner/io/files.py check_columns, planner/simulate/arrivals.py normalise_trace): token and timestamp columns of
True/False are refused, not read as 1 and 0 tokens or times 0 and 1 s."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli.main import app
from planner.io.errors import InputError
from planner.io.traces import has_model_column, read_trace
from planner.simulate.arrivals import normalise_trace

runner = CliRunner()
M = "llama-3.1-8b"


@pytest.mark.parametrize("name, text, field, row", [
    # found in QA: the product's format with True/False lengths read as 1/0 tokens, exit 0
    ("product", f"timestamp,model,input_tokens,output_tokens\n0,{M},True,False\n1,{M},False,True\n", "input_tokens", 2),
    ("product, output", f"timestamp,model,input_tokens,output_tokens\n0,{M},5,False\n1,{M},6,True\n",
     "output_tokens", 2),
    ("Azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n0,True,5\n1,False,6\n", "ContextTokens", 2),
    ("BurstGPT", "Timestamp,Model,Request tokens,Response tokens\n0,ChatGPT,5,True\n1,ChatGPT,6,False\n",
     "Response tokens", 2),
    # a JSON line's true beside numbers (a column of Python objects), its row the file's line
    ("Mooncake", "".join(json.dumps(r) + "\n" for r in ({"timestamp": 0, "input_length": 7, "output_length": 5},
                                                       {"timestamp": 10, "input_length": True, "output_length": 5})),
     "input_length", 2),
])
def test_a_token_column_of_true_false_is_refused(tmp_path: Path, name: str, text: str, field: str, row: int) -> None:
    f = tmp_path / ("t.jsonl" if name == "Mooncake" else "t.csv")
    f.write_text(text)
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    said = str(e.value)
    assert e.value.field == field and str(f) in said, said
    assert "whole numbers of tokens" in said and (f"row {row} has True" in said or f"row {row} has False" in said), said
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--model", M, "--ttft-ms", "1000", "--itl-ms", "60"])
    assert r.exit_code == 2 and "true/false" in r.output, r.output


@pytest.mark.parametrize("name, text, field", [
    # found in QA: the product's format with a True/False timestamp read as times 0 and 1 s, exit 0
    ("product", f"timestamp,model,input_tokens,output_tokens\nFalse,{M},5,7\nTrue,{M},6,8\n", "timestamp"),
    ("product, one model", "timestamp,input_tokens,output_tokens\nTrue,5,7\nFalse,6,8\n", "timestamp"),
    ("Azure", "TIMESTAMP,ContextTokens,GeneratedTokens\nFalse,5,7\nTrue,6,8\n", "TIMESTAMP"),
])
def test_a_timestamp_column_of_true_false_is_refused(tmp_path: Path, name: str, text: str, field: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    said = str(e.value)
    assert e.value.field == field and str(f) in said, said
    assert "seconds or date-times" in said and "row 2 has" in said, said
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--model", M, "--ttft-ms", "1000", "--itl-ms", "60"])
    assert r.exit_code == 2 and "true/false" in r.output and f"field '{field}'" in r.output, r.output


def test_normalise_trace_refuses_a_true_false_timestamp() -> None:
    df = pd.DataFrame({"timestamp": [False, True], "model": [M, M], "input_tokens": [5, 6], "output_tokens": [5, 6]})
    with pytest.raises(InputError) as e:
        normalise_trace(df, "frame")
    said = str(e.value)
    assert e.value.field == "timestamp" and "true/false" in said and "row 0 has False" in said, said


def test_normalise_trace_refuses_true_false_lengths() -> None:
    df = pd.DataFrame({"timestamp": [0.0, 1.0], "model": [M, M], "input_tokens": [5, 6],
                       "output_tokens": [True, False]})
    with pytest.raises(InputError) as e:
        normalise_trace(df, "frame")
    assert e.value.field == "output_tokens" and "true/false" in str(e.value), str(e.value)


@pytest.mark.parametrize("models, row, count", [
    # found in QA: ' llama-3.1-8b' beside 'llama-3.1-8b' gave two classes that print alike, exit 0
    ([f" {M}", M, M, f" {M}"], 2, 2),
    ([M, f"{M} ", M, M], 3, 1),
    ([M, M, f"\t{M}", M], 4, 1),
])
def test_a_model_name_with_blanks_around_it_is_refused_naming_its_row(tmp_path: Path, models: list[str], row: int,
                                                                       count: int) -> None:
    f = tmp_path / "t.csv"
    f.write_text("timestamp,model,input_tokens,output_tokens\n"
                 + "".join(f"{i},{m},100,20\n" for i, m in enumerate(models)))
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--ttft-ms", "1000", "--itl-ms", "60"])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "field 'model'" in said and f"row {row} has" in said, said
    assert f"({count} of the 4 rows" in said, said
    with pytest.raises(InputError):  # a --model filter does not silently drop the padded rows either
        read_trace(f, model=M)
    df = pd.DataFrame({"timestamp": [0.0, 1.0, 2.0, 3.0], "model": models, "input_tokens": 100, "output_tokens": 20})
    with pytest.raises(InputError) as e:
        normalise_trace(df, "frame")
    assert e.value.field == "model" and "blanks" in str(e.value), str(e.value)


@pytest.mark.parametrize("header, field, hint", [
    # found in QA: spaces after the commas, refused listing ' model' among the columns found, no word of why
    ("timestamp, model, input_tokens, output_tokens", "input_tokens",
     "column ' input_tokens' (with a leading space): the header has spaces after its commas?"),
    ("Timestamp,model,input_tokens,output_tokens", "timestamp", "column 'Timestamp' is 'timestamp' but for its case"),
    ("TIMESTAMP,model,input_tokens,output_tokens", "timestamp", "column 'TIMESTAMP' is 'timestamp' but for its case"),
    # the public formats' own names with spaces: that format's columns are named, not the product's
    ("Timestamp, Model, Request tokens, Response tokens", "Request tokens",
     "column ' Request tokens' (with a leading space)"),
    ("TIMESTAMP ,ContextTokens ,GeneratedTokens", "TIMESTAMP",
     "column 'TIMESTAMP ' (with a trailing space): the header has spaces before its commas?"),
    ("timestamp,input_tokens,output_tokens, model", "model", "column ' model' (with a leading space)"),
])
def test_a_header_near_the_expected_one_says_the_likely_fix(tmp_path: Path, header: str, field: str, hint: str) -> None:
    """Still refused (which of two near names was meant is the user's to say), with the likely fix."""
    f = tmp_path / "t.csv"
    width = len(header.split(","))
    f.write_text(header + "\n" + "".join(",".join([str(i)] + ["5"] * (width - 1)) + "\n" for i in range(3)))
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--ttft-ms", "1000", "--itl-ms", "60"])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and f"field '{field}'" in said and hint in said, said


def test_normalise_trace_says_the_likely_fix_of_a_column() -> None:
    df = pd.DataFrame({"timestamp": [0.0, 1.0], "model": [M, M], " input_tokens": [5, 6], "output_tokens": [5, 6]})
    with pytest.raises(InputError) as e:
        normalise_trace(df, "frame")
    assert e.value.field == "input_tokens" and "with a leading space" in str(e.value), str(e.value)


@pytest.mark.parametrize("rows, repeats", [
    # found in QA: exact duplicates counted as separate requests with no note
    ([(0, M, 100, 20), (0, M, 100, 20), (1, M, 100, 20)], "1 of its 3 requests repeats"),
    ([(0, M, 100, 20), (0, M, 100, 20), (0, M, 100, 20), (1, M, 100, 20), (1, M, 100, 20)],
     "3 of its 5 requests repeat "),
    # alike but for one of time, model or lengths: not a duplicate
    ([(0, M, 100, 20), (1, M, 100, 20), (1, "qwen3-14b", 100, 20), (1, M, 101, 20), (1, M, 100, 21)], None),
])
def test_from_trace_notes_exact_duplicates_and_counts_them(tmp_path: Path, rows: list[tuple[int, str, int, int]],
                                                           repeats: str | None) -> None:
    f = tmp_path / "t.csv"
    f.write_text("timestamp,model,input_tokens,output_tokens\n" + "".join(f"{t},{m},{i},{o}\n" for t, m, i, o in rows))
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--ttft-ms", "1000", "--itl-ms", "60",
                            "-o", str(tmp_path / "w.yaml")])
    said = " ".join(r.output.split())
    assert r.exit_code == 0 and f"{len(rows)} requests over" in said, said  # every row still counted
    assert ("exactly (time, model, prompt and output tokens)" in said) == (repeats is not None), said
    assert repeats is None or repeats in said, said


@pytest.mark.parametrize("header, model, hint", [
    # found in QA: ' model' (spaces after the header's commas) with --model: every row read as --model's model, exit 0
    ("timestamp,input_tokens,output_tokens, model", M, "column ' model' (with a leading space)"),
    ("timestamp,model ,input_tokens,output_tokens", M, "column 'model ' (with a trailing space)"),
    ("TIMESTAMP,ContextTokens,GeneratedTokens, model", M, "column ' model' (with a leading space)"),
    # without a model given: refused the same way, not told to pass one that would be refused
    ("timestamp,input_tokens,output_tokens, model", None, "column ' model' (with a leading space)"),
])
def test_a_model_column_but_for_spaces_is_refused_even_with_a_model_given(tmp_path: Path, header: str,
                                                                          model: str | None, hint: str) -> None:
    f = tmp_path / "t.csv"
    width = len(header.split(","))
    at = [c.strip() for c in header.split(",")].index("model")
    f.write_text(header + "\n" + "".join(",".join("qwen3-14b" if c == at else str(i if c == 0 else 5)
                                                  for c in range(width)) + "\n" for i in range(3)))
    assert has_model_column(f)  # callers leave it to read_trace, which says what is wrong
    with pytest.raises(InputError) as e:
        read_trace(f, model=model)
    said = str(e.value)
    assert e.value.field == "model" and str(f) in said and hint in said and "unread" in said, said
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--ttft-ms", "1000", "--itl-ms", "60"]
                      + (["--model", model] if model else []))
    assert r.exit_code == 2 and hint in " ".join(r.output.split()), r.output
    df = pd.read_csv(f).rename(columns={"TIMESTAMP": "timestamp", "ContextTokens": "input_tokens",
                                        "GeneratedTokens": "output_tokens"})
    with pytest.raises(InputError) as e:
        normalise_trace(df, "frame", model)
    assert e.value.field == "model" and hint in str(e.value), str(e.value)


@pytest.mark.parametrize("header", [
    "timestamp,input_tokens,output_tokens",  # no model-like column: --model names its model, as before
    "Timestamp,Model,Request tokens,Response tokens",  # BurstGPT's Model is the upstream service's, not read
])
def test_a_trace_without_a_model_column_still_takes_the_model_given(tmp_path: Path, header: str) -> None:
    f = tmp_path / "t.csv"
    width = len(header.split(","))
    f.write_text(header + "\n" + "".join(",".join([str(i)] + (["ChatGPT"] if width == 4 else []) + ["5", "5"]) + "\n"
                                         for i in range(3)))
    assert set(read_trace(f, model=M)["model"]) == {M}
