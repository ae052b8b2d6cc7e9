"""`planner workload from-trace` says when a trace's load moves from minute to minute beyond chance (found by hand at
stop 56: a flash crowd's trace, its busiest minute 6x its mean, became a workload of its mean rate and a one-GPU plan
with no word that the crowd's minutes were left out). The note is the busiest whole minute against the rate the
classes are written at and against what a steady stream at that rate reaches by chance over the trace's minutes, at
the dispersion the classes state (clustered arrivals the workload already carries are not a moving load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from planner.cli.main import app
from planner.io.traces import busy_window_note

HEAD = "timestamp,model,input_tokens,output_tokens\n"


def _poisson_trace(rates_per_minute: list[float], seed: int, model: str = "llama-3.1-8b") -> pd.DataFrame:
    """Requests of a Poisson stream whose rate (req/s) is constant within each minute."""
    rng = np.random.default_rng(seed)
    times: list[float] = []
    for k, r in enumerate(rates_per_minute):
        n = rng.poisson(r * 60.0)
        times.extend(sorted(60.0 * k + rng.uniform(0, 60.0, n)))
    t = np.asarray(times)
    return pd.DataFrame({"t_s": t - t.min(), "model": model, "input_tokens": 500, "output_tokens": 100})


CASES = [
    # (name, per-minute rates, written rate or None for the mean, IDC stated, note expected)
    ("steady", [4.0] * 40, None, 1.0, False),
    ("flash crowd", [2.0] * 20 + [20.0] * 3 + [2.0] * 17, None, 1.0, True),
    ("flash crowd written at its busiest minute", [2.0] * 20 + [20.0] * 3 + [2.0] * 17, 20.0, 1.0, False),
    ("a step up by half", [4.0] * 20 + [6.0] * 20, None, 1.0, True),
    ("a step up by half, the dispersion stated covers it", [4.0] * 20 + [6.0] * 20, None, 30.0, False),
]


@pytest.mark.parametrize("name,rates,written,idc,noted", CASES, ids=[c[0] for c in CASES])
def test_the_busiest_minute_beyond_chance_is_noted(name: str, rates: list[float], written: float | None, idc: float,
                                                   noted: bool) -> None:
    tr = _poisson_trace(rates, seed=len(name))
    written_rps = written if written is not None else len(tr) / float(tr["t_s"].max())
    note = busy_window_note(tr, {"llama-3.1-8b": written_rps}, {"llama-3.1-8b": idc})
    assert (note is not None) == noted, note
    if noted:
        assert note is not None and "llama-3.1-8b's busiest 60-s window" in note and "--rate-quantile 1" in note


def test_the_note_names_the_busiest_minute_and_its_ratio() -> None:
    tr = _poisson_trace([2.0] * 20 + [20.0] * 3 + [2.0] * 17, seed=5)
    counts = np.bincount((tr["t_s"] // 60).astype(int))
    mean_rps = len(tr) / float(tr["t_s"].max())
    note = busy_window_note(tr, {"llama-3.1-8b": mean_rps})
    assert note is not None
    k = int(counts[:39].argmax())
    assert 20 <= k <= 22 and f"(from t = {k * 60:,} s) ran {counts[k] / 60:.2f} req/s" in note
    assert f"{counts[k] / 60 / mean_rps:.1f}x the {mean_rps:.2f} req/s" in note and "Poisson" in note


def test_a_short_trace_says_nothing() -> None:
    tr = _poisson_trace([2.0, 30.0], seed=1)  # under two whole minutes from its first request to its last
    assert float(tr["t_s"].max()) < 120.0
    assert busy_window_note(tr, {"llama-3.1-8b": 1.0}) is None


def test_from_trace_prints_it_and_rate_quantile_one_answers_it(tmp_path: Path) -> None:
    tr = _poisson_trace([2.0] * 20 + [20.0] * 3 + [2.0] * 17, seed=3)
    f = tmp_path / "flash.csv"
    f.write_text(HEAD + "".join(f"{t:.3f},{m},{i},{o}\n" for t, m, i, o in tr.itertuples(index=False)))
    runner = CliRunner()
    r = runner.invoke(app, ["workload", "from-trace", str(f), "-o", str(tmp_path / "w.yaml")])
    assert r.exit_code == 0, r.output
    assert "the load moves from minute to minute beyond chance" in " ".join(r.output.split())
    r = runner.invoke(app, ["workload", "from-trace", str(f), "--rate-quantile", "1", "-o", str(tmp_path / "w1.yaml")])
    assert r.exit_code == 0, r.output
    assert "beyond chance" not in " ".join(r.output.split())


def test_rate_quantile_counts_the_traces_tail_over_a_whole_minute() -> None:
    """--rate-quantile takes every window's rate over a whole minute, the trace's last part minute as the minute that
    ends at its last request (found by hand: the last 30 s of a 150-s trace, at 20 req/s, were counted over a whole
    minute as 10 req/s, and --rate-quantile 1 wrote 10 req/s, under the 11 req/s of its busiest minute)."""
    from planner.io.schema import Slo
    from planner.io.traces import bucket_trace

    t = np.concatenate([np.arange(240) * 0.5, 120.0 + np.arange(600) * 0.05])  # 2 req/s for 120 s, 20 req/s for 30 s
    tr = pd.DataFrame({"t_s": t, "model": "llama-3.1-8b", "input_tokens": 500, "output_tokens": 100})
    slo = Slo(ttft_ms=1000, itl_ms=50, percentile=90)
    busiest = float(np.count_nonzero(t > t.max() - 60.0)) / 60.0  # 660 requests in (89.95, 149.95]: 11 req/s
    assert busiest == pytest.approx(11.0)
    wl = bucket_trace(tr, slo, 1, 1, rate_quantile=1.0)
    assert sum(c.rate_rps for c in wl.classes) == pytest.approx(busiest)
    steady = pd.DataFrame({"t_s": np.arange(900) / 6.0, "model": "llama-3.1-8b", "input_tokens": 500, "output_tokens": 100})
    assert sum(c.rate_rps for c in bucket_trace(steady, slo, 1, 1, rate_quantile=1.0).classes) == pytest.approx(6.0, rel=0.01)


def test_the_note_counts_the_traces_last_part_minute() -> None:
    """A load that jumps in the trace's last part minute is noted (found by hand: the last 30 s of a 150-s trace at
    20 req/s, 4x its mean, got no note: only its first two whole minutes, at 2 req/s, were counted)."""
    t = np.concatenate([np.arange(240) * 0.5, 120.0 + np.arange(600) * 0.05])
    tr = pd.DataFrame({"t_s": t, "model": "llama-3.1-8b", "input_tokens": 500, "output_tokens": 100})
    note = busy_window_note(tr, {"llama-3.1-8b": len(t) / float(t.max())})
    assert note is not None and "(from t = 90 s) ran 11.00 req/s" in note, note
