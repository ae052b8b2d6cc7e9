"""Rules 48-M and 48-G (bench/moe_law_rules.py): an MoE's prefill attention term held at the roofline prior's
(LawForms.moe_attention_prior; off: its tuning profiles got worse) and the token table stepping at the engine's
CUDA-graph limit instead of ramping across it (LawForms.moe_table_graph_step; the default since stop 48)."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from planner.io.catalog import Catalog
from planner.perf.fit import fit_prefill_floor, prefill_floor_ms
from planner.perf.laws import DEFAULT_LAW_FORMS, cuda_graph_limit_tokens, fit_profile, prior_variant, table_ratio
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


def test_the_bench_applies_both_rules(capsys: pytest.CaptureFixture[str]) -> None:
    """The bench re-judges both rules on the bundled MoE profiles: 48-M not adopted, 48-G adopted, and the library's
    default law forms say the same."""
    sys.path.insert(0, str(REPO / "bench"))
    import moe_law_rules

    assert moe_law_rules.main([]) == 0
    result = dict(kv.split("=", 1) for kv in capsys.readouterr().out.strip().splitlines()[-1].split()[1:])
    assert result["moe_profiles"] == "3"
    assert result["m_adopted"] == str(int(DEFAULT_LAW_FORMS.moe_attention_prior)) == "0"
    assert result["g_adopted"] == str(int(DEFAULT_LAW_FORMS.moe_table_graph_step)) == "1"
    assert result["g_tuning_worse"] == "0" and int(result["g_tuning_better"]) >= 1


@pytest.mark.parametrize("flags, seqs, limit", [
    ([], 256, 512.0),                                                          # vLLM 0.26's default
    ([], 128, 256.0),                                                          # 2 x max_num_seqs when smaller
    (["--extra-args=--cudagraph-capture-sizes 1 2 4 512 1024 4096"], 256, 4096.0),  # plan s16's graphs4k runs
    (["--max-cudagraph-capture-size", "2048"], 256, 2048.0),
])
def test_the_graph_limit_comes_from_the_engine_flags(flags: list[str], seqs: int, limit: float) -> None:
    assert cuda_graph_limit_tokens(flags, seqs) == limit


def test_the_table_steps_at_the_limit_instead_of_ramping_across_it() -> None:
    tokens, ratio = (128.0, 2048.0, 8192.0), (0.9, 2.1, 0.8)
    assert table_ratio(tokens, ratio, 512.0) == pytest.approx(0.9 + 1.2 * 2 / 4)  # the ramp: 2 of 4 log2-steps
    assert table_ratio(tokens, ratio, 512.0, step_tokens=512.0) == 0.9  # its own side: the 128-token point
    assert table_ratio(tokens, ratio, 1024.0, step_tokens=512.0) == 2.1  # past the limit: the 2,048-token point
    assert table_ratio(tokens, ratio, 4096.0, step_tokens=512.0) == pytest.approx(table_ratio(tokens, ratio, 4096.0))
    assert table_ratio(tokens, ratio, 100.0, step_tokens=64.0) == table_ratio(tokens, ratio, 100.0)  # no point below


def test_the_h100_fp8_moe_half_profile_no_longer_ramps_over_the_limit() -> None:
    """What rule 48-G was written on: fitted on half of qwen3-30b-a3b FP8's H100 profile, its 512-token prompt read
    43 ms from a ramp between the 128- and 2,048-token points; it measured 22 ms, and with the step the laws say so."""
    from planner.perf.heldout import _points, checkerboard, subset_fit_errors

    cat = Catalog.load()
    prof = load_profile(REPO / "profiles/data/qwen3-30b-a3b/H100-SXM-80GB/tp1-fp8/vllm")
    pre, dec = _points(prof)
    masks = (checkerboard(pre, "isl", "batch"), checkerboard(dec, "batch", "context_tokens"))
    before = dataclasses.replace(DEFAULT_LAW_FORMS, moe_table_graph_step=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = subset_fit_errors(prof, cat, *masks, forms=before).prefill_rel_err
        new = subset_fit_errors(prof, cat, *masks, forms=DEFAULT_LAW_FORMS).prefill_rel_err
    assert old.max() > 0.9 and new.max() < 0.3
