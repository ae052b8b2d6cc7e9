"""The profile directory format, defined once: grids, file names, CSV columns, meta.yaml keys, and
the code that reads and writes a profile directory.

One contract for everyone who touches a profile: the profiler (:mod:`profiles.sweep` picks points
on these grids; :class:`ProfileStore` writes them as the backends measure), the planner's loader
(:mod:`planner.perf.profiledata` validates what is read against these columns and meta keys), the
roofline prior (:mod:`planner.perf.laws` fits its laws on the same grids, so a prior and a later
measurement line up point for point) and the tests.

Standard library only (csv, dataclasses, os, pathlib, statistics, tempfile), plus PyYAML imported
inside the two functions that read or write YAML: the torch backend runs as a standalone script on
GPU machines that have torch, numpy and pyyaml but not pandas or pydantic
(shared/tools/vllm-offline/README.md lists pyyaml on the GPU machine).

Layout of a profile directory (DESIGN.md "Profiler's directory format"),
``<root>/<model>/<gpu>/tp<N>[-fp8][-kvfp8]/[vllm/]``:

- ``prefill.csv`` (:data:`PREFILL`): ``isl, batch, ttft_ms`` -- time to prefill `batch` prompts of
  `isl` tokens in one forward pass;
- ``decode.csv`` (:data:`DECODE`): ``batch, context_tokens, itl_ms`` -- one decode step of `batch`
  sequences at a mean context of `context_tokens`;
- ``mixed.csv`` (:data:`MIXED`, optional): ``batch, context_tokens, prefill_tokens, itl_ms`` -- a
  decode step carrying a chunk of prompt tokens;
- ``meta.yaml`` (:data:`META_KEYS`): what was measured and how, written LAST so that a directory
  with a meta.yaml is complete; ``run.yaml``: the profiler's whole run record (free form);
- ``identity.yaml`` (:data:`IDENTITY_FILE`): the variant and engine configuration of a run in progress
  (meta.yaml's fields that `planner profile` compares before resuming), written BEFORE the first point
  and removed once meta.yaml is written: a directory with points and no meta.yaml is an interrupted run,
  and this file says whose points they are (:func:`interrupted_points`).

Rows are samples unless a ``stat`` (median/p50/mean/p90/sample ...) or ``percentile`` column says
otherwise (:data:`STAT_COLUMNS`, :data:`CENTRAL_STATS`).
"""

from __future__ import annotations

import csv
import io
import os
import statistics
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- grids (DESIGN.md "Profiler")
# Identical for every GPU so that profiles line up point for point; the roofline prior is fitted on
# the same points (planner.perf.laws.prior_variant).
#   prefill: isl {128 .. 16384} x batch {1, 2, 4, 8}, one forward pass -> TTFT;
#   decode:  batch {1 .. 256} x context {512 .. 8192}, steady-state ITL.
PREFILL_ISL: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192, 16384)
PREFILL_BATCH: tuple[int, ...] = (1, 2, 4, 8)
DECODE_BATCH: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DECODE_CONTEXT: tuple[int, ...] = (512, 1024, 2048, 4096, 8192)

# --------------------------------------------------------------------------- file names
META_FILE = "meta.yaml"
RUN_FILE = "run.yaml"
IDENTITY_FILE = "identity.yaml"
"""The identity of a run in progress (module doc): without it an interrupted directory's points could be resumed,
and relabelled, as any variant's (found in QA: an H100 run interrupted after 3 + 3 points, rerun with --gpu
H200-141GB, kept 5 of its 6 points and wrote meta.yaml with gpu H200-141GB)."""
VLLM_SUBDIR = "vllm"
"""Subfolder of a variant directory holding the profile measured on real vLLM."""


# --------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class TableFormat:
    """One CSV file of a profile directory.

    `required`: the columns the loader demands, sizes first, the latency last; `written`: what the
    profiler writes on every row, in order (required first, then `stat: median` and the spread of the
    repeats); `optional`: columns the profiler writes only when some row has them; `axes`: the two
    sizes along which the latency must not fall (None: not checked)."""

    file: str
    required: tuple[str, ...]
    written: tuple[str, ...]
    optional: tuple[str, ...] = ()
    axes: tuple[str, str] | None = None

    @property
    def value(self) -> str:
        """The latency column (ms)."""
        return self.required[-1]

    @property
    def sizes(self) -> tuple[str, ...]:
        """The whole-number size columns (every required column that is not a time)."""
        return tuple(c for c in self.required if not c.endswith("_ms"))

    def columns_for(self, rows: Iterable[Mapping[str, object]]) -> list[str]:
        """The header the profiler writes for `rows`: `written`, then each optional column some row has."""
        rows = list(rows)
        return list(self.written) + [c for c in self.optional if any(c in r for r in rows)]


# `stat: median` says each row is a point's median of `repeats` timings (min and max kept beside it).
# ttft_e2e_ms: a lone batch sent to an idle server, from the first request sent to the last first
# token, as a client sees it (includes the HTTP/frontend/scheduling overhead that ttft_ms leaves out).
# raised = 1 where the median fell below the monotone floor after retries and the central value was
# raised to it (profiles.sweep.monotone_floor).
PREFILL = TableFormat(
    file="prefill.csv",
    required=("isl", "batch", "ttft_ms"),
    written=("isl", "batch", "ttft_ms", "stat", "ttft_ms_min", "ttft_ms_max", "repeats"),
    optional=("ttft_e2e_ms", "raised"),
    axes=("isl", "batch"),
)
DECODE = TableFormat(
    file="decode.csv",
    required=("batch", "context_tokens", "itl_ms"),
    written=("batch", "context_tokens", "itl_ms", "stat", "itl_ms_min", "itl_ms_max", "repeats"),
    optional=("raised",),
    axes=("batch", "context_tokens"),
)
MIXED = TableFormat(
    file="mixed.csv",
    required=("batch", "context_tokens", "prefill_tokens", "itl_ms"),
    written=("batch", "context_tokens", "prefill_tokens", "itl_ms"),
)
TABLES: tuple[TableFormat, ...] = (PREFILL, DECODE, MIXED)

STAT_COLUMNS = ("stat", "percentile")
# Values of `stat` (or `percentile`) treated as the central value of a point, in order of preference.
CENTRAL_STATS = ("median", "p50", "mean")

# --------------------------------------------------------------------------- meta.yaml
META_REQUIRED: tuple[str, ...] = ("model", "gpu", "tp", "engine", "kv_capacity_tokens", "date", "backend")
"""Keys every meta.yaml has (planner.perf.profiledata.ProfileMeta's fields without a default)."""
META_KEYS: tuple[str, ...] = (
    "model", "gpu", "tp", "engine", "engine_version", "engine_flags", "engine_env", "kv_capacity_tokens",
    "kv_capacity_note",
    "max_num_seqs", "max_batched_tokens", "date", "backend", "source", "device_name", "weight_dtype", "kv_dtype",
    "notes", "calibrate", "calibrate_note",
)
"""Every key a meta.yaml may have, in ProfileMeta's order (the loader forbids others)."""

Cell = str | int | float
Row = dict[str, Cell]


# --------------------------------------------------------------------------- writing
def write_atomic(path: str | os.PathLike[str], text: str,
                 create_error: Callable[[Path, OSError], Exception] | None = None) -> None:
    """Write `text` so that readers see the old file or the whole new one, never a part (a temporary
    file in the same folder, fsync, os.replace). The file gets the mode an ordinary open() gives
    (0666 less the umask), not mkstemp's 0600 (issue 11).

    `create_error(path, exc)` turns a failure to create the folder or the temporary file (nothing
    written yet) into the caller's exception (planner.io.files.write_atomic: an InputError naming the
    file); without it the OSError propagates."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.", suffix=".tmp")
    except OSError as exc:
        if create_error is None:
            raise
        raise create_error(p, exc) from exc
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cell(v: Cell, float_digits: int | None) -> Cell:
    if isinstance(v, float) and float_digits is not None:
        return f"{v:.{float_digits}f}"
    return v


def table_text(rows: Iterable[Mapping[str, Cell]], columns: Sequence[str], float_digits: int | None = 4) -> str:
    """CSV text of `rows` under the header `columns` ('\\n' line ends; a cell a row lacks is empty).

    Floats get `float_digits` decimals (4, the profiler's: 0.1 us resolution, far below timer noise)
    or, with None, Python's shortest round-tripping form (what pandas' to_csv writes)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: _cell(r[c], float_digits) for c in columns if c in r})
    return buf.getvalue()


def write_table(directory: str | os.PathLike[str], table: TableFormat, rows: Sequence[Mapping[str, Cell]],
                columns: Sequence[str] | None = None, float_digits: int | None = 4) -> Path:
    """Write `table`'s file under `directory` atomically; `columns` defaults to the profiler's header
    (:meth:`TableFormat.columns_for`). A header without a required column is refused (ValueError)."""
    cols = table.columns_for(rows) if columns is None else list(columns)
    missing = [c for c in table.required if c not in cols]
    if missing:
        raise ValueError(f"{table.file}: refusing to write: missing columns {missing}")
    path = Path(directory) / table.file
    write_atomic(path, table_text(rows, cols, float_digits))
    return path


def yaml_text(data: Mapping[str, Any]) -> str:
    """YAML of a mapping, keys in the given order, block style (meta.yaml, run.yaml)."""
    import yaml  # on GPU machines too (module docstring)

    text: str = yaml.safe_dump(dict(data), sort_keys=False, default_flow_style=False)
    return text


def write_meta(directory: str | os.PathLike[str], meta: Mapping[str, Any]) -> Path:
    """meta.yaml, atomically; write it after the tables (a directory with a meta.yaml is complete)."""
    path = Path(directory) / META_FILE
    write_atomic(path, yaml_text(meta))
    return path


def write_profile_dir(directory: str | os.PathLike[str], meta: Mapping[str, Any], prefill: Sequence[Mapping[str, Cell]],
                      decode: Sequence[Mapping[str, Cell]], mixed: Sequence[Mapping[str, Cell]] | None = None,
                      columns: Mapping[str, Sequence[str]] | None = None, float_digits: int | None = 4) -> Path:
    """Write a whole profile directory: prefill.csv, decode.csv [, mixed.csv], meta.yaml last.

    `columns` maps a file name to its header (default: the profiler's, :meth:`TableFormat.columns_for`).
    Returns the directory."""
    d = Path(directory)
    cols = dict(columns or {})
    tables: list[tuple[TableFormat, Sequence[Mapping[str, Cell]]]] = [(PREFILL, prefill), (DECODE, decode)]
    if mixed is not None:
        tables.append((MIXED, mixed))
    for table, _ in tables:  # refuse before anything is written
        header = cols.get(table.file)
        missing = [c for c in table.required if header is not None and c not in header]
        if missing:
            raise ValueError(f"{d / table.file}: refusing to write: missing columns {missing}")
    for table, rows in tables:
        write_table(d, table, rows, cols.get(table.file), float_digits)
    write_meta(d, meta)
    return d


# --------------------------------------------------------------------------- reading
def parse_cell(column: str, text: str) -> Cell:
    """A CSV cell as the profiler keeps it: `stat` text; times (``*_ms*``) float; other numbers whole
    (sizes, repeats, raised); any other text (a note column) unchanged."""
    if column == "stat":
        return text
    if "_ms" in column:
        return float(text)
    try:
        return int(float(text))
    except ValueError:
        return text


def read_table(path: str | os.PathLike[str]) -> list[Row]:
    """The rows of a profile CSV (empty cells left out), or [] when the file does not exist.

    No validation beyond parsing: planner.perf.profiledata checks columns, values and monotonicity."""
    p = Path(path)
    if not p.is_file():
        return []
    with p.open(newline="") as fh:
        return [{k: parse_cell(k, v) for k, v in row.items() if v not in (None, "")} for row in csv.DictReader(fh)]


def read_meta(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """meta.yaml of a profile directory as a plain mapping (planner.perf.profiledata.read_meta validates it)."""
    import yaml

    data = yaml.safe_load((Path(directory) / META_FILE).read_text(encoding="utf-8"))
    return dict(data or {})


@dataclass(frozen=True)
class ProfileFiles:
    """A profile directory as read with the standard library: meta mapping and rows per table."""

    path: Path
    meta: dict[str, Any]
    prefill: list[Row]
    decode: list[Row]
    mixed: list[Row] | None = None


def read_profile_dir(directory: str | os.PathLike[str]) -> ProfileFiles:
    """Read meta.yaml, prefill.csv, decode.csv and mixed.csv (None when absent) of `directory`."""
    d = Path(directory)
    mixed = read_table(d / MIXED.file) if (d / MIXED.file).is_file() else None
    return ProfileFiles(path=d, meta=read_meta(d), prefill=read_table(d / PREFILL.file),
                        decode=read_table(d / DECODE.file), mixed=mixed)


def _count_rows(path: Path) -> int:
    """Data rows of a CSV file (0 when it is absent or unreadable): one per point as :class:`ProfileStore` writes."""
    try:
        with path.open(newline="") as fh:
            return sum(1 for _ in csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return 0


def interrupted_points(directory: str | os.PathLike[str]) -> tuple[int, int] | None:
    """(prefill points, decode points) of a directory holding an interrupted profile run: points in prefill.csv or
    decode.csv and no meta.yaml (written last, module doc). None for a complete directory or one with no point."""
    d = Path(directory)
    if (d / META_FILE).exists():
        return None
    counts = (_count_rows(d / PREFILL.file), _count_rows(d / DECODE.file))
    return counts if any(counts) else None


def interrupted_run_text(counts: tuple[int, int]) -> str:
    """How a user is told of an interrupted run's directory (`planner profile show`, `planner solve --profiles`): what
    it holds and how to finish it, where the loader alone said "meta.yaml: file not found" or "no profile found"."""
    return (f"holds an interrupted profile run ({counts[0]} prefill, {counts[1]} decode points; no {META_FILE}, which "
            "a run writes at its end): rerun the same `planner profile` command to resume it")


def write_identity(directory: str | os.PathLike[str], identity: Mapping[str, Any]) -> Path:
    """identity.yaml (:data:`IDENTITY_FILE`), atomically: write it before the first point of a run."""
    path = Path(directory) / IDENTITY_FILE
    write_atomic(path, yaml_text(identity))
    return path


# --------------------------------------------------------------------------- the profiler's writer
class ProfileStore:
    """A profile directory being measured: prefill.csv and decode.csv rewritten atomically after every
    point (so an interrupted run keeps what it measured, and a rerun skips it), meta.yaml last."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.prefill_rows: list[Row] = read_table(self.root / PREFILL.file)
        self.decode_rows: list[Row] = read_table(self.root / DECODE.file)

    def prefill_done(self) -> dict[tuple[int, int], float]:
        return {(int(r["isl"]), int(r["batch"])): float(r["ttft_ms"]) for r in self.prefill_rows}

    def decode_done(self) -> dict[tuple[int, int], float]:
        return {(int(r["batch"]), int(r["context_tokens"])): float(r["itl_ms"]) for r in self.decode_rows}

    def _put(self, table: TableFormat, rows: list[Row], sizes: Row, samples: Sequence[float], central: float | None,
             extra: Row | None = None) -> list[Row]:
        """`rows` with the point `sizes` (re)placed, sorted by size, written to `table`'s file."""
        key = tuple(sizes.values())
        rows = [r for r in rows if tuple(r[c] for c in sizes) != key]
        med = statistics.median(samples)
        row: Row = {**sizes, table.value: med if central is None else float(central), "stat": "median",
                    f"{table.value}_min": min(samples), f"{table.value}_max": max(samples), "repeats": len(samples),
                    **(extra or {})}
        if central is not None and central > med:
            row["raised"] = 1  # the median fell below the monotone floor (profiles.sweep.monotone_floor)
        rows.append(row)
        rows.sort(key=lambda r: tuple(r[c] for c in sizes))
        write_table(self.root, table, rows)
        return rows

    def add_prefill(self, isl: int, batch: int, samples: Sequence[float], central: float | None = None,
                    e2e_samples: Sequence[float] = ()) -> None:
        """One point: the median of `samples` (or `central`, a floor-raised value), its spread, and
        optionally the client-side TTFT of the batch on an idle server."""
        extra: Row = {"ttft_e2e_ms": float(statistics.median(e2e_samples))} if e2e_samples else {}
        self.prefill_rows = self._put(PREFILL, self.prefill_rows, {"isl": isl, "batch": batch}, samples, central, extra)

    def add_decode(self, batch: int, context: int, samples: Sequence[float], central: float | None = None) -> None:
        """One point: the median of `samples` (or `central`, a floor-raised value) and its spread."""
        sizes: Row = {"batch": batch, "context_tokens": context}
        self.decode_rows = self._put(DECODE, self.decode_rows, sizes, samples, central)

    def write_record(self, record: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
        """run.yaml gets the whole run record; meta.yaml (written last) the :data:`META_KEYS` fields,
        so the planner's loader reads the directory as it is."""
        write_atomic(self.root / RUN_FILE, yaml_text(record))
        write_meta(self.root, meta)

