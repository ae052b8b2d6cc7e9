"""What a simulation says: per-request records, per-class percentiles and SLO attainment, pool timelines.

A request *meets SLO* when it finished and every bound of its class's SLO holds for it (TTFT, and
its mean ITL). Attainment = met / arrived (rejected and unfinished requests count as missed);
goodput = met requests per second of arrivals. A class's SLO *holds* when attainment >= the SLO's
percentile (an SLO "p90 <= X" claims that 90% of requests are within X).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from planner.io.schema import Slo

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from planner.simulate.fleet import FleetSimulator

PERCENTILES = (50, 90, 99)


@dataclass
class SimReport:
    requests: pd.DataFrame
    """One row per request: class_id, t_arr_s, isl, osl, prefill/decode pool, ttft_ms, itl_ms, e2e_ms,
    queue_ms (prefill-side wait), prefill_ms (prefill service), kv_wait_ms (KV arrived -> admitted to decode), met_slo, finished, rejected."""
    classes: pd.DataFrame
    """One row per class: count, TTFT/ITL/e2e p50/p90/p99 (ms; ITL over the requests of more than one output token,
    NaN where none has), SLO bounds, attainment, goodput_rps, slo_holds."""
    pools: pd.DataFrame
    """Pool timelines: t_s, pool_id, role, replicas, starting, running, waiting, kv_usage, utilization, preemptions
    (cumulative over the pool's replicas: mixed replicas with on-demand KV, planner/simulate/engine.py)."""
    duration_s: float
    """Simulated time until the last request finished (or the drain limit)."""
    events: int
    arrivals_s: float = 0.0
    """Span of the arrivals, seconds (goodput is per second of this)."""

    def pool_summary(self) -> pd.DataFrame:
        """Per pool: mean utilization, mean and max queue, mean and max KV usage over the run, and its preemptions.

        Utilization is the mean over the samples after t = 0: a sample's utilization is the busy share of the interval
        before it, and the one at t = 0 closes no interval (it reads 0 whatever the load). Found in QA: counted, it read
        a prefill pool busy 20% low on 30 s of arrivals (one of 5 samples) and 0% on 5 s; NaN where the run ended before
        the first interval closed."""
        if self.pools.empty:
            return pd.DataFrame()
        g = self.pools.groupby("pool_id")
        measured = self.pools[self.pools["t_s"] > 0].groupby("pool_id")["utilization"].mean()
        return pd.DataFrame({
            "role": g["role"].first(),
            "replicas": g["replicas"].max(),
            "utilization": measured.reindex(g["role"].first().index),
            "queue_mean": g["waiting"].mean(),
            "queue_max": g["waiting"].max(),
            "kv_mean": g["kv_usage"].mean(),
            "kv_max": g["kv_usage"].max(),
            "preemptions": g["preemptions"].max(),
        })


def build_report(sim: FleetSimulator) -> SimReport:  # fleet.py is imported for its type only: imports stay one-way
    req = sim.req
    pools = [p.id for p in sim.pool_list]
    t_arr = np.asarray(req.t_arr)
    osl = np.asarray(req.osl)
    t_first = np.asarray(req.t_first)
    t_done = np.asarray(req.t_done)
    ttft = (t_first - t_arr) * 1e3
    with np.errstate(invalid="ignore", divide="ignore"):
        itl = np.where(osl > 1, (t_done - t_first) / np.maximum(osl - 1, 1) * 1e3, 0.0)
    itl[np.isnan(t_done)] = np.nan
    e2e = (t_done - t_arr) * 1e3
    finished = ~np.isnan(t_done)
    cls = np.asarray(req.cls)
    class_ids = np.asarray(sim.arrivals.class_ids, dtype=object)
    pf = np.asarray(req.pf_pool)
    dc = np.asarray(req.dc_pool)
    pool_names = np.asarray(pools + [""], dtype=object)
    t_start = np.asarray(req.t_pf_start)
    t_kv = np.asarray(req.t_kv)
    met = finished.copy()
    for k, cid in enumerate(sim.arrivals.class_ids):
        slo: Slo | None = sim.slos.get(cid)
        if slo is None:
            continue
        m = cls == k
        if slo.ttft_ms is not None:
            met[m] &= ttft[m] <= slo.ttft_ms
        if slo.itl_ms is not None:
            met[m] &= itl[m] <= slo.itl_ms
    df = pd.DataFrame({
        "class_id": class_ids[cls],
        "t_arr_s": t_arr,
        "isl": np.asarray(req.isl),
        "osl": osl,
        "prefill_pool": pool_names[pf],
        "decode_pool": pool_names[dc],
        "ttft_ms": ttft,
        "itl_ms": itl,
        "e2e_ms": e2e,
        "queue_ms": (t_start - t_arr) * 1e3,
        "prefill_ms": (np.asarray(req.t_pf_end) - t_start) * 1e3,
        "kv_wait_ms": np.where(dc >= 0, (t_first - t_kv) * 1e3, 0.0),
        "met_slo": met,
        "finished": finished,
        "rejected": np.asarray(req.rejected),
    })
    # goodput is per second of what the arrivals stand for; arrivals at one instant stand for no span: no rate (NaN)
    span = float(sim.arrivals.span_s)
    rows = []
    for cid, g in df.groupby("class_id", sort=False):
        slo = sim.slos.get(cid)
        row: dict[str, Any] = {"class_id": cid, "requests": len(g), "finished": int(g["finished"].sum())}
        for col in ("ttft_ms", "itl_ms", "e2e_ms"):
            v = g[col].to_numpy()
            # a one-token output has no inter-token gap: its ITL (0, which meets any bound) is no latency to take a
            # percentile of, as vLLM's inter-token histogram holds none for it. Found in QA: a trace of a 1-token and a
            # 5-token request (6.4 ms ITL) printed ITL p50 3.2 ms
            v = v[~np.isnan(v) & ((g["osl"].to_numpy() > 1) if col == "itl_ms" else True)]
            for p in PERCENTILES:
                row[f"{col[:-3]}_p{p}_ms"] = float(np.percentile(v, p)) if v.size else float("nan")
        att = float(g["met_slo"].mean())
        row.update({
            "slo_percentile": slo.percentile if slo else float("nan"),
            "slo_ttft_ms": slo.ttft_ms if slo and slo.ttft_ms is not None else float("nan"),
            "slo_itl_ms": slo.itl_ms if slo and slo.itl_ms is not None else float("nan"),
            "attainment": att,
            "goodput_rps": float(g["met_slo"].sum()) / span if span > 0 else float("nan"),
            "slo_holds": bool(slo is None or att >= slo.percentile / 100.0),
        })
        rows.append(row)
    classes = pd.DataFrame(rows)
    timeline = pd.DataFrame(sim.timeline, columns=["t_s", "pool_id", "role", "replicas", "starting", "running", "waiting",
                                                   "kv_usage", "utilization", "preemptions"])
    return SimReport(df, classes, timeline, float(getattr(sim, "end_s", sim.now)), sim.events_processed, span)


# Most lines a panel's legend names; beyond them the legend would not fit its panel (found by hand at stop 53: a
# 7-model plan's 84 classes pushed matplotlib's tight_layout into a warning): the panel says how many lines it holds.
LEGEND_MAX_ENTRIES = 12


def _legend(a: Axes, what: str) -> None:
    """The panel's legend, or where it has more than LEGEND_MAX_ENTRIES lines, a line count in its corner."""
    named = [ln for ln in a.get_lines() if not str(ln.get_label()).startswith("_")]
    if len(named) <= LEGEND_MAX_ENTRIES:
        a.legend(fontsize=7)
    else:
        a.text(0.01, 0.99, f"{len(named)} {what} (see the tables)", transform=a.transAxes, va="top", fontsize=7)


def plot_report(rep: SimReport, path: str | Path) -> None:
    """Latency CDFs per class (TTFT, ITL) and queue / KV-usage timelines per pool, as one PNG (atomic)."""
    import os
    import tempfile

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from planner.io.plot_axes import label_log_axis

    fig, ax = plt.subplots(2, 2, figsize=(13, 8))
    for cid, g in rep.requests.groupby("class_id", sort=False):
        for a, col in ((ax[0, 0], "ttft_ms"), (ax[0, 1], "itl_ms")):
            # the requests the class table takes its percentiles of (build_report): ITL over outputs of more than one
            # token, as a one-token output has no inter-token gap. Found in QA: the CDF counted their ITL of 0
            keep = g["osl"].to_numpy() > 1 if col == "itl_ms" else np.ones(len(g), dtype=bool)
            v = g[col].to_numpy(dtype=float)[keep]
            v = np.sort(v[~np.isnan(v)])
            if v.size:
                a.plot(v, np.arange(1, v.size + 1) / v.size, label=str(cid))
    row = rep.classes.set_index("class_id") if not rep.classes.empty else None
    # every axis says what it measures and its unit (found in QA: no y labels, the x labels a bare "ms" / "s")
    for a, col, title, xlabel in ((ax[0, 0], "slo_ttft_ms", "TTFT CDF", "TTFT (ms)"),
                                  (ax[0, 1], "slo_itl_ms", "ITL (per-request mean) CDF", "ITL, per-request mean (ms)")):
        a.set_title(title)
        a.set_xlabel(xlabel)
        a.set_ylabel("share of requests")
        a.set_xscale("log")
        a.grid(alpha=0.3)
        if row is not None:
            # each SLO bound a dashed line, labelled at the panel's top with its value and, where classes differ, the
            # classes it bounds (found in QA: unlabelled lines, no telling which class a bound was)
            bounds = row[col].dropna()
            distinct = bounds.unique()
            for b in distinct:
                a.axvline(b, ls="--", c="gray", lw=0.8, label="_slo")
                who = [str(c) for c, v in bounds.items() if v == b]
                a.text(b, 0.02, f"SLO {b:g} ms" + (f" ({', '.join(who)})" if len(distinct) > 1 else ""),
                       transform=a.get_xaxis_transform(), rotation=90, ha="right", va="bottom", fontsize=6,
                       color="gray")
        label_log_axis(a.xaxis, *a.get_xlim())  # 30, 40, 60, 100 ms, not 3 x 10^1 ...
        _legend(a, "classes")
    for pid, g in rep.pools.groupby("pool_id", sort=False):
        ax[1, 0].plot(g["t_s"], g["waiting"], label=pid)
        ax[1, 1].plot(g["t_s"], g["kv_usage"], label=pid)
    ax[1, 0].set_title("waiting requests per pool")
    ax[1, 0].set_ylabel("waiting requests")
    ax[1, 1].set_title("KV-cache usage per pool (mean over replicas)")
    ax[1, 1].set_ylabel("KV usage (share of the cache)")
    for a in ax[1]:
        a.set_xlabel("time (s)")
        a.grid(alpha=0.3)
        _legend(a, "pools")
    fig.tight_layout()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, suffix=".png")
    mask = os.umask(0o022)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)  # the mode an ordinary open() gives, not mkstemp's 0600
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, p)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
