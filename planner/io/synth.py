"""Synthetic request traces of named traffic families, for testing autoscalers on load they were not tuned on.

Each family is an arrival process plus a length distribution; `synth(family, ...)` returns a trace
in the columns `planner.io.traces.read_trace` reads (timestamp, model, input_tokens, output_tokens),
so the bench, `planner workload from-trace` and the simulator take it like any production trace.
The families are the shapes reported against autoscalers (see issue 9):

  mmpp        on/off bursts: a two-state Markov-modulated Poisson process (exponential sojourns);
  sine        a sine between a trickle and a peak (period and amplitude are parameters);
  step        step surges: the rate jumps to a new level and later falls back part of the way;
  flash       a flash crowd: `factor` x the base rate for a few minutes;
  diurnal     a slow ramp up then down (half a sine over the whole trace, the shape of a day);
  clustered   clustered sub-second arrivals: a Neyman-Scott process (Poisson cluster centres, a
              geometric number of requests per cluster spread over ~`spread_s`), index of dispersion of
              1-second counts ~ 2 x cluster size, the production pattern of issue 9;
  heavytail   Poisson arrivals with heavy-tailed (log-normal, sigma 1.2) prompt and output lengths.

Arrivals of an inhomogeneous Poisson process with rate r(t) are drawn per one-second bin
(count ~ Poisson(integral of r over the bin), times uniform inside it), which is exact for rates
that are constant within a second. Lengths default to a log-normal fitted by moments to the
bundled Azure conversation trace (prompt mean 1,155 / sd 1,109 tokens, output mean 211 / sd 163),
clipped so that prompt + output fit `max_context` (4,096 for Llama-2).
Deterministic given `seed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from planner.io.schema import MAX_RATE_RPS

# Azure LLM inference trace 2023, conversation (bundled): moments of ContextTokens / GeneratedTokens.
AZURE_PROMPT_MEAN, AZURE_PROMPT_SD = 1155.0, 1109.0
AZURE_OUTPUT_MEAN, AZURE_OUTPUT_SD = 211.0, 163.0
# Llama-2's context window (the bench's default model): prompt + output must fit it.
DEFAULT_MAX_CONTEXT = 4096


@dataclass(frozen=True)
class Family:
    """A named traffic family: its parameters (with defaults) and what it models."""

    name: str
    doc: str
    params: dict[str, float] = field(default_factory=dict)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("mmpp", "on/off bursts (2-state MMPP)", {"on_rps": 8.0, "off_rps": 1.0, "on_s": 120.0, "off_s": 240.0}),
    Family("sine", "sine between a trickle and a peak", {"base_rps": 0.3, "peak_rps": 6.0, "period_s": 900.0}),
    Family("step", "step surge then partial fall", {"low_rps": 2.0, "high_rps": 6.0, "up_at_s": 900.0, "down_at_s": 2100.0,
                                                    "after_rps": 3.0}),
    Family("flash", "flash crowd: factor x base for a few minutes", {"base_rps": 1.5, "factor": 10.0, "at_s": 1200.0,
                                                                    "length_s": 180.0}),
    Family("diurnal", "slow ramp up and down (half a sine)", {"low_rps": 0.5, "high_rps": 7.0}),
    Family("clustered", "clustered sub-second arrivals (Neyman-Scott)", {"rate_rps": 4.0, "cluster_size": 8.0,
                                                                         "spread_s": 0.2}),
    Family("heavytail", "Poisson arrivals, heavy-tailed lengths", {"rate_rps": 3.0, "sigma": 1.2}),
)}


# What a parameter may be, by name (each family's parameters are among these): (low, high, what it is). Inclusive
# bounds. Why these: rates within the planner's input range (planner.io.schema.MAX_RATE_RPS); arrivals are drawn per
# one-second bin (module doc), so an on/off sojourn under a second is no sojourn at all (and at 0 the MMPP never
# leaves its first instant) and a period under two seconds aliases in the bins (Nyquist); a cluster has at least
# one request; a log-normal's sigma beyond 5 puts the median prompt at e^-12.5 of the mean (every length clipped).
PARAM_BOUNDS: dict[str, tuple[float, float, str]] = {
    **{k: (0.0, MAX_RATE_RPS, "a rate, req/s") for k in
       ("on_rps", "off_rps", "base_rps", "peak_rps", "low_rps", "high_rps", "after_rps", "rate_rps")},
    "on_s": (1.0, math.inf, "a mean sojourn, s"), "off_s": (1.0, math.inf, "a mean sojourn, s"),
    "period_s": (2.0, math.inf, "a period, s"),
    "up_at_s": (0.0, math.inf, "a time, s"), "down_at_s": (0.0, math.inf, "a time, s"),
    "at_s": (0.0, math.inf, "a time, s"), "length_s": (0.0, math.inf, "a length of time, s"),
    "spread_s": (0.0, math.inf, "a mean spread, s"),
    "factor": (0.0, math.inf, "a factor on the base rate"),
    "cluster_size": (1.0, math.inf, "a mean number of requests per cluster"),
    "sigma": (0.0, 5.0, "a log-normal sigma"),
}
# One-second rate bins over the trace: 1e7 s (~4 months) is ~80 MB of bins.
MAX_DURATION_S = 1e7
# Expected requests of a trace at its family's highest rate: 1e7 rows are ~0.3 GB of CSV, and the bench and the
# simulator take hours on them (the bundled Azure trace has 19,366).
MAX_REQUESTS = 1e7


class SynthParamError(ValueError):
    """A duration or family parameter a trace cannot be drawn from: which (`field`: a parameter's name, or
    "duration_s"), what it may be, and what was given."""

    def __init__(self, field: str, expected: str, got: str) -> None:
        super().__init__(f"{field}: {expected}; got {got}")
        self.field, self.expected, self.got = field, expected, got


def _peak_rps(family: str, p: dict[str, float]) -> float:
    """The highest arrival rate the family's parameters give (req/s)."""
    if family == "flash":
        return p["base_rps"] * max(1.0, p["factor"])
    return max((v for k, v in p.items() if k.endswith("_rps")), default=0.0)


def check_params(family: str, duration_s: float, params: dict[str, float]) -> None:
    """Raise SynthParamError for a duration or a parameter a trace cannot be drawn from (see
    PARAM_BOUNDS), or a trace too large to draw (MAX_REQUESTS), before any drawing."""
    if not (math.isfinite(duration_s) and 0 < duration_s <= MAX_DURATION_S):
        raise SynthParamError("duration_s", f"a number of seconds in (0, {MAX_DURATION_S:g}]", f"{duration_s:g}")
    for name, value in params.items():
        lo, hi, what = PARAM_BOUNDS[name]
        if not (math.isfinite(value) and lo <= value <= hi):
            raise SynthParamError(name, f"{what}, at least {lo:g}" if hi == math.inf else f"{what} in [{lo:g}, {hi:g}]",
                             f"{value:g}")
    # the family's event must fall within the trace: a flash or a step after its end draws a constant rate under the
    # family's name (found by hand at stop 51: `synth flash --duration-s 600` kept the default at_s of 1,200 s)
    for name, what in (("at_s", "the flash crowd starts"), ("up_at_s", "the step up comes")):
        if name in params and params[name] >= duration_s:
            default = FAMILIES[family].params.get(name)
            hint = f" (its default; pass --param {name}=... or a longer --duration-s)" if params[name] == default else ""
            raise SynthParamError(name, f"a time before the trace ends at {duration_s:g} s, where {what}{hint}",
                                  f"{params[name]:g}")
    if family == "step" and params["down_at_s"] < params["up_at_s"]:
        raise SynthParamError("down_at_s", f"a time at or after up_at_s ({params['up_at_s']:g} s): the step comes down "
                              "after it goes up", f"{params['down_at_s']:g}")
    expected = _peak_rps(family, params) * duration_s
    if expected > MAX_REQUESTS:
        raise SynthParamError("duration_s", f"at most {MAX_REQUESTS:g} requests at the family's highest rate "
                         f"({_peak_rps(family, params):g} req/s): a shorter trace or a lower rate",
                         f"{expected:g} requests")


def _lognormal(rng: np.random.Generator, mean: float, sd: float, n: int) -> np.ndarray:
    """Log-normal draws with the given mean and standard deviation (moment matching)."""
    s2 = math.log(1.0 + (sd / mean) ** 2)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), n)


def _poisson_times(rng: np.random.Generator, rate: Callable[[np.ndarray], np.ndarray], duration_s: float) -> np.ndarray:
    """Inhomogeneous Poisson arrivals: per one-second bin, Poisson(rate at the bin's midpoint) uniform times."""
    starts = np.arange(0.0, duration_s, 1.0)
    counts = rng.poisson(np.maximum(rate(starts + 0.5), 0.0))
    t = np.repeat(starts, counts) + rng.random(int(counts.sum()))
    return np.sort(t[t < duration_s])


def _arrivals(family: str, p: dict[str, float], rng: np.random.Generator, duration_s: float) -> np.ndarray:
    if family == "mmpp":
        edges, on, t = [], rng.random() < p["on_s"] / (p["on_s"] + p["off_s"]), 0.0
        while t < duration_s:
            d = rng.exponential(p["on_s"] if on else p["off_s"])
            edges.append((t, t + d, p["on_rps"] if on else p["off_rps"]))
            t, on = t + d, not on
        lo = np.array([e[0] for e in edges])
        rates = np.array([e[2] for e in edges])
        return _poisson_times(rng, lambda x: rates[np.searchsorted(lo, x, side="right") - 1], duration_s)
    if family == "sine":
        mid, amp = (p["peak_rps"] + p["base_rps"]) / 2, (p["peak_rps"] - p["base_rps"]) / 2
        # starts at the trough (-cos): the controller first meets a ramp
        return _poisson_times(rng, lambda x: mid - amp * np.cos(2 * np.pi * x / p["period_s"]), duration_s)
    if family == "step":
        return _poisson_times(rng, lambda x: np.where(x < p["up_at_s"], p["low_rps"],
                                                      np.where(x < p["down_at_s"], p["high_rps"], p["after_rps"])), duration_s)
    if family == "flash":
        return _poisson_times(rng, lambda x: np.where((x >= p["at_s"]) & (x < p["at_s"] + p["length_s"]),
                                                      p["base_rps"] * p["factor"], p["base_rps"]), duration_s)
    if family == "diurnal":
        return _poisson_times(rng, lambda x: p["low_rps"] + (p["high_rps"] - p["low_rps"]) * np.sin(np.pi * x / duration_s),
                              duration_s)
    if family == "clustered":
        m = max(1.0, p["cluster_size"])
        centres = _poisson_times(rng, lambda x: np.full_like(x, p["rate_rps"] / m), duration_s)
        # geometric cluster sizes with mean m (support 1, 2, ...)
        sizes = rng.geometric(1.0 / m, centres.size)
        times = np.repeat(centres, sizes) + rng.exponential(p["spread_s"], int(sizes.sum()))
        return np.sort(times[times < duration_s])
    if family == "heavytail":
        return _poisson_times(rng, lambda x: np.full_like(x, p["rate_rps"]), duration_s)
    raise KeyError(family)


def synth(family: str, duration_s: float = 2400.0, seed: int = 0, model: str = "llama-2-70b",
          max_context: int = DEFAULT_MAX_CONTEXT, **overrides: float) -> pd.DataFrame:
    """A trace of `family` (see FAMILIES) over `duration_s` seconds: columns timestamp (s), model,
    input_tokens, output_tokens. `overrides` replace the family's parameters by name; SynthParamError (check_params)
    for a duration or parameter outside PARAM_BOUNDS."""
    if family not in FAMILIES:
        raise KeyError(f"unknown traffic family '{family}' (known: {', '.join(FAMILIES)})")
    params = dict(FAMILIES[family].params)
    unknown = set(overrides) - set(params)
    if unknown:
        raise KeyError(f"family '{family}' has no parameter {', '.join(sorted(unknown))} (has: {', '.join(params)})")
    params.update({k: float(v) for k, v in overrides.items()})
    check_params(family, float(duration_s), params)
    rng = np.random.default_rng(seed)
    t = _arrivals(family, params, rng, float(duration_s))
    n = t.size
    if family == "heavytail":
        sig = params["sigma"]
        # same medians as the Azure fit, log-sd sigma: a long tail of very long prompts and outputs
        isl = rng.lognormal(math.log(AZURE_PROMPT_MEAN) - 0.5 * math.log(1 + (AZURE_PROMPT_SD / AZURE_PROMPT_MEAN) ** 2), sig, n)
        osl = rng.lognormal(math.log(AZURE_OUTPUT_MEAN) - 0.5 * math.log(1 + (AZURE_OUTPUT_SD / AZURE_OUTPUT_MEAN) ** 2), sig, n)
    else:
        isl = _lognormal(rng, AZURE_PROMPT_MEAN, AZURE_PROMPT_SD, n)
        osl = _lognormal(rng, AZURE_OUTPUT_MEAN, AZURE_OUTPUT_SD, n)
    osl = np.clip(np.rint(osl), 1, max_context // 4).astype(np.int64)
    isl = np.clip(np.rint(isl), 1, max_context - osl).astype(np.int64)
    return pd.DataFrame({"timestamp": np.round(t, 4), "model": model, "input_tokens": isl, "output_tokens": osl})


def index_of_dispersion(t_s: np.ndarray, window_s: float, duration_s: float) -> float:
    """Variance / mean of the arrival counts in consecutive windows (1 for a Poisson process)."""
    counts = np.bincount((np.asarray(t_s) // window_s).astype(int), minlength=int(duration_s // window_s))
    counts = counts[: int(duration_s // window_s)]
    mean = counts.mean()
    return float(counts.var() / mean) if mean > 0 else 0.0
