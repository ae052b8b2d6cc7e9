"""Reading and writing the product's files: YAML/CSV validated into schema models, atomic writes."""

from __future__ import annotations

import difflib
import io
import json
import lzma
import os
import tempfile
import typing
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

from planner.io.errors import InputError
from profiles import format as pfmt

M = TypeVar("M", bound=BaseModel)


def missing_file(p: str | os.PathLike[str]) -> str:
    """Why a path is not a readable file: a folder says so (found by hand at stop 56: `planner control --config DIR`
    said "file not found" of a folder that is there). The CLI's and the benches' one wording."""
    return "is a folder, expected a file" if Path(p).is_dir() else "file not found"


def not_a_file(p: Path) -> InputError:
    """The error for a path that is not a readable file (missing_file says why)."""
    return InputError(str(p), None, missing_file(p))


def read_yaml(path: str | os.PathLike[str]) -> object:
    """Parse a YAML file (a tree of dicts, lists and scalars: callers narrow it, or let `parse_model`
    validate it); a missing file or a syntax error becomes an InputError naming the file."""
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(p), None, f"not a text file (byte {exc.start} is not UTF-8); expected YAML") from exc
    except OSError as exc:
        raise InputError(str(p), None, f"cannot read the file ({exc.strerror})") from exc
    try:
        # The C loader when PyYAML has it: a 5 MB workload parses in a second instead of ~30 s.
        tree: object = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        return tree
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise InputError(str(p), None, f"malformed YAML ({loc}{getattr(exc, 'problem', exc)})") from exc


def read_yaml_mapping(path: str | os.PathLike[str]) -> dict[str, object]:
    """A YAML file that holds a mapping (an empty file is {}), keys as strings; anything else is an
    InputError naming the file (read_yaml's errors otherwise)."""
    tree = read_yaml(path)
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise InputError(str(path), None, f"expected a mapping of name -> entry, got {type(tree).__name__}")
    return {str(k): v for k, v in tree.items()}


def validation_to_input_error(path: str | None, exc: ValidationError, prefix: str = "") -> InputError:
    """The first pydantic error as an InputError: dotted field path and the expectation in words."""
    err = exc.errors()[0]
    field = ""
    for x in err.get("loc", ()):
        field += f"[{x}]" if isinstance(x, int) else (f".{x}" if field else str(x))
    if prefix:
        field = f"{prefix}.{field}" if field else prefix
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    got = err.get("input")
    if err.get("type") != "missing" and not isinstance(got, (dict, list)):
        msg += f" (got {got!r})"
    more = len(exc.errors()) - 1
    if more:
        msg += f"; and {more} more error(s)"
    return InputError(path, field or None, msg)


def parse_model(model: type[M], data: object, path: str | None = None, prefix: str = "") -> M:
    """Validate `data` into `model`, raising InputError (file, field, expectation) on failure."""
    if data is None:
        raise InputError(path, prefix or None, f"expected a mapping for {model.__name__}, the file is empty")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = validation_to_input_error(path, exc, prefix)
        first = exc.errors()[0]
        loc = first.get("loc", ())
        if first.get("type") == "extra_forbidden" and loc and isinstance(loc[-1], str):
            near = difflib.get_close_matches(loc[-1], sorted(_field_names(model)), n=1, cutoff=0.75)
            if near:  # found by hand at stop 52: a controller config's 'intervall_s' was only "not permitted"
                err = InputError(err.path, err.field, f"{err.expected}; did you mean '{near[0]}'?")
        raise err from exc


def _field_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """Every field name of `model` and of the models its fields hold, at any depth (for "did you mean")."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    names: set[str] = set()
    for name, info in model.model_fields.items():
        names.add(name)
        stack: list[object] = [info.annotation]
        while stack:
            t = stack.pop()
            if isinstance(t, type) and issubclass(t, BaseModel):
                names |= _field_names(t, seen)
            stack.extend(typing.get_args(t))
    return names


def load_model(model: type[M], path: str | os.PathLike[str]) -> M:
    """Read a YAML file into a schema model."""
    return parse_model(model, read_yaml(path), str(path))


# What reading a file whose bytes cannot be read raises, beside a parse error: a compressed file (.gz, .bz2, .xz, .zip,
# read by its name's suffix) that is cut short (EOFError), not of its name's compression (gzip.BadGzipFile and bz2's
# are OSErrors, zlib.error, lzma.LZMAError, zipfile.BadZipFile), or an OSError of the file system (found in QA:
# `planner workload from-trace` on a gzipped trace cut short said "Aborted!", exit 1, and on a plain CSV named
# .csv.gz printed BadGzipFile's traceback).
UNREADABLE_FILE_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error, lzma.LZMAError,
                                                           zipfile.BadZipFile)


def unreadable_file(p: Path, exc: BaseException) -> InputError:
    """The error for a file whose bytes could not be read (UNREADABLE_FILE_ERRORS): a compressed one is expected whole
    and compressed as its name's suffix says."""
    suffix = p.suffix.lower()
    whole = (f"expected a whole {suffix} file (read as compressed by its name), could not decompress it"
             if suffix in (".gz", ".bz2", ".xz", ".zip", ".zst") else "could not read it")
    return InputError(str(p), None, f"{whole} ({type(exc).__name__}: {exc})")


def first_non_utf8_line(p: Path) -> tuple[int, bytes] | None:
    """The first line of `p` (1-based; decompressed as pandas reads it, by its name's suffix) that is not UTF-8, with
    its first bytes that are not; None where every line is (or the file cannot be read: the caller's error stands)."""
    try:
        with pd.io.common.get_handle(p, "rb", compression="infer", is_text=False) as h:
            for number, line in enumerate(typing.cast(typing.IO[bytes], h.handle), start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return number, line[exc.start:exc.end]
    except UNREADABLE_FILE_ERRORS:
        return None
    return None


def not_utf8(p: Path, exc: UnicodeDecodeError, expected: str) -> InputError:
    """The error for a file that is not UTF-8 text (latin-1, UTF-16, binary): the line and bytes where it stops being
    UTF-8 (first_non_utf8_line), not the byte position in pandas' read buffer that the decode error states (found in
    QA: a latin-1 trace was refused as "malformed CSV ('utf-8' codec can't decode byte 0xe8 in position 3...)", no
    row)."""
    found = first_non_utf8_line(p)
    where = (f"line {found[0]:,} has bytes {found[1]!r}, which are not" if found is not None
             else f"byte {exc.start:,} of a read is not")
    return InputError(str(p), None, f"expected {expected} in UTF-8; {where} UTF-8 (a file saved as Latin-1, "
                                    "Windows-1252 or UTF-16? Save it as UTF-8)")


def read_csv(path: str | os.PathLike[str], required: dict[str, str]) -> pd.DataFrame:
    """Read a CSV whose `required` columns ({name: 'numeric'|'tokens'|'time'|'any'}, check_columns) must exist and be finite."""
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    try:
        df = pd.read_csv(p)
    except UnicodeDecodeError as exc:
        raise not_utf8(p, exc, "a CSV") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(str(p), None, f"malformed CSV ({exc})") from exc
    except UNREADABLE_FILE_ERRORS as exc:
        raise unreadable_file(p, exc) from None
    return check_columns(df, p, required, first_row=2)


def read_json_lines(path: str | os.PathLike[str], required: dict[str, str]) -> pd.DataFrame:
    """Read a JSON-lines file (one object per line) whose `required` keys ({name: 'numeric'|'tokens'|'time'|'any'}) every line has,
    finite; rows are numbered as the file's lines."""
    p = Path(path)
    if not p.is_file():
        raise not_a_file(p)
    try:
        df = pd.read_json(p, lines=True, dtype=False)
    except UnicodeDecodeError as exc:  # a ValueError: first
        raise not_utf8(p, exc, "JSON lines") from None
    except ValueError as exc:
        raise InputError(str(p), None, f"malformed JSON lines, expected one object per line ({exc})") from exc
    except UNREADABLE_FILE_ERRORS as exc:
        raise unreadable_file(p, exc) from None
    return check_columns(df, p, required, first_row=1)


# What a numeric column's cells are expected to be, by check_columns' kind, for its messages: 'tokens' is a 'numeric'
# column whose numbers count tokens (a trace's lengths; whole and >= 0, which the trace's reader checks).
NUMERIC_KINDS = {"numeric": "a finite number", "tokens": "whole numbers of tokens"}
# The kinds whose cells must not be true/false, with what they are expected to be: the numeric ones, and 'time', a
# trace's `timestamp` of seconds or date-times (parsed by the trace's reader, not made numbers here; found in QA: a
# `timestamp` column of True/False was read as times 0 and 1 s, exit 0).
NOT_BOOL_KINDS = {**NUMERIC_KINDS, "time": "seconds or date-times"}


def bool_cells(col: pd.Series) -> pd.Series:
    """Which cells of `col` are true/false: all of a bool column (a CSV's True/False, pandas reads so), the Python or
    numpy bools of a mixed one (a JSON line's true/false beside numbers); none of a number column."""
    if pd.api.types.is_bool_dtype(col):
        return pd.Series(True, index=col.index)
    if col.dtype == object:
        return col.map(lambda v: isinstance(v, (bool, np.bool_)))
    return pd.Series(False, index=col.index)


def near_column_hint(col: str, found: Iterable[object]) -> str:
    """What to add to "missing column `col`" where a found column is it but for spaces around its name or its case
    (found in QA: a header `timestamp, model, ...`, spaces after its commas, was refused listing ' model' among the
    columns found, with no word of why): '; column ' model' (with a leading space): the header has spaces after its
    commas?', or '; column 'Timestamp' is 'timestamp' but for its case (names are matched exactly)'; '' where none.
    The column is still refused: which of two near names was meant is the user's to say."""
    names = [str(c) for c in found]
    for name in names:
        if name != col and name.strip() == col:
            where = [w for w, has in (("leading", name[:1].isspace()), ("trailing", name[-1:].isspace())) if has]
            why = " and ".join(f"{'after' if w == 'leading' else 'before'} its commas" for w in where)
            return f"; column {name!r} (with a {' and '.join(where)} space): the header has spaces {why}?"
    for name in names:
        if name.strip() != col and name.strip().lower() == col.lower():
            return f"; column {name!r} is {col!r} but for its case{' and spaces' if name != name.strip() else ''} " \
                   "(names are matched exactly)"
    return ""


def refuse_bool_cells(col: pd.Series, source: str, name: str, kind: str, first_row: int) -> None:
    """An InputError naming `source`, the column `name` and its first true/false cell (bool_cells) where `col` has one:
    pandas reads a column of True/False as booleans, which count as 1 and 0 (tokens, seconds). `kind` is one of
    NOT_BOOL_KINDS, what the cells are expected to be; `first_row` is the source's number of `col`'s first row.
    check_columns' check, and the simulator's for a trace frame (planner.simulate.arrivals.normalise_trace)."""
    truth = bool_cells(col).to_numpy()
    if truth.any():
        row = int(truth.argmax())
        raise InputError(source, name, f"expected {NOT_BOOL_KINDS[kind]} on every row, not true/false; row "
                         f"{row + first_row} has {col.iloc[row]}")


def check_columns(df: pd.DataFrame, p: Path, required: dict[str, str], first_row: int) -> pd.DataFrame:
    """`df` with its `required` columns ({name: 'numeric'|'tokens'|'time'|'any'}: NOT_BOOL_KINDS) present, the numeric
    ones finite numbers, and none but an 'any' one true/false (refuse_bool_cells; found in QA, a trace whose token
    columns were all True/False was read as 1- and 0-token requests, exit 0); an InputError names the column and the
    file's row (`first_row`: the file's number of df's first row)."""
    for col, kind in required.items():
        if col not in df.columns:
            raise InputError(str(p), col, f"missing column; expected columns {list(required)}, found {list(df.columns)}"
                             + near_column_hint(col, df.columns))
        if kind in NOT_BOOL_KINDS:
            refuse_bool_cells(df[col], str(p), col, kind, first_row)
        if kind in NUMERIC_KINDS:
            vals = pd.to_numeric(df[col], errors="coerce")
            bad = vals.isna() | ~vals.map(lambda v: pd.notna(v) and abs(v) != float("inf"))
            if bad.any():
                row = int(bad.idxmax())
                cell = df[col].iloc[row]
                said = "nothing" if pd.isna(cell) else repr(cell.item() if hasattr(cell, "item") else cell)
                raise InputError(str(p), col, f"expected a finite number on every row; row {row + first_row} has {said}")
            df[col] = vals
    return df


def check_writable(path: str | os.PathLike[str], option: str = "--output") -> None:
    """Refuse, before any work, an output path that is a directory or cannot be created.

    Probes the nearest existing ancestor with a temporary file (os.access says yes to root even
    where the file system says no); creates nothing that stays."""
    p = Path(path)
    if p.is_dir():
        raise InputError(str(p), option, "is a directory; expected a file path")
    if p.exists() and not os.access(p, os.W_OK):
        raise InputError(str(p), option, "the file exists and is not writable")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(str(p), option, f"cannot create it: '{parent}' is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=".planner-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputError(str(p), option, f"cannot write in '{parent}' ({exc.strerror})") from exc


def write_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write text so that readers see the old file or the whole new one, never a part
    (:func:`profiles.format.write_atomic`, the one atomic writer of the project, which the GPU-side
    profiler uses too); a path that cannot be written is an InputError naming it."""
    p = Path(path)
    if p.is_dir():
        raise InputError(str(p), None, "is a directory; expected a file path")

    def cannot_create(q: Path, exc: OSError) -> InputError:
        return InputError(str(q), None, f"cannot write the file ({exc.strerror})")

    pfmt.write_atomic(p, text, create_error=cannot_create)


def dump_yaml(data: object) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def write_model(path: str | os.PathLike[str], obj: BaseModel) -> None:
    """Write a schema model as YAML (or JSON when the path ends in .json), atomically."""
    data = obj.model_dump(mode="json")
    text = json.dumps(data, indent=2) if str(path).endswith(".json") else dump_yaml(data)
    write_atomic(path, text)


# Floats in written CSVs: 12 significant digits, so that a sum like 62.79 is not written 62.78999999999999 (binary
# rounding noise; found by hand at stop 54 in `planner whatif --csv`) while every planner figure keeps its precision.
CSV_FLOAT_FORMAT = "%.12g"


def write_csv_atomic(path: str | os.PathLike[str], df: pd.DataFrame) -> None:
    """`df` to `path` as CSV, all or nothing (`write_atomic`), floats per CSV_FLOAT_FORMAT."""
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format=CSV_FLOAT_FORMAT)
    write_atomic(path, buf.getvalue())
