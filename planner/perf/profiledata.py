"""Profile directories: ``<root>/<model>/<gpu>/tp<N>[-fp8][-kvfp8]/[vllm/]`` with meta.yaml, prefill.csv,
decode.csv [, mixed.csv].

The variant directory ``tp<N>[-fp8][-kvfp8]`` names the tensor-parallel size and the precision
(``-fp8``: FP8 weights, ``-kvfp8``: FP8 KV cache; none: bf16/bf16), which meta.yaml's ``tp``,
``weight_dtype`` and ``kv_dtype`` must match. A ``vllm/`` subfolder holds a profile measured on real
vLLM beside the torch-reference one in the variant directory itself; both load, and the
performance model prefers the vLLM one (:func:`law_source`, :data:`LAW_PREFERENCE`).

Formats (DESIGN.md "Profiler's directory format"; file names, columns and meta keys are defined once in
:mod:`profiles.format`, which the profiler writes with), tidy tables with one row per measurement:

- ``meta.yaml``   -> :class:`ProfileMeta` (engine, flags, KV capacity, who/what measured it).
- ``prefill.csv`` -> columns ``isl, batch, ttft_ms``: time to prefill `batch` prompts of `isl` tokens
  in one forward pass. Rows are samples (several rows per point) unless a ``stat`` column
  (``median``/``mean``/``p90``/``sample`` ...) or a numeric ``percentile`` column says otherwise.
- ``decode.csv``  -> columns ``batch, context_tokens, itl_ms``: one decode step of `batch` sequences
  whose mean context is `context_tokens`; same optional ``stat``/``percentile`` column.
- ``mixed.csv``   -> optional, columns ``batch, context_tokens, prefill_tokens, itl_ms`` (a decode step
  carrying a chunk of `prefill_tokens` prompt tokens: chunked-prefill interference).

The loader rejects what would silently poison a fit: missing columns, NaN/inf/negative values,
non-integer sizes, and measurements that FALL by more than :data:`MONOTONE_TOLERANCE` as isl,
batch or context grows (latency is physically non-decreasing in work; a larger drop means mixed-up
rows or a broken run). Each error names file, column, CSV line and the expectation.
Writers replace each file atomically; meta.yaml is written last, so a directory with a meta.yaml
whose data files parse is complete.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from planner.io.errors import InputError, shown
from planner.io.files import parse_model, read_csv, read_yaml
from planner.io.schema import LawSource, parse_tp_part, precision_suffix
from profiles import format as pfmt
from profiles.format import CENTRAL_STATS, DECODE, MIXED, PREFILL, VLLM_SUBDIR, TableFormat

# Allowed drop of a point's central latency below the largest one at smaller work before the file is
# rejected. Repeats of one point agree within ~2% (Splitwise's five repeats), but neighbouring points
# of real runs do wobble more where fixed overheads dominate: Splitwise H100 tp8 prefill has a median
# of 58.2 ms at isl 128 and 51.7 ms at isl 256 (-11%). 15% keeps such real data and still rejects
# mixed-up rows and broken runs (e.g. Splitwise's tp2 batch-64 points, -88% and -19%).
MONOTONE_TOLERANCE = 0.15



class ProfileMeta(BaseModel):
    """What was measured and how: one profile directory's meta.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    gpu: str
    tp: int = Field(gt=0)
    engine: str = Field(description="serving engine, e.g. 'vllm'")
    engine_version: str | None = None
    engine_flags: list[str] = Field(default_factory=list, description="command-line flags the engine ran with")
    engine_env: dict[str, str] = Field(
        default_factory=dict, description="the engine's own environment settings it ran with (vLLM: its VLLM_* "
                                          "variables, e.g. VLLM_MOE_ROUTING_SIMULATION_STRATEGY), which change what is "
                                          "measured as much as a flag")
    kv_capacity_tokens: int = Field(gt=0, description="KV-cache capacity of one replica, tokens")
    kv_capacity_note: str | None = Field(default=None, description="how kv_capacity_tokens was obtained")
    max_num_seqs: int = Field(default=256, gt=0, description="engine's max concurrent sequences (vLLM default 256)")
    max_batched_tokens: int = Field(default=8192, gt=0, description="engine's token budget per step (vLLM V1 default 8192)")
    date: str = Field(description="ISO date of the measurement")
    backend: str = Field(description="what measured it, e.g. 'vllm' or 'torch' or a cited data set")
    source: str | None = Field(default=None, description="citation of external data")
    device_name: str | None = Field(default=None, description="device name as reported by the driver")
    weight_dtype: Literal["bf16", "fp8"] = Field(default="bf16", description="weight precision (precision contract)")
    kv_dtype: Literal["bf16", "fp8"] = Field(default="bf16", description="KV-cache precision (precision contract; bf16 = vLLM 'auto')")
    notes: str | None = None
    calibrate: bool = Field(
        default=True, description="false: the profile plans its own variant, but the roofline prior is not calibrated "
                                  "on it (calibrate_note says why, e.g. the engine ran without tuned kernels for this "
                                  "shape, so its efficiency is not the tuned kernels' the prior describes)")
    calibrate_note: str | None = Field(default=None, description="why calibrate is false")


LAW_PREFERENCE: tuple[LawSource, ...] = ("measured-vllm", "measured", "measured-torch", "splitwise")
"""Which profile of a variant the performance model uses when several exist, best first: the engine
that is deployed (vLLM) over other engines over the torch reference decoder (no scheduler, slower
attention than vLLM's kernels) over the Splitwise data set (2023 engine, no vLLM V1)."""


def law_source(meta: ProfileMeta) -> LawSource:
    """What measured a profile, in the plan's words (measured-vllm, measured-torch, splitwise, measured)."""
    b = meta.backend.strip().lower()
    if b == "vllm":
        return "measured-vllm"
    if b in ("torch", "torch-ref"):
        return "measured-torch"
    if b.startswith("splitwise"):
        return "splitwise"
    return "measured"


@dataclass(frozen=True)
class Profile:
    """One loaded, validated profile directory."""

    path: Path
    meta: ProfileMeta
    prefill: pd.DataFrame
    decode: pd.DataFrame
    mixed: pd.DataFrame | None = None


def profile_dir(root: str | os.PathLike[str], model: str, gpu: str, tp: int, weight_dtype: str = "bf16",
                kv_dtype: str = "bf16", vllm: bool = False) -> Path:
    """Where the profile of (model, gpu, tp, weight dtype, KV dtype) lives under `root`
    (its ``vllm/`` subfolder with `vllm`)."""
    d = Path(root) / model / gpu / f"tp{tp}{precision_suffix(weight_dtype, kv_dtype)}"
    return d / VLLM_SUBDIR if vllm else d


# --------------------------------------------------------------------------- validation
def _check_values(df: pd.DataFrame, path: Path, positive: tuple[str, ...], integral: tuple[str, ...]) -> None:
    for col in positive:
        bad = df[col] <= 0
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(str(path), col, f"expected a positive number; line {i + 2} has {shown(df[col].iloc[i])}")
    for col in integral:
        bad = df[col] != df[col].round()
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(str(path), col, f"expected a whole number; line {i + 2} has {shown(df[col].iloc[i])}")


def _stat_groups(df: pd.DataFrame, path: Path) -> list[pd.DataFrame]:
    """Split rows by statistic (each statistic must be monotone on its own); samples form one group."""
    if "stat" in df.columns and "percentile" in df.columns:
        raise InputError(str(path), "stat", "give either a 'stat' or a 'percentile' column, not both")
    if "percentile" in df.columns:
        pct = pd.to_numeric(df["percentile"], errors="coerce")
        bad = pct.isna() | (pct <= 0) | (pct >= 100)
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(str(path), "percentile", f"expected a number in (0, 100); line {i + 2} has {shown(df['percentile'].iloc[i])}")
        return [g for _, g in df.groupby(pct, sort=True)]
    if "stat" in df.columns:
        s = df["stat"].astype(str).str.strip().str.lower()
        return [df[s == k] for k in s.unique() if k != "sample"] + ([df[s == "sample"]] if (s == "sample").any() else [])
    return [df]


def _check_monotone(df: pd.DataFrame, path: Path, axes: tuple[str, str], value: str) -> None:
    """Central latency must not fall > MONOTONE_TOLERANCE along either axis, the other held fixed."""
    for grp in _stat_groups(df, path):
        points = grp.groupby(list(axes), sort=True)[value].median()
        first_line = grp.groupby(list(axes), sort=True).apply(lambda g: int(g.index[0]) + 2, include_groups=False)
        for moving, fixed in ((axes[0], axes[1]), (axes[1], axes[0])):
            for fixed_val, series in points.groupby(level=fixed):
                s = series.droplevel(fixed).sort_index()
                running = -1.0
                prev_at = None
                for x, v in s.items():
                    if running > 0 and v < (1.0 - MONOTONE_TOLERANCE) * running:
                        key = (x, fixed_val) if moving == axes[0] else (fixed_val, x)
                        raise InputError(
                            str(path),
                            value,
                            f"expected {value} not to fall as {moving} grows ({fixed}={fixed_val:g}): line "
                            f"{first_line.loc[key]} ({moving}={x:g}) has median {v:.4g}, more than "
                            f"{MONOTONE_TOLERANCE:.0%} below {running:.4g} at {moving}={prev_at:g}",
                        )
                    if v > running:
                        running, prev_at = float(v), x


def _read_table(path: Path, table: TableFormat) -> pd.DataFrame:
    columns = table.required
    df = read_csv(path, {c: "numeric" for c in columns})
    if df.empty:
        raise InputError(str(path), None, f"expected at least one measurement row with columns {list(columns)}")
    sizes = table.sizes
    positive = columns if "prefill_tokens" not in columns else tuple(c for c in columns if c != "prefill_tokens")
    _check_values(df, path, positive=positive, integral=sizes)
    if "prefill_tokens" in columns and (df["prefill_tokens"] < 0).any():
        i = int((df["prefill_tokens"] < 0).to_numpy().nonzero()[0][0])
        raise InputError(str(path), "prefill_tokens", f"expected a number >= 0; line {i + 2} has {shown(df['prefill_tokens'].iloc[i])}")
    for c in sizes:
        df[c] = df[c].astype(int)
    if table.axes is not None:
        _check_monotone(df, path, table.axes, table.value)
    return df


def read_prefill(path: str | os.PathLike[str]) -> pd.DataFrame:
    return _read_table(Path(path), PREFILL)


def read_decode(path: str | os.PathLike[str]) -> pd.DataFrame:
    return _read_table(Path(path), DECODE)


def read_mixed(path: str | os.PathLike[str]) -> pd.DataFrame:
    return _read_table(Path(path), MIXED)


def read_meta(path: str | os.PathLike[str]) -> ProfileMeta:
    return parse_model(ProfileMeta, read_yaml(path), str(path))


_PARSED_MAX = 256
"""Profiles whose parse is kept (a few dozen are bundled; the bound keeps a long-running process's memory flat)."""
_parsed: dict[bytes, Profile] = {}
"""The files' bytes' digest -> the profile parsed and validated from them (load_profile's memo)."""


def _files_digest(d: Path) -> bytes | None:
    """Digest of a profile directory's files' bytes (None when a required one is missing: the parse reports it)."""
    h = hashlib.blake2b(digest_size=20)
    for name in (pfmt.META_FILE, PREFILL.file, DECODE.file, MIXED.file):
        f = d / name
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            if name != MIXED.file:
                return None
            h.update(name.encode() + b"\0absent")  # not the digest of an empty file, which fails its parse
            continue
        except OSError:
            return None
        h.update(name.encode() + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.digest()


def _copy_profile(p: Profile, d: Path) -> Profile:
    """A profile no caller shares: its own tables and meta (a caller may change what it got)."""
    return Profile(path=d, meta=p.meta.model_copy(deep=True), prefill=p.prefill.copy(), decode=p.decode.copy(),
                   mixed=None if p.mixed is None else p.mixed.copy())


def load_profile(directory: str | os.PathLike[str]) -> Profile:
    """Load and validate one profile directory (meta.yaml, prefill.csv, decode.csv, optional mixed.csv).

    Parsing and checking the tables is most of the laws' loading (PerfModel.load, ~0.3 of its ~0.6 s on the bundled
    profiles), and a process loads the same files again and again (the CLI's commands, the controller's re-plans, the
    tests): the parse is kept per digest of the files' bytes, so a changed file is parsed anew, and every call gets
    its own copy. A file that fails its checks is never kept (the error is raised each time)."""
    d = Path(directory)
    key = _files_digest(d)
    if key is not None and key in _parsed:
        return _copy_profile(_parsed[key], d)
    meta = read_meta(d / pfmt.META_FILE)
    mixed = read_mixed(d / MIXED.file) if (d / MIXED.file).is_file() else None
    prof = Profile(path=d, meta=meta, prefill=read_prefill(d / PREFILL.file), decode=read_decode(d / DECODE.file), mixed=mixed)
    if key is not None and _files_digest(d) == key:  # kept only if no file changed while it was parsed
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()
        _parsed[key] = _copy_profile(prof, d)
    return prof


def iter_profiles(root: str | os.PathLike[str]) -> Iterator[Profile]:
    """Every profile under `root` (``<model>/<gpu>/tp<N>[-fp8][-kvfp8]/[vllm/]meta.yaml``), sorted;
    meta must match the path (model, gpu, tp, weight and KV dtype; ``vllm/`` holds backend vllm)."""
    r = Path(root)
    if not r.is_dir():
        raise InputError(str(r), None, "profile root directory not found")
    found = list(r.glob(f"*/*/tp*/{pfmt.META_FILE}")) + list(r.glob(f"*/*/tp*/{VLLM_SUBDIR}/{pfmt.META_FILE}"))
    for meta_path in sorted(found):
        d = meta_path.parent
        in_vllm = d.name == VLLM_SUBDIR
        variant_dir = d.parent if in_vllm else d
        try:
            tp, w, kv = parse_tp_part(variant_dir.name)
        except ValueError:
            continue
        prof = load_profile(d)
        expect = {"model": variant_dir.parent.parent.name, "gpu": variant_dir.parent.name, "tp": tp,
                  "weight_dtype": w, "kv_dtype": kv}
        for key, want in expect.items():
            got = getattr(prof.meta, key)
            if got != want:
                raise InputError(str(meta_path), key, "must match the directory layout <model>/<gpu>/tp<N>[-fp8][-kvfp8]: "
                                                      f"expected {want!r}, got {got!r}")
        if in_vllm and law_source(prof.meta) != "measured-vllm":
            raise InputError(str(meta_path), "backend", f"a profile under {VLLM_SUBDIR}/ must have backend 'vllm', got {prof.meta.backend!r}")
        yield prof


def central_points(df: pd.DataFrame, axes: list[str], value: str) -> pd.DataFrame:
    """One central value per measurement point: the median of samples, or the median/p50/mean row.

    Returns columns ``axes + [value, 'n']`` (n = samples behind the point). Used by the fits.
    """
    rows = df
    if "percentile" in df.columns:
        pct = pd.to_numeric(df["percentile"], errors="coerce")
        if not (pct == 50).any():
            raise InputError(None, "percentile", f"no percentile=50 rows to fit {value} on; found {sorted(pct.unique())}")
        rows = df[pct == 50]
    elif "stat" in df.columns:
        s = df["stat"].astype(str).str.strip().str.lower()
        for k in (*CENTRAL_STATS, "sample"):
            if (s == k).any():
                rows = df[s == k]
                break
        else:
            raise InputError(None, "stat", f"no central rows ({', '.join(CENTRAL_STATS)} or sample) to fit {value} on")
    g = rows.groupby(axes, sort=True)[value]
    out = g.median().to_frame(value)
    out["n"] = g.size()
    return out.reset_index()


# --------------------------------------------------------------------------- writing
def _rows(df: pd.DataFrame) -> list[pfmt.Row]:
    """A table's rows for profiles.format, a missing value (NaN, None) left out as pandas' to_csv does."""
    return [{str(k): v for k, v in rec.items() if not (v is None or (isinstance(v, float) and math.isnan(v)))}
            for rec in df.to_dict("records")]


def write_profile(
    directory: str | os.PathLike[str],
    meta: ProfileMeta,
    prefill: pd.DataFrame,
    decode: pd.DataFrame,
    mixed: pd.DataFrame | None = None,
) -> Path:
    """Write a profile directory with :func:`profiles.format.write_profile_dir` (each file atomically,
    meta.yaml last; every column of the frames, floats as pandas writes them). Returns the directory."""
    d = Path(directory)
    frames = {t: df for t, df in ((PREFILL, prefill), (DECODE, decode), (MIXED, mixed)) if df is not None}
    for table, df in frames.items():
        missing = [c for c in table.required if c not in df.columns]
        if missing:
            raise InputError(str(d / table.file), missing[0], f"refusing to write: missing columns {missing}")
    return pfmt.write_profile_dir(
        d, meta.model_dump(mode="json", exclude_none=True), _rows(prefill), _rows(decode),
        _rows(mixed) if mixed is not None else None,
        columns={t.file: [str(c) for c in df.columns] for t, df in frames.items()}, float_digits=None)
