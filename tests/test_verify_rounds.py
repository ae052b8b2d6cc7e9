"""Rule 59-R (stop 59): `planner solve --verify` re-solves up to 5 times by default (it was 3). The case is one of
rule 59-R's tuning cases (bench/verify_verdicts.py --model qwen3-32b): a 150-ms TTFT chat class beside 4,000-token
documents in one mixed pool of H100s, whose verification needs 5 re-solves to meet the chat class's claim."""

from __future__ import annotations

import sys
from pathlib import Path

from planner.perf.laws import PerfModel, quiet_extrapolation
from planner.planning.verify import verify_and_resolve
from planner.simulate.attainment import DEFAULT_VERIFY_ROUNDS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))


def test_the_default_rounds_carry_a_mixed_pool_to_its_tight_class_claim() -> None:
    from mixed_sizing import fleet_of, plan, workload

    pm = PerfModel.load()
    wl = workload("qwen3-32b", 500, 150.0, 4000, 12.0, 3.0)
    fleet = fleet_of("H100-SXM-80GB", "mixed")
    base = plan(wl, fleet, pm, False)
    with quiet_extrapolation():
        three = verify_and_resolve(wl, fleet, pm, pm.catalog, base.model_copy(deep=True), rounds=3)
        default = verify_and_resolve(wl, fleet, pm, pm.catalog, base.model_copy(deep=True))
    assert DEFAULT_VERIFY_ROUNDS == 5
    assert "after 3 re-solve(s): SHORT: qwen3-32b/chat" in three.notes[-1], three.notes
    assert "re-solve(s): all classes meet their SLO" in default.notes[-1], default.notes
    assert default.cost_per_hour > three.cost_per_hour
