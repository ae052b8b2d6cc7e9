"""Classes with different TTFT SLOs sharing a pool (planner/planning/mixfit.py, stop 58): the plan's own prediction
behind the pool's mix of classes, the note a plan carries where it puts a class over its SLO, and rule 58-S's
tightening (measured, not adopted: assemble._MIX_REPLANS 0). Pure planning on the bundled llama-3.1-8b H100 vLLM
profile; no simulation."""

from __future__ import annotations

import pytest

from planner.io.schema import Fleet, Workload
from planner.perf.laws import PerfModel, quiet_extrapolation
from planner.planning import assemble

MODEL = "llama-3.1-8b"


def _workload(chat_ttft_ms: float) -> Workload:
    """A short interactive class with `chat_ttft_ms` beside 8,000-token documents at 2 s (bench/mixed_sizing.py's
    '500/8000 @ 12+1' case)."""
    return Workload.model_validate({
        "models": {MODEL: {"slo": {"ttft_ms": 2000, "itl_ms": 50, "percentile": 90}}},
        "classes": [{"id": f"{MODEL}/chat", "model": MODEL, "isl": 500, "osl": 200, "rate_rps": 12,
                     "slo": {"ttft_ms": chat_ttft_ms, "itl_ms": 50, "percentile": 90}},
                    {"id": f"{MODEL}/doc", "model": MODEL, "isl": 8000, "osl": 300, "rate_rps": 1}]})


FLEET = Fleet.model_validate({"gpus": {"H100-SXM-80GB": {"available": 64}},
                              "limits": {"allowed_tp": [1], "roles": ["mixed"], "allowed_dtypes": ["bf16"]}})


@pytest.fixture(scope="module")
def pm() -> PerfModel:
    return PerfModel.load()


def _plan(pm: PerfModel, chat_ttft_ms: float):
    with quiet_extrapolation():
        return assemble.plan_workload(_workload(chat_ttft_ms), FLEET, pm, pm.catalog, refine_diagnosis=False)


def test_a_plan_whose_mix_puts_a_class_over_its_slo_says_so(pm) -> None:
    """Sized class by class, one mixed replica serves both classes; behind the 8,000-token documents the chat class's
    own predicted TTFT p90 is over its 150-ms SLO (the simulator: 1.55x it). The plan says so and names --verify; at a
    looser 1,000 ms the same plan's prediction holds and nothing is said."""
    tight = _plan(pm, 150.0)
    chat = tight.models[MODEL].predicted[f"{MODEL}/chat"]
    assert tight.feasible and chat.ttft_ms > 150.0
    said = [n for n in tight.notes if n.startswith(f"class {MODEL}/chat: predicted TTFT")]
    assert len(said) == 1 and "150-ms SLO" in said[0] and "--verify" in said[0], tight.notes
    loose = _plan(pm, 1000.0)
    assert loose.models[MODEL].predicted[f"{MODEL}/chat"].ttft_ms <= 1000.0
    assert not [n for n in loose.notes if "predicted TTFT" in n]


def test_rule_58s_rounds_make_the_plan_meet_its_own_predictions(pm, monkeypatch: pytest.MonkeyPatch) -> None:
    """With rule 58-S's rounds on (the bench's 4; not the default) the pool's utilization is tightened until the chat
    class's prediction behind the mix meets its SLO: more replicas, no over-SLO note, every prediction within."""
    base = _plan(pm, 150.0)
    monkeypatch.setattr(assemble, "_MIX_REPLANS", 4)
    fitted = _plan(pm, 150.0)
    assert fitted.feasible and fitted.cost_per_hour > base.cost_per_hour
    for cid, pr in fitted.models[MODEL].predicted.items():
        assert pr.ttft_ms <= (pr.slo_ttft_ms or 0.0), cid
    assert not [n for n in fitted.notes if "predicted TTFT" in n]


def test_mixed_sizing_bench_runs_one_case(capsys: pytest.CaptureFixture[str]) -> None:
    """bench/mixed_sizing.py on one case of its grid, short: the RESULT line's fields are there and the misses are
    counted over the case's two classes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import mixed_sizing

    assert mixed_sizing.main(["--cases", "1", "--duration", "120", "--seeds", "1", "--no-verify"]) == 0
    fields = dict(kv.split("=") for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])
    assert fields["cases"] == "1" and fields["classes"] == "2"
    assert {"misses_alone", "misses_mix", "cost_alone", "cost_mix", "tightened"} <= set(fields)


def test_classes_of_one_decode_pool_share_its_itl(pm) -> None:
    """Rule 58-D: a P/D decode pool runs one batch; every class it serves rides the same steps, so the plan predicts
    one ITL for all of them (before stop 58 each class was priced alone at the pool's utilization: a short-output
    interactive class read 10.4 ms beside a long-output batch class's 16.2 ms in the same pool, the simulator ~15 ms
    for both). With the interactive class's ITL SLO under that shared step, the plan says so."""
    wl = Workload.model_validate({
        "models": {MODEL: {"slo": {"ttft_ms": 1000, "itl_ms": 40, "percentile": 90}}},
        "classes": [{"id": "voice", "model": MODEL, "isl": 600, "osl": 100, "rate_rps": 15,
                     "slo": {"ttft_ms": 300, "itl_ms": 12, "percentile": 90}},
                    {"id": "batch", "model": MODEL, "isl": 2000, "osl": 800, "rate_rps": 8,
                     "slo": {"ttft_ms": 3000, "itl_ms": 50, "percentile": 90}}]})
    fleet = Fleet.model_validate({"gpus": {"H100-SXM-80GB": {"available": 32}},
                                  "limits": {"allowed_tp": [1], "roles": ["prefill", "decode"]}})
    with quiet_extrapolation():
        plan = assemble.plan_workload(wl, fleet, pm, pm.catalog, refine_diagnosis=False)
    mp = plan.models[MODEL]
    decode = {c: {p for p, w in r.items() if "/decode/" in p and w > 0} for c, r in mp.routing.items()}
    assert decode["voice"] == decode["batch"] and len(decode["voice"]) == 1  # one shared decode pool
    voice, batch = mp.predicted["voice"], mp.predicted["batch"]
    assert voice.itl_ms == pytest.approx(batch.itl_ms)
    said = [n for n in plan.notes if n.startswith("class voice: predicted") and "ITL" in n]
    assert (voice.itl_ms > 12.0) == bool(said), (voice.itl_ms, plan.notes)


def test_solve_verifies_by_default_a_plan_predicting_a_class_over_its_slo(tmp_path) -> None:
    """Rule 58-V: `planner solve` (and planner.solve) run --verify's rounds on a plan whose own prediction puts a class
    over its SLO (here the 150-ms chat class on one mixed replica behind 8,000-token documents, which the simulator
    reads at 1.55x its SLO), and only then: --no-verify / verify=False keep the class-by-class plan; a plan whose
    predictions hold is not simulated."""
    import yaml
    from typer.testing import CliRunner

    from planner.api import solve
    from planner.cli.main import app

    w, f = tmp_path / "w.yaml", tmp_path / "f.yaml"
    w.write_text(yaml.safe_dump(_workload(150.0).model_dump(mode="json", exclude_none=True)))
    f.write_text(yaml.safe_dump(FLEET.model_dump(mode="json", exclude_none=True)))
    runner = CliRunner()
    plain = runner.invoke(app, ["solve", "-w", str(w), "-f", str(f), "--no-slo-cost", "-o", str(tmp_path / "a.yaml")])
    assert plain.exit_code == 0, plain.output
    said = " ".join(plain.output.split())
    assert f"verifying: the plan predicts {MODEL}/chat over their SLO" in said and "verify round 0" in said
    off = runner.invoke(app, ["solve", "-w", str(w), "-f", str(f), "--no-slo-cost", "--no-verify",
                              "-o", str(tmp_path / "b.yaml")])
    assert off.exit_code == 0 and "verify round" not in off.output
    a, b = (yaml.safe_load((tmp_path / n).read_text()) for n in ("a.yaml", "b.yaml"))
    assert a["cost_per_hour"] > b["cost_per_hour"]  # the simulation found the one replica short
    assert solve(_workload(150.0), FLEET).cost_per_hour == a["cost_per_hour"]  # the API's default is the CLI's
    assert solve(_workload(150.0), FLEET, verify=False).cost_per_hour == b["cost_per_hour"]
    loose = tmp_path / "loose.yaml"
    loose.write_text(yaml.safe_dump(_workload(1000.0).model_dump(mode="json", exclude_none=True)))
    held = runner.invoke(app, ["solve", "-w", str(loose), "-f", str(f), "--no-slo-cost"])
    assert held.exit_code == 0 and "verify round" not in held.output and "verifying" not in held.output
