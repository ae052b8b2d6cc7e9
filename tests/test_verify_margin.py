"""Rule 60-N (stop 60): `planner solve`'s default verification also simulates a plan where a class that shares a pool
with another class is predicted within 10% of its SLO (planner.planning.verify.VERIFY_MARGIN), where the mix forms
read the binding class low; a class alone in its pools is judged as before (only over its SLO). Plans of
bench/mixed_sizing.py's grid on the bundled H100 profiles; no simulation except the CLI's one verification."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from planner.io.schema import Plan
from planner.perf.laws import PerfModel, quiet_extrapolation
from planner.planning.assemble import classes_over_slo
from planner.planning.verify import VERIFY_MARGIN, near_slo_classes, verified_by_default

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
MODEL = "qwen3-30b-a3b"
GPU = "H100-SXM-80GB"


@pytest.fixture(scope="module")
def pm() -> PerfModel:
    return PerfModel.load()


def _plan(pm: PerfModel, chat_isl: int, doc_isl: int, chat_rps: float, doc_rps: float, chat_ttft_ms: float = 150.0,
          roles: str = "pd") -> tuple[Plan, object]:
    from mixed_sizing import fleet_of, plan, workload

    wl = workload(MODEL, chat_isl, chat_ttft_ms, doc_isl, chat_rps, doc_rps)
    with quiet_extrapolation():
        return plan(wl, fleet_of(GPU, roles), pm, False), wl


def test_the_shipped_margin_is_rule_60ns() -> None:
    assert VERIFY_MARGIN == 0.9


def test_a_shared_pool_class_near_its_slo_is_verified_by_default(pm: PerfModel) -> None:
    """800- and 4,000-token prompts at 12 + 3 req/s on one P/D prefill pool, chat TTFT SLO 150 ms: the chat class is
    predicted at 0.9-1.0 of its SLO behind the pool's mix (rule 60-B's tuning row: ~139 ms, the simulator ~157), so no
    class is over its SLO and rule 58-V's check alone kept the plan unsimulated; the margin verifies it."""
    p, _ = _plan(pm, 800, 4000, 12.0, 3.0)
    chat = p.models[MODEL].predicted[f"{MODEL}/chat"]
    assert chat.ttft_ms is not None and 0.9 * 150.0 <= chat.ttft_ms < 150.0
    assert classes_over_slo(p) == {}
    assert verified_by_default(p, "cost", margin=1.0) == []
    assert f"{MODEL}/chat" in verified_by_default(p, "cost")
    assert verified_by_default(p, "max_load") == []  # a max_load plan's predictions are at the scaled load


@pytest.mark.parametrize("margin, ttft_ms, expected", [
    (0.9, 140.0, True), (0.9, 134.0, False), (1.0, 149.0, False), (0.8, 121.0, True)])
def test_the_margin_reads_shared_pool_classes_only(pm: PerfModel, margin: float, ttft_ms: float,
                                                   expected: bool) -> None:
    """Table: the chat class of a shared pool at a given predicted TTFT against its 150-ms SLO is near it exactly when
    the prediction is at or above margin x SLO; the same prediction on a class routed to pools of its own never is."""
    p, _ = _plan(pm, 800, 4000, 12.0, 3.0)
    cid = f"{MODEL}/chat"
    q = p.model_copy(deep=True)
    q.models[MODEL].predicted[cid].ttft_ms = ttft_ms
    assert (cid in near_slo_classes(q, margin)) == expected
    alone = q.model_copy(deep=True)
    mp = alone.models[MODEL]
    mp.routing = {cid: mp.routing[cid]}  # the chat class alone in its pools
    assert cid not in near_slo_classes(alone, margin)


def test_the_cli_says_which_classes_it_verifies_and_why(pm: PerfModel, tmp_path: Path) -> None:
    """`planner solve` names the near-SLO class in its verifying line (rule 60-N) and runs the rounds."""
    import yaml
    from mixed_sizing import fleet_of
    from typer.testing import CliRunner

    from planner.cli.main import app

    _, wl = _plan(pm, 800, 4000, 12.0, 3.0)
    w, f = tmp_path / "w.yaml", tmp_path / "f.yaml"
    w.write_text(yaml.safe_dump(wl.model_dump(mode="json", exclude_none=True)))  # type: ignore[attr-defined]
    f.write_text(yaml.safe_dump(fleet_of(GPU, "pd").model_dump(mode="json", exclude_none=True)))
    res = CliRunner().invoke(app, ["solve", "-w", str(w), "-f", str(f), "--no-slo-cost", "-o", str(tmp_path / "p.yaml")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert f"verifying: the plan predicts {MODEL}/chat within 10% of it" in said and "verify round 0" in said
