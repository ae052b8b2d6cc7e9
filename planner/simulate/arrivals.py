"""Request arrivals for the simulator: Poisson (or clustered) processes of a Workload's classes, or a trace.

A class with `burstiness` (planner.io.schema.Burstiness) gets over-dispersed arrivals from
:func:`clustered_times` with its rate and 1-second IDC instead of a Poisson process.
Both give an :class:`Arrivals` record of parallel numpy arrays sorted by time. Poisson classes draw
exponential gaps with the class rate and use the class's mean lengths (the planner's view of a
class), or draw prompts (and outputs: `osl_scv`) from its length law where it states one (`isl_scv`, `isl_max`:
planner/planning/lengths.py); a trace keeps each request's own lengths, and maps it to a class by its ``class_id`` column
or else to the nearest (log isl, log osl) class of its model (:func:`planner.io.traces.assign_classes`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from planner.io.errors import InputError, shown
from planner.io.files import near_column_hint, refuse_bool_cells
from planner.io.schema import Workload
from planner.io.traces import padded_model_column, padded_model_text, parse_datetimes, to_product_columns, unread_time_row
from planner.planning.lengths import draw_prompt_lengths

# Simulated seconds of Poisson arrivals of a workload when no duration is given (`planner simulate --workload`,
# `planner.simulate_plan`); a trace's default is all of it.
DEFAULT_WORKLOAD_DURATION_S = 600.0
# Most requests one simulation holds. The simulator keeps every request's record (~1 kB each with its
# events and report row, measured with tracemalloc on the default plan), so 2e6 requests is ~2 GB:
# what a 2-core CI machine with 8 GB can afford beside the test suite.
MAX_SIM_REQUESTS = 2_000_000


def over_request_limit(duration_s: float, rate_rps: float) -> str | None:
    """What to say of `duration_s` seconds of Poisson arrivals at `rate_rps` beyond MAX_SIM_REQUESTS (the duration,
    the requests it draws, the limit, the longest that fits); None within it. One wording for `planner simulate
    --duration` and `planner.simulate_plan(duration_s=...)`, each raising its own error with it."""
    expected = duration_s * rate_rps
    if expected <= MAX_SIM_REQUESTS:
        return None
    most = MAX_SIM_REQUESTS / max(rate_rps, 1e-12)
    return (f"{duration_s:g} s at the workload's {rate_rps:g} req/s is ~{expected:,.0f} requests, over the simulator's "
            f"limit of {MAX_SIM_REQUESTS:,} (bounded memory); expected at most {most:,.0f} s")


@dataclass(frozen=True)
class Arrivals:
    """Requests sorted by arrival time; `cls` indexes `class_ids`."""

    t_s: np.ndarray
    cls: np.ndarray
    isl: np.ndarray
    osl: np.ndarray
    class_ids: tuple[str, ...]
    window_s: float | None = None
    """The seconds the arrivals were drawn or cut over ([0, window_s): Poisson draws of a duration, a trace's first
    --duration seconds); None: the last arrival's time (`duration_s`)."""

    def __len__(self) -> int:
        return int(self.t_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.t_s[-1]) if len(self) else 0.0

    @property
    def span_s(self) -> float:
        """The seconds the arrivals stand for (rates and goodput are per second of it): `window_s` where known, else the
        last arrival's time (found in QA: 2 requests drawn over 0.05 s read 49.18 req/s of goodput, over the last
        arrival's 0.041 s, and one request a 1-ms cut of a trace kept 1,000,000,000 req/s, over the 1e-9 s floor)."""
        return self.window_s if self.window_s is not None else self.duration_s


# Spread of a cluster's members around its start (mean of the exponential offsets), s: well under
# the 1 s window at which `Burstiness.idc_1s` is measured, so the generated 1-s IDC is close to
# the target, yet not zero (real clusters are sub-second bursts, not simultaneous arrivals).
CLUSTER_SPREAD_S = 0.1


def clustered_times(rate_rps: float, idc: float, duration_s: float, rng: np.random.Generator,
                    spread_s: float = CLUSTER_SPREAD_S) -> np.ndarray:
    """Sorted arrival times over [0, duration_s) with mean rate `rate_rps` and index of dispersion
    of 1-s counts `idc` (seeded by `rng`).

    idc >= 1: a Neyman-Scott cluster process. Cluster starts are Poisson at rate λ/m; a cluster
    has B ~ Geometric(1/m) members on {1, 2, ...} (mean m, E[B²] = 2m² - m), each at the start
    plus an Exponential(spread_s) offset. Counts over a window w >> spread_s are compound
    Poisson, IDC∞ = E[B²]/E[B] = 2m - 1 (idc = 1: plain Poisson); m is set so that the 1-s
    IDC, slightly lower than IDC∞ for the spread, is `idc`.
    idc < 1: a gamma renewal process of shape k = 1/idc (more regular than Poisson), whose
    counts have asymptotic IDC = ca2 = 1/k.
    """
    if rate_rps <= 0 or duration_s <= 0:
        return np.empty(0)
    if idc < 1.0:
        k = 1.0 / idc
        n = int(rate_rps * duration_s * 1.2 + 10.0 * np.sqrt(rate_rps * duration_s) + 10)  # enough gaps
        t = np.cumsum(rng.gamma(k, 1.0 / (k * rate_rps), n)) - rng.uniform(0.0, 1.0 / rate_rps)
        return t[(t >= 0.0) & (t < duration_s)]
    # Two members of a cluster differ by a Laplace(spread_s) offset; they share a 1-s window with
    # probability f = E[(1 - |D|/w)+] = 1 - (s/w)(1 - e^(-w/s)), so the 1-s IDC is 1 + (IDC∞ - 1)·f:
    # aim IDC∞ at 1 + (idc - 1)/f to hit `idc` at the 1 s scale where it is measured.
    f = 1.0 - spread_s * (1.0 - np.exp(-1.0 / spread_s)) if spread_s > 0 else 1.0
    m = (1.0 + (idc - 1.0) / f + 1.0) / 2.0
    # starts before 0 as well, so the window's beginning sees clusters in progress (stationarity)
    lead_s = 10.0 * spread_s
    starts = rng.uniform(-lead_s, duration_s, rng.poisson(rate_rps / m * (duration_s + lead_s)))
    sizes = rng.geometric(1.0 / m, starts.size)
    t = np.repeat(starts, sizes) + rng.exponential(spread_s, int(sizes.sum()))
    return np.sort(t[(t >= 0.0) & (t < duration_s)])


def retime_clustered(t_s: np.ndarray, idc: float, rng: np.random.Generator, window_s: float = 60.0,
                     spread_s: float = CLUSTER_SPREAD_S) -> np.ndarray:
    """New arrival times for a trace's requests: the same count in every `window_s` window (its
    minute-scale trend kept), re-timed inside the window into clusters of 1-s IDC about `idc`.

    Per window of n requests: cluster sizes B ~ Geometric(1/m) (m as in `clustered_times`, so the
    1-s IDC is `idc`) are drawn until they hold n (the last one cut), each cluster starts uniformly
    in the window and its members follow at Exponential(`spread_s`) offsets, wrapped into the
    window. idc <= 1 re-times uniformly within the window (Poisson given the count). Returns
    sorted times; give them to the requests in their original order (the lengths are kept).
    Used to make a clustered version of a real trace reproducible (bench/burst_sizing.py
    --retime-idc), as the issue's "Azure trace in clusters" case."""
    t = np.asarray(t_s, dtype=float)
    if t.size == 0:
        return t.copy()
    win = np.floor(t / window_s).astype(np.int64)  # windows anchored at 0, as the trace's t_s
    if win.min() < 0:
        raise ValueError("retime_clustered expects times >= 0")
    counts = np.bincount(win)
    f = 1.0 - spread_s * (1.0 - np.exp(-1.0 / spread_s)) if spread_s > 0 else 1.0
    m = (1.0 + (idc - 1.0) / f + 1.0) / 2.0 if idc > 1.0 else 1.0
    out = []
    for w, n in enumerate(counts):
        if n == 0:
            continue
        lo = w * window_s
        if m <= 1.0:
            out.append(lo + rng.uniform(0.0, window_s, n))
            continue
        sizes: list[int] = []
        while sum(sizes) < n:
            sizes.extend(rng.geometric(1.0 / m, max(1, int(n / m) + 1)).tolist())
        sz = np.array(sizes)
        keep = np.searchsorted(np.cumsum(sz), n) + 1
        sz = sz[:keep]
        sz[-1] -= int(sz.sum()) - int(n)
        starts = rng.uniform(0.0, window_s, sz.size)
        off = np.repeat(starts, sz) + rng.exponential(spread_s, int(n))
        out.append(lo + np.mod(off, window_s))
    return np.sort(np.concatenate(out))


def poisson_arrivals(workload: Workload, duration_s: float, rng: np.random.Generator) -> Arrivals:
    """Independent arrivals of every class over [0, duration_s): Poisson, or clustered
    (`clustered_times`) for a class with `burstiness`."""
    if not (math.isfinite(duration_s) and duration_s > 0):  # NaN passed "<= 0" into numpy (stop 49)
        raise InputError(None, "duration", f"expected a positive finite duration in seconds, got {duration_s}")
    ts, cs, ls, os_ = [], [], [], []
    for k, c in enumerate(workload.classes):
        if c.rate_rps <= 0:
            continue
        if c.burstiness is not None:
            t_k = clustered_times(c.rate_rps, c.burstiness.idc_1s, duration_s, rng)
        else:
            # given the count, Poisson arrival times are uniform order statistics
            t_k = np.sort(rng.uniform(0.0, duration_s, rng.poisson(c.rate_rps * duration_s)))
        ts.append(t_k)
        cs.append(np.full(t_k.size, k, dtype=np.int64))
        # the class's prompt-length law (planner/planning/lengths.py); without isl_scv every prompt is isl
        # long and no random number is drawn, so such workloads replay as before
        ls.append(draw_prompt_lengths(c.isl, c.isl_scv, c.isl_max, t_k.size, rng))
        # and its outputs from their law where it states one (osl_scv; log-normal of that mean and scv, unclipped)
        os_.append(draw_prompt_lengths(c.osl, c.osl_scv, None, t_k.size, rng) if c.osl_scv else np.full(t_k.size, c.osl, dtype=np.int64))
    ids = tuple(c.id for c in workload.classes)
    if not ts:
        raise InputError(None, "classes", "every class has rate 0: nothing to simulate")
    t = np.concatenate(ts)
    cl = np.concatenate(cs)
    order = np.argsort(t, kind="stable")
    t, cl = t[order], cl[order]
    isl = np.concatenate(ls)[order]
    osl = np.concatenate(os_)[order]
    return Arrivals(t, cl, isl, osl, ids, window_s=duration_s)


def normalise_trace(df: pd.DataFrame, source: str = "<trace>", model: str | None = None) -> pd.DataFrame:
    """A trace DataFrame in any column convention planner.io.traces reads -> columns t_s, model, input_tokens,
    output_tokens (+ class_id when given). Accepts `timestamp` (seconds or date-times) or one `timestamp_<unit>` of
    planner.io.traces.TIMESTAMP_UNITS_S (numbers in that unit), Azure's `TIMESTAMP`,
    `ContextTokens`, `GeneratedTokens`, BurstGPT's `Timestamp`, `Request tokens`, `Response tokens` (its `Model`, the
    upstream service, is not read) or Mooncake's `timestamp` (ms), `input_length`, `output_length`. Empty or unsorted
    traces are an InputError."""
    d = to_product_columns(df)
    if "t_s" in d.columns and "timestamp" not in d.columns:
        d = d.rename(columns={"t_s": "timestamp"})
    for col in ("timestamp", "input_tokens", "output_tokens"):
        if col not in d.columns:
            raise InputError(source, col, "missing column; expected timestamp, input_tokens, output_tokens (or an Azure, "
                             f"BurstGPT or Mooncake trace's columns), found {list(df.columns)}" + near_column_hint(col, df.columns))
    if d.empty:
        raise InputError(source, None, "the trace has no requests")
    # True/False would count as times 0 and 1 s and as 1 and 0 tokens (planner.io.files.check_columns' check)
    for col, kind in (("timestamp", "time"), ("input_tokens", "tokens"), ("output_tokens", "tokens")):
        refuse_bool_cells(d[col], source, col, kind, first_row=0)
    ts = d["timestamp"]
    if pd.api.types.is_numeric_dtype(ts):
        t = ts.to_numpy(dtype=float)
    else:
        parsed = parse_datetimes(ts)
        if parsed.isna().any():
            row = unread_time_row(ts, parsed)
            raise InputError(source, "timestamp", f"expected seconds or a date-time; row {row} has {ts.iloc[row]!r}")
        t = (parsed - parsed.iloc[0]).dt.total_seconds().to_numpy()
    if not np.all(np.isfinite(t)):
        raise InputError(source, "timestamp", "expected finite times")
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size:
        i = int(back[0]) + 1
        raise InputError(source, "timestamp",
                         f"expected a trace sorted by time; row {i} ({t[i]:.3f} s) is earlier than row {i - 1} ({t[i - 1]:.3f} s)")
    for col in ("input_tokens", "output_tokens"):
        v = pd.to_numeric(d[col], errors="coerce")
        if v.isna().any() or (v < 0).any():
            row = int((v.isna() | (v < 0)).to_numpy().argmax())
            raise InputError(source, col, f"expected token counts >= 0; row {row} has {shown(d[col].iloc[row])}")
    out = pd.DataFrame({
        "t_s": t - t[0],
        "input_tokens": np.maximum(d["input_tokens"].to_numpy(dtype=np.int64), 1),
        "output_tokens": np.maximum(d["output_tokens"].to_numpy(dtype=np.int64), 1),
    })
    if "model" in d.columns:
        if padded := padded_model_text(d["model"], lambda pos: pos):
            raise InputError(source, "model", padded)
        out["model"] = d["model"].astype(str).to_numpy()
    elif padded := padded_model_column(d.columns, "model"):  # its models would be unread (read_trace's check)
        raise InputError(source, "model", padded)
    elif model is not None:
        out["model"] = model
    else:
        raise InputError(source, "model", "the trace has no model column and no model was given")
    if "class_id" in d.columns:
        out["class_id"] = d["class_id"].astype(str).to_numpy()
    return out


def trace_arrivals(trace: pd.DataFrame, workload: Workload, source: str = "<trace>", model: str | None = None,
                   duration_s: float | None = None) -> Arrivals:
    """Arrivals of a trace (either column convention); requests are mapped to the workload's classes."""
    from planner.io.traces import assign_classes

    df = normalise_trace(trace, source, model)
    # the arrivals stand for the first duration_s seconds where the trace runs past them, else for the trace's own span
    window = duration_s if duration_s is not None and bool((df["t_s"] >= duration_s).any()) else None
    if duration_s is not None:
        df = df[df["t_s"] < duration_s].reset_index(drop=True)
        if df.empty:
            raise InputError(source, "duration", f"no request in the first {duration_s} s of the trace")
    models = set(workload.models)
    unknown = sorted(set(df["model"]) - models)
    if unknown:
        raise InputError(source, "model", f"trace models {unknown} are not in the plan/workload (known: {sorted(models)})")
    ids = tuple(c.id for c in workload.classes)
    index = {c: i for i, c in enumerate(ids)}
    if "class_id" in df.columns:
        bad = sorted(set(df["class_id"]) - set(ids))
        if bad:
            raise InputError(source, "class_id", f"unknown classes {bad[:5]} (known: {list(ids)})")
        cid = df["class_id"].to_numpy()
    else:
        cid = assign_classes(df, workload)
    cls = np.array([index[c] for c in cid], dtype=np.int64)
    return Arrivals(df["t_s"].to_numpy(dtype=float), cls, df["input_tokens"].to_numpy(dtype=np.int64),
                    df["output_tokens"].to_numpy(dtype=np.int64), ids, window_s=window)
