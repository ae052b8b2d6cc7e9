"""bench/gpu_heldout.py: a new run's vLLM profiles against the planner's laws and the bundled torch reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bench_loader import load_bench

from planner.io.catalog import Catalog
from planner.perf.heldout import HeldOut, RunHeldOut, held_out_runs, perf_leaving_out, prior_beats_torch
from planner.perf.laws import DEFAULT_PROFILES_DIR, PerfModel
from planner.perf.profiledata import iter_profiles

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    return load_bench("gpu_heldout")


def _result(out: str) -> dict[str, str]:
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT ")][-1]
    return dict(kv.split("=", 1) for kv in line.split()[1:])


def _h200_vllm_as(tmp_path: Path, gpu: str) -> Path:
    """A run folder holding the bundled H200 llama-3.1-8b vLLM profile relabelled as `gpu` (its numbers are not that
    GPU's: the test checks the bench's bookkeeping, not the prior's accuracy). Relabelled to a slower card its times
    are scaled by the HBM bandwidths' ratio, so that they stay above that card's roofline floor (rule V1: the bench
    leaves out a profile faster than physics allows)."""
    src = DEFAULT_PROFILES_DIR / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm"
    dst = tmp_path / "run" / "llama-3.1-8b" / gpu / "tp1" / "vllm"
    dst.mkdir(parents=True)
    cat = Catalog.load()
    slower = max(1.0, cat.gpu("H200-141GB").hbm_tb_s / cat.gpu(gpu).hbm_tb_s)
    for f, col in (("prefill.csv", "ttft_ms"), ("decode.csv", "itl_ms")):
        df = pd.read_csv(src / f)
        for c in [c for c in df.columns if c.startswith(col.split("_")[0] + "_")]:  # the value, its min / max, e2e
            df[c] = df[c] * slower
        df.to_csv(dst / f, index=False)
    (dst / "meta.yaml").write_text((src / "meta.yaml").read_text().replace("gpu: H200-141GB", f"gpu: {gpu}"))
    return tmp_path / "run"


def test_held_out_run_pairs_the_torch_reference(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("PLANNER_CATALOG", raising=False)
    run = _h200_vllm_as(tmp_path, "H100-SXM-80GB")
    assert _bench().main(["--runs", str(run)]) == 0
    res = _result(capsys.readouterr().out)
    assert res["variants"] == "1" and res["torch_variants"] == "1"  # the bundled H100 torch profile is paired
    assert res["h2_rule"] in ("prior", "torch")
    assert float(res["torch_median_pct"]) > 0 and float(res["prior_median_pct"]) > 0
    assert res["prior_median_pct"] == res["prior_on_torch_median_pct"]  # the one variant is the paired one


def test_held_out_rows_use_the_prior_and_are_scored_on_every_point(tmp_path):
    run = _h200_vllm_as(tmp_path, "H100-SXM-80GB")
    cat = Catalog.load()
    profiles = list(iter_profiles(run))
    rows = held_out_runs(perf_leaving_out(profiles, cat), cat, profiles, list(iter_profiles(DEFAULT_PROFILES_DIR)))
    assert len(rows) == 1 and rows[0].planner.law_source == "prior" and rows[0].torch is not None
    assert rows[0].planner.prefill_rel_err.size > 0 and rows[0].planner.decode_rel_err.size > 0
    assert rows[0].torch.decode_rel_err.size == rows[0].planner.decode_rel_err.size


def test_a_variant_fitted_from_a_profile_is_not_held_out(tmp_path):
    """held_out_runs refuses laws fitted from a profile of the run's variant (they would not be held out); the bench
    leaves such profiles out first (perf_leaving_out), so a run already bundled is scored against the prior."""
    run = _h200_vllm_as(tmp_path, "H200-141GB")  # the planner fits this variant from profiles/data
    cat = Catalog.load()
    profiles = list(iter_profiles(run))
    with pytest.raises(ValueError, match="not held out"):
        held_out_runs(PerfModel.load(cat), cat, profiles, [])
    pm = perf_leaving_out(profiles, cat)
    assert not pm.is_measured("llama-3.1-8b", "H200-141GB", 1) and PerfModel.load(cat).is_measured("llama-3.1-8b", "H200-141GB", 1)
    assert pm.is_measured("llama-3.1-8b", "H200-141GB", 1, "fp8")  # other variants of the model keep their profiles
    assert held_out_runs(pm, cat, profiles, [])[0].planner.law_source == "prior"


def test_card_unseen_leaves_out_every_profile_of_the_card(tmp_path):
    """--card-unseen: every bundled profile of the run's GPU type is left out of the laws (other models' vLLM, the
    torch reference, Splitwise alike), so the prior sees the card from its catalog entry alone; other cards keep theirs."""
    run = _h200_vllm_as(tmp_path, "H100-SXM-80GB")
    cat = Catalog.load()
    profiles = list(iter_profiles(run))
    full = PerfModel.load(cat)
    assert full.is_measured("qwen3-32b", "H100-SXM-80GB", 1)  # another model's bundled H100 profile
    seen, unseen = perf_leaving_out(profiles, cat), perf_leaving_out(profiles, cat, card_unseen=True)
    assert seen.is_measured("qwen3-32b", "H100-SXM-80GB", 1)
    assert not any(k[1] == "H100-SXM-80GB" for k in unseen.measured)
    assert unseen.is_measured("qwen3-32b", "H200-141GB", 1) and unseen.is_measured("llama-3.1-8b", "H200-141GB", 1)
    rows = held_out_runs(unseen, cat, profiles, [])
    assert len(rows) == 1 and rows[0].planner.law_source == "prior"
    # the card's own profiles moved the prior: its prediction of the run differs once they are left out
    assert not np.allclose(rows[0].planner.decode_rel_err, held_out_runs(seen, cat, profiles, [])[0].planner.decode_rel_err)


def test_plan_h1_is_held_out_after_its_profiles_were_bundled(capsys, monkeypatch):
    """Plan h1's H100 profiles are in profiles/data since stop 37; the bench still scores them against the prior
    calibrated without them, and gives the figures its README quotes: rule H1's (written before the run) at stop 37,
    10.8% median with 3 of 4 variants within 15%; since stop 38 (plan h2's FP8 profiles of other models on the H100 in
    the calibration, rule F2's FP8 share) 8.8% with 4 of 4, the README's second line; since stop 39 (rule V1 leaves the
    MoE's FP8 profile out, below its roofline floor) 9.2% with 4 of 4, its third; since stop 40 (plan h3's FP8-KV
    llama-3.1-8b on the H100 in the calibration) 8.2% with 4 of 4, its fourth; since stop 42 (rule B2's Cauchy loss) 6.2%
    with 4 of 4, its fifth."""
    monkeypatch.delenv("PLANNER_CATALOG", raising=False)
    run = ROOT / "profiles" / "runs" / "2026-12-05-h1"
    assert _bench().main(["--runs", str(run), "--gpu", "H100-SXM-80GB"]) == 0
    res = _result(capsys.readouterr().out)
    assert (res["variants"], res["points"], res["prior_median_pct"], res["within_goal"], res["h2_rule"]) == (
        "4", "84", "6.2", "4", "prior")
    assert f"`RESULT variants=4 points=84 prior_prefill_median_pct={res['prior_prefill_median_pct']}" in (
        run / "README.md").read_text()


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_bad_runs_folder_exits_2(tmp_path, capsys, make):
    path = tmp_path / "nothing"
    if make == "empty":
        path.mkdir()
    assert _bench().main(["--runs", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "Traceback" not in err


@pytest.mark.parametrize(("prior", "torch", "want"), [
    ([0.05, 0.06, 0.07], [0.10, 0.11, 0.12], True),   # better by 5 points, p90 lower
    ([0.09, 0.10, 0.11], [0.10, 0.11, 0.12], False),  # better by 1 point: within D_MARGIN_PCT
    ([0.01, 0.02, 0.90], [0.10, 0.11, 0.12], False),  # median far better, p90 worse
])
def test_prior_beats_torch_rule(prior, torch, want):
    assert prior_beats_torch(np.array(prior), np.array(torch)) is want


def test_summary_without_torch_reference_says_none():
    e = np.array([0.1, 0.2])
    row = RunHeldOut("x", HeldOut("x", "prior", e, e), None)
    sm = _bench().summary([row], 0.15)
    assert sm["h2_rule"] == "none" and sm["torch_variants"] == 0 and sm["within_goal"] == 0


def test_the_held_out_h100_set_is_scored_together(capsys, monkeypatch):
    """--held-out-set: the committed H100 runs of the held-out models (HELD_OUT_H100, plans h2-h7), none calibrated on,
    every one within issue 10's 15% median; with --card-unseen the prior has no H100 profile at all and misses more."""
    from planner.perf.heldout import HELD_OUT_H100

    monkeypatch.delenv("PLANNER_CATALOG", raising=False)
    assert _bench().main(["--held-out-set"]) == 0
    seen = _result(capsys.readouterr().out)
    assert seen["variants"] == seen["within_goal"] == str(len(HELD_OUT_H100)) == "6"
    # rule D2's pairs (plan d2, HELD_OUT_H100_TORCH): the torch reference's laws scored beside the prior, which
    # misses those variants' vLLM points by less at the median and at the p90, pooled (the form part D now takes)
    assert seen["torch_variants"] == "3" and seen["h2_rule"] == "prior"
    assert float(seen["prior_on_torch_median_pct"]) + 2 <= float(seen["torch_median_pct"])
    assert _bench().main(["--held-out-set", "--card-unseen"]) == 0
    unseen = _result(capsys.readouterr().out)
    assert unseen["variants"] == "6" and float(unseen["prior_median_pct"]) > float(seen["prior_median_pct"])
