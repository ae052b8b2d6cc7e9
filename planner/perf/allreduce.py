"""Measured all-reduce time of tensor parallelism, per GPU type and group size.

The roofline prior (planner/perf/prior.py) charges tensor parallelism two all-reduces per layer. From
datasheets alone each costs a fixed latency plus ring bytes over the NVLink bandwidth; where
`profiles/data/allreduce/<gpu>/allreduce.csv` exists (measured by profiles/backends/allreduce.py),
the measured times replace that guess:

* for a measured group size n, the time of a message is interpolated in log-log between measured
  sizes (NCCL switches protocols with size, which a two-parameter law misses by up to ~2x in the
  1-8 MiB range); below the smallest size it is the smallest time (the latency floor); above the
  largest it grows at the fitted bus bandwidth;
* for a group size not measured (e.g. tp8 on a host of 4), the two-parameter law fitted on the
  largest measured group: t = latency + 2(n-1)/n * bytes / bus_bandwidth.

At each size the faster of the two modes is used: CUDA-graph replay where it was measured (vLLM
captures decode steps in graphs), eager launches for the sizes too large to capture.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from planner.io.errors import InputError
from planner.io.files import read_csv, read_yaml

REQUIRED_COLUMNS = ("n_gpus", "mode", "bytes", "time_us")


@dataclass(frozen=True)
class RingLaw:
    """t = latency_s + 2(n-1)/n * bytes / bus_bytes_per_s (the alpha-beta model of a ring all-reduce)."""

    n_gpus: int
    latency_s: float
    bus_bytes_per_s: float
    max_rel_err: float
    """Largest relative error of the law on the points it was fitted to."""

    def seconds(self, n_gpus: int, nbytes: np.ndarray) -> np.ndarray:
        return self.latency_s + 2.0 * (n_gpus - 1) / n_gpus * np.asarray(nbytes, dtype=float) / self.bus_bytes_per_s


@dataclass(frozen=True)
class AllReduceTable:
    """Measured all-reduce times of one GPU type: per group size, sizes (B) and seconds (fastest mode)."""

    gpu: str
    sizes: dict[int, tuple[np.ndarray, np.ndarray]]
    laws: dict[int, RingLaw] = field(default_factory=dict)
    source: str = ""

    def seconds(self, n_gpus: int, nbytes: np.ndarray | float) -> np.ndarray:
        """Time of one all-reduce of `nbytes` over `n_gpus` GPUs of this type."""
        b = np.asarray(nbytes, dtype=float)
        if n_gpus not in self.sizes:
            return self.laws[max(self.laws)].seconds(n_gpus, b)
        xs, ts = self.sizes[n_gpus]
        law = self.laws[n_gpus]
        inside = np.exp(np.interp(np.log(np.clip(b, xs[0], xs[-1])), np.log(xs), np.log(ts)))
        beyond = ts[-1] + 2.0 * (n_gpus - 1) / n_gpus * np.maximum(b - xs[-1], 0.0) / law.bus_bytes_per_s
        seconds: np.ndarray = np.where(b > xs[-1], beyond, inside)
        return seconds


def fit_ring(n_gpus: int, nbytes: np.ndarray, seconds: np.ndarray) -> RingLaw:
    """The alpha-beta law of one group size from its two ends: latency = the time of the smallest
    message, bus bandwidth = the slope between the two largest (both regimes a law must get right
    to extrapolate; the middle, where NCCL changes protocol, is interpolated instead)."""
    order = np.argsort(nbytes)
    x, t = np.asarray(nbytes, dtype=float)[order], np.asarray(seconds, dtype=float)[order]
    ring = 2.0 * (n_gpus - 1) / n_gpus
    slope = (t[-1] - t[-2]) / (ring * (x[-1] - x[-2]))
    law = RingLaw(n_gpus, float(t[0]), float(1.0 / slope) if slope > 0 else float("inf"), 0.0)
    err = np.abs(law.seconds(n_gpus, x) - t) / t
    return RingLaw(n_gpus, law.latency_s, law.bus_bytes_per_s, float(err.max()))


def table_from_frame(gpu: str, df: pd.DataFrame, where: str = "allreduce.csv") -> AllReduceTable:
    """Check a measurement table (columns n_gpus, mode, bytes, time_us) and fit it."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(where, missing[0], f"missing column; expected columns {', '.join(REQUIRED_COLUMNS)}")
    for col in ("n_gpus", "bytes", "time_us"):
        vals = pd.to_numeric(df[col], errors="coerce")
        if vals.isna().any() or (vals <= 0).any():
            raise InputError(where, col, "expected positive numbers in every row")
    best = df.groupby(["n_gpus", "bytes"], as_index=False)["time_us"].min()  # the faster mode at each size
    sizes, laws = {}, {}
    for n, g in best.groupby("n_gpus"):
        g = g.sort_values("bytes")
        xs, ts = g["bytes"].to_numpy(float), g["time_us"].to_numpy(float) * 1e-6
        if len(xs) < 2:
            raise InputError(where, "bytes", f"group size {n}: at least two message sizes are needed")
        sizes[int(n)] = (xs, ts)
        laws[int(n)] = fit_ring(int(n), xs, ts)
    return AllReduceTable(gpu, sizes, laws, source=where)


def load_allreduce(root: str | os.PathLike[str]) -> dict[str, AllReduceTable]:
    """Every `<root>/<gpu>/allreduce.csv` (with its meta.yaml naming the same gpu), keyed by GPU type."""
    out: dict[str, AllReduceTable] = {}
    r = Path(root)
    if not r.is_dir():
        return out
    for csv_path in sorted(r.glob("*/allreduce.csv")):
        meta_path = csv_path.parent / "meta.yaml"
        meta = read_yaml(meta_path) if meta_path.exists() else {}
        gpu = meta.get("gpu", csv_path.parent.name) if isinstance(meta, dict) else csv_path.parent.name
        if gpu != csv_path.parent.name:
            raise InputError(str(meta_path), "gpu", f"must match the directory name '{csv_path.parent.name}', got '{gpu}'")
        df = read_csv(csv_path, {"n_gpus": "numeric", "mode": "any", "bytes": "numeric", "time_us": "numeric"})
        out[gpu] = table_from_frame(gpu, df, str(csv_path))
    return out


__all__ = ["AllReduceTable", "RingLaw", "fit_ring", "load_allreduce", "table_from_frame"]
