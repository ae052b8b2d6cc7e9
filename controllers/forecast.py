"""Forecast the request rate a horizon ahead and plan for an upper quantile of the error.

Method by history length (statsmodels' exponential smoothing, the standard implementation):
  - fewer than `min_points_trend` points: the last value (nothing to learn a trend from);
  - otherwise Holt's linear method with a damped additive trend ("EWMA with trend");
  - with `season_s` set and at least two full seasons: Holt-Winters (additive trend + season).
The plan must hold until new pods are ready, so the horizon is at least the pod start-up time:
we take the largest point forecast over steps 1..h and add the `quantile` of the in-sample
one-step residuals scaled by sqrt(h) (errors of a random-walk-like process grow as sqrt(h)).
The upper value is never below the last observation: a forecast that says load will drop is not
a reason to under-provision now (scale-down goes through the guard's stabilization window).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class Forecast:
    point: float
    """Largest point forecast over the horizon, same unit as the input (req/s)."""
    upper: float
    """What to plan for: point + residual quantile, >= the last observation."""
    method: str
    horizon_steps: int


def forecast_upper(
    history: Sequence[float],
    interval_s: float,
    horizon_s: float,
    quantile: float = 0.9,
    season_s: float | None = None,
    min_points_trend: int = 6,
) -> Forecast:
    """Upper-quantile forecast of a non-negative series sampled every `interval_s` seconds."""
    y = np.asarray([v for v in history if v is not None and math.isfinite(v)], dtype=float)
    h = max(1, math.ceil(horizon_s / interval_s))
    if y.size == 0:
        return Forecast(0.0, 0.0, "empty", h)
    last = float(y[-1])
    if y.size < min_points_trend or float(np.ptp(y)) == 0.0:
        return Forecast(last, last, "last", h)

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    period = int(round(season_s / interval_s)) if season_s else 0
    seasonal = period >= 2 and y.size >= 2 * period + 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of the optimiser on short series
        try:
            model = ExponentialSmoothing(
                y,
                trend="add",
                damped_trend=True,
                seasonal="add" if seasonal else None,
                seasonal_periods=period if seasonal else None,
                initialization_method="estimated",
            )
            fit = model.fit()
            path = np.asarray(fit.forecast(h), dtype=float)
            resid = np.asarray(fit.resid, dtype=float)
            method = "holt-winters" if seasonal else "holt-damped"
        except (ValueError, np.linalg.LinAlgError):
            return Forecast(last, last, "last", h)
    if not np.all(np.isfinite(path)):
        return Forecast(last, last, "last", h)
    point = max(0.0, float(path.max()))
    resid = resid[np.isfinite(resid)]
    err = float(np.quantile(resid, quantile)) if resid.size else 0.0
    upper = max(point + max(err, 0.0) * math.sqrt(h), last)
    return Forecast(point, upper, method, h)
