"""bench/fidelity_burst.py's larger least-loaded pools: the summary's split by n/IDC on rows whose answer is known,
and one small real run through the simulator and the capacity model (few requests, one seed; what it checks does
not depend on the machine's speed)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from rich.console import Console

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import fidelity  # noqa: E402
import fidelity_burst as fb  # noqa: E402
from planner.io.files import load_model  # noqa: E402
from planner.io.schema import Workload  # noqa: E402
from planner.perf.laws import PerfModel  # noqa: E402


def _row(reps: int, idc: float, split: str, sim: float, model: float) -> fb.PoolRow:
    return fb.PoolRow("c", reps, idc, split, 0.5, sim, model)


def test_summary_splits_rows_by_blocks_of_the_pool() -> None:
    rows = [_row(5, 3.0, "tuning", 100.0, 110.0),   # n/IDC 1.67, +10%
            _row(5, 10.0, "tuning", 200.0, 150.0),  # n/IDC 0.5, -25%
            _row(7, 10.0, "tuning", 100.0, 105.0),  # n/IDC 0.7, +5%
            _row(4, 4.0, "held_out", 100.0, 80.0)]  # n/IDC 1 counts as blocks, -20%
    s = fb.pool_summary(rows)
    assert s["tuning_mape_pct"] == pytest.approx((10 + 25 + 5) / 3)
    assert s["tuning_small_mape_pct"] == pytest.approx(15.0) and s["tuning_small_worst_under_pct"] == pytest.approx(-25.0)
    assert s["tuning_blocks_mape_pct"] == pytest.approx(10.0) and s["tuning_blocks_points"] == 1
    assert s["held_out_blocks_worst_under_pct"] == pytest.approx(-20.0)
    assert math.isnan(s["held_out_small_mape_pct"]) and s["held_out_small_points"] == 0


def test_a_small_run_simulates_every_size_idc_and_load() -> None:
    wl = load_model(Workload, REPO / "examples" / "default" / "workload.yaml")
    wl = wl.model_copy(update={"classes": wl.classes[:1]})
    rows = fb.pool_sizes(PerfModel.load(), wl, fidelity.GPU, fidelity.model_saturation_rps, 150, 1,
                         Console(file=None, quiet=True), sizes=(2, 5), tuning_idc=(3.0,), held_out_idc=(8.0,))
    assert len(rows) == 2 * 2 * len(fb.BURST_LOADS)
    assert {r.blocks < 1.0 for r in rows} == {True, False}
    assert all(r.sim_ttft_ms > 0 and math.isfinite(r.model_ttft_ms) and r.model_ttft_ms > 0 for r in rows)
    # more load on the same pool waits longer, in the model
    for reps in (2, 5):
        for idc in (3.0, 8.0):
            m = [r.model_ttft_ms for r in rows if r.replicas == reps and r.idc == idc]
            assert m == sorted(m)


def test_cli_prints_a_result_line(capsys) -> None:
    assert fb.main(["--requests", "100", "--seeds", "1", "--sizes", "3", "--tuning-idc", "10", "--held-out-idc", "2"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT tuning_pool_mape_pct=") and "held_out_small_pool_mape_pct=nan" in last
