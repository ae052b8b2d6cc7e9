"""vLLM's per-iteration log lines, read into a table: what each engine step carried.

vLLM 0.26 logs every engine iteration when served with ``--enable-logging-iteration-details``
(vllm/v1/metrics/loggers.py, ``LoggingStatLogger._log_iteration_details``), one INFO line each:

    INFO 12-03 15:02:18 [loggers.py:182] Engine 000: Iteration(2004): 1 context requests, 4096 context
    tokens, 22 generation requests, 22 generation tokens, iteration elapsed time: 56.35 ms, GPU KV cache
    usage: 11.2%

"Context" requests are those still prefilling (a chunk of a prompt counts), "generation" ones decode.
Two facts decide how the table can be used (both read in vLLM 0.26.0's source, engine/core.py):
* ``elapsed_ms`` is NOT the step's duration: it is timed from after ``execute_model`` returned (the CPU
  has launched the step's kernels, which already run) to the sampled tokens, so it misses the launch
  time: a 4,096-token prefill with 22 decodes logs 56 ms where the pass takes ~100 ms. It is kept, not
  used by the step analysis (bench/step_composition.py), which sums the laws' step times over each
  logged second instead;
* the timestamp has one-second resolution (the logger's), so a second's steps are known, not their
  times: with the engine busy for the whole second (a decode running in every step of it and of its
  neighbours) the steps of that second took 1,000 ms together.
Logging every step costs the API server process time: the client-side latencies of a run with it are
not comparable with runs without it (profiles/runs/2026-12-03-s10/README.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported where a table is built: the profiler imports this module on GPU machines
    import pandas as pd

_LINE = re.compile(
    r"INFO (?P<second>\d\d-\d\d \d\d:\d\d:\d\d) .*?Iteration\((?P<iteration>\d+)\): "
    r"(?P<ctx_requests>\d+) context requests, (?P<ctx_tokens>\d+) context tokens, "
    r"(?P<gen_requests>\d+) generation requests, (?P<gen_tokens>\d+) generation tokens, "
    r"iteration elapsed time: (?P<elapsed_ms>[\d.]+) ms(?P<dummy> \(dummy\))?, "
    r"GPU KV cache usage: (?P<kv_usage_pct>[\d.]+)%")

# vLLM 0.26's server flag that turns the lines on, and the table the profiler writes from them beside the profile.
ITERATION_FLAG = "--enable-logging-iteration-details"
ITERATIONS_FILE = "iterations.csv.gz"
COLUMNS = ("second", "iteration", "ctx_requests", "ctx_tokens", "gen_requests", "gen_tokens", "elapsed_ms",
           "kv_usage_pct")


def parse_iteration_lines(lines: Iterable[str]) -> pd.DataFrame:
    """One row per logged (non-dummy) iteration, in log order; other lines are skipped. Columns: COLUMNS
    (``second`` is the log's 'MM-DD HH:MM:SS' text, the rest numbers)."""
    import pandas as pd

    rows = []
    for line in lines:
        m = _LINE.search(line)
        if m is None or m.group("dummy"):
            continue
        rows.append((m.group("second"), int(m.group("iteration")), int(m.group("ctx_requests")),
                     int(m.group("ctx_tokens")),
                     int(m.group("gen_requests")), int(m.group("gen_tokens")), float(m.group("elapsed_ms")),
                     float(m.group("kv_usage_pct"))))
    return pd.DataFrame(rows, columns=list(COLUMNS))


def read_iterations(path: Path) -> pd.DataFrame:
    """A vLLM server log (any name but *.csv / *.csv.gz) or a table written by :func:`parse_iteration_lines`
    (CSV, gzipped or not). Raises ValueError naming the file when it holds no iteration or lacks a column."""
    import pandas as pd

    if path.name.endswith((".csv", ".csv.gz")):
        df = pd.read_csv(path, dtype={"second": str})
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing columns {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    else:
        with path.open(errors="replace") as fh:
            df = parse_iteration_lines(fh)
    if df.empty:
        raise ValueError(f"{path}: no vLLM iteration line (serve with --enable-logging-iteration-details)")
    return df


def write_iterations(server_log: Path, out: Path) -> int:
    """Parse `server_log`'s iteration lines into `out` (gzipped CSV, written whole or not at all); the number of
    rows, 0 (and nothing written) when the log has none or is missing."""
    if not server_log.is_file():
        return 0
    with server_log.open(errors="replace") as fh:
        df = parse_iteration_lines(fh)
    if df.empty:
        return 0
    tmp = out.with_name(out.name + ".part")
    df.to_csv(tmp, index=False, compression="gzip")
    tmp.replace(out)
    return len(df)
