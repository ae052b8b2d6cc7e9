"""Pair profiles: measurements of one prefill instance handing its KV cache to one decode instance (1P1D).

Layout (beside the variant profiles; ``iter_profiles`` only reads ``tp<N>/`` folders, so the two never mix):

    profiles/data/<model>/<prefill gpu>/pair-tp<P>-tp<D>/
        meta.yaml     PairMeta: model, gpu (prefill side), decode_gpu, prefill_tp, decode_tp, connector,
                      engine + version, kv_bytes_per_token (bytes of KV cache moved per prompt token),
                      backend (vllm | emulator), time_scale, the launch commands, date, notes
        handoff.csv   one row per unloaded request (sequential, nothing else running):
                      isl, repeat, ttft_ms, prefill_ms, kv_transfer_ms, first_decode_ms, itl_ms,
                      xfer_ms_connector (the connector's own transfer-time histogram delta; empty when
                      the connector exports none)
        load.csv      optional: latency under Poisson load, one row per (mode, rate):
                      mode (pd: through the 1P1D pair | mixed: one aggregated instance), rate_rps, isl,
                      osl, requests, ttft_ms_p50/p90/p99, itl_ms_p50/p90/p99

How TTFT is split (profiles/backends/pd_pair.py): ``prefill_ms`` = the proxy's prefill leg (request in
-> prefill answer, HTTP included); ``first_decode_ms`` = one decode step of this request at batch 1,
taken as the median gap of its own later tokens (the decode instance's first step computes one token
at the prompt's context, as every later step does); ``kv_transfer_ms`` = TTFT - prefill_ms -
first_decode_ms: the hand-off as the planner charges it (connector transfer + notification + the
second HTTP hop). A decode pair across GPU types keeps the prefill GPU in the path and names
``decode_gpu`` in meta.yaml.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from planner.io.errors import InputError

PAIR_DIR = re.compile(r"^pair-tp(\d+)-tp(\d+)$")
HANDOFF_COLUMNS = ("isl", "repeat", "ttft_ms", "prefill_ms", "kv_transfer_ms", "first_decode_ms", "itl_ms", "xfer_ms_connector")
LOAD_COLUMNS = ("mode", "rate_rps", "isl", "osl", "requests", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99",
                "itl_ms_p50", "itl_ms_p90", "itl_ms_p99")


class PairMeta(BaseModel):
    """What was measured and how: one pair directory's meta.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    gpu: str = Field(description="GPU type of the prefill instance (names the directory)")
    decode_gpu: str = Field(description="GPU type of the decode instance")
    prefill_tp: int = Field(gt=0)
    decode_tp: int = Field(gt=0)
    connector: str = Field(description="vLLM KV connector, e.g. P2pNcclConnector or NixlConnector")
    engine: str = "vllm"
    engine_version: str | None = None
    kv_bytes_per_token: int = Field(gt=0, description="KV-cache bytes moved per prompt token (whole model)")
    backend: str = Field(description="vllm (real servers) or emulator")
    time_scale: float = Field(default=1.0, gt=0, description="emulated servers: wall s per emulated s (1 = real time)")
    prefill_command: list[str] = Field(default_factory=list)
    decode_command: list[str] = Field(default_factory=list)
    date: str
    notes: str | None = None


@dataclass(frozen=True)
class PairProfile:
    path: Path
    meta: PairMeta
    handoff: pd.DataFrame
    load: pd.DataFrame | None = None


def pair_dir(root: str | os.PathLike[str], model: str, gpu: str, prefill_tp: int, decode_tp: int) -> Path:
    """Where the pair profile of (model, prefill gpu, P tp, D tp) lives under `root`."""
    return Path(root) / model / gpu / f"pair-tp{prefill_tp}-tp{decode_tp}"


def _read_csv(path: Path, columns: tuple[str, ...], required: tuple[str, ...]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(str(path), None, f"a CSV table with columns {', '.join(columns)} ({exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(str(path), missing[0], f"a column '{missing[0]}' (columns: {', '.join(columns)})")
    if df.empty:
        raise InputError(str(path), None, "at least one row")
    for c in required:
        if c == "mode":
            continue
        vals = pd.to_numeric(df[c], errors="coerce")
        if vals.isna().any() or (vals < 0).any():
            row = int(vals.index[(vals.isna() | (vals < 0))][0]) + 2
            raise InputError(str(path), f"{c} (line {row})", "a number >= 0")
        df[c] = vals
    return df


def load_pair_profile(directory: str | os.PathLike[str]) -> PairProfile:
    """Load and validate one pair directory (InputError naming the file and field on bad input)."""
    d = Path(directory)
    meta_path = d / "meta.yaml"
    try:
        raw = yaml.safe_load(meta_path.read_text())
    except OSError:
        raise InputError(str(meta_path), None, "a pair profile's meta.yaml (file not found)") from None
    except yaml.YAMLError as exc:
        raise InputError(str(meta_path), None, f"valid YAML ({exc})") from None
    try:
        meta = PairMeta.model_validate(raw)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise InputError(str(meta_path), ".".join(map(str, e["loc"])) or None, e["msg"]) from None
    handoff = _read_csv(d / "handoff.csv", HANDOFF_COLUMNS, ("isl", "ttft_ms", "prefill_ms", "kv_transfer_ms", "first_decode_ms"))
    load = None
    if (d / "load.csv").exists():
        load = _read_csv(d / "load.csv", LOAD_COLUMNS, LOAD_COLUMNS)
        bad = set(load["mode"]) - {"pd", "mixed"}
        if bad:
            raise InputError(str(d / "load.csv"), "mode", f"'pd' or 'mixed', got {sorted(bad)[0]!r}")
    return PairProfile(path=d, meta=meta, handoff=handoff, load=load)


def iter_pair_profiles(root: str | os.PathLike[str]) -> Iterator[PairProfile]:
    """Every pair profile under `root` (``<model>/<gpu>/pair-tp<P>-tp<D>/meta.yaml``), sorted; meta must match the path."""
    r = Path(root)
    if not r.is_dir():
        return
    for meta_path in sorted(r.glob("*/*/pair-tp*-tp*/meta.yaml")):
        d = meta_path.parent
        m = PAIR_DIR.match(d.name)
        if m is None:
            continue
        prof = load_pair_profile(d)
        expect = {"model": d.parent.parent.name, "gpu": d.parent.name, "prefill_tp": int(m.group(1)), "decode_tp": int(m.group(2))}
        for key, want in expect.items():
            if getattr(prof.meta, key) != want:
                raise InputError(str(meta_path), key, f"must match the directory layout <model>/<gpu>/pair-tp<P>-tp<D>: "
                                                      f"expected {want!r}, got {getattr(prof.meta, key)!r}")
        yield prof
