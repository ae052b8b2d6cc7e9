"""Rule 48-M's candidate (planner.perf.laws.LawForms.moe_attention_prior): an MoE's prefill attention term held at the
roofline prior's, a, b and the floor fitted around it; off by default because the rule's tuning profiles got worse
(bench/moe_attention_prior.py)."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from planner.io.catalog import Catalog
from planner.perf.fit import fit_prefill_floor, prefill_floor_ms
from planner.perf.laws import DEFAULT_LAW_FORMS, fit_profile, prior_variant
from planner.perf.profiledata import load_profile

REPO = Path(__file__).resolve().parents[1]
MOE_H200 = REPO / "profiles/data/qwen3-30b-a3b/H200-141GB/tp1/vllm"
DENSE_H200 = REPO / "profiles/data/llama-3.1-8b/H200-141GB/tp1/vllm"


@pytest.mark.parametrize("floor", [0.0, 6.0])
def test_a_held_c_recovers_the_other_coefficients(floor: float) -> None:
    """On points drawn from a known law, the fit with c held at the true c gives back a, b and the floor; with c held
    at half of it, a and b move to make up for it (the fit is not ignoring c)."""
    isl, batch = (x.ravel() for x in np.meshgrid([128, 256, 512, 1024, 2048, 4096, 8192], [1, 2, 4]))
    a, b, c = 3.0, 0.02, 6e-7
    y = prefill_floor_ms(a, b, c, floor, isl.astype(float), batch.astype(float))
    (fa, fb, fc, ff), rep = fit_prefill_floor(isl, batch, y, floor_max_ms=8.0, c_fixed=c)
    assert fc == c and fa == pytest.approx(a, rel=1e-3) and fb == pytest.approx(b, rel=1e-3)
    assert ff == pytest.approx(floor, abs=0.05) and rep.median_rel_err < 1e-3
    (ha, hb, hc, _), rep_half = fit_prefill_floor(isl, batch, y, floor_max_ms=8.0, c_fixed=c / 2)
    assert hc == c / 2 and hb > b and rep_half.median_rel_err > 1e-3


def test_the_flag_holds_an_moes_c_at_the_prior_and_leaves_dense_profiles_alone() -> None:
    cat = Catalog.load()
    cand = dataclasses.replace(DEFAULT_LAW_FORMS, moe_attention_prior=True)
    moe = load_profile(MOE_H200)
    prior_c = prior_variant("qwen3-30b-a3b", "H200-141GB", 1, cat)[0].prefill_c_ms_per_token2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the laws' extrapolation warnings
        held = fit_profile(moe, cat, forms=cand)[0]
        fitted = fit_profile(moe, cat)[0]
        dense = load_profile(DENSE_H200)
        assert fit_profile(dense, cat, forms=cand)[0] == fit_profile(dense, cat)[0]
    assert held.prefill_c_ms_per_token2 == prior_c
    assert fitted.prefill_c_ms_per_token2 < prior_c / 2  # the default keeps the fitted c (2.3e-7 against 7.9e-7)
    assert held.prefill_table_tokens == fitted.prefill_table_tokens  # the token table is taken as always
    assert not DEFAULT_LAW_FORMS.moe_attention_prior


def test_the_bench_applies_rule_48m_and_keeps_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import moe_attention_prior

    assert moe_attention_prior.main([]) == 0
    result = dict(kv.split("=", 1) for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])
    assert result["moe_profiles"] == "3" and result["adopted"] == "0" and int(result["tuning_worse"]) >= 1
    default, candidate = (float(x) for x in result["heldout_part_c_p90_pct"].split("/"))
    assert candidate < default

