"""Pure stages of the controller: forecast, correction factors, guard rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controllers.config import GuardConfig
from controllers.correct import CorrectedPerf, Corrections, update_corrections, update_factor
from controllers.forecast import forecast_upper
from controllers.guard import GuardState, guard
from planner.perf.laws import VariantPerf

P, D = "m/prefill/H100/tp1", "m/decode/H100/tp1"


# ------------------------------------------------------------------ forecast
def test_forecast_rising_trend_plans_above_last_value():
    y = list(10 + 2 * np.arange(16) + np.random.default_rng(2).normal(0, 0.3, 16))
    f = forecast_upper(y, interval_s=30, horizon_s=120)
    assert f.method == "holt-damped"
    assert f.upper > y[-1] and f.point > y[-1]


def test_forecast_short_history_has_no_trend_but_an_interval():
    """A handful of points: level only (simple exponential smoothing), upper bound above the level."""
    y = [300, 320, 290, 310, 305, 330, 300, 315]
    f = forecast_upper(y, interval_s=60, horizon_s=240, quantile=0.9)
    assert f.method == "ses"
    assert f.point < max(y) + 1  # no trend extrapolated from 8 points
    assert f.upper > f.point
    assert forecast_upper(y, 60, 240, quantile=0.6).upper < f.upper


def test_forecast_never_below_last_observation_when_falling():
    f = forecast_upper([50, 45, 40, 35, 30, 25, 20], interval_s=30, horizon_s=120)
    assert f.upper >= 20


def test_forecast_short_history_and_flat():
    assert forecast_upper([3.0, 4.0], 30, 60).upper == 4.0
    assert forecast_upper([5.0] * 10, 30, 60).method == "last"
    assert forecast_upper([], 30, 60).upper == 0.0


def test_forecast_uses_season_with_two_periods():
    t = np.arange(60)
    y = 20 + 10 * np.sin(2 * np.pi * t / 12) + np.random.default_rng(0).normal(0, 0.5, 60)
    f = forecast_upper(list(y), interval_s=60, horizon_s=180, season_s=720)
    assert f.method == "holt-winters"
    # the next 3 steps of the sine are about 20 + 10*sin(2*pi*{60,61,62}/12): peak near 28.7
    assert 24 < f.point < 35


def test_forecast_upper_quantile_widens_with_horizon():
    y = list(20 + np.random.default_rng(1).normal(0, 3, 40))
    near = forecast_upper(y, 30, 30, quantile=0.9)
    far = forecast_upper(y, 30, 600, quantile=0.9)
    assert far.upper - far.point >= near.upper - near.point


# ------------------------------------------------------------------ correct
def test_correction_is_bounded_and_multiplicative():
    assert update_factor(1.0, 200.0, 100.0, 1.0, 0.5, 2.0) == pytest.approx(2.0)
    assert update_factor(1.0, 160_000.0, 500.0, 1.0, 0.5, 2.0) == 2.0  # 160 s vs 0.5 s: capped
    assert update_factor(1.0, 10.0, 100.0, 1.0, 0.5, 2.0) == 0.5
    assert update_factor(1.0, 150.0, 100.0, 0.5, 0.5, 2.0) == pytest.approx(math.sqrt(1.5))
    assert update_factor(1.3, None, 100.0, 0.5, 0.5, 2.0) == 1.3
    assert update_factor(1.3, float("nan"), 100.0, 0.5, 0.5, 2.0) == 1.3


def test_corrections_notes_and_scaled_perf():
    c, notes = update_corrections(Corrections(), {"m": {"ttft_ms": 300.0, "itl_ms": 20.0}},
                                  {"m": {"ttft_ms": 150.0, "itl_ms": 20.0}}, 1.0, 0.5, 2.0)
    assert c.ttft["m"] == pytest.approx(2.0) and c.itl["m"] == pytest.approx(1.0)
    assert len(notes) == 1 and "ttft" in notes[0]
    vp = VariantPerf(model="m", gpu="H100", tp=1, source="prior", prefill_a_ms=10, prefill_b_ms_per_token=0.1,
                     prefill_c_ms_per_token2=1e-6, decode_alpha_ms=5, decode_beta_ms_per_seq=0.1,
                     decode_gamma_ms_per_token=1e-5, kv_capacity_tokens=1000, kv_bytes_per_token=1, kv_link_gb_s=1)

    class Base:
        def get(self, model, gpu, tp):
            return vp if model == "m" else None

    cp = CorrectedPerf(Base(), c)
    assert cp.get("m", "H100", 1).prefill_ms(1000) == pytest.approx(2 * vp.prefill_ms(1000))
    assert cp.get("m", "H100", 1).decode_step_ms(8, 1000) == pytest.approx(vp.decode_step_ms(8, 1000))
    assert cp.get("x", "H100", 1) is None


# ------------------------------------------------------------------ guard
def cfg(**kw) -> GuardConfig:
    base = dict(scale_up_cooldown_s=0, scale_down_cooldown_s=0, scale_down_stabilization_s=300)
    base.update(kw)
    return GuardConfig(**base)


def test_hold_when_metrics_stale_keeps_last_good():
    st = GuardState()
    g = guard(cfg(), st, 0, {P: 1, D: 2}, {P: 2, D: 3}, metrics_ok=True)
    assert g.target == {P: 2, D: 3} and not g.held
    g = guard(cfg(), st, 30, {P: 2, D: 3}, None, metrics_ok=False, metrics_reason="stale")
    assert g.held and g.target == {P: 2, D: 3} and "stale" in g.reasons[0]
    g = guard(cfg(), st, 60, {P: 2, D: 3}, {P: 0, D: 0}, metrics_ok=True, solver_ok=False, solver_reason="infeasible")
    assert g.held and g.target == {P: 2, D: 3}


def test_hold_before_any_plan_keeps_fleet_as_found():
    g = guard(cfg(), GuardState(), 0, {P: 1}, None, metrics_ok=False)
    assert g.held and g.target == {P: 1}


def test_scale_down_waits_for_stabilization_window():
    st, c = GuardState(), cfg(scale_down_stabilization_s=120)
    assert guard(c, st, 0, {D: 4}, {D: 4}, metrics_ok=True).target == {D: 4}
    assert guard(c, st, 30, {D: 4}, {D: 1}, metrics_ok=True).target == {D: 4}  # 4 seen 30 s ago
    assert guard(c, st, 90, {D: 4}, {D: 2}, metrics_ok=True).target == {D: 4}
    t = guard(c, st, 150, {D: 4}, {D: 1}, metrics_ok=True).target  # the 4 at t=0 left the window
    assert t == {D: 2}  # max recommendation within [30, 150] is 2
    assert guard(c, st, 300, {D: 2}, {D: 1}, metrics_ok=True).target == {D: 1}


def test_scale_up_is_immediate_and_cooldowns_defer():
    st, c = GuardState(), cfg(scale_down_stabilization_s=0, scale_down_cooldown_s=100, scale_up_cooldown_s=50)
    assert guard(c, st, 0, {D: 1}, {D: 3}, metrics_ok=True).target == {D: 3}
    g = guard(c, st, 20, {D: 3}, {D: 5}, metrics_ok=True)
    assert g.target == {D: 3} and "cooldown" in g.reasons[0]
    assert guard(c, st, 60, {D: 3}, {D: 5}, metrics_ok=True).target == {D: 5}
    assert guard(c, st, 100, {D: 5}, {D: 1}, metrics_ok=True).target == {D: 5}
    assert guard(c, st, 170, {D: 5}, {D: 1}, metrics_ok=True).target == {D: 1}


def test_floor_and_queue_growth_veto():
    st, c = GuardState(), cfg(scale_down_stabilization_s=0, min_replicas={P: 2})
    assert guard(c, st, 0, {P: 3}, {P: 0}, metrics_ok=True).target == {P: 2}
    st = GuardState()
    g = guard(c, st, 0, {P: 4}, {P: 2}, metrics_ok=True, queue_growing={P})
    assert g.target == {P: 4} and "queue growing" in g.reasons[0]


def test_pools_dropped_by_plan_go_to_zero_after_window():
    st, c = GuardState(), cfg(scale_down_stabilization_s=60)
    guard(c, st, 0, {P: 1, D: 1}, {P: 1, D: 1}, metrics_ok=True)
    assert guard(c, st, 30, {P: 1, D: 1}, {P: 1}, metrics_ok=True).target == {P: 1, D: 1}
    assert guard(c, st, 100, {P: 1, D: 1}, {P: 1}, metrics_ok=True).target == {P: 1, D: 0}


def test_histogram_bucket_resolution_is_not_learned_as_model_error():
    """A percentile read from vLLM's buckets only says which bucket holds it (Prometheus interpolates)."""
    from controllers.correct import ITL_BUCKETS_MS, bucket_consistent

    # true ITL ~40 ms reads as ~47.5 ms (25-50 ms bucket): a 39 ms prediction agrees
    assert bucket_consistent(47.5, 39.0, ITL_BUCKETS_MS) == 39.0
    # the prediction below the observed bucket: learn only up to the bucket's lower edge
    assert bucket_consistent(73.0, 39.0, ITL_BUCKETS_MS) == 50.0
    assert bucket_consistent(30.0, 80.0, ITL_BUCKETS_MS) == 50.0
    assert bucket_consistent(47.5, 39.0, None) == 47.5  # exact samples (simulator): as observed
    c, _ = update_corrections(Corrections(), {"m": {"ttft_ms": None, "itl_ms": 47.5}}, {"m": {"ttft_ms": None, "itl_ms": 39.0}},
                              1.0, 0.5, 2.0, buckets={"itl": ITL_BUCKETS_MS})
    assert c.factor("itl", "m") == pytest.approx(1.0)


def test_forecast_picks_level_model_on_trendless_noise_by_aicc():
    """Enough points for a trend, but none in the data: the AICc choice keeps the level-only model,
    whose interval does not extrapolate the noise; a real ramp still gets the damped trend."""
    noise = list(300 + np.random.default_rng(5).normal(0, 25, 40))
    f = forecast_upper(noise, interval_s=60, horizon_s=240, quantile=0.6)
    assert f.method == "ses"
    ramp = list(100 + 8 * np.arange(40) + np.random.default_rng(5).normal(0, 3, 40))
    g = forecast_upper(ramp, interval_s=60, horizon_s=240, quantile=0.6)
    assert g.method == "holt-damped" and g.point > ramp[-1]
