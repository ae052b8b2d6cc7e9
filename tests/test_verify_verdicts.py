"""Rule 59-V's candidate verdicts of a `--verify` round (planner.planning.verify.Verdict): what each adds to the
point verdict, checked where it must differ from it. Nothing was adopted at stop 59 (the point verdict missed no class
on the tuning set), so these are the bench's alternatives (bench/verify_verdicts.py), kept honest."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from planner.io.catalog import Catalog
from planner.io.schema import Fleet, ModelEntry, RequestClass, Slo, Workload
from planner.perf.laws import PerfModel
from planner.planning.assemble import plan_workload
from planner.planning.verify import judged
from planner.simulate.attainment import VerifyReport, merged

REPO = Path(__file__).resolve().parents[1]


def _report(att: dict[str, float], blame: dict[str, float]) -> VerifyReport:
    rows = pd.DataFrame([{"class_id": c, "attainment": a, "slo_percentile": 90.0, "slo_holds": a >= 0.9}
                         for c, a in att.items()])
    failing = [c for c, a in att.items() if a < 0.9]
    return VerifyReport(ok=not failing, classes=rows, failing=failing,
                        pools_at_fault={p: s for p, s in blame.items() if s >= 0.2}, blame=blame)


def test_merged_report_holds_a_class_only_where_every_simulation_holds_it() -> None:
    a = _report({"chat": 0.95, "doc": 0.99}, {})
    b = _report({"chat": 0.88, "doc": 1.00}, {"P": 0.9, "D": 0.1})
    m = merged([a, b])
    assert not m.ok and m.failing == ["chat"]
    rows = m.classes.set_index("class_id")["attainment"].to_dict()
    assert rows == {"chat": 0.88, "doc": 0.99}  # each class's lowest-attainment row
    # blame is the mean share over the simulations: P's 0.9 in one of two is 0.45, D's 0.05 (under the 20% line)
    assert m.blame == pytest.approx({"P": 0.45, "D": 0.05})
    assert m.pools_at_fault == pytest.approx({"P": 0.45})
    assert merged([a, _report({"chat": 0.91, "doc": 0.95}, {})]).ok


def _rare() -> tuple[Workload, PerfModel, object]:
    cat = Catalog.load()
    perf = PerfModel.load(catalog=cat)
    wl = Workload(models={"llama-3.1-8b": ModelEntry(slo=Slo(ttft_ms=600, itl_ms=40, percentile=90))},
                  classes=[RequestClass(id="rare", model="llama-3.1-8b", isl=1000, osl=100, rate_rps=0.05)])
    fleet = Fleet(gpus={"H100-SXM-80GB": {"available": 4}}, limits={"allowed_tp": [1]})
    return wl, perf, plan_workload(wl, fleet, perf, cat)


def test_wilson_verdict_refuses_a_pass_that_few_requests_cannot_support() -> None:
    """~30 requests of an idle replica all within SLO: the point verdict passes (100% >= 90%), the Wilson verdict
    does not (the 95% interval of 30 of 30 reaches down to ~89%)."""
    wl, perf, plan = _rare()
    point = judged(plan, wl, perf, "point", duration_s=600.0, seed=1, arrivals=None)
    wilson = judged(plan, wl, perf, "wilson", duration_s=600.0, seed=1, arrivals=None)
    n = int(point.classes["requests"].iloc[0])
    assert 10 <= n <= 60 and point.classes["attainment"].iloc[0] == 1.0
    assert point.ok and not wilson.ok and wilson.failing == ["rare"]
    # with many requests the interval clears the claim: the same plan passes both
    assert judged(plan, wl, perf, "wilson", duration_s=60_000.0, seed=1, arrivals=None).ok


def test_long_and_two_seed_verdicts_simulate_more_requests() -> None:
    wl, perf, plan = _rare()
    n = {v: int(judged(plan, wl, perf, v, duration_s=600.0, seed=1, arrivals=None).classes["requests"].iloc[0])
         for v in ("point", "long", "two_seeds")}
    assert n["long"] > 2 * n["point"]  # three times the simulated seconds
    assert n["two_seeds"] > 0


def test_verify_verdicts_bench_runs_one_case(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/verify_verdicts.py on one case, short: every verdict's fields on the RESULT line."""
    sys.path.insert(0, str(REPO / "bench"))
    import verify_verdicts

    assert verify_verdicts.main(["--limit", "1", "--duration", "60", "--jobs", "1", "--referee-seeds", "11"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("RESULT cases=1 classes=2 ")
    for v in ("point", "two_seeds", "wilson", "long"):
        assert f" misses_{v}=" in last and f" cost_auto_{v}=" in last
