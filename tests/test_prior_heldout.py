"""The roofline prior's held-out accuracy: the committed held-out set, the figures the planner quotes, and the
plan's note on pools planned from the prior.

The held-out set (planner.perf.heldout.HELD_OUT_SET) is real vLLM 0.26.0 profiles under profiles/runs of six
models that no calibration, law form or constant was chosen on; two of them are only in the example catalog
(examples/byo-model/catalog), which the tests set as PLANNER_CATALOG where they need it."""

from __future__ import annotations

import numpy as np
import pytest

from planner.io.catalog import CATALOG_ENV, Catalog
from planner.io.schema import Fleet, FleetLimits, GpuInventory, ModelEntry, RequestClass, Slo, Workload
from planner.perf.heldout import (
    BYO_CATALOG_DIR,
    HELD_OUT_SET,
    PRIOR_HELD_OUT,
    PRIOR_HELD_OUT_MOE_GRAPHS,
    RUNS_DIR,
    held_out_moe_graphs_errors,
    held_out_set_errors,
    pooled,
    prior_accuracy,
)
from planner.perf.laws import PerfModel


@pytest.fixture(scope="module")
def with_byo():
    mp = pytest.MonkeyPatch()
    mp.setenv(CATALOG_ENV, str(BYO_CATALOG_DIR))
    cat = Catalog.load()
    yield cat, PerfModel.load(cat)
    mp.undo()


def test_the_held_out_profiles_are_committed_and_none_is_calibrated_on(with_byo):
    cat, pm = with_byo
    for model, pdir, ddir in HELD_OUT_SET:
        assert (RUNS_DIR / pdir / "prefill.csv").is_file() and (RUNS_DIR / ddir / "decode.csv").is_file(), model
        assert model in cat.models and not pm.is_measured(model, "H200-141GB", 1), model
        assert all(model not in name for name in pm.efficiency.source.split("(", 1)[1].split(", ")), model


def test_the_quoted_accuracy_is_what_the_held_out_set_gives(with_byo):
    """PRIOR_HELD_OUT (in the planner's notes) = the held-out set's pooled medians with the bundled profiles: a change
    of the prior's calibration that moves them must update the figures the plans quote."""
    cat, pm = with_byo
    rows = held_out_set_errors(pm, cat)
    assert prior_accuracy(rows) == PRIOR_HELD_OUT
    # issue 10's goal for an unprofiled model, on the models it was never fitted to: dense within 15% at the median
    dense = pooled([r for r in rows if not r.moe])
    assert dense["prefill_median"] <= 0.15 and dense["decode_median"] <= 0.15


def test_the_quoted_graphs_figure_is_what_the_held_out_moe_with_graphs_gives(with_byo):
    """PRIOR_HELD_OUT_MOE_GRAPHS (quoted beside the default-graph MoE figure) = the prior's medians on the held-out MoE
    served with CUDA graphs to 4,096 tokens; there the prior meets issue 10's 15% where the default-graph run misses."""
    cat, pm = with_byo
    st = held_out_moe_graphs_errors(pm, cat).stats()
    assert (round(st["prefill_median"], 3), round(st["decode_median"], 3)) == PRIOR_HELD_OUT_MOE_GRAPHS
    assert st["prefill_median"] <= 0.15 < PRIOR_HELD_OUT.moe_prefill


def test_a_model_in_the_calibration_is_not_held_out(with_byo):
    cat, _ = with_byo
    from planner.perf.heldout import RUNS_DIR as runs
    from planner.perf.profiledata import iter_profiles

    profile = next(p for p in iter_profiles(runs / "2026-12-03-s14") if p.meta.model == "qwen2.5-14b")
    pm = PerfModel.from_profiles(cat, [profile])
    with pytest.raises(ValueError, match="qwen2.5-14b.*calibration set"):
        held_out_set_errors(pm, cat)


def test_the_quoted_gpu_figures_are_the_held_out_gpu_types():
    """PRIOR_HELD_OUT_GPU = bench/calibrate_prior.py part C on the bundled profiles (the prior without any H100
    profile, predicting Splitwise's H100 tp2-8)."""
    from planner.perf.allreduce import load_allreduce
    from planner.perf.heldout import PRIOR_HELD_OUT_GPU as g
    from planner.perf.heldout import held_out_gpu_tp
    from planner.perf.laws import ALLREDUCE_DIR, DEFAULT_PROFILES_DIR
    from planner.perf.profiledata import iter_profiles

    rows = held_out_gpu_tp(list(iter_profiles(DEFAULT_PROFILES_DIR)), Catalog.load(), g.gpu,
                           load_allreduce(DEFAULT_PROFILES_DIR / ALLREDUCE_DIR), min_tp=g.min_tp)
    st = pooled(rows)
    assert (round(st["prefill_median"], 3), round(st["decode_median"], 3)) == (g.prefill, g.decode)


def test_the_quoted_card_and_model_unseen_figures_are_part_c2():
    """PRIOR_CARD_AND_MODEL_UNSEEN = bench/calibrate_prior.py part C2' on the bundled profiles (each vLLM profile from the
    prior calibrated without its card and its model), pooled over the cards, to the half point the plans' notes quote
    it in (whole percents): the leave-one-out calibrations run on OpenBLAS, whose kernels differ by CPU, and on an AMD
    EPYC the prefill median reads 0.121 where the machine that quoted it read 0.118 (found at stop 54, the same
    code and packages)."""
    from planner.perf.allreduce import load_allreduce
    from planner.perf.heldout import PRIOR_CARD_AND_MODEL_UNSEEN, leave_one_gpu_out
    from planner.perf.laws import ALLREDUCE_DIR, DEFAULT_PROFILES_DIR
    from planner.perf.profiledata import iter_profiles

    from planner.perf.floor import physical_profiles

    cat = Catalog.load()
    profiles, _ = physical_profiles(list(iter_profiles(DEFAULT_PROFILES_DIR)), cat)
    out = leave_one_gpu_out(profiles, cat, load_allreduce(DEFAULT_PROFILES_DIR / ALLREDUCE_DIR), model_too=True)
    st = pooled([r for rows in out.values() for r in rows])
    assert st["prefill_median"] == pytest.approx(PRIOR_CARD_AND_MODEL_UNSEEN[0], abs=0.005)
    assert st["decode_median"] == pytest.approx(PRIOR_CARD_AND_MODEL_UNSEEN[1], abs=0.005)


def _plan_notes(model: str, gpu: str = "H200-141GB") -> list[str]:
    from planner.api import solve

    w = Workload(models={model: ModelEntry(slo=Slo(ttft_ms=2000, itl_ms=100, percentile=90))},
                 classes=[RequestClass(id="c", model=model, isl=1024, osl=128, rate_rps=4)])
    f = Fleet(gpus={gpu: GpuInventory(available=16)}, limits=FleetLimits(allowed_tp=[1]))
    cat = Catalog.load()
    return solve(w, f, perf=PerfModel.load(cat), catalog=cat).notes


@pytest.mark.parametrize(("model", "kind", "prefill"), [
    ("qwen1.5-moe-a2.7b", "MoE", PRIOR_HELD_OUT.moe_prefill),
    ("qwen2.5-14b", "dense", PRIOR_HELD_OUT.dense_prefill),
])
def test_a_plan_from_the_prior_says_how_far_the_prior_missed(model, kind, prefill, monkeypatch):
    monkeypatch.setenv(CATALOG_ENV, str(BYO_CATALOG_DIR))
    notes = [n for n in _plan_notes(model) if "roofline prior" in n]
    assert len(notes) == 1, notes
    n = PRIOR_HELD_OUT.moe_models if kind == "MoE" else PRIOR_HELD_OUT.dense_models
    assert f"on {n} {kind} model{'' if n == 1 else 's'} held out" in notes[0] and f"missed prefill by {prefill:.0%}" in notes[0] and f"--model {model}" in notes[0]
    assert ("CUDA graphs" in notes[0]) == (kind == "MoE")
    assert (f"within {PRIOR_HELD_OUT_MOE_GRAPHS[0]:.0%}" in notes[0]) == (kind == "MoE")
    assert "no profile of any model" not in notes[0]  # the H200 has profiles


def test_a_gpu_type_without_any_profile_is_said_with_its_held_out_figures():
    from planner.perf.heldout import PRIOR_HELD_OUT_GPU as g

    notes = [n for n in _plan_notes("llama-3.1-8b", gpu="L40S") if "roofline prior" in n]
    assert len(notes) == 1 and "L40S has no profile of any model" in notes[0], notes
    assert f"missed by {g.prefill:.0%} / {g.decode:.0%}" in notes[0]
    from planner.perf.heldout import PRIOR_CARD_AND_MODEL_UNSEEN as u

    assert f"both held out by {u[0]:.0%} / {u[1]:.0%}" in notes[0]


def test_a_profiled_model_gets_no_prior_note():
    assert not [n for n in _plan_notes("llama-3.1-8b") if "roofline prior" in n]


@pytest.mark.parametrize(("tune_off", "tune_on", "lomo_on", "fit"), [
    ((0.169, 0.032), (0.088, 0.036), (0.157, 0.075), False),  # stop 37's figures: the LOMO prefill median rose 0.7 point
    ((0.169, 0.032), (0.088, 0.036), (0.154, 0.075), True),   # the same with a LOMO rise of 0.4
    ((0.169, 0.032), (0.155, 0.032), (0.150, 0.075), False),  # a tuning gain of 1.4 points: below the 2 the rule asks
    ((0.169, 0.032), (0.088, 0.045), (0.150, 0.075), False),  # the decode median rose 1.3 points
])
def test_fp8_share_rule(tune_off, tune_on, lomo_on, fit):
    """Rule F1 (planner.perf.heldout.fp8_share_rule): the FP8 share is fitted where the tuning prefill median falls by >= 2
    points, its decode median rises by <= 1 and the leave-one-model-out medians by <= 0.5 each (LOMO without: 15.0 / 7.5%)."""
    from planner.perf.heldout import HeldOut, fp8_share_rule

    def row(pre: float, dec: float) -> HeldOut:
        return HeldOut("t", "prior", np.array([pre]), np.array([dec]))

    lomo_off = {"prefill_median": 0.150, "decode_median": 0.075}
    got = fp8_share_rule(row(*tune_off), row(*tune_on), lomo_off, {"prefill_median": lomo_on[0], "decode_median": lomo_on[1]})
    assert got is fit


def test_card_unseen_scores_the_held_out_set_without_any_profile_of_the_card(capsys, monkeypatch):
    """bench/heldout_model.py --set --card-unseen: the held-out models on the H200 against the prior calibrated without
    any H200 profile (a new model on a card nobody profiled); every model is scored and the errors differ from the
    planner's own prior (which the H200's bundled profiles calibrate)."""
    from bench_loader import load_bench

    monkeypatch.delenv(CATALOG_ENV, raising=False)
    bench = load_bench("heldout_model")

    def result(argv: list[str]) -> dict[str, str]:
        assert bench.main(argv) == 0
        line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("RESULT ")][-1]
        return dict(kv.split("=", 1) for kv in line.split()[1:])

    seen, unseen = result(["--set"]), result(["--set", "--card-unseen"])
    assert seen["models"] == unseen["models"] == str(len(HELD_OUT_SET)) and seen["points"] == unseen["points"]
    assert (seen["prefill_median_pct"], seen["decode_median_pct"]) != (unseen["prefill_median_pct"], unseen["decode_median_pct"])


def test_the_held_out_set_is_scored_only_on_its_own_card(capsys, monkeypatch):
    """bench/heldout_model.py --set on another --gpu would score that card's prior against the H200's measurements (a
    silent wrong comparison): exit 2 naming the card the set was measured on and where the H100 runs are scored."""
    from bench_loader import load_bench

    monkeypatch.delenv(CATALOG_ENV, raising=False)
    assert load_bench("heldout_model").main(["--set", "--gpu", "H100-SXM-80GB"]) == 2
    err = capsys.readouterr().err
    assert "--gpu H100-SXM-80GB" in err and "H200-141GB tp1" in err and "gpu_heldout.py --held-out-set" in err
