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


def _gp_quantile_one_block(theta: float, eta: float, percentile: float) -> float:
    """The generalized Poisson quantile summed in blocks of 16,384 counts from the start (capacity.py before stop 48
    made its blocks start at 64 and double): the reference the faster sum must equal."""
    import math

    from scipy import special

    if theta <= 0.0:
        return 0.0
    q, cdf, k = percentile / 100.0, math.exp(-theta), 1
    if cdf >= q:
        return 0.0
    while k <= 4_000_000:
        ks = np.arange(k, k + (1 << 14), dtype=float)
        log_pk = math.log(theta) + (ks - 1.0) * np.log(theta + ks * eta) - theta - ks * eta - special.gammaln(ks + 1.0)
        cum = cdf + np.cumsum(np.exp(log_pk))
        i = int(np.searchsorted(cum, q))
        if i < len(cum):
            return float(ks[i])
        cdf, k = float(cum[-1]), k + (1 << 14)
    return math.inf


def test_the_busy_period_quantile_in_doubling_blocks_is_the_one_block_sum() -> None:
    """capacity._generalized_poisson_quantile sums its law in blocks that start at 64 counts and double (14x faster a
    call): the same quantile as one 16,384-count block from the start, near saturation (eta -> 0.999) included."""
    from planner.planning.capacity import _generalized_poisson_quantile

    rng = np.random.default_rng(48)
    for _ in range(400):
        theta, eta = 10 ** rng.uniform(-3, 2.5), rng.uniform(0.0, 0.999)
        pct = float(rng.choice([50, 75, 90, 95, 99, 99.9]))
        assert _generalized_poisson_quantile(theta, eta, pct) == _gp_quantile_one_block(theta, eta, pct), (theta, eta)
