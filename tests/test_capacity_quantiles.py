"""The capacity model's fast Poisson / negative-binomial quantiles (planner.planning.capacity.poisson_ppf,
nbinom_ppf) are scipy.stats' ppf, value for value: they only skip scipy's generic argument handling, which was
a fifth of a what-if solve's time. Drawn over the means, dispersions and percentiles the capacity model uses and
beyond (means 1e-4 to 5e4, variance up to 100x the mean, near-Poisson dispersion where n is ~1e12)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from planner.planning.capacity import nbinom_ppf, poisson_ppf

PERCENTILES = [0.5, 0.75, 0.9, 0.95, 0.99, 0.999]


@pytest.mark.parametrize("q", PERCENTILES)
def test_poisson_quantile_is_scipys(q: float) -> None:
    for mean in np.geomspace(1e-4, 5e4, 300):
        assert poisson_ppf(q, float(mean)) == stats.poisson.ppf(q, mean), (q, mean)


@pytest.mark.parametrize("q", PERCENTILES)
def test_negative_binomial_quantile_is_scipys(q: float) -> None:
    rng = np.random.default_rng(int(q * 1000))
    for _ in range(300):
        mean = 10 ** rng.uniform(-3, 4)
        var = mean * (1 + 10 ** rng.uniform(-12, 2))
        n, p = mean * mean / (var - mean), mean / var
        assert nbinom_ppf(q, n, p) == stats.nbinom.ppf(q, n, p), (q, n, p)


@pytest.mark.parametrize("q, mean, n, p", [
    (0.0, 3.0, 2.0, 0.5),     # q = 0: scipy gives -1 (the support's start less one)
    (1.0, 3.0, 2.0, 0.5),     # q = 1: inf
    (0.9, 0.0, 2.0, 0.5),     # mean 0: nothing in the system
])
def test_edges_are_scipys(q: float, mean: float, n: float, p: float) -> None:
    assert poisson_ppf(q, mean) == stats.poisson.ppf(q, mean)
    assert nbinom_ppf(q, n, p) == stats.nbinom.ppf(q, n, p)
