"""An MoE's measured prefill as a token table (planner.perf.laws.prefill_token_table).

vLLM runs steps over its default CUDA-graph sizes (512 tokens) without a graph, so a small-expert MoE's
prefill is a step function of tokens (profiles/runs/2026-12-03-s8, 2026-12-04-s15 READMEs): the perf model multiplies the law by the
measured/law ratio at the pass's tokens; dense models keep the law alone. Real data: the committed
qwen3-30b-a3b and llama-3.1-8b H200 vLLM profiles.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from planner.io.catalog import PROFILES_DIR, Catalog
from planner.perf.laws import LINEAR_LAW_FORMS, MOE_TABLE_MIXED_SHARE, LawForms, fit_profile, prefill_token_table, table_ratio
from planner.perf.profiledata import central_points, load_profile
from planner.simulate.steptime import mixed_step_ms

MOE_DIR = PROFILES_DIR / "data" / "qwen3-30b-a3b" / "H200-141GB" / "tp1" / "vllm"
DENSE_DIR = PROFILES_DIR / "data" / "llama-3.1-8b" / "H200-141GB" / "tp1" / "vllm"


@pytest.fixture(scope="module")
def cat() -> Catalog:
    return Catalog.load()


@pytest.mark.parametrize(("tokens", "expected"), [
    (100.0, 2.0),      # below the first point: held at its ratio
    (1000.0, 2.0),
    (4000.0, 0.5),     # between, linear in log tokens: halfway in log between 1000 and 16000
    (16000.0, 1.0),
    (1e6, 1.0),        # beyond the last: held
])
def test_table_ratio_interpolates_in_log_tokens_and_holds_at_the_ends(tokens: float, expected: float) -> None:
    knots, ratio = (1000.0, 4000.0, 16000.0), (2.0, 0.5, 1.0)
    assert table_ratio(knots, ratio, tokens) == pytest.approx(expected)


def test_table_takes_the_median_ratio_of_points_sharing_a_token_count() -> None:
    isl, batch = np.array([512, 2048, 2048, 1024]), np.array([4, 1, 1, 1])
    measured, law = np.array([90.0, 60.0, 30.0, 50.0]), np.array([30.0, 30.0, 30.0, 25.0])
    tokens, ratio = prefill_token_table(isl, batch, measured, law)
    assert tokens == (1024.0, 2048.0)
    assert ratio == pytest.approx((2.0, 2.0))  # 2048 tokens: ratios 3, 2, 1 -> median 2


def test_moe_profile_reproduces_its_measured_points_and_the_law_alone_does_not(cat: Catalog) -> None:
    prof = load_profile(MOE_DIR)
    vp, _, _ = fit_profile(prof, cat)
    law, _, _ = fit_profile(prof, cat, forms=LawForms(prefill_floor=True, decode_knee=True, moe_prefill_table=False))
    assert vp.prefill_table_tokens and not law.prefill_table_tokens
    pre = central_points(prof.prefill, ["isl", "batch"], "ttft_ms")
    single = pre[pre.batch == 1]
    with_table = np.array([vp.prefill_ms(i, 1) for i in single.isl]) / single.ttft_ms.to_numpy() - 1.0
    law_only = np.array([law.prefill_ms(i, 1) for i in single.isl]) / single.ttft_ms.to_numpy() - 1.0
    # exact where a token count has one point; where a batch-4 point shares it (512x4 = 2048x1, 2048x4 =
    # 8192x1) the table holds the median of the two ratios, within their spread (< 8% here)
    shared = np.isin(single.isl.to_numpy(), (pre[pre.batch > 1].isl * pre[pre.batch > 1].batch).to_numpy())
    assert np.max(np.abs(with_table[~shared])) < 1e-9 and np.max(np.abs(with_table[shared])) < 0.08
    assert np.max(np.abs(law_only)) > 0.3  # the step from 512 to 1,024 tokens no law of tokens follows
    # 1,024 tokens: the measured ~90 ms, not the law's half of it
    row = single[single.isl == 1024].ttft_ms.iloc[0]
    assert vp.prefill_ms(1024, 1) == pytest.approx(row, rel=0.01) and law.prefill_ms(1024, 1) < 0.7 * row


def test_dense_profiles_keep_the_law_alone(cat: Catalog) -> None:
    vp, _, _ = fit_profile(load_profile(DENSE_DIR), cat)
    assert vp.prefill_table_tokens == () and vp.prefill_excess_ms(1024, 1024**2) == 0.0
    lin, _, _ = fit_profile(load_profile(MOE_DIR), cat, forms=LINEAR_LAW_FORMS)
    assert lin.prefill_table_tokens == ()


def test_mixed_step_carries_the_excess_at_its_prefill_tokens_and_never_goes_negative(cat: Catalog) -> None:
    vp, _, _ = fit_profile(load_profile(MOE_DIR), cat)
    bare = replace(vp, prefill_table_tokens=(), prefill_table_ratio=())
    for tokens in (128, 512, 1024, 2048, 8192):
        isl2 = float(tokens * tokens)
        extra = mixed_step_ms(vp, 16, 16000.0, tokens, isl2) - mixed_step_ms(bare, 16, 16000.0, tokens, isl2)
        marginal = bare.prefill_b_ms_per_token * tokens + bare.prefill_c_ms_per_token2 * tokens * tokens
        assert extra == pytest.approx(max(-marginal, MOE_TABLE_MIXED_SHARE * vp.prefill_excess_ms(tokens, tokens * tokens)))
    # at 1,024 tokens the measured pass is ~2x the law's: a mixed step is longer by a share of that excess
    assert vp.prefill_excess_ms(1024, 1024**2) > 30.0
    # a step without decodes is a prefill pass as the profile measured it: the whole table, not the mixed share
    for tokens in (512, 1024, 2048):
        assert mixed_step_ms(vp, 0, 0.0, tokens, float(tokens * tokens)) == pytest.approx(vp.prefill_ms(tokens, 1))
    # decode-only steps are untouched
    assert mixed_step_ms(vp, 16, 16000.0, 0, 0.0) == mixed_step_ms(bare, 16, 16000.0, 0, 0.0)
