"""The sub-interval peak envelope (forecast.peak_envelope, rule R7 of stop 39): what the simulator's observer
reports of an interval's 10-s peak, how far Poisson counting noise lifts that peak (the denoising), and what
decide() plans from it. Pure functions and the pure decide(); the planner is the linear stand-in of
tests/test_controller_decide.py (one decode replica per req/s planned)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controllers.decide import PoolStatus, Snapshot, State, decide, expected_max_normal, initial_state, peak_level
from controllers.observers.simulator import _peak_rps
from tests.test_controller_decide import D, FLEET, IV, M, P, cfg, linear_plan, obs


@pytest.mark.parametrize("n,expected", [
    (1, 0.0),
    (2, 1 / math.sqrt(math.pi)),  # E[max of two standard normals], in closed form
    (6, 1.2672),                  # six 10-s windows of a 60-s interval (order-statistics tables)
])
def test_expected_max_of_standard_normals(n, expected):
    assert expected_max_normal(n) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("rate,peak,extra,expected", [
    (3.5, None, 0.0, 3.5),                                   # not observed (Prometheus): the mean
    (1.0, 1.3, 0.0, 1.0),                                    # Poisson's own peak: never below the mean
    (3.5, 7.3, 0.0, 7.3 - 1.2672 * math.sqrt(3.5 / 10)),     # a 40-s burst in a 60-s interval
    (3.5, 7.3, 1.0, 7.3 - 2.2672 * math.sqrt(3.5 / 10)),     # one more sd taken off
    (0.0, 0.0, 0.0, 0.0),                                    # no traffic
])
def test_peak_level_denoises_the_highest_window(rate, peak, extra, expected):
    assert peak_level(rate, peak, 6, 10.0, extra) == pytest.approx(expected, rel=1e-3)


def test_peak_level_of_poisson_arrivals_is_their_rate_on_average():
    """Seeded Poisson intervals at 1 and 8 req/s: the denoised peak is at most 8% above the rate on average (the
    floor at the interval's mean lifts it 2-7%), so the envelope does not plan counting noise as load; the raw
    10-s peak is 14-40% above."""
    rng = np.random.default_rng(7)
    for rate in (1.0, 8.0):
        levels, raw = [], []
        for _ in range(400):
            t = np.sort(rng.uniform(0, 60.0, rng.poisson(rate * 60.0)))
            p = _peak_rps(t, 10.0, 60.0)
            raw.append(p)
            levels.append(peak_level(t.size / 60.0, p, 6, 10.0, 0.0))
        assert rate <= np.mean(levels) <= 1.08 * rate
        assert np.mean(raw) > 1.1 * rate


def test_observer_peak_counts_whole_windows():
    t = np.array([1.0, 2.0, 3.0, 12.0, 31.0, 32.0, 33.0, 34.0, 59.0])
    assert _peak_rps(t, 10.0, 60.0) == pytest.approx(0.4)  # four arrivals in [30, 40)
    assert _peak_rps(np.array([]), 10.0, 60.0) == 0.0
    assert _peak_rps(t, 10.0, 15.0) is None                # fewer than two windows


def _envelope(peaks: list[float | None], **forecast: object) -> float:
    state: State = initial_state(cfg(**forecast), linear_plan, FLEET, None)  # type: ignore[arg-type]
    rates = [1.0, 3.5, 1.0, 1.0]
    v = None
    for k, (r, p) in enumerate(zip(rates, peaks, strict=True)):
        o = obs(r)
        o.models[M].arrival_peak_rps = {} if p is None else {10.0: p}
        v, state = decide(state, Snapshot(metrics=o, pools={P: PoolStatus(2, 2), D: PoolStatus(4, 4)}), k * IV)
    assert v is not None
    return v.forecasts[M].envelope_rps


@pytest.mark.parametrize("peaks,on,expected", [
    ([1.2, 7.3, 1.2, 1.2], True, 7.3 - 2.2672 * math.sqrt(3.5 / 10)),  # the burst's on-level is held (1 sd off)
    ([1.2, 7.3, 1.2, 1.2], False, 3.5),                                 # off: the interval means
    ([None, None, None, None], True, 3.5),                              # not observed: the interval means
    ([1.2, 3.9, 1.2, 1.2], True, 3.5),                                  # a Poisson-like peak adds nothing
])
def test_envelope_holds_the_on_level_of_a_burst_shorter_than_the_interval(peaks, on, expected):
    """mmpp-onoff +400's first burst (40 s at 7-8 req/s, 3.5 req/s as its interval's mean): with the peak
    envelope the window remembers the on-level, so the next burst finds the fleet for it."""
    assert _envelope(peaks, peak_envelope=on) == pytest.approx(expected, rel=1e-3)
