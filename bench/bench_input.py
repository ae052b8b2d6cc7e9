"""How a bench refuses its input: one line on stderr, exit code 2 (3: infeasible), no traceback, before any work.

Shared by the benches so that each states its checks and none repeats the print-and-exit (the project's standard for
user input: the message names the argument or the file and what was expected)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from planner.io.catalog import Catalog
from planner.io.errors import InputError, PlannerError, shown
from planner.io.files import missing_file

if TYPE_CHECKING:
    import pandas as pd


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr and the exit code (2: bad input, 3: infeasible); no traceback."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def positive_floats(text: str, flag: str) -> tuple[float, ...]:
    """A comma list of positive numbers, or exit 2 naming the flag (found by hand at stop 56: `baselines.py --itl-sweep
    abc` was a traceback)."""
    try:
        out = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"{flag}: expected comma-separated positive numbers, got '{text}'")
    if not all(0 < x < math.inf for x in out):  # `not`: nan is refused too, and inf (a helper's QA: --itl-sweep inf)
        fail(f"{flag}: expected comma-separated positive numbers, got '{text}'")
    return out


def seed_list(text: str, flag: str = "--seeds") -> list[int]:
    """A comma list of integer seeds >= 0, or exit 2 naming the flag (mixed_classes, mixed_sizing and
    pd_mix_prediction read their --seeds alike)."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        fail(f"{flag}: expected a comma list of integers >= 0, got {text!r}")
    return seeds


def simulated_seconds(duration_s: float, flag: str = "--duration") -> float:
    """Simulated seconds per seed of a per-class p90, >= 60 (a p90 of a few req/s needs minutes), or exit 2."""
    if not (math.isfinite(duration_s) and duration_s >= 60.0):
        fail(f"{flag}: expected seconds >= 60 (a p90 of a few req/s needs minutes), got {duration_s}")
    return duration_s


def require(ok: bool, flag: str, expected: str, got: object) -> None:
    """Exit 2 with `flag: expected <expected>, got <got>` unless `ok`, before any work. Write `ok` so that nan fails
    (`0 < x < math.inf`, never `not x <= 0`). Found by a helper's QA: counts and shares out of their range were
    tracebacks after minutes of work (`baselines.py --repeats 0`: UnboundLocalError; `profile_cost.py --time-scale 0`:
    ValueError) or nonsense with exit 0 (`burst_sizing.py --seeds 0`: held_out_max_ratio=10.00)."""
    if not ok:
        fail(f"{flag}: expected {expected}, got {got}")


def fewest_requests(percentile: float) -> int:
    """The fewest requests whose `percentile`-th percentile is not simply their largest (10 at p90, 100 at p99): a
    bench's --requests per simulated point below it reports a maximum as a percentile (or, at 0, fails in the
    simulator: found by a helper's QA, `fidelity.py --requests 0` was a traceback, 'no requests to simulate')."""
    return math.ceil(100.0 / (100.0 - percentile))


not_found = missing_file
"""What a missing input is (planner.io.files.missing_file: a folder says so, as the CLI does)."""


@contextmanager
def refused_as_input(prefix: str = "") -> Iterator[None]:
    """Reading and checking inputs inside this block: a PlannerError (a missing file, a field out of its schema, an
    unknown model or GPU: its message names them) becomes `fail(prefix + message)`."""
    try:
        yield
    except PlannerError as exc:
        fail(f"{prefix}{exc}")


def trace_names(path: Path) -> list[str]:
    """The model names a trace's model column holds, as spelled there, sorted ([]: no model column, or no readable
    one: read_trace says what is wrong with it, in its words)."""
    import pandas as pd

    from planner.io.traces import has_model_column

    if not path.is_file() or not has_model_column(path):
        return []
    try:
        return sorted(pd.read_csv(path, usecols=["model"])["model"].dropna().astype(str).unique())
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        return []


def trace_model(path: Path | None) -> str | None:
    """The one model a --trace's model column names, in any case (None: no trace, no model column, or no readable
    one); a trace of several models is refused here: the bench plans one model, which --model names."""
    names = [] if path is None else trace_names(path)
    models = sorted({n.lower(): n for n in names}.values())  # 'Llama-3.1-8B' and 'llama-3.1-8b' are one model
    if len(models) > 1:
        fail(f"--model: {path} holds requests of {len(models)} models ({', '.join(models[:8])}); name the one to run")
    return models[0] if models else None


def read_model_trace(path: Path, model: str) -> pd.DataFrame:
    """read_trace's requests of `model` (the catalog's spelling, `known_model`), the trace's model column matched in
    any case and written in the catalog's: a bench takes --model in any case, so a trace of 'LLAMA-3.1-8B' is
    llama-3.1-8b's (found by a helper's QA: such a trace was refused, "no request of model 'llama-3.1-8b' in the
    trace", by the benches that had found that very model in its column). A model spelled several ways in one trace
    is refused (InputError, as read_trace's errors): which rows are one model is the user's to say."""
    from planner.io.traces import read_trace

    spelled = [n for n in trace_names(path) if n.lower() == model.lower()]
    if len(spelled) > 1:
        raise InputError(str(path), "model", f"one spelling of model {model} on every row; found "
                         f"{', '.join(repr(n) for n in spelled)}")
    return read_trace(path, model=spelled[0] if spelled else model).assign(model=model)


def with_a_span(trace: pd.DataFrame, path: Path) -> pd.DataFrame:
    """`trace` (read_trace's frame), refused (InputError) unless its requests arrive at more than one instant: a bench
    that buckets it into classes plans their rates, requests over the trace's span, and bucket_trace would make one up
    for a span of 0 s (1 req/s; found by a helper's QA: a one-request trace ran through bench/baselines.py and
    bench/mixed_classes.py with exit 0). The words of `planner workload from-trace`, which refuses the same."""
    from planner.io.traces import check_rate_span

    if len(trace):
        check_rate_span(trace, path)
    return trace


def read_rows(path: Path, flag: str, what: str, columns: Sequence[str], counts: Iterable[str] = (),
              may_be_empty: Iterable[str] = (), optional: Sequence[str] = ()) -> pd.DataFrame:
    """`path`, a CSV of measured rows (`what`, e.g. "the profiler's trace_replay.csv"), checked before any work: read as
    a CSV, with `columns`, each a finite number on every row (those of `may_be_empty` may be empty: the profiler writes
    no ITL for a one-token output; those of `optional` are checked where the file has them, a column older files
    lack), those of `counts` whole and >= 0; else exit 2 naming `flag`, the file, the column, the row and what was
    expected. Found by a helper's QA: an empty or binary file, or a word where a number was, was a
    traceback (EmptyDataError, UnicodeDecodeError, ValueError: could not convert string to float), and a negative
    prompt length replayed with exit 0 (bench/vllm_trace_replay.py --replay, bench/fidelity.py --load-sweep)."""
    import numpy as np
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        fail(f"{flag} {path}: expected {what}, could not read it as a CSV ({exc})")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        fail(f"{flag} {path}: expected {what} (columns {', '.join(columns)}); missing columns {', '.join(missing)}")
    empty_ok, whole = set(may_be_empty), set(counts)
    for col in [*columns, *(c for c in optional if c in df.columns)]:
        x = pd.to_numeric(df[col], errors="coerce").astype(float)
        bad = (x.isna() & ~(df[col].isna() & (col in empty_ok))) | np.isinf(x)
        if col in whole:
            bad |= (x < 0) | (x != np.floor(x))
        if bad.any():
            row = int(bad.to_numpy().argmax())
            kind = "a whole count >= 0" if col in whole else "a finite number"
            cell = "nothing" if pd.isna(df[col].iloc[row]) else shown(df[col].iloc[row])
            fail(f"{flag} {path}: field '{col}': expected {kind} on every row; row {row + 2} has {cell}")
        df[col] = x
    return df


def spelled_as(names: Iterable[str], name: str) -> str | None:
    """The one of `names` that `name` is in any case ('LLAMA-3.1-8B' -> 'llama-3.1-8b'), None where none is."""
    return next((k for k in names if k.lower() == name.lower()), None)


def known_model(catalog: Catalog, name: str, flag: str = "--model") -> str:
    """The catalog's spelling of model `name` (`spelled_as`); an unknown one fails naming `flag`, the nearest known name
    and where to add one (Catalog.unknown_model_text)."""
    found = spelled_as(catalog.models, name)
    if found is None:
        fail(f"{flag}: {catalog.unknown_model_text(name)}")
    return found


def known_gpu(catalog: Catalog, name: str, flag: str = "--gpu") -> str:
    """The catalog's spelling of GPU type `name` (`spelled_as`); an unknown one fails naming `flag`, the nearest known
    name and where to add one (Catalog.unknown_gpu_text)."""
    found = spelled_as(catalog.gpus, name)
    if found is None:
        fail(f"{flag}: {catalog.unknown_gpu_text(name)}")
    return found
