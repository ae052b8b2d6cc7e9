"""The simulation report's summaries against what its own records say (planner/simulate/report.py)."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from rich.console import Console

from planner.cli.simulate_run import pool_table
from planner.simulate.report import SimReport

TIMELINE_COLUMNS = ["t_s", "pool_id", "role", "replicas", "starting", "running", "waiting", "kv_usage", "utilization",
                    "preemptions"]


def _report(samples: list[tuple[float, float]]) -> SimReport:
    """A report of one prefill pool whose timeline holds `samples` (t_s, utilization of the interval before it)."""
    rows = [(t, "m/prefill/H100/tp1", "prefill", 3, 0, 1, 0, 0.0, u, 0) for t, u in samples]
    return SimReport(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(rows, columns=TIMELINE_COLUMNS), 30.0, 0, 30.0)


@pytest.mark.parametrize(("samples", "busy", "printed"), [
    # the t = 0 sample closes no interval: it reads 0 whatever the load, and is no measurement of it
    ([(0.0, 0.0), (10.0, 0.6), (20.0, 0.6), (30.0, 0.6)], 0.6, "60%"),
    ([(0.0, 0.0), (10.0, 0.2), (20.0, 0.4)], 0.3, "30%"),
    ([(0.0, 0.0)], None, "-"),  # the run ended before the first interval closed: nothing measured
])
def test_pool_busy_is_the_mean_over_the_intervals_sampled(samples, busy, printed):
    rep = _report(samples)
    u = rep.pool_summary().loc["m/prefill/H100/tp1", "utilization"]
    assert (pd.isna(u) if busy is None else u == pytest.approx(busy))
    out = io.StringIO()
    Console(file=out, width=200).print(pool_table(rep))
    row = next(line for line in out.getvalue().splitlines() if "m/prefill/H100/tp1" in line)
    assert row.split("│")[4].strip() == printed
