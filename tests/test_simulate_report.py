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


def _class_report(finished: list[bool], rejected: list[bool]) -> SimReport:
    """A report of one class 'c' (TTFT <= 100 ms @p90) whose requests finished or were rejected as given; a request
    not finished got no first token."""
    n = len(finished)
    fin = pd.Series(finished)
    req = pd.DataFrame({"class_id": ["c"] * n, "osl": [10] * n,
                        "ttft_ms": [50.0 if f else float("nan") for f in finished],
                        "e2e_ms": [500.0 if f else float("nan") for f in finished], "finished": fin,
                        "rejected": pd.Series(rejected), "met_slo": fin})
    nan = float("nan")
    ttft = 50.0 if any(finished) else nan
    e2e = 500.0 if any(finished) else nan
    classes = pd.DataFrame([{"class_id": "c", "requests": n, "finished": sum(finished), "ttft_p50_ms": ttft,
                             "ttft_p90_ms": ttft, "ttft_p99_ms": ttft, "itl_p50_ms": nan, "itl_p90_ms": nan,
                             "itl_p99_ms": nan, "e2e_p50_ms": e2e, "e2e_p90_ms": e2e, "e2e_p99_ms": e2e,
                             "slo_percentile": 90.0, "slo_ttft_ms": 100.0, "slo_itl_ms": nan,
                             "attainment": sum(finished) / n, "goodput_rps": sum(finished) / 10.0,
                             "slo_holds": sum(finished) / n >= 0.9}])
    return SimReport(req, classes, pd.DataFrame(columns=TIMELINE_COLUMNS), 1810.0, 0, 10.0)


@pytest.mark.parametrize(("finished", "rejected", "cells", "note"), [
    # none finished: no TTFT or e2e to print, and the note says why attainment is 0
    ([False] * 40, [False] * 40, ("-", "-"),
     "c: 40 of 40 requests unfinished, counted as missing their SLO (0 rejected"),
    ([True] * 38 + [False] * 2, [False] * 38 + [True] * 2, ("50/50/50", "500"),
     "c: 2 of 40 requests unfinished, counted as missing their SLO (2 rejected"),
    ([True] * 40, [False] * 40, ("50/50/50", "500"), None),
])
def test_class_table_and_notes_say_unfinished_requests(finished, rejected, cells, note):
    from planner.cli.simulate_run import class_table, sample_notes
    from planner.io.schema import Workload

    rep = _class_report(finished, rejected)
    out = io.StringIO()
    Console(file=out, width=250).print(class_table(rep))
    row = next(line for line in out.getvalue().splitlines() if line.startswith("│ c "))
    assert (row.split("│")[3].strip(), row.split("│")[5].strip()) == cells
    wl = Workload.model_validate({"models": {"m": {"slo": {"ttft_ms": 100}}},
                                  "classes": [{"id": "c", "model": "m", "isl": 100, "osl": 10, "rate_rps": 4}]})
    notes = [n for n in sample_notes(rep, wl) if "unfinished" in n]
    assert notes == [] if note is None else (len(notes) == 1 and notes[0].startswith(note))


def _plotted(rep: SimReport, tmp_path, monkeypatch):
    """The Axes of the figure plot_report saves for `rep` (2 x 2: TTFT and ITL CDFs, queue and KV timelines)."""
    from matplotlib.figure import Figure

    from planner.simulate.report import plot_report

    saved: list[Figure] = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: (saved.append(fig), real(fig, *a, **k))[1])
    plot_report(rep, tmp_path / "sim.png")
    assert len(saved) == 1 and (tmp_path / "sim.png").is_file()
    return saved[0].axes


def _plot_report() -> SimReport:
    """One class of a 1-token request (ITL 0) and two 5-token ones (ITL 6 and 8 ms); one pool's timeline."""
    req = pd.DataFrame({"class_id": ["c"] * 3, "osl": [1, 5, 5], "ttft_ms": [40.0, 50.0, 60.0],
                        "itl_ms": [0.0, 6.0, 8.0]})
    classes = pd.DataFrame([{"class_id": "c", "slo_ttft_ms": 100.0, "slo_itl_ms": 20.0}])
    rows = [(t, "m/mixed/H100/tp1", "mixed", 1, 0, 1, w, 0.5, 0.5, 0) for t, w in ((0.0, 0), (10.0, 2))]
    timeline = pd.DataFrame(rows, columns=TIMELINE_COLUMNS)
    return SimReport(req, classes, timeline, 30.0, 0, 10.0)


@pytest.mark.parametrize(("panel", "xlabel", "ylabel"), [
    # found in QA: no y labels, and the x labels a bare "ms" / "s"
    (0, "TTFT (ms)", "share of requests"),
    (1, "ITL, per-request mean (ms)", "share of requests"),
    (2, "time (s)", "waiting requests"),
    (3, "time (s)", "KV usage (share of the cache)"),
])
def test_plot_axes_say_what_and_unit(panel, xlabel, ylabel, tmp_path, monkeypatch):
    a = _plotted(_plot_report(), tmp_path, monkeypatch)[panel]
    assert (a.get_xlabel(), a.get_ylabel()) == (xlabel, ylabel)


@pytest.mark.parametrize(("panel", "xs"), [
    (0, [40.0, 50.0, 60.0]),
    # the class table's ITL percentiles leave out one-token outputs (build_report): found in QA, the CDF counted the
    # 1-token request's ITL of 0 as a third of the class
    (1, [6.0, 8.0]),
])
def test_plot_cdfs_hold_the_requests_of_the_table(panel, xs, tmp_path, monkeypatch):
    a = _plotted(_plot_report(), tmp_path, monkeypatch)[panel]
    (line,) = [ln for ln in a.get_lines() if ln.get_label() == "c"]
    assert list(line.get_xdata()) == xs
    assert list(line.get_ydata()) == pytest.approx([(i + 1) / len(xs) for i in range(len(xs))])


@pytest.mark.parametrize(("slos", "texts"), [
    # one bound: its value; bounds that differ by class: each names its classes (found in QA: unlabelled lines)
    ({"c": 100.0, "d": 100.0}, ["SLO 100 ms"]),
    ({"c": 100.0, "d": 300.0}, ["SLO 100 ms (c)", "SLO 300 ms (d)"]),
])
def test_plot_slo_lines_say_their_bound_and_classes(slos, texts, tmp_path, monkeypatch):
    req = pd.DataFrame({"class_id": ["c", "d"], "osl": [5, 5], "ttft_ms": [40.0, 50.0], "itl_ms": [6.0, 8.0]})
    classes = pd.DataFrame([{"class_id": c, "slo_ttft_ms": v, "slo_itl_ms": float("nan")} for c, v in slos.items()])
    rep = SimReport(req, classes, pd.DataFrame(columns=TIMELINE_COLUMNS), 30.0, 0, 10.0)
    a = _plotted(rep, tmp_path, monkeypatch)[0]
    assert sorted(t.get_text() for t in a.texts if t.get_text().startswith("SLO")) == texts
    assert sorted(ln.get_xdata()[0] for ln in a.get_lines() if ln.get_label() == "_slo") == sorted(set(slos.values()))


@pytest.mark.parametrize(("finished", "rejected", "says", "never"), [
    # duration_s is the drain limit only while a request is in the fleet: found in QA, 2 rejected requests of an
    # otherwise finished class read "0 still in the fleet when the simulation stopped at 1,810 s, its drain limit"
    ([True] * 38 + [False] * 2, [False] * 38 + [True] * 2, "2 rejected: prompt + output beyond their pool's KV cache; "
     "none still in the fleet)", "drain limit"),
    ([True] * 38 + [False] * 2, [False] * 39 + [True], "1 still in the fleet when the simulation stopped at 1,810 s, "
     "its drain limit)", "none still"),
])
def test_unfinished_note_names_the_drain_limit_only_where_one_was_reached(finished, rejected, says, never):
    from planner.cli.simulate_run import sample_notes
    from planner.io.schema import Workload

    wl = Workload.model_validate({"models": {"m": {"slo": {"ttft_ms": 100}}},
                                  "classes": [{"id": "c", "model": "m", "isl": 100, "osl": 10, "rate_rps": 4}]})
    (note,) = [n for n in sample_notes(_class_report(finished, rejected), wl) if "unfinished" in n]
    assert says in note and never not in note
