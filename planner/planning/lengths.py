"""The prompt-length law of a request class: a log-normal clipped at the longest prompt (pure maths).

A class states its prompts' mean `isl`, their squared coefficient of variation `isl_scv` (variance /
mean²) and the longest `isl_max` (planner.io.schema.RequestClass; `planner workload from-trace` measures
all three). Two of the planner's parts need the whole law, not the mean: the prefill TTFT model
(planner/planning/capacity.py, Prompt-length dispersion: the M/G/1 wait and the request's own prompt) and
the simulator's Poisson classes (planner/simulate/arrivals.py), which draw their prompts from it, so that
`planner solve --verify` checks a plan against the law it was sized for.

Why this law: prompt lengths are right-skewed (the Azure conversation trace's fit is log-normal, mean 1,155
sd 1,109; planner/io/synth.py) and bounded by the context window, where a heavy tail piles up. A log-normal
fitted to the mean and scv alone puts its far tail beyond the window: on bench/fidelity_lengths.py's tuning
rows its TTFT p99 ran +38..+89% above the simulator at light load; clipped, with (mu, sigma) solved so that
the clipped law keeps the measured mean and scv, the rows' MAPE went 15.6 -> 8.9%.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

# Standard-library only (no SciPy): the GPU profiler draws prompts from this law on a machine that has numpy (torch's)
# but not necessarily SciPy (profiles/backends/vllm.py, rate_run).
_NORMAL = NormalDist()

# Equal-probability nodes of a dispersed prompt-length law (planner/planning/capacity.py, Prompt-length
# dispersion): the top node
# stands for the quantiles above 1 - 1/K, at the 1 - 1/(2K) = 99.75% quantile for K = 200, beyond the p99 at
# which SLOs are written, so a p99 TTFT sees its own prompt's tail.
LENGTH_NODES = 200


def _clipped_lognormal_moments(mu: float, sigma: float, cap: float) -> tuple[float, float]:
    """(E[X], E[X²]) of X = min(Y, cap), Y log-normal (mu, sigma)."""
    lc = math.log(cap)
    above = 1.0 - _NORMAL.cdf((lc - mu) / sigma)
    m1 = math.exp(mu + sigma ** 2 / 2) * _NORMAL.cdf((lc - mu - sigma ** 2) / sigma) + cap * above
    m2 = math.exp(2 * mu + 2 * sigma ** 2) * _NORMAL.cdf((lc - mu - 2 * sigma ** 2) / sigma) + cap ** 2 * above
    return m1, m2


def _root(f: Callable[[float], float], lo: float, hi: float, xtol: float) -> float:
    """The x in [lo, hi] where the increasing f crosses 0 (bisection; f(lo) < 0 < f(hi))."""
    for _ in range(200):
        if hi - lo <= xtol:
            break
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
    return 0.5 * (lo + hi)


def clipped_lognormal(isl: float, isl_scv: float, isl_max: float | None) -> tuple[float, float]:
    """(mu, sigma) of the log-normal Y whose clip min(Y, isl_max) has mean `isl` and squared CV `isl_scv`
    (module doc); unclipped (isl_max None or not above isl): the plain log-normal's.
    A clip cannot carry more spread than all-or-nothing lengths, isl_max/isl - 1: the largest sigma searched
    (8) stands for it."""
    s2 = math.log1p(max(0.0, isl_scv))
    if isl_max is None or isl_max <= isl * (1.0 + 1e-9) or isl_scv <= 0.0:
        return math.log(isl) - s2 / 2, math.sqrt(s2)

    def mu_for(sigma: float) -> float:  # the clipped mean rises with mu: bisection in log space
        return _root(lambda mu: _clipped_lognormal_moments(mu, sigma, isl_max)[0] - isl,
                     math.log(isl) - 10.0 * sigma - 10.0, math.log(isl_max) + 10.0 * sigma + 10.0, 1e-10)

    def scv_at(sigma: float) -> float:
        m1, m2 = _clipped_lognormal_moments(mu_for(sigma), sigma, isl_max)
        return m2 / m1 ** 2 - 1.0

    lo, hi = 1e-4, 8.0
    if scv_at(hi) <= isl_scv:
        return mu_for(hi), hi
    if scv_at(lo) >= isl_scv:
        return mu_for(lo), lo
    sigma = _root(lambda sg: scv_at(sg) - isl_scv, lo, hi, 1e-6)
    return mu_for(sigma), sigma


@functools.lru_cache(maxsize=4096)
def prompt_length_nodes(isl: float, isl_scv: float, isl_max: float | None = None,
                        nodes: int = LENGTH_NODES) -> np.ndarray:
    """`nodes` equal-probability prompt lengths (the midpoint quantiles) of a log-normal law clipped at
    `isl_max` with mean `isl` and squared CV `isl_scv` (`clipped_lognormal`), rescaled to mean `isl` exactly
    (the class's token rate is kept; the clip applied again takes off < 0.1%). Read-only: the array is cached."""
    mu, sigma = clipped_lognormal(isl, isl_scv, isl_max)
    z = np.array([_NORMAL.inv_cdf((k + 0.5) / nodes) for k in range(nodes)])
    x: np.ndarray = np.exp(mu + sigma * z)
    if isl_max is not None:
        x = np.minimum(x, isl_max)
    x = x * (isl / float(x.mean()))
    if isl_max is not None:
        x = np.minimum(x, isl_max)
    x.setflags(write=False)
    return x


def draw_prompt_lengths(isl: float, isl_scv: float | None, isl_max: int | None, n: int,
                        rng: np.random.Generator) -> np.ndarray:
    """`n` prompt lengths (tokens, >= 1) of a class's law: all `isl` without a spread, else the clipped
    log-normal of `clipped_lognormal`, rounded (the simulator's Poisson classes)."""
    if not isl_scv or n == 0:
        return np.full(n, int(isl), dtype=np.int64)
    mu, sigma = clipped_lognormal(float(isl), float(isl_scv), None if isl_max is None else float(isl_max))
    x = rng.lognormal(mu, sigma, n)
    if isl_max is not None:
        x = np.minimum(x, isl_max)
    return np.maximum(1, np.rint(x)).astype(np.int64)


def build_1_2_5_buckets(max_value: int) -> list[float]:
    """1, 2, 5, 10, 20, 50, ... up to max_value (vLLM's token-count histogram buckets: vllm:request_prompt_tokens
    has these upper edges up to max_model_len, then +Inf)."""
    out: list[float] = []
    exp = 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exp
            if v > max_value:
                return out
            out.append(float(v))
        exp += 1


@dataclass(frozen=True)
class LengthSpread:
    """A prompt-length law's spread as a workload class states it (planner.io.schema.RequestClass)."""

    isl_scv: float
    isl_max: float | None


def spread_from_histogram(upper_edges: Sequence[float], cumulative: Sequence[float],
                          cap: float | None) -> LengthSpread | None:
    """The squared CV and longest prompt of the lengths a cumulative histogram counts (Prometheus `le`
    buckets: `cumulative[i]` prompts of at most `upper_edges[i]` tokens, ascending, +inf allowed last).

    Each bucket (lo, hi] is taken as uniform, so E[x] and E[x²] are its midpoint and (lo² + lo·hi + hi²)/3;
    the open top bucket ends at `cap` (the model's context window), else at 2.5x its lower edge (the next
    1-2-5 step). The longest prompt is the upper edge of the highest bucket with a count (None when that is
    the open bucket and no `cap` is known). None without counts. Coarse on 1-2-5 buckets: prompts all of one
    length read as a uniform bucket (scv ~0.04 in a 2x bucket), a spread within a bucket is lost."""
    lo, prev = 0.0, 0.0
    n = m1 = m2 = 0.0
    top: float | None = None
    for edge, cum in zip(upper_edges, cumulative, strict=True):
        count = max(0.0, float(cum) - prev)
        prev = max(prev, float(cum))
        open_top = not math.isfinite(edge)
        hi = (cap if cap is not None and cap > lo else 2.5 * max(lo, 1.0)) if open_top else float(edge)
        if count > 0:
            n += count
            m1 += count * (lo + hi) / 2.0
            m2 += count * (lo * lo + lo * hi + hi * hi) / 3.0
            top = None if open_top and cap is None else hi
        lo = float(edge) if not open_top else lo
    if n <= 0 or m1 <= 0:
        return None
    mean, sq = m1 / n, m2 / n
    return LengthSpread(isl_scv=max(0.0, sq / mean ** 2 - 1.0), isl_max=top)
