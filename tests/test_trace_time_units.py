"""The unit of a trace's times (found by hand: a trace recorded in milliseconds from its process's start, 0..3,600,000
for one hour, was read as 41.7 days of seconds, its rates 1,000x low, exit 0 and no word). The product's `timestamp`
is seconds (or date-times), as it always was; a `timestamp_s`, `timestamp_ms`, `timestamp_us` or `timestamp_ns` column
states its unit; a `timestamp` of numbers spanning more than a day read as seconds is noted, with the reading in
milliseconds beside it, so that a wrong unit is seen (planner/io/traces.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli.main import app
from planner.io.errors import InputError
from planner.io.traces import read_trace
from planner.simulate.arrivals import normalise_trace

runner = CliRunner()
M = "llama-3.1-8b"
# one hour of requests, 2 a second, in each unit; the table's spans are seconds from the first request
HOUR_S = [i * 0.5 for i in range(7201)]


def _csv(header: str, cells: list[str]) -> str:
    return f"{header},model,input_tokens,output_tokens\n" + "".join(f"{c},{M},100,20\n" for c in cells)


@pytest.mark.parametrize("name, text, span_s, noted", [
    # as before: `timestamp` of seconds, of date-times; BurstGPT's seconds and Mooncake's milliseconds by their format
    ("seconds", _csv("timestamp", [f"{t:g}" for t in HOUR_S]), 3600.0, False),
    ("date-times, 2 days", _csv("timestamp", ["2024-01-01 00:00:00", "2024-01-03 00:00:00"]), 172_800.0, False),
    ("BurstGPT, 2 days", "Timestamp,Model,Request tokens,Response tokens\n0,ChatGPT,100,20\n172800,ChatGPT,100,20\n",
     172_800.0, False),
    ("Mooncake ms", "".join(json.dumps({"timestamp": t, "input_length": 100, "output_length": 20}) + "\n"
                            for t in (0, 3_600_000)), 3600.0, False),
    # a `timestamp` of milliseconds: read as seconds, as before, and now said (41.7 days; 1.00 h in milliseconds)
    ("ms as timestamp", _csv("timestamp", [f"{t * 1000:g}" for t in HOUR_S]), 3_600_000.0, True),
    # the unit stated by the column's name
    ("timestamp_s", _csv("timestamp_s", [f"{t:g}" for t in HOUR_S]), 3600.0, False),
    ("timestamp_ms", _csv("timestamp_ms", [f"{t * 1000:g}" for t in HOUR_S]), 3600.0, False),
    ("timestamp_us", _csv("timestamp_us", [f"{t * 1e6:.0f}" for t in HOUR_S]), 3600.0, False),
    ("timestamp_ns", _csv("timestamp_ns", [f"{t * 1e9:.0f}" for t in HOUR_S]), 3600.0, False),
    ("timestamp_s, 2 days", _csv("timestamp_s", ["0", "172800"]), 172_800.0, False),  # stated: no note
])
def test_a_traces_time_unit_is_its_formats_or_its_columns_name(tmp_path: Path, name: str, text: str, span_s: float,
                                                               noted: bool) -> None:
    f = tmp_path / ("t.jsonl" if name.startswith("Mooncake") else "t.csv")
    f.write_text(text)
    df = read_trace(f, model=M)
    assert float(df["t_s"].max()) == pytest.approx(span_s), name
    note = df.attrs.get("time_unit_note")
    assert bool(note) == noted, (name, note)
    if noted:
        assert "41.7 days" in note and "1.00 h" in note and "timestamp_ms" in note and str(f) in note
    if f.suffix == ".csv":  # the simulator's reader of a DataFrame (the Python API's) reads the same times
        assert float(normalise_trace(pd.read_csv(f), str(f), model=M)["t_s"].max()) == pytest.approx(span_s), name


@pytest.mark.parametrize("text, field, says", [
    (_csv("timestamp_ms", ["2024-01-01 00:00:00", "2024-01-01 00:00:01"]), "timestamp_ms", "expected a finite number"),
    ("timestamp_ms,timestamp_s,model,input_tokens,output_tokens\n0,0,m,1,1\n", "timestamp_s", "one time column"),
    (_csv("timestamp_ns", ["0", "1e17"]), "timestamp_ns", "spanning at most"),  # 1e8 s: beyond the bound
    (_csv("timestamp", ["0", "2e10"]), "timestamp", "timestamp_ms"),  # the bound's message names the unit columns
])
def test_a_time_column_that_cannot_be_read_is_refused_naming_it(tmp_path: Path, text: str, field: str,
                                                                 says: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(text)
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    assert e.value.field == field and says in str(e.value), str(e.value)


def test_from_trace_says_the_unit_it_assumed(tmp_path: Path) -> None:
    """`workload from-trace` prints the note, and reads a timestamp_ms trace as the hour it is."""
    for header, over, noted in (("timestamp", "3,600,000 s", True), ("timestamp_ms", "3,600 s", False)):
        f = tmp_path / f"{header}.csv"
        f.write_text(_csv(header, [f"{t * 1000:g}" for t in HOUR_S]))
        r = runner.invoke(app, ["workload", "from-trace", str(f), "--ttft-ms", "1000", "--itl-ms", "60",
                                "-o", str(tmp_path / "w.yaml")])
        assert r.exit_code == 0, r.output
        said = " ".join(r.output.split())
        assert over in said and ("states no unit and is read as seconds" in said) == noted, said


@pytest.mark.parametrize("cells, row, cell", [
    # one word in a column of seconds: that cell, not the first number (found in QA: "row 2 has '0.0'")
    (["0.0", "0.5", "1.0", "abc", "2.0"], 5, "'abc'"),
    (["0", "1", "2", "3", "2024-01-01 00:00:04"], 6, "'2024-01-01 00:00:04'"),
    # one number in a column of date-times: that number, as before
    (["2024-01-01 00:00:00", "2024-01-01 00:00:01", "12345"], 4, "'12345'"),
])
def test_a_time_cell_that_cannot_be_read_is_the_one_named(tmp_path: Path, cells: list[str], row: int, cell: str) -> None:
    f = tmp_path / "t.csv"
    f.write_text(_csv("timestamp", cells))
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    assert e.value.field == "timestamp" and f"row {row} has {cell}" in str(e.value), str(e.value)
    with pytest.raises(InputError) as e:  # the simulator's reader of a DataFrame names that cell too (its position)
        normalise_trace(pd.read_csv(f), str(f), model=M)
    assert f"row {row - 2} has {cell}" in str(e.value), str(e.value)


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz", "T.JSONL.GZ", "t.jsonl.bz2"])
def test_a_compressed_mooncake_trace_is_read_as_json_lines(tmp_path: Path, name: str) -> None:
    """A Mooncake trace compressed (found in QA: a .jsonl.gz was read as a CSV whose header was its first line,
    "missing column; ... found ['{\\"timestamp\\": 0', ...]"): read as the JSON lines it holds, in milliseconds."""
    text = "".join(json.dumps({"timestamp": t, "input_length": 100, "output_length": 20}) + "\n"
                   for t in (0, 1_500, 3_600_000))
    f = tmp_path / name
    pd.DataFrame([json.loads(x) for x in text.splitlines()]).to_json(f, orient="records", lines=True)
    df = read_trace(f, model=M)
    assert len(df) == 3 and float(df["t_s"].max()) == pytest.approx(3600.0), name


def test_a_short_trace_of_unix_milliseconds_is_noted(tmp_path: Path) -> None:
    """A `timestamp` of Unix milliseconds (1.7e12 on) spanning one minute reads as 16.7 h of seconds, under the day that
    raises the note by span; its times, after the year 5000 as seconds since 1970, raise it (found in QA: 600 requests
    over a minute were written at 0.010 req/s, exit 0, no word). Unix seconds and relative seconds raise none."""
    minute_s = [i * 0.1 for i in range(601)]
    for first, noted in ((1.7e12, True), (1.7e9, False), (0.0, False)):
        f = tmp_path / "t.csv"
        scale = 1000.0 if noted else 1.0
        f.write_text(_csv("timestamp", [f"{first + t * scale:.1f}" for t in minute_s]))
        note = read_trace(f, model=M).attrs.get("time_unit_note")
        assert bool(note) == noted, (first, note)
        if noted:
            assert "16.7 h at 0.01 req/s" in note and "span 60 s at 10 req/s" in note, note
            assert "1.7e+12" in note and "timestamp_ms" in note, note
    # all at one instant: no rate to state (the caller refuses the trace), no note and no error here
    f.write_text(_csv("timestamp", ["1700000000000", "1700000000000"]))
    assert read_trace(f, model=M).attrs.get("time_unit_note") is None


@pytest.mark.parametrize("name, cut, says", [
    ("t.csv.gz", True, "EOFError"),  # a download cut short: was "Aborted!", exit 1
    ("t.csv.gz", False, "BadGzipFile"),  # a plain CSV named .gz: was BadGzipFile's traceback
    ("t.jsonl.gz", True, "EOFError"),
    ("t.jsonl.gz", False, "BadGzipFile"),
    ("t.csv.bz2", True, "EOFError"),
    ("t.csv.xz", False, "LZMAError"),
    ("t.csv.zip", False, "BadZipFile"),
])
def test_a_compressed_trace_that_cannot_be_decompressed_is_refused_naming_it(tmp_path: Path, name: str, cut: bool,
                                                                              says: str) -> None:
    """A trace compressed as its name says but cut short, or not compressed at all: exit 2 naming the file and what was
    expected, from `read_trace` (which `simulate --trace` reads with) and `workload from-trace` (found in QA: "Aborted!"
    or a traceback, exit 1)."""
    rows = [{"timestamp": i * 0.5, "model": M, "input_tokens": 100 + i, "output_tokens": 20} for i in range(4000)]
    whole = tmp_path / ("whole" + name[1:])
    if name.endswith(".jsonl.gz"):
        pd.DataFrame([{"timestamp": r["timestamp"] * 1000, "input_length": r["input_tokens"], "output_length": 20}
                      for r in rows]).to_json(whole, orient="records", lines=True)
    else:
        pd.DataFrame(rows).to_csv(whole, index=False)
    f = tmp_path / name
    if cut:
        data = whole.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    else:
        f.write_text(_csv("timestamp", ["0", "1"]) if ".csv" in name else '{"timestamp": 0}\n')
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    assert e.value.path == str(f) and says in str(e.value) and "could not decompress" in str(e.value), str(e.value)
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--model", M, "-o", str(tmp_path / "w.yaml")])
    assert r.exit_code == 2 and str(f) in r.output and says in r.output, r.output
    assert not (tmp_path / "w.yaml").exists()


@pytest.mark.parametrize("name, expected", [("t.csv", "a CSV"), ("t.csv.gz", "a CSV"), ("t.jsonl", "JSON lines")])
def test_a_trace_not_in_utf8_is_refused_naming_its_line(tmp_path: Path, name: str, expected: str) -> None:
    """A trace with a Latin-1 byte on its 3,002nd line (a model name 'modèle'): refused naming that line and the bytes,
    not the position in pandas' read buffer (found in QA: "malformed CSV ('utf-8' codec can't decode byte 0xe8 in
    position 3: invalid continuation byte)", no row); a file in UTF-16 is refused at its first line."""
    if name.endswith(".jsonl"):
        lines = [json.dumps({"timestamp": i * 1000, "input_length": 10, "output_length": 5}) for i in range(3001)]
        bad = '{"timestamp": 3001000, "input_length": 10, "output_length": 5, "note": "modèle"}'
    else:
        lines = ["timestamp,model,input_tokens,output_tokens"] + [f"{i},{M},10,5" for i in range(3000)]
        bad = "3000,modèle,10,5"
    data = ("\n".join(lines) + "\n").encode() + (bad + "\n").encode("latin-1")
    f = tmp_path / name
    if name.endswith(".gz"):
        f.write_bytes(gzip.compress(data))
    else:
        f.write_bytes(data)
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    said = str(e.value)
    assert e.value.path == str(f) and f"expected {expected}" in said and "line 3,002 has bytes b'\\xe8'" in said, said
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--model", M, "-o", str(tmp_path / "w.yaml")])
    assert r.exit_code == 2 and "line 3,002" in " ".join(r.output.split()), r.output
    u16 = tmp_path / "u16.csv"
    u16.write_text("\n".join(lines[:3]) + "\n", encoding="utf-16")
    with pytest.raises(InputError, match="line 1 has bytes"):
        read_trace(u16, model=M)


def test_a_model_given_that_the_trace_lacks_is_refused_listing_the_traces_models(tmp_path: Path) -> None:
    """`--model llama-3.1-8b` on a trace of 'Llama-3.1-8B' and qwen3-14b: refused (names are matched exactly), listing
    the trace's models and the one that is it but for its case (found in QA: only "no request of model 'llama-3.1-8b'
    in the trace")."""
    f = tmp_path / "t.csv"
    f.write_text("timestamp,model,input_tokens,output_tokens\n"
                 + "".join(f"{i},{'Llama-3.1-8B' if i % 3 else 'qwen3-14b'},100,20\n" for i in range(30)))
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--model", M, "-o", str(tmp_path / "w.yaml")])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and f"no request of model '{M}'" in said, said
    assert "it has Llama-3.1-8B (20), qwen3-14b (10)" in said and f"'Llama-3.1-8B' is '{M}' but for its case" in said, said
    with pytest.raises(InputError) as e:
        read_trace(f, model="llama-3.2-3b")
    assert str(e.value).endswith("it has Llama-3.1-8B (20), qwen3-14b (10)"), str(e.value)


def test_a_json_array_trace_is_refused_saying_so(tmp_path: Path) -> None:
    """Mooncake's records written as one JSON array, not lines: refused saying so and how to make lines (found in QA:
    read as a CSV, "missing column; ... found ['[{\\"timestamp\\": 0', ...]")."""
    f = tmp_path / "t.json"
    f.write_text(json.dumps([{"timestamp": t, "input_length": 100, "output_length": 20} for t in (0, 1000)]))
    with pytest.raises(InputError) as e:
        read_trace(f, model=M)
    assert e.value.path == str(f) and "found a JSON array" in str(e.value) and "jq -c" in str(e.value), str(e.value)
