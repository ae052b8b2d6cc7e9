"""Request traces and their bucketing into request classes.

A trace is a CSV of requests: `timestamp, model, input_tokens, output_tokens` (the product's format: `timestamp` in
seconds or date-times; a column named `timestamp_s`, `timestamp_ms`, `timestamp_us` or `timestamp_ns` in its place
states the numbers' unit, and a `timestamp` of numbers that spans more than a day read as seconds is noted, as
milliseconds would read so, as is one of Unix ms: `time_unit_note`), or one of three public traces' formats, whose model is given by the
caller: the Azure LLM inference trace's `TIMESTAMP, ContextTokens, GeneratedTokens` (Patel et al., "Splitwise",
ISCA 2024; its 2024 release has the same columns), BurstGPT's `Timestamp, Model, Request tokens, Response tokens`
(Wang et al., KDD 2025, github.com/HPMLL/BurstGPT: seconds from the trace's start; its Model column names the
upstream service, ChatGPT or GPT-4, not a model served here, and is not read; a failed request's 0 response tokens
count as 1, as every trace's), and Mooncake's JSON lines `{"timestamp": ms, "input_length", "output_length",
"hash_ids"}` (Qin et al., FAST 2025, github.com/kvcache-ai/Mooncake: milliseconds from the trace's start; a
`.jsonl` file, compressed or not (`.jsonl.gz`), or one whose first character is `{`). Bucketing splits each model's requests at quantiles of input
and output length (log-spaced lengths bunch at the quantiles the operator cares about), and gives each bucket its
mean lengths and its rate over the trace's span.
Each class also gets its measured arrival over-dispersion (`measure_burstiness`), which the
capacity model uses in place of the Poisson assumption.
A model name with blanks around it (' llama-3.1-8b') is refused, naming the first such row (`padded_model_text`):
the product matches model names exactly (the catalog, a workload's classes, a plan's pools), `planner workload synth`
refuses such a --model, and a trace's header with blanks is refused too, so the trace is not quietly read as another
model (found in QA: ' llama-3.1-8b' beside 'llama-3.1-8b' gave two classes that print alike and an "unknown model"
note, exit 0); stripping the cells would be a guess about the user's data.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from planner.io.errors import InputError
from planner.io.files import (
    UNREADABLE_FILE_ERRORS,
    near_column_hint,
    not_a_file,
    not_utf8,
    read_csv,
    read_json_lines,
    unreadable_file,
)
from planner.io.schema import MIN_IDC, Burstiness, ModelEntry, RequestClass, Slo, Workload

# Column names of the Azure LLM inference trace 2023 (Azure/AzurePublicDataset).
AZURE_COLUMNS = {"TIMESTAMP": "timestamp", "ContextTokens": "input_tokens", "GeneratedTokens": "output_tokens"}
# Column names of BurstGPT (HPMLL/BurstGPT, BurstGPT_*.csv): Timestamp in seconds from the trace's start.
BURSTGPT_COLUMNS = {"Timestamp": "timestamp", "Request tokens": "input_tokens", "Response tokens": "output_tokens"}
# Keys of Mooncake's traces (kvcache-ai/Mooncake, FAST25-release/traces/*.jsonl): timestamp in milliseconds.
MOONCAKE_KEYS = {"timestamp": "timestamp", "input_length": "input_tokens", "output_length": "output_tokens"}
MS_PER_S = 1000.0
# Compressions whose suffix pandas reads (compression="infer"), after a .jsonl name.
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip")
# The product's format's time columns that state their unit, with seconds per unit. `timestamp` states none: its
# numbers are seconds (found by hand: a trace recorded in milliseconds from its process's start, 0..3,600,000 for
# one hour, was read as 41.7 days of seconds, its rates 1,000x low, exit 0 and no word).
TIMESTAMP_UNITS_S = {"timestamp_s": 1.0, "timestamp_ms": 1e-3, "timestamp_us": 1e-6, "timestamp_ns": 1e-9}
# A `timestamp` of numbers (no unit stated) that spans more than this read as seconds is noted (`time_unit_note`):
# a day, what any trace recorded in milliseconds and longer than 86.4 s spans read so.
UNSTATED_UNIT_NOTE_SPAN_S = 86_400.0
# A `timestamp` of numbers (no unit stated) from this on is noted too, whatever its span: as seconds since 1970 it is
# after the year 5138, while Unix times in milliseconds passed it in 1973 (found in QA: a one-minute trace of Unix
# milliseconds, 1.7e12 on, was read as 16.7 h at 0.010 req/s, not 10, exit 0 and no word: its span is under a day).
UNSTATED_UNIT_NOTE_TIME_S = 1e11
# The formats a trace may be in, for messages.
_FORMATS = "timestamp, model, input_tokens, output_tokens; or the Azure, BurstGPT or Mooncake traces' columns"


def _head(path: Path) -> bytes:
    """The file's first 4 KiB with the blanks before them dropped (b'' where it cannot be read)."""
    try:
        with path.open("rb") as f:
            return f.read(4096).lstrip()
    except OSError:
        return b""


def is_json_lines(path: Path) -> bool:
    """Whether the trace is JSON lines (Mooncake's): a .jsonl name, compressed or not (.jsonl.gz: pandas reads the
    compression its name states; found in QA: a gzipped Mooncake trace was read as a CSV whose header was its first
    line, "missing column ... found ['{\"timestamp\": 0', ...]"), or a first non-blank character '{'."""
    names = [s.lower() for s in path.suffixes[-2:]]
    return names[-1:] == [".jsonl"] or names in ([".jsonl", c] for c in COMPRESSED_SUFFIXES) or _head(path)[:1] == b"{"


def to_product_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A trace frame in any format's columns (module doc) with the product's names: timestamp (s), input_tokens,
    output_tokens; Azure's and BurstGPT's columns renamed, Mooncake's keys renamed and its milliseconds made seconds.
    Other columns are kept (BurstGPT's Model, the upstream service's, is not the product's `model`)."""
    mooncake = "input_length" in df.columns and "input_tokens" not in df.columns
    d = df.rename(columns={**AZURE_COLUMNS, **BURSTGPT_COLUMNS, **MOONCAKE_KEYS})
    if mooncake and "timestamp" in d.columns and pd.api.types.is_numeric_dtype(d["timestamp"]):
        d["timestamp"] = d["timestamp"] / MS_PER_S
    named = [c for c in TIMESTAMP_UNITS_S if c in d.columns]
    if "timestamp" not in d.columns and len(named) == 1 and pd.api.types.is_numeric_dtype(d[named[0]]):
        d["timestamp"] = d[named[0]] * TIMESTAMP_UNITS_S[named[0]]  # its unit stated by its name: seconds
    return d


def prefix_block_reuse(path: str | os.PathLike[str]) -> float | None:
    """The share of a JSON-lines trace's prompt blocks (Mooncake's `hash_ids`: one id per block of prompt tokens,
    equal ids for equal prefixes) that an earlier request already sent: what vLLM's prefix cache could skip at best
    (an unbounded cache). None for a trace without hash_ids. The planner sizes prefill for every prompt token."""
    p = Path(path)
    if not is_json_lines(p):
        return None
    try:
        ids = pd.read_json(p, lines=True, dtype=False).get("hash_ids")
    except (ValueError, UnicodeDecodeError):
        return None
    except UNREADABLE_FILE_ERRORS:
        return None
    if ids is None:
        return None
    seen: set[object] = set()
    total = repeated = 0
    for row in ids:
        if not isinstance(row, list):
            continue
        for h in row:
            total += 1
            repeated += h in seen
            seen.add(h)
    return repeated / total if total else None


def padded_model_text(models: pd.Series, row_of: Callable[[int], int]) -> str | None:
    """What a trace whose model cells have blanks around them is told (module doc): the first such row (`row_of`: the
    file's row number of a position), its name and how many rows have one; None where none has."""
    names = models.astype(str)
    padded = (names != names.str.strip()).to_numpy()
    if not padded.any():
        return None
    pos = int(padded.argmax())
    return (f"expected model names without blanks around them (they are matched exactly, as the catalog names them); "
            f"row {row_of(pos)} has {names.iloc[pos]!r} ({int(padded.sum()):,} of the {len(names):,} rows have such a "
            "name): remove the blanks")


def padded_model_column(columns: Iterable[object], model_option: str = "--model") -> str | None:
    """What a trace whose header has no `model` column but one that is `model` but for spaces around its name (' model':
    spaces after the header's commas) is told, with or without `model_option`: the file names its requests' models, and
    a model given for a trace without a model column would take every row as that model, the file's models unread
    (found in QA: such a trace with --model was read as all of that model, exit 0). None where the header has `model`
    or no such column (a header without any model-like column is a model given's to name)."""
    names = [str(c) for c in columns]
    if "model" in names or not any(n != "model" and n.strip() == "model" for n in names):
        return None
    return (f"missing column, expected one named exactly 'model': the trace names its requests' models, which "
            f"{model_option} would leave unread (it names the model of a trace without one)"
            + near_column_hint("model", names))


# The most models a message lists of a trace's (a trace's model column may name many).
_MODELS_LISTED = 5


def trace_models_hint(model: str, models: pd.Series) -> str:
    """What to add to "no request of model `model`": the models the trace has, with their counts (the most frequent
    first, at most _MODELS_LISTED), and one that is `model` but for its case or blanks, which names are matched
    exactly (found in QA: `--model llama-3.1-8b` on a trace of 'Llama-3.1-8B' said only "no request of model
    'llama-3.1-8b' in the trace")."""
    counts = models.astype(str).value_counts()
    listed = ", ".join(f"{m} ({n:,})" for m, n in counts.head(_MODELS_LISTED).items())
    more = f" and {len(counts) - _MODELS_LISTED:,} more" if len(counts) > _MODELS_LISTED else ""
    near = [m for m in counts.index if m.strip().lower() == model.strip().lower()]
    case = f"; '{near[0]}' is '{model}' but for its case (names are matched exactly)" if near else ""
    return f"; it has {listed}{more}{case}"


def has_model_column(path: str | os.PathLike[str]) -> bool:
    """Whether the trace's header names a `model` column (JSON lines: never). A file that cannot be read as a CSV
    header, or whose header has a column that is `model` but for spaces (padded_model_column), counts as having one,
    so that `read_trace` gives its own message for it."""
    if is_json_lines(Path(path)):
        return False
    try:
        columns = pd.read_csv(path, nrows=0).columns
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, *UNREADABLE_FILE_ERRORS):
        return True
    return "model" in columns or padded_model_column(columns) is not None


# The longest trace read, s: burstiness is measured on one-second counts over the span (measure_burstiness), 1e7 of
# them are ~80 MB; the synthetic traces have the same bound (planner.io.synth.MAX_DURATION_S). A month is 2.6e6 s.
MAX_TRACE_SPAN_S = 1e7


def _file_row(df: pd.DataFrame, pos: int) -> int:
    """The file's row number of `df`'s row at position `pos` (a CSV's header is row 1; a JSON-lines file's first
    line is row 1): the index the reader gave it, which a filter by model keeps (positions after the filter are not
    the file's rows), plus the file's first data row (df.attrs['first_row'], 2 for a CSV)."""
    return int(df.index[pos]) + int(df.attrs.get("first_row", 2))


def _read_requests(p: Path) -> pd.DataFrame:
    """The trace's rows with columns timestamp, input_tokens, output_tokens (and model where it has one), in the
    file's order, from whichever format it is (module doc); Mooncake's milliseconds become seconds."""
    if is_json_lines(p):
        if not _head(p):  # blank: no line to read (pandas would say 'missing column')
            raise InputError(str(p), None, "the trace has no requests")
        df = read_json_lines(p, {"timestamp": "numeric", "input_length": "tokens", "output_length": "tokens"})
        df = to_product_columns(df[list(MOONCAKE_KEYS)])
        df.attrs["first_row"] = 1
        df.attrs["no_model_why"] = "a Mooncake trace (JSON lines) names no model"
        return df
    if _head(p)[:1] == b"[":  # JSON, not lines: read as a CSV its header would be '[{"timestamp": 0', ...
        raise InputError(str(p), None, "expected a CSV or JSON lines (Mooncake's: one object per line), found a JSON "
                         "array: write one object per line (e.g. jq -c '.[]' FILE > FILE.jsonl)")
    try:
        head = pd.read_csv(p, nrows=0)
    except UnicodeDecodeError as exc:
        raise not_utf8(p, exc, f"a CSV with a header row ({_FORMATS})") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise InputError(str(p), None, f"expected a CSV with a header row ({_FORMATS}), could not read one ({exc})") from None
    except UNREADABLE_FILE_ERRORS as exc:
        raise unreadable_file(p, exc) from None
    # a format is known by its columns' names, or by them but for spaces around them where the product's own are not
    # all there: such a file is still refused, by check_columns, saying which column has spaces (near_column_hint)
    named_as = set(head.columns) if {"timestamp", "input_tokens", "output_tokens"} <= set(head.columns) else (
        set(head.columns) | {str(c).strip() for c in head.columns})
    if set(AZURE_COLUMNS) <= named_as:
        df = to_product_columns(read_csv(p, {"TIMESTAMP": "time", "ContextTokens": "tokens", "GeneratedTokens": "tokens"}))
        df.attrs["no_model_why"] = "an Azure trace names no model"
        return df
    if set(BURSTGPT_COLUMNS) <= named_as:
        df = read_csv(p, {"Timestamp": "numeric", "Request tokens": "tokens", "Response tokens": "tokens"})
        df = to_product_columns(df[list(BURSTGPT_COLUMNS)])  # its Model is the upstream service's
        df.attrs["no_model_why"] = "a BurstGPT trace's Model column names the upstream service (ChatGPT, GPT-4), not a model served here"
        return df
    named = [str(c) for c in head.columns if c in TIMESTAMP_UNITS_S]  # in the file's order
    if "timestamp" in head.columns or not named:  # `timestamp` (no unit stated) is read as it always was
        df = read_csv(p, {"timestamp": "time", "input_tokens": "tokens", "output_tokens": "tokens"})
        df.attrs["unit_unstated"] = True
        return df
    if len(named) > 1:
        raise InputError(str(p), named[1], f"expected one time column, found {', '.join(named)}")
    df = to_product_columns(read_csv(p, {named[0]: "numeric", "input_tokens": "tokens", "output_tokens": "tokens"}))
    df.attrs["time_column"] = named[0]
    return df


def parse_datetimes(ts: pd.Series) -> pd.Series:
    """Date-time cells as UTC timestamps, NaT where a cell is not one. ISO 8601 in any of its forms first: with or
    without fractional seconds, 'T' or a space, UTC offsets that differ (Python's isoformat() drops zero microseconds,
    so one trace mixes '00:00:01' and '00:00:01.5'; pandas' inference from the first cell refused the second, found
    by hand at stop 51); else pandas' inference from the first cell (other formats, e.g. '01/02/2024 00:00:05').
    Cells without an offset are read as UTC."""
    iso = pd.to_datetime(ts, errors="coerce", utc=True, format="ISO8601")
    if not iso.isna().any():
        return iso
    with warnings.catch_warnings():  # pandas' "Could not infer format" UserWarning: the caller says what is wrong
        warnings.simplefilter("ignore", UserWarning)
        inferred = pd.to_datetime(ts, errors="coerce", utc=True)
    return inferred if inferred.isna().sum() < iso.isna().sum() else iso


def unread_time_row(ts: pd.Series, parsed: pd.Series) -> int:
    """Position of the time cell to name where `parsed` (parse_datetimes of `ts`) has one that is not a date-time: in a
    column mostly of numbers (seconds), its first cell that is not a number, else its first cell that is not a
    date-time. Found in QA: one 'abc' in a column of seconds made the whole column text, and the message named row 2's
    '0.0', a good cell, not the bad one."""
    numbers = pd.to_numeric(ts, errors="coerce")
    if int(numbers.notna().sum()) > int(parsed.notna().sum()):
        return int(numbers.isna().to_numpy().argmax())
    return int(parsed.isna().to_numpy().argmax())


def over_context(df: pd.DataFrame, contexts: Mapping[str, int | None]) -> np.ndarray:
    """Which requests' prompt + output exceed their model's context (model -> context length; None or a model not
    named: no limit): vLLM refuses them (HTTP 400), so no replica serves them."""
    over = np.zeros(len(df), dtype=bool)
    for name, ctx in contexts.items():
        if ctx is not None:
            over |= ((df["model"].astype(str) == name) & (df["input_tokens"] + df["output_tokens"] > ctx)).to_numpy()
    return over


def over_context_note(trace: pd.DataFrame, contexts: Mapping[str, int | None], until_s: float | None = None,
                      window: str = "") -> str | None:
    """What `read_trace(..., contexts, drop_over_context=True)` left out (its attrs["over_context"]) says, with the
    contexts it was read against; None where it left out nothing. `until_s` (the trace's own seconds, as its t_s):
    only those left out before it are counted, `window` saying which part that is (found in QA: `planner simulate
    --drop-over-context --duration 120` gave the whole trace's count)."""
    dropped: Mapping[str, int] = trace.attrs.get("over_context") or {}
    times: Mapping[str, Sequence[float]] = trace.attrs.get("over_context_t_s") or {}
    if until_s is not None and times:
        dropped = {m: n for m, ts in times.items() if (n := int(np.sum(np.asarray(ts) < until_s)))}
    if not dropped:
        return None
    return "note: left out, as vLLM refuses them: " + "; ".join(
        f"{n:,} request{'' if n == 1 else 's'} of {m} beyond its {contexts.get(m) or 0:,}-token context (prompt + output)"
        for m, n in sorted(dropped.items())) + (f" {window}" if until_s is not None and window else "")


BUSY_WINDOW_ALPHA = 0.01
"""A model's busiest window is noted when a steady Poisson stream at its mean rate would reach that count with less
than this chance over the trace's windows (a Bonferroni bound: alpha / windows per window)."""


def busy_window_note(trace: pd.DataFrame, written_rps: Mapping[str, float], idc: Mapping[str, float] | None = None,
                     window_s: float = 60.0) -> str | None:
    """Where a model's per-window rate moves beyond chance: its busiest window's rate (`window_rates`: whole windows,
    the last part one as the window ending at the last request) against the rate its classes are written at
    (`written_rps`, model -> the sum of its classes' rate_rps). A workload's classes carry ONE rate per class
    (the mean, or --rate-quantile's quantile of the per-minute rates) and the arrivals' dispersion
    within a minute (burstiness); a trace whose load moves from minute to minute (a flash crowd, a ramp) leaves the
    plan for that rate short in its busy minutes, and nothing in the workload says so. None where every model's
    busiest window is within what a steady stream at the rate written reaches over the trace's windows by chance
    (1 - BUSY_WINDOW_ALPHA), or the trace spans fewer than two whole windows. The steady stream is Poisson, or, with
    `idc` (model -> the index of dispersion its classes state at their longest scale, idc_10s), one whose window
    counts spread that much more (normal approximation): clustered arrivals the workload already states do not count
    as a moving load."""
    from scipy.stats import norm, poisson

    parts: list[str] = []
    for model, df in trace.groupby("model", sort=True):
        t = df["t_s"].to_numpy(dtype=float)
        t = t - float(trace["t_s"].min())
        span = float(trace["t_s"].max() - trace["t_s"].min())
        if span // window_s < 2:
            continue
        # whole windows, the trace's last part window as the window ending at its last request (found by hand: the
        # last 30 s of a 150-s trace at 20 req/s, 4x its mean, got no note: only the first two minutes were counted)
        counts = np.rint(window_rates(t, span, window_s) * window_s).astype(int)
        windows = counts.size
        written = float(written_rps.get(str(model), 0.0)) * window_s  # requests per window
        if written <= 0:
            continue
        d = max(1.0, float((idc or {}).get(str(model), 1.0)))
        bound = max(float(poisson.ppf(1.0 - BUSY_WINDOW_ALPHA / windows, written)),
                    written + float(norm.isf(BUSY_WINDOW_ALPHA / windows)) * math.sqrt(d * written))
        busiest = int(counts.max())
        if busiest <= bound:
            continue
        at = int(counts.argmax()) * window_s if int(counts.argmax()) < span // window_s else span - window_s
        parts.append(f"{model}'s busiest {window_s:g}-s window (from t = {at:,.0f} s) ran {busiest / window_s:.2f} "
                     f"req/s, {busiest / written:.1f}x the {written / window_s:.2f} req/s its classes are written at "
                     f"(a steady {'Poisson ' if d == 1.0 else ''}stream at that rate would reach {bound / window_s:.2f} "
                     f"by chance{f' at the dispersion its classes state, IDC {d:.3g}' if d > 1.0 else ''})")
    if not parts:
        return None
    return ("note: the load moves from minute to minute beyond chance: " + "; ".join(parts) + ". A plan for this "
            "workload is sized for that rate, not for those minutes: --rate-quantile 1 sizes a fixed fleet for the "
            "busiest one, "
            "`planner solve --verify-trace TRACE` checks a plan on the trace's own arrivals, and the controller "
            "(`planner control`) follows the load (README, The controller's decision)")


def read_trace(path: str | os.PathLike[str], model: str | None = None,
               contexts: Mapping[str, int | None] | None = None, drop_over_context: bool = False,
               drop_option: str = "--drop-over-context", model_option: str = "--model") -> pd.DataFrame:
    """A trace as a DataFrame with columns t_s (seconds from the first request), model, input_tokens,
    output_tokens, sorted by time. `model` names the model for traces without a model column. With `contexts`
    (model -> context length, the catalog's max_context), a request whose prompt + output exceeds its model's is an
    InputError naming its row: vLLM rejects it, so a replay must not serve it (`planner simulate`, `--verify-trace`);
    with `drop_over_context` such requests are left out instead, their count per model in ``attrs["over_context"]``
    (an InputError where none of a model's requests is left). `drop_option` and `model_option` are how a refusal names
    those choices to its caller: the CLI's flags, or the Python keywords. Times are seconds, or the unit a `timestamp_<unit>`
    column's name states (TIMESTAMP_UNITS_S); a `timestamp` of numbers spanning more than a day is noted in
    ``attrs["time_unit_note"]`` (`time_unit_note`)."""
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    df = _read_requests(p)
    if df.empty:
        raise InputError(str(p), None, "the trace has no requests")
    if "model" not in df.columns:
        if padded := padded_model_column(df.columns, model_option):  # refused with or without a model given
            raise InputError(str(p), "model", padded)
        if model is None:
            why = df.attrs.get("no_model_why", "the trace has no model column")
            raise InputError(str(p), "model", f"{why}: pass the model name ({model_option})"
                             + near_column_hint("model", df.columns))
        df["model"] = model
    else:
        blank = df["model"].isna() | (df["model"].astype(str).str.strip() == "")
        if blank.any():  # an empty cell reads as NaN: a request of no model
            raise InputError(str(p), "model", f"expected a model name on every row; row "
                             f"{_file_row(df, int(blank.values.argmax()))} has nothing")
        if padded := padded_model_text(df["model"], lambda pos: _file_row(df, pos)):
            raise InputError(str(p), "model", padded)
        if model is not None:
            full = df
            df = df[df["model"] == model]
            if df.empty:
                raise InputError(str(p), "model", f"no request of model '{model}' in the trace"
                                 + trace_models_hint(model, full["model"]))
    ts = df["timestamp"]
    if pd.api.types.is_numeric_dtype(ts):
        t = ts.astype(float)
        bad = ~np.isfinite(t.to_numpy())
        if bad.any():  # an empty cell reads as NaN: a request with no arrival time
            row = int(bad.argmax())
            raise InputError(str(p), "timestamp", f"expected seconds or a date-time on every row; row {_file_row(df, row)} has "
                             f"{'nothing' if pd.isna(ts.iloc[row]) else ts.iloc[row]}")
    else:
        parsed = parse_datetimes(ts)
        if parsed.isna().any():
            row = unread_time_row(ts, parsed)
            raise InputError(str(p), "timestamp", f"expected seconds or a date-time; row {_file_row(df, row)} has {ts.iloc[row]!r}")
        t = (parsed - parsed.min()).dt.total_seconds()
    span_s = float(np.max(t) - np.min(t))
    unstated = bool(df.attrs.get("unit_unstated")) and pd.api.types.is_numeric_dtype(ts)
    if span_s > MAX_TRACE_SPAN_S:
        unit = ("; or are its times in milliseconds or nanoseconds? (`timestamp` is read as seconds: a column named "
                "timestamp_ms, timestamp_us or timestamp_ns states theirs)" if unstated else "")
        raise InputError(str(p), df.attrs.get("time_column", "timestamp"), f"timestamps spanning at most "
                         f"{MAX_TRACE_SPAN_S:g} s (~116 days: the burstiness is measured on per-second counts); this "
                         f"trace spans {span_s:.4g} s ({span_s / 86400:,.0f} days): cut it to the period to plan for (a "
                         f"long public trace, e.g. BurstGPT's four months){unit}")
    for col in ("input_tokens", "output_tokens"):
        bad = ((df[col] < 0) | (df[col] != np.floor(df[col]))).to_numpy()  # a fraction: another column's numbers?
        if bad.any():
            row = int(bad.argmax())
            raise InputError(str(p), col, f"expected whole token counts >= 0; row {_file_row(df, row)} has {df[col].iloc[row]}")
    origin_s = float(np.min(t))  # the trace's own start, kept where its first requests are left out
    ctx = contexts or {}
    over = over_context(df, ctx)
    dropped: dict[str, int] = {}
    dropped_t_s: dict[str, list[float]] = {}
    if over.any() and not drop_over_context:
        row = int(over.argmax())
        name = str(df["model"].iloc[row])
        raise InputError(str(p), "input_tokens", f"requests within {name}'s context of {ctx[name]:,} tokens "
                         f"(prompt + output; vLLM rejects a longer one); row {_file_row(df, row)} has "
                         f"{int(df['input_tokens'].iloc[row]):,} + {int(df['output_tokens'].iloc[row]):,} "
                         f"({int(over.sum()):,} of the {len(df):,} requests are beyond their model's context; "
                         f"{drop_option} leaves them out, as vLLM refuses them)")
    if over.any():
        dropped = {str(m): int(n) for m, n in df["model"][over].astype(str).value_counts().sort_index().items()}
        over_t = t[over].to_numpy(dtype=float) - origin_s
        over_models = df["model"][over].astype(str).to_numpy()
        dropped_t_s = {m: sorted(over_t[over_models == m].tolist()) for m in dropped}
        left = set(df["model"][~over].astype(str))
        for name in dropped:
            if name not in left:
                raise InputError(str(p), "input_tokens", f"requests within {name}'s context of "
                                 f"{ctx[name]:,} tokens (prompt + output); none of its "
                                 f"{dropped[name]:,} requests is")
        df, t = df[~over], t[~over]
    out = pd.DataFrame({
        "t_s": t.to_numpy() - origin_s,
        "model": df["model"].astype(str).to_numpy(),
        "input_tokens": np.maximum(df["input_tokens"].to_numpy(dtype=np.int64), 1),
        "output_tokens": np.maximum(df["output_tokens"].to_numpy(dtype=np.int64), 1),
    })
    out = out.sort_values("t_s", kind="stable").reset_index(drop=True)
    out.attrs["over_context"] = dropped
    out.attrs["over_context_t_s"] = dropped_t_s  # their times, as t_s: a note on a part of the trace counts its own
    # rows alike in time, model and lengths are counted, each a request (concurrent requests can be alike), and said
    # (found in QA: a trace's exact duplicates, e.g. one exported twice, doubled its rates without a word)
    same = pd.DataFrame({"t": t.to_numpy(), "model": df["model"].astype(str).to_numpy(),
                         "input_tokens": df["input_tokens"].to_numpy(), "output_tokens": df["output_tokens"].to_numpy()})
    repeats = int(same.duplicated().sum())
    if repeats:
        out.attrs["duplicate_note"] = (
            f"note: {p}: {repeats:,} of its {len(df):,} requests repeat{'s' if repeats == 1 else ''} an earlier row "
            "exactly (time, model, prompt and output tokens); each is counted as a request, as concurrent requests can "
            "be alike, but a trace joined or exported twice counts its requests twice")
    # a request of 0 tokens (in or out) is served as one of 1, as vLLM takes no empty prompt and generates at least one
    # token; counted so a replay can say so (found in QA: `planner simulate` raised them without a word)
    zero = {col: int((df[col] == 0).sum()) for col in ("input_tokens", "output_tokens")}
    if any(zero.values()):
        said = [(n, col) for col, n in zero.items() if n]
        # "1 request ... is", "2 requests ... are" (found in QA: "1 requests ... are")
        out.attrs["zero_token_note"] = (
            f"note: {p}: " + " and ".join(f"{n:,} request{'' if n == 1 else 's'} of 0 {col}" for n, col in said)
            + f" (of {len(df):,}) {'is' if len(said) == 1 and said[0][0] == 1 else 'are'} counted as 1 token")
    first_s = float(np.min(t))
    if unstated and span_s > 0 and (span_s > UNSTATED_UNIT_NOTE_SPAN_S or first_s >= UNSTATED_UNIT_NOTE_TIME_S):
        spans = f"{span_s / 86400:,.1f} days" if span_s > UNSTATED_UNIT_NOTE_SPAN_S else f"{span_s / 3600:,.1f} h"
        epoch = (f"; its first time, {first_s:.4g}, is after the year 5000 as seconds since 1970"
                 if first_s >= UNSTATED_UNIT_NOTE_TIME_S else "")
        ms_span_s = span_s / MS_PER_S
        ms_spans = f"{ms_span_s / 3600:,.2f} h" if ms_span_s >= 3600 else f"{ms_span_s:,.0f} s"
        out.attrs["time_unit_note"] = (
            f"note: {p}'s `timestamp` column states no unit and is read as seconds (the product's format{epoch}): the "
            f"trace spans {spans} at {len(df) / span_s:.3g} req/s; were its times milliseconds it would "
            f"span {ms_spans} at {len(df) / span_s * MS_PER_S:.3g} req/s. A column named "
            "timestamp_ms (timestamp_us, timestamp_ns; timestamp_s for seconds) states the unit")
    return out


def zero_token_note(trace: pd.DataFrame) -> str | None:
    """What `read_trace` says of a trace with requests of 0 input or output tokens: how many, counted as 1 token
    (as `planner workload from-trace` buckets them); None where there are none."""
    note = trace.attrs.get("zero_token_note")
    return str(note) if note else None


def duplicate_note(trace: pd.DataFrame) -> str | None:
    """What `read_trace` says of a trace with rows alike in time, model and lengths: how many repeat an earlier one
    (counted, each as a request); None where none does."""
    note = trace.attrs.get("duplicate_note")
    return str(note) if note else None


def time_unit_note(trace: pd.DataFrame) -> str | None:
    """What `read_trace` says of a trace whose `timestamp` states no unit and spans more than a day read as seconds
    (UNSTATED_UNIT_NOTE_SPAN_S), or whose times are too large to be seconds since 1970 (UNSTATED_UNIT_NOTE_TIME_S: Unix
    milliseconds, of any span): the unit assumed, why, and the reading in milliseconds beside it, so that a trace
    recorded in milliseconds is not planned as 1,000x longer and slower without a word. None otherwise."""
    note = trace.attrs.get("time_unit_note")
    return str(note) if note else None


# Burstiness is measured within windows of this length so that a trend over minutes (a diurnal
# ramp, a surge) is not counted as burstiness: the rate a planner re-plans for moves at this
# scale, so only variation faster than it must be absorbed by the replicas.
TREND_WINDOW_S = 60.0
# Fewest bins a window must hold for their variance to mean anything: the six 10-s bins of a
# minute (with fewer, one draw decides the estimate; a shorter trace gets no idc_10s).
_MIN_BINS_PER_WINDOW = 6
# A class whose times are all whole seconds (BurstGPT's Timestamp) states no ca2 where its mean gap is under this: the
# requests of one second all get gap 0, so the gaps' CV measures the clock's 1-s tick, not the arrivals (found in QA:
# Poisson arrivals at 10 req/s with their times rounded to the second, as BurstGPT's are, measured ca2 9.0, not 1).
WHOLE_SECOND_CA2_MIN_GAP_S = 1.0
# Percentile of the one-second prompt-token bursts that decode KV capacity is sized for.
BURST_PERCENTILE = 99.0


def _idc_within(t_s: np.ndarray, bin_s: float, window_s: float, n_windows: int) -> float:
    """Index of dispersion (variance/mean) of `bin_s` counts, the variance taken within each
    `window_s` window around that window's own mean (unbiased, ddof=1) and pooled over windows."""
    per = int(window_s // bin_s)
    if per < _MIN_BINS_PER_WINDOW:
        return math.nan
    counts = np.bincount((t_s // bin_s).astype(np.int64), minlength=n_windows * per)[: n_windows * per]
    c = counts.reshape(n_windows, per).astype(float)
    var = c.var(axis=1, ddof=1)
    mean = float(c.mean())
    return float(var.mean()) / mean if mean > 0 else 1.0


def measure_burstiness(t_s: np.ndarray, input_tokens: np.ndarray, span_s: float) -> Burstiness:
    """Arrival over-dispersion of one class's requests (times in s from the trace's start).

    * idc_1s, idc_10s: variance/mean of 1-s and 10-s counts within each minute (TREND_WINDOW_S),
      pooled over the trace's whole minutes (its whole seconds when it is shorter; an IDC is
      left out when a window holds fewer than six of its bins): 1 for Poisson, > 1 for
      clustered arrivals; a minute-scale trend does not raise it.
    * ca2: squared coefficient of variation of inter-arrival gaps, each gap scaled by its minute's
      mean rate (again so that the trend does not count): 1 for Poisson; None for times in whole
      seconds more than one a second (WHOLE_SECOND_CA2_MIN_GAP_S).
    * p99_prompt_tokens_per_s: the BURST_PERCENTILE of the prompt tokens arriving per second.
    """
    t = np.sort(np.asarray(t_s, dtype=float))
    t = t - float(t.min()) if t.size else t
    # a trace shorter than a minute is one window of its whole seconds (a partly empty window would
    # count its empty tail as burstiness)
    window = TREND_WINDOW_S if span_s >= TREND_WINDOW_S else max(2.0, float(math.floor(span_s)))
    n_win = max(1, int(span_s // window))
    keep = t < n_win * window
    idc1 = _idc_within(t[keep], 1.0, window, n_win)
    idc10 = _idc_within(t[keep], 10.0, window, n_win)
    # each gap is scaled by its window's mean rate; a part window left at the end is the last whole window's (found in
    # QA: its few seconds' requests counted over a whole window read its rate low, so perfectly periodic arrivals over
    # 90 s measured ca2 0.08, not 0, and Poisson ones over 90 s 1.16 on average, not 1)
    minute = np.minimum((t // window).astype(np.int64), n_win - 1)
    per_min = np.bincount(minute, minlength=n_win)
    window_s = np.full(n_win, window)
    window_s[-1] = max(window, max(span_s, float(t.max()) if t.size else 0.0) - (n_win - 1) * window)
    gaps = np.diff(t)
    rate = per_min[minute[1:]] / window_s[minute[1:]]  # the gap's minute's mean rate
    scaled = gaps * rate
    ca2: float | None = float(scaled.var() / scaled.mean() ** 2) if scaled.size > 1 and scaled.mean() > 0 else 1.0
    if gaps.size and bool(np.all(t == np.round(t))) and float(gaps.mean()) < WHOLE_SECOND_CA2_MIN_GAP_S:
        ca2 = None  # times in whole seconds (BurstGPT's), more than one a second: the gaps measure the clock's tick
    tok = np.bincount(t.astype(np.int64), weights=np.asarray(input_tokens, dtype=float)[np.argsort(t_s, kind="stable")],
                      minlength=max(1, int(math.ceil(span_s))))
    p99 = float(np.percentile(tok, BURST_PERCENTILE))
    if not math.isfinite(idc1):  # a trace of a few seconds says nothing about its dispersion: Poisson
        idc1 = 1.0
    return Burstiness(idc_1s=round(max(idc1, MIN_IDC), 3),
                      idc_10s=round(max(idc10, MIN_IDC), 3) if math.isfinite(idc10) else None,
                      ca2=round(ca2, 3) if ca2 is not None else None, p99_prompt_tokens_per_s=round(p99, 1))


def _class_burstiness(own: Burstiness, model: Burstiness) -> Burstiness:
    """A class's burstiness: its own ca2 and prompt-token burst, the larger of its and its model's IDCs."""
    idc_10s = None if own.idc_10s is None or model.idc_10s is None else max(own.idc_10s, model.idc_10s)
    return own.model_copy(update={"idc_1s": max(own.idc_1s, model.idc_1s), "idc_10s": idc_10s})


def _edges(values: np.ndarray, buckets: int) -> np.ndarray:
    """Inner bucket edges at equal-count quantiles, de-duplicated (few distinct lengths -> fewer buckets)."""
    if buckets <= 1:
        return np.array([])
    qs = np.quantile(values, np.linspace(0, 1, buckets + 1)[1:-1])
    return np.unique(qs)


def window_rates(t_s: np.ndarray, span_s: float, window_s: float) -> np.ndarray:
    """Arrival rates (req/s) of the trace's whole `window_s` windows from its start (times in s from it) and, where a
    part window is left at its end, of the window that ends at its last instant: every rate is over a whole window
    (found by hand: the last 30 s of a 150-s trace, at 20 req/s, were counted over a whole minute as 10 req/s, and
    --rate-quantile 1 wrote 10 req/s, under the 11 req/s of its busiest minute). Empty for a trace shorter than one
    window."""
    whole = int(span_s // window_s)
    if whole < 1:
        return np.array([])
    t = np.asarray(t_s, dtype=float)
    idx = (t // window_s).astype(np.int64)
    counts = np.bincount(idx[idx < whole], minlength=whole).astype(float)
    if span_s > whole * window_s:
        counts = np.append(counts, float(np.count_nonzero(t > span_s - window_s)))
    else:  # the span is whole windows: its last request, at its end, is the last window's
        counts[-1] += float(np.count_nonzero(idx >= whole))
    return counts / window_s


def check_rate_span(trace: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """A trace's requests span more than one instant (`read_trace`'s t_s), else an InputError naming `path`: a rate is
    requests over the trace's span, and there is none (found by hand at stop 49: rates over a made-up 1-s span)."""
    if float(trace["t_s"].max()) <= 0:
        at_once = "it has one request" if len(trace) == 1 else f"all {len(trace)} are at the same time"
        raise InputError(str(path), "timestamp", "requests at more than one instant (a rate is requests over the "
                         f"trace's span); {at_once}")


def bucket_trace(trace: pd.DataFrame, slo: Slo | dict[str, Slo], isl_buckets: int = 3, osl_buckets: int = 2,
                 duration_s: float | None = None, rate_quantile: float | None = None, window_s: float = 60.0,
                 burstiness: bool = False, length_spread: bool = False) -> Workload:
    """Request classes from a trace: ISL x OSL buckets per model, rates over the trace's span.

    With `burstiness` (`planner workload from-trace` sets it unless --poisson) each class carries
    its measured over-dispersion (`measure_burstiness`); without, the classes are Poisson. A class's
    IDCs are the larger of its own and its model's: the model's pools serve every class of the model,
    so they see the clusters of the model's whole stream, which a class's own (thinned) stream
    understates (a cluster of B requests spread over k classes leaves each an IDC of about
    1 + (IDC - 1)/k).

    `rate_quantile` (e.g. 0.9) sizes the model for that quantile of its per-`window_s` rate instead
    of the mean (plan for the busy minutes of a bursty trace, not the average); each class gets its
    share of requests of that rate, so the classes sum to the model's quantile rate and never above
    the trace's busiest window (each class at its own quantile would: their peaks need not coincide).

    With `length_spread` each class states its prompts' squared CV (`isl_scv`), its outputs' (`osl_scv`) and its longest prompt
    (`isl_max`), measured on its requests (planner/planning/lengths.py: the law the TTFT model and the
    simulator's Poisson classes use); a class whose prompts are all of one length states none.
    """
    slos = slo if isinstance(slo, dict) else {m: slo for m in trace["model"].unique()}
    span = duration_s or max(float(trace["t_s"].max() - trace["t_s"].min()), 1.0)
    classes: list[RequestClass] = []
    t0 = float(trace["t_s"].min())
    for model, df in trace.groupby("model", sort=True):
        if model not in slos:
            raise InputError(None, "slo", f"no SLO given for model '{model}'")
        model_burst = measure_burstiness(df["t_s"].to_numpy() - t0, df["input_tokens"].to_numpy(), span) if burstiness else None
        ie, oe = _edges(df["input_tokens"].to_numpy(), isl_buckets), _edges(df["output_tokens"].to_numpy(), osl_buckets)
        ib = np.searchsorted(ie, df["input_tokens"].to_numpy(), side="right")
        ob = np.searchsorted(oe, df["output_tokens"].to_numpy(), side="right")
        model_rate = len(df) / span
        if rate_quantile is not None:
            per_window = window_rates(df["t_s"].to_numpy() - t0, span, window_s)
            if per_window.size:
                model_rate = max(model_rate, float(np.quantile(per_window, rate_quantile)))
        for (i, o), g in df.groupby([ib, ob], sort=True):
            rate = model_rate * len(g) / len(df)
            prompts = g["input_tokens"].to_numpy(dtype=float)
            scv = float(prompts.var() / prompts.mean() ** 2) if length_spread and prompts.size >= 2 else 0.0
            outputs = g["output_tokens"].to_numpy(dtype=float)
            o_scv = float(outputs.var() / outputs.mean() ** 2) if length_spread and outputs.size >= 2 and outputs.mean() > 0 else 0.0
            classes.append(RequestClass(
                id=f"{model}/isl{i}-osl{o}",
                model=str(model),
                isl=int(round(g["input_tokens"].mean())),
                osl=int(round(g["output_tokens"].mean())),
                rate_rps=round(rate, 6),
                burstiness=_class_burstiness(measure_burstiness(g["t_s"].to_numpy() - t0, g["input_tokens"].to_numpy(), span),
                                             model_burst) if model_burst is not None else None,
                isl_scv=round(scv, 4) if scv > 0 else None,
                isl_max=max(int(prompts.max()), int(round(prompts.mean()))) if scv > 0 else None,
                osl_scv=round(o_scv, 4) if o_scv > 0 else None,
            ))
    return Workload(models={m: ModelEntry(slo=s) for m, s in slos.items() if m in set(trace["model"])}, classes=classes)


def assign_classes(trace: pd.DataFrame, workload: Workload) -> np.ndarray:
    """Class id of each trace request: the class of its model nearest in (log isl, log osl)."""
    out = np.empty(len(trace), dtype=object)
    for model, idx in trace.groupby("model").groups.items():
        cls = [c for c in workload.classes if c.model == model]
        if not cls:
            raise InputError(None, "model", f"trace model '{model}' has no class in the workload")
        centers = np.log([[c.isl, c.osl] for c in cls])
        pts = np.log(trace.loc[idx, ["input_tokens", "output_tokens"]].to_numpy(dtype=float))
        d = ((pts[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        out[np.asarray(idx)] = np.array([c.id for c in cls], dtype=object)[d.argmin(axis=1)]
    return out
