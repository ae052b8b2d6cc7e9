"""The short-term forecasters by name: `forecast.short` in the controller config.

Each entry wraps one of the existing forecasting functions (controllers.decide.short_forecast and
fit_forecast, controllers.forecast.forecast_upper) with the arguments controllers.decide passes it,
behind one signature: `(series, ForecastInputs) -> planned value` (same unit as the series). No
forecasting logic lives here; the functions and their tuning stay where they are. A new forecaster
is one registration here (or in its own module that imports FORECASTERS) plus its tests; the
test suite checks that the registry and the config's choices agree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from controllers.config import ControllerConfig
from controllers.registry import Registry


@dataclass(frozen=True)
class ForecastInputs:
    """What a short forecaster may use besides the series."""

    cfg: ControllerConfig
    steps: int
    """Intervals ahead: ceil(horizon / interval), >= 1."""
    horizon_s: float
    """Start-up + one interval (controllers.decide.horizon_s)."""
    count_per_interval: float | None = None
    """Requests of the last interval (the trend's counting-noise test); None: no test."""
    envelope: float | None = None
    """The series' recent-peak envelope (controllers.decide); the trend is capped at
    forecast.trend_max_factor x it when that is set. None: no cap."""


ShortForecaster = Callable[[np.ndarray, ForecastInputs], float]
FORECASTERS: Registry[ShortForecaster] = Registry("forecast.short", default="trend")


@FORECASTERS.register("trend", "last value + the smallest rise of the last trend_points intervals x the horizon")
def trend(series: np.ndarray, x: ForecastInputs) -> float:
    from controllers.decide import short_forecast

    f = x.cfg.forecast
    if series.size < f.trend_min_history:  # too young a history to extrapolate (forecast.trend_min_history)
        return float(series[-1]) if series.size else 0.0
    short = short_forecast(series, x.steps, f.trend_points, None, f.trend_noise_sigmas, x.count_per_interval)
    if f.trend_max_factor is not None and x.envelope is not None:  # at most factor x the recent peak
        short = min(short, f.trend_max_factor * x.envelope)
    return short


@FORECASTERS.register("fit", "last value + a least-squares slope of the last trend_fit_points, when significant")
def fit(series: np.ndarray, x: ForecastInputs) -> float:
    from controllers.decide import fit_forecast

    f = x.cfg.forecast
    return fit_forecast(series, x.steps, f.trend_fit_points, f.trend_fit_z)


@FORECASTERS.register("ets", "upper prediction bound of statsmodels ETS over the horizon (forecast_upper)")
def ets(series: np.ndarray, x: ForecastInputs) -> float:
    from controllers.forecast import forecast_upper

    f = x.cfg.forecast
    return forecast_upper(list(series), x.cfg.interval_s, x.horizon_s, f.quantile, f.season_s, f.min_points_trend).upper
