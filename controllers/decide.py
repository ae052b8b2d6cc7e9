"""The controller's decision as a pure function: `decide(state, snapshot, now) -> (decision, state)`.

No I/O, no clock, no Prometheus or Kubernetes: the loop (controllers.loop) observes, elects a
leader, applies and records around it; the bench (bench/autoscale_trace.py), the tests and the live
loop run this same function. The only call out is the injected planner (`Planner.plan_fn`, the ILP
of planner.planning.assemble by default), a deterministic function of its inputs.

Stages (issue 9 says why each exists; the traces that motivated them are in the issue; the
defaults were chosen on the TUNING scenarios of bench/autoscale_trace.py, see controllers/config.py):
  observe   the snapshot: pools (desired/ready replicas) and the metrics Observation;
  forecast  per model, the request rate and the prompt-/output-token rates planned for are the
            largest of
              * the recent-peak ENVELOPE: the max over a window of envelope_factor x (start-up +
                observation lag) (a replica released now is missing for a whole start-up if the
                load comes back, and the last lag of load is not seen yet), times a MARGIN learned
                from the controller's own forecast errors: the `margin_quantile` of
                (realised peak over the horizon) / (base planned for then), clipped; with
                forecast.peak_envelope (rule R7) each interval counts at its sub-interval ON-LEVEL, the
                highest 10-s arrival rate less what Poisson windows' maximum exceeds the mean by (`peak_level`),
                so a burst shorter than the interval is remembered at its level, not its interval's mean;
              * a SHORT forecast a horizon of start-up + one interval ahead (the last value plus
                the smallest rise of the last few intervals when all rose: a sustained ramp; or
                ETS, forecast.short = "ets"); with forecast.trend_jump_ratio (5 by default) a >= 5x one-interval
                JUMP of the request rate is planned as the new level, every series alike;
              * with SPIKE MEMORY (forecast.spike_memory): when the history holds >= spike_min_count
                separate spikes above spike_ratio x its median, the envelope is at least the held
                level: the whole history's peak (spike_hold "peak") or the highest level reached by
                spike_min_count separate spikes ("level": a lone flash crowd is not held). Recurring
                spikes are held for, not chased a start-up late by a trend that overshoots; the plan
                for a level at or below the held one is at most the held level x the margin;
              * with a PERIOD detected by autocorrelation (a local maximum >= period_min_acf after
                >= 2 cycles), the peak seen one period ago over the start-up + interval that follow
                the next interval (seasonal_ahead), times the margin (pre-scaling ahead of a ramp
                that repeats);
            and never below the last observation. Opt-in, measured and off by default (see
            controllers.config): SLO-HEADROOM feedback (a load factor in [floor, 1] learned from the
            observed latency / SLO at near-peak load, back to 1 at once near the SLO or with a queue)
            and a STATIC CAP (a level seen before is planned at most cap x the history's peak). Lengths planned = token rate / request rate; the
            arrival dispersion planned = the mean IDC (1 s, 10 s) of the intervals in the envelope
            window (Observation.arrival_idc), passed as the class's `burstiness` so that the ILP
            sizes prefill with the burst-aware capacity (planner.planning.capacity);
  correct   bounded factors on the prefill and decode laws. With correct.source = "service"
            from vLLM's per-request SERVICE times (prefill time, time per output token: no queueing)
            vs the laws at the observed batch (controllers.correct.predict_service), learned every
            interval with traffic, bounded to [service_min_factor, max_factor] (below 1 too: a
            faster engine than profiled plans fewer replicas). With source = "latency" (the default,
            chosen on the tuning set: see CorrectConfig.source) or without service-time metrics,
            from observed vs predicted latency percentiles at the observed
            load, learned only while no request waits (queueing delay is not model error: issue 9)
            and the fleet is settled;
  propose   the ILP (injected) on the workload = planned classes + backlog classes (requests waiting
            now / drain time: queues and KV-admission waits are the fast scale-up signal, they reach
            the optimiser in the same interval), at utilization `forecast.plan_utilization` (1.0: the
            headroom is in the forecast, not added twice);
  guard     hold the last good plan when metrics or the solver fail (an interval whose load no plan meets, or
            whose workload the schema refuses, is not remembered: its envelope would hold the next ones too); scale-down only to the max
            recommendation of a window >= start-up + lag + one interval (the window remembers the plan
            without the backlog classes, and without the trend term with hold_trend=False;
            guard.keep_starting keeps replicas still starting while requests wait; never below the
            proposal itself, guard.never_below_proposal); no scale-down while the model's rate rose in the
            last `rise_intervals` (only near its envelope: rise_min_share, 0.7 by default) or its queue grows; >= 1 replica per side
            while the model has traffic in the envelope window (no scale-to-zero on a quiet minute), and
            always unless guard.scale_to_zero. Pools of models not in the config, on GPU types the fleet file does
            not list, or of a model whose metrics cannot be used this interval (Observation.unusable) are left as
            they are, their GPUs taken from the inventory the others are planned on.

State is immutable (frozen dataclasses holding tuples and fresh dicts); every call returns a new one.
"""

from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterable, Mapping, NamedTuple

import numpy as np
from scipy import integrate, stats

from controllers.config import ControllerConfig
from controllers.correct import (ITL_BUCKETS_MS, TTFT_BUCKETS_MS, CorrectedPerf, Corrections, PerfSource, predict_at_load,
                                 predict_service, update_corrections)
from controllers.forecasters import FORECASTERS, ForecastInputs
from controllers.guard import GuardState, guard, hold
from controllers.observe import ModelObservation, Observation
from planner.io.schema import (
    MAX_RATE_RPS,
    MIN_IDC,
    Burstiness,
    Fleet,
    GpuInventory,
    ModelEntry,
    Plan,
    RequestClass,
    Slo,
    Variant,
    Workload,
)
from planner.planning.lengths import LengthSpread, spread_from_histogram
from planner.planning.slo_metrics import SloMetric

# Lengths assumed before any request was seen (the rate is 0 then, so they only keep the class valid).
DEFAULT_ISL, DEFAULT_OSL = 1024, 128


# How the controller plans: a workload on a fleet with given laws -> a plan (controllers.loop.default_plan_fn wraps
# planner.api.solve; tests pass their own). Called positionally.
PlanFn = Callable[[Workload, Fleet, PerfSource], Plan]


@dataclass(frozen=True)
class PoolStatus:
    desired: int
    ready: int


@dataclass(frozen=True)
class Snapshot:
    """What one interval observed: the pools (None: the platform could not be read) and the metrics."""

    metrics: Observation
    pools: Mapping[str, PoolStatus] | None
    platform_error: str = ""


@dataclass(frozen=True)
class Planner:
    """The injected proposal stage: the ILP and what it needs (a fleet, a performance model)."""

    plan_fn: PlanFn
    fleet: Fleet
    perf: PerfSource
    max_context: Mapping[str, int] = field(default_factory=dict)
    """model -> its context window, tokens (the catalog's max_context): where prompt lengths are clipped when the
    prompt-length histogram's top bucket is open (forecast.length_spread)."""


@dataclass(frozen=True)
class ModelMemory:
    """What crosses intervals for one model."""

    t_s: tuple[float, ...] = ()
    rate_rps: tuple[float, ...] = ()
    prompt_tps: tuple[float, ...] = ()
    output_tps: tuple[float, ...] = ()
    lengths: tuple[float, float] | None = None
    pending: tuple[tuple[float, float], ...] = ()
    """(decision time, base rate planned for without margin) awaiting the realised peak."""
    errors: tuple[float, ...] = ()
    """realised peak over the horizon / base planned for, newest last."""
    quiet: int = 0
    """Consecutive intervals (this one included) with no request waiting and the fleet settled."""
    idc: tuple[tuple[float | None, float | None], ...] = ()
    """(IDC of 1-s counts, IDC of 10-s counts) of each interval's arrivals, aligned with t_s (None: not observed)."""
    headroom: float = 1.0
    """Load factor the planned rate is multiplied by (forecast.headroom; see update_headroom)."""
    low_run: int = 0
    """Consecutive intervals with latency well below the SLO and no request waiting."""
    prompt_buckets: tuple[tuple[float, tuple[tuple[float, float], ...]], ...] = ()
    """(time, the interval's cumulative prompt-length histogram in prompts: ModelObservation.prompt_token_buckets
    x the interval) of the intervals in the envelope window, newest last; the lengths' spread planned for is
    read from their sum (`planned_spread`)."""
    length_scv: tuple[tuple[tuple[float, float] | None, tuple[float, float] | None], ...] = ()
    """Per interval, aligned with t_s: ((squared CV, count) of its prompt lengths, the same of its output lengths),
    read from the interval's length histograms (ModelObservation.prompt_token_buckets / output_token_buckets);
    None: not observed. How far the interval's mean lengths move by chance (`denoised_token_rate`)."""
    peak_rps: tuple[Peak | None, ...] = ()
    """Per interval, aligned with t_s: its sub-interval peak (`observed_peak`: ModelObservation.arrival_peak_rps at
    forecast.peak_window_s or else its smallest window); None: not observed."""


class Peak(NamedTuple):
    """One interval's sub-interval peak (forecast.peak_envelope): the highest arrival rate over windows of `window_s`,
    and how many such windows the span of the interval's mean rate holds (what the denoising counts)."""

    rate_rps: float
    window_s: float
    windows: int


@dataclass(frozen=True)
class State:
    cfg: ControllerConfig
    planner: Planner
    models: Mapping[str, ModelMemory] = field(default_factory=dict)
    corrections: Corrections = field(default_factory=Corrections)
    guard: GuardState = field(default_factory=GuardState)
    last_plan: Plan | None = None


@dataclass(frozen=True)
class ModelForecast:
    """What one model is planned for, and the parts it is the max of (all req/s)."""

    rate_rps: float
    prompt_tps: float
    output_tps: float
    envelope_rps: float
    margin: float
    short_rps: float
    seasonal_rps: float
    period_s: float | None
    rising: bool
    traffic: bool


@dataclass(frozen=True)
class Decision:
    """The outcome of one call: replicas to apply (`target`), why, and what was planned."""

    t_s: float
    target: dict[str, int]
    held: bool
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    proposal: dict[str, int] | None = None
    forecasts: dict[str, ModelForecast] = field(default_factory=dict)
    workload: Workload | None = None
    plan: Plan | None = None
    solve_s: float | None = None
    hold_reason: str = ""
    """'platform', 'metrics' or 'solver' when held."""
    routing: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    pairing: dict[str, dict[str, dict[str, dict[str, float]]]] = field(default_factory=dict)

    @property
    def forecast_rps(self) -> dict[str, float]:
        return {m: f.rate_rps for m, f in self.forecasts.items()}


# ---------------------------------------------------------------------- derived windows
def lag_s(cfg: ControllerConfig) -> float:
    return cfg.forecast.observation_lag_s or cfg.interval_s


def horizon_s(cfg: ControllerConfig) -> float:
    """Replicas asked for now serve from start-up until the next decision's are ready."""
    return cfg.startup_s + cfg.interval_s


def envelope_s(cfg: ControllerConfig) -> float:
    return cfg.forecast.envelope_factor * (cfg.startup_s + lag_s(cfg))


def stabilization_s(cfg: ControllerConfig) -> float:
    if cfg.guard.scale_down_stabilization_s is not None:
        return cfg.guard.scale_down_stabilization_s
    return cfg.startup_s + lag_s(cfg) + cfg.interval_s


def history_len(cfg: ControllerConfig) -> int:
    return max(cfg.forecast.history_points, 1)


# ---------------------------------------------------------------------- forecast parts (pure maths)
def short_forecast(y: np.ndarray, steps: int, points: int, max_factor: float | None = None,
                   noise_sigmas: float = 0.0, count_per_interval: float | None = None) -> float:
    """Last value + the SMALLEST rise of the last `points` values x `steps` (0 unless every one of
    them rose), at most `max_factor` x the last value (None: no cap). With 2 points any rise is
    extrapolated (a step included: the replicas asked for arrive one start-up later, and the surplus
    drains the queue the step built); with 3, only a sustained ramp."""
    if y.size == 0:
        return 0.0
    last = float(y[-1])
    if y.size < points:
        return last  # a rise needs `points` samples
    slope = float(np.diff(y[-points:]).min())
    # a rise within `noise_sigmas` standard deviations of the difference of two Poisson counts of
    # `count_per_interval` requests (relative sd sqrt(2 / count)) is counting noise, not a ramp
    if noise_sigmas > 0 and count_per_interval is not None:
        if slope <= noise_sigmas * last * math.sqrt(2.0 / max(count_per_interval, 1e-9)):
            return last
    ahead = last + max(0.0, slope) * steps
    return ahead if max_factor is None else min(ahead, last * max_factor)


def fit_forecast(y: np.ndarray, steps: int, points: int, z: float) -> float:
    """Last value + the least-squares slope of the last `points` values x `steps`, when the slope is
    positive and at least `z` standard errors (of the fit's residuals) above zero: a ramp that the
    counting noise of single intervals cannot fake (a 2-point difference extrapolates every upward
    blip of a noisy rate `steps` times; with the fit, the blip is one residual among `points`)."""
    if y.size == 0:
        return 0.0
    last = float(y[-1])
    if y.size < points or points < 3:
        return last
    s = y[-points:].astype(float)
    x = np.arange(points, dtype=float)
    slope, icpt = np.polyfit(x, s, 1)
    resid = s - (slope * x + icpt)
    se = math.sqrt(float(np.dot(resid, resid)) / (points - 2) / float(np.dot(x - x.mean(), x - x.mean())))
    if slope <= 0 or slope < z * se:
        return last
    return last + float(slope) * steps


def detect_period(y: np.ndarray, min_lag: int, min_acf: float, min_cycles: float) -> int | None:
    """The lag (in samples) of the highest local maximum of the autocorrelation of the linearly
    detrended series at or above `min_acf`, among lags seen `min_cycles` times; None if none.
    A local maximum is required so that a trend or a single hump (whose autocorrelation falls
    monotonically with the lag) is not taken for a period."""
    n = y.size
    max_lag = int(n // min_cycles)
    if max_lag < min_lag + 1 or n < 8:
        return None
    x = y - np.polyval(np.polyfit(np.arange(n, dtype=float), y, 1), np.arange(n, dtype=float))
    var = float(np.dot(x, x))
    if var <= 1e-12:
        return None
    acf = np.array([float(np.dot(x[:-k], x[k:])) / var if k > 0 else 1.0 for k in range(max_lag + 2)])
    best, best_acf = None, min_acf
    for k in range(max(min_lag, 1), max_lag + 1):
        if acf[k] >= best_acf and acf[k] >= acf[k - 1] and acf[k] >= acf[k + 1]:
            best, best_acf = k, acf[k]
    return best


def seasonal_ahead(y: np.ndarray, period: int, steps: int) -> float:
    """The largest value one period before each of the `steps` intervals that follow the next one.

    `y[-1]` is the interval that just ended (index n - 1, n = y.size) and the next interval is index n; the values
    read are y[n - period + j] for j = 1 .. steps, one period before intervals n + 1 .. n + steps, i.e. the window
    [now + interval, now + (steps + 1) x interval). With steps = ceil((start-up + interval) / interval) that window
    holds the interval in which replicas requested now become ready and the one after it. This is what the shipped
    defaults were chosen with (controllers.config, the tuning draws of bench/autoscale_trace.py): the window
    [now, now + steps x interval) would be the other reading of "the next `steps`"; it was not measured."""
    vals = [y[y.size - period + j] for j in range(1, steps + 1) if 0 <= y.size - period + j < y.size]
    return float(max(vals)) if vals else 0.0


def spike_episodes(y: np.ndarray, ratio: float, noise_sigmas: float = 0.0,
                   interval_s: float | None = None) -> list[tuple[int, int]]:
    """The separate spikes of the history as index ranges [start, end): runs of consecutive intervals
    whose rate exceeds `ratio` x the history's median (a run still going at the end counts) and, with
    `noise_sigmas` > 0, the median by that many standard deviations of a Poisson count at the median
    rate over `interval_s` (sqrt(median / interval)): at a few requests per interval, 1.3 x the median
    is one request of counting noise, not a spike that will come back. Pure."""
    if y.size < 3:
        return []
    med = float(np.median(y))
    noise = noise_sigmas * math.sqrt(max(med, 0.0) / interval_s) if noise_sigmas > 0 and interval_s else 0.0
    above = np.concatenate(([False], y > max(ratio * med, med + noise, med + 1e-9), [False]))
    edges = np.flatnonzero(np.diff(above.astype(int)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def recurring_spikes(y: np.ndarray, ratio: float) -> int:
    """The number of separate spikes in the history (spike_episodes)."""
    return len(spike_episodes(y, ratio))


def recurring_level(s: np.ndarray, episodes: list[tuple[int, int]], count: int) -> float | None:
    """The highest level of `s` reached by at least `count` separate spikes: the count-th largest of
    the episodes' peaks (a single flash crowd far above the rest is not held; a level that came
    back is). None with fewer episodes. Pure."""
    if len(episodes) < count or count < 1:
        return None
    peaks = sorted((float(s[a:b].max()) for a, b in episodes), reverse=True)
    return peaks[count - 1]


def histogram_scv(buckets: tuple[tuple[float, float], ...], dt_s: float) -> tuple[float, float] | None:
    """(squared CV, count) of the lengths one interval's cumulative length histogram counts (per-second rates by
    `le`, x `dt_s` = counts); None without counts. Pure."""
    if not buckets or dt_s <= 0:
        return None
    spread = spread_from_histogram([le for le, _ in buckets], [r * dt_s for _, r in buckets], None)
    n = max(r for _, r in buckets) * dt_s
    return (spread.isl_scv, n) if spread is not None and n > 0 else None


def pooled_scv(entries: Iterable[tuple[float, float] | None]) -> float | None:
    """The count-weighted mean squared CV of intervals' (scv, count) pairs (`histogram_scv`), those observed; None
    when none was. Pure."""
    seen = [x for x in entries if x is not None]
    total = sum(n for _, n in seen)
    return sum(s * n for s, n in seen) / total if total > 0 else None


def denoised_token_rate(tokens: np.ndarray, rate: np.ndarray, scv: list[tuple[float, float] | None],
                        window: int, z: float) -> np.ndarray:
    """A token-rate series (request rate x the interval's mean length) with the chance part of each interval's
    mean length removed: the mean length m_i is pulled toward the pooled mean m̄ of its last `window`
    intervals (sum of tokens / sum of requests) by up to `z` standard errors of a mean of n_i lengths,
    m̄ x sqrt(scv / n_i) (scv: the count-weighted mean of the window's observed ones), soft-thresholding:
    m̃_i = m̄ + sign(d) max(0, |d| - z se), d = m_i - m̄. A shift of the lengths larger than chance passes
    (less z se); a heavy-tailed minute's few very long requests do not move the plan. Intervals without an
    observed spread or without requests keep their value. Pure.

    Why: the envelope and the trend of a token rate take the max and the rise of noisy samples; with log-normal
    lengths of log-sd 1.4 (scv ~6) the mean of 300 outputs has a relative sd of ~0.14, so the max of an
    8-interval window is ~+20% and a 2-point rise extrapolated over the horizon more (bench/autoscale_trace.py,
    heavy-tail-5rps: decode 4-10 replicas planned at a flat 5 req/s)."""
    out = tokens.astype(float).copy()
    for i in range(tokens.size):
        lo = max(0, i - window + 1)
        req = float(rate[lo:i + 1].sum())
        if rate[i] <= 0 or req <= 0:
            continue
        own, window_scv = scv[i], pooled_scv(scv[lo:i + 1])
        if own is None or window_scv is None:
            continue
        n_i = own[1]
        m_bar = float(tokens[lo:i + 1].sum()) / req
        m_i = float(tokens[i]) / float(rate[i])
        se = m_bar * math.sqrt(max(window_scv, 0.0) / max(n_i, 1.0))
        d = m_i - m_bar
        out[i] = float(rate[i]) * (m_bar + math.copysign(max(0.0, abs(d) - z * se), d))
    return out


@functools.lru_cache(maxsize=64)
def expected_max_normal(n: int) -> float:
    """E[max of n independent standard normals] (0 for n = 1; 1.267 for 6): how far above its mean the highest of
    n Poisson windows lies by chance, in standard deviations (normal approximation)."""
    if n <= 1:
        return 0.0
    val, _ = integrate.quad(lambda x: x * n * stats.norm.pdf(x) * stats.norm.cdf(x) ** (n - 1), -np.inf, np.inf)
    return float(val)


def observed_peak(peaks: Mapping[float, float], span_s: float | None, cfg: ControllerConfig, since_s: float) -> Peak | None:
    """The sub-interval peak of one observation (ModelObservation.arrival_peak_rps / arrival_peak_span_s): the window
    forecast.peak_window_s names, else the smallest one observed; the span is the observation's own (Prometheus: its
    rate window) or else the time since the previous observation (the interval for the first). None: none observed."""
    if not peaks:
        return None
    w = cfg.forecast.peak_window_s if cfg.forecast.peak_window_s in peaks else min(peaks)
    span = span_s or since_s or cfg.interval_s
    return Peak(peaks[w], w, max(1, int(span // w + 1e-9)))


def peak_level(rate_rps: float, peak_rps: float | None, windows: int, window_s: float, extra_sigmas: float) -> float:
    """The on-level an interval's sub-interval peak shows (forecast.peak_envelope): the peak less what the highest
    of `windows` Poisson windows of window_s at the interval's mean rate exceeds it by on average (e_n standard
    deviations, sqrt(rate / window) each) and `extra_sigmas` more; never below the mean. None: the mean."""
    if peak_rps is None or rate_rps <= 0:
        return rate_rps
    n = max(1, windows)
    sd = math.sqrt(rate_rps / window_s)
    return max(rate_rps, peak_rps - (expected_max_normal(n) + extra_sigmas) * sd)


def queue_matters(waiting: float, rate_rps: float, queue_min_s: float) -> bool:
    """Whether `waiting` requests are a queue that lifts the plan's caps: more than `queue_min_s`
    seconds of arrivals at `rate_rps` (any request waiting when queue_min_s is 0, or with no
    arrivals). Pure."""
    if waiting <= 0:
        return False
    return queue_min_s <= 0 or rate_rps <= 0 or waiting > queue_min_s * rate_rps


def learned_margin(errors: tuple[float, ...], cfg: ControllerConfig) -> float:
    f = cfg.forecast
    if not f.learn_margin or len(errors) < f.margin_min_samples:
        return f.margin_prior
    return float(min(f.margin_max, max(f.margin_min, np.quantile(np.asarray(errors), f.margin_quantile))))


def model_forecast(mem: ModelMemory, cfg: ControllerConfig, waiting: float) -> ModelForecast:
    """What to plan one model for, from its history (pure; see the module docstring)."""
    f, iv = cfg.forecast, cfg.interval_s
    steps = max(1, math.ceil(horizon_s(cfg) / iv))
    # the envelope window in time (a missed interval must not stretch it); at least the last sample
    ts = np.asarray(mem.t_s, dtype=float)
    in_env = (ts > ts[-1] - envelope_s(cfg) + 1e-9) if ts.size else np.zeros(0, dtype=bool)
    if in_env.size:
        in_env[-1] = True
    margin = learned_margin(mem.errors, cfg)
    y = np.asarray(mem.rate_rps, dtype=float)
    period = detect_period(y, max(2, math.ceil(f.period_min_s / iv)), f.period_min_acf, f.period_min_cycles) if f.period else None
    # spike memory: spikes far above the median that came back >= spike_min_count times will come back
    # again; hold the history's peak (a long-memory envelope) instead of reacting to each one a
    # start-up late with a trend that overshoots
    episodes = spike_episodes(y, f.spike_ratio, f.spike_noise_sigmas, iv) if f.spike_memory else []
    # a queue lifts the caps on the plan (held level, static cap) only when it holds more than
    # queue_min_s seconds of the last arrival rate: a few prompts waiting at a burst's start are the
    # batching of a fleet that keeps up, not a sign that the held level is too low
    queued = queue_matters(waiting, float(y[-1]) if y.size else 0.0, f.queue_min_s)
    # the envelope of each series counts the intervals' sub-interval on-levels (forecast.peak_envelope, rule R7):
    # each interval's value x its level / mean rate
    env_mult = None
    if f.peak_envelope and len(mem.peak_rps) == y.size and y.size:
        env_mult = np.array([peak_level(r, p.rate_rps, p.windows, p.window_s, f.peak_noise_sigmas) / r
                             if r > 0 and p is not None else 1.0 for r, p in zip(y.tolist(), mem.peak_rps, strict=True)])

    def plan_series(series: tuple[float, ...], trend: float | None = None,
                    jump_cap: bool = False, short_cap: float | None = None) -> tuple[float, float, float, float]:
        """(planned, envelope, short, seasonal) of one series; `trend`: the request rate's short
        forecast / its last value, applied to this series' last value instead of its own trend;
        `jump_cap`: the request rate jumped (forecast.trend_jump_ratio): this series' trend is not extrapolated
        past trend_jump_steps intervals (every series alike, so the lengths planned stay the observed ones);
        `short_cap`: this series' own short forecast is at most this (>= its last value)."""
        s = np.asarray(series, dtype=float)
        if s.size == 0:
            return 0.0, 0.0, 0.0, 0.0
        env = float((s * env_mult)[in_env].max()) if env_mult is not None and env_mult.size == s.size else float(s[in_env].max())
        held = None
        if len(episodes) >= f.spike_min_count:
            held = float(s.max()) if f.spike_hold == "peak" else recurring_level(s, episodes, f.spike_min_count)
        env = max(env, held) if held is not None else env
        if trend is not None:
            short = float(s[-1]) * trend
        else:
            # forecast.short names a registered forecaster (controllers.forecasters); the noise test of
            # every series uses the request count of the last interval
            inputs = ForecastInputs(cfg, steps=steps, horizon_s=horizon_s(cfg),
                                    count_per_interval=float(y[-1]) * iv if y.size else None, envelope=env)
            short = FORECASTERS.get(f.short).factory(s, inputs)
        if jump_cap and trend is None and s.size >= 2:
            # a one-interval jump: extrapolated trend_jump_steps intervals at most, not the whole horizon
            short = max(float(s[-1]), min(short, float(s[-1]) + (float(s[-1]) - float(s[-2])) * f.trend_jump_steps))
        if short_cap is not None and trend is None:
            short = max(float(s[-1]), min(short, short_cap))
        if f.trend_history_cap is not None and s.size >= 2 and float(s[:-1].max()) >= float(s[-1]):
            # a level seen before: extrapolate at most to cap x the highest rate of the history (the
            # fleet that peak needed is what the best static fleet would hold); a NEW high is a ramp
            # into the unknown and keeps the full trend
            short = max(float(s[-1]), min(short, f.trend_history_cap * float(s[:-1].max())))
        seas = seasonal_ahead(s, period, steps) if period else 0.0
        planned = max(env * margin, short, seas * margin, float(s[-1]))
        if held is not None and not queued and float(s[-1]) <= held:
            planned = max(float(s[-1]), min(planned, env * margin))  # the held peak covers a level seen before
        if f.static_cap is not None and not queued and s.size >= 2 and float(s[:-1].max()) >= float(s[-1]):
            # a level seen before and no queue: at most cap x the history's peak (what a static fleet for
            # that peak holds); a new high or a queue keeps the full plan
            planned = max(float(s[-1]), min(planned, f.static_cap * float(s.max())))
        return planned, env, short, seas

    # a JUMP of the request rate (>= trend_jump_ratio x the interval before) is planned as a level, not a trend
    jumped = bool(f.trend_jump_ratio is not None and y.size >= 2 and y[-1] > 0 and y[-1] >= f.trend_jump_ratio * y[-2])
    rate, env, short, seas = plan_series(mem.rate_rps, jump_cap=jumped)
    # token rates follow the request rate's trend (their own 2-point trends would extrapolate the
    # minute-to-minute swings of mean lengths) unless forecast.token_trend
    ratio = short / float(y[-1]) if y.size and y[-1] > 0 else None
    follow = None if f.token_trend or ratio is None else ratio

    def token_cap(series: tuple[float, ...]) -> float | None:
        """forecast.token_trend_max_ratio: a token rate's own trend at most that x what the request rate's
        trend gives it (a rise of the MEAN LENGTH is extrapolated that far at most)."""
        if f.token_trend_max_ratio is None or ratio is None or not series:
            return None
        return float(series[-1]) * ratio * f.token_trend_max_ratio

    prompt_tps, output_tps = mem.prompt_tps, mem.output_tps
    if f.length_noise_sigmas > 0 and len(mem.length_scv) == len(mem.rate_rps):
        # the chance part of each interval's mean lengths removed (denoised_token_rate), over the envelope window
        win = max(1, round(envelope_s(cfg) / iv))
        if f.length_noise_series == "both":
            prompt_tps = tuple(denoised_token_rate(np.asarray(mem.prompt_tps, dtype=float), y, [x[0] for x in mem.length_scv],
                                                   win, f.length_noise_sigmas).tolist())
        output_tps = tuple(denoised_token_rate(np.asarray(mem.output_tps, dtype=float), y, [x[1] for x in mem.length_scv],
                                               win, f.length_noise_sigmas).tolist())
    ptok = plan_series(prompt_tps, follow, jump_cap=jumped, short_cap=token_cap(prompt_tps))[0]
    otok = plan_series(output_tps, follow, jump_cap=jumped, short_cap=token_cap(output_tps))[0]
    k = f.rise_intervals
    rising = False
    tail = y[-(k + 1):]
    if len(mem.t_s) == y.size and y.size:
        # the readings of the last k intervals by time, not by count: after a pause (the loop not deciding: another
        # replica held the lease, or the metrics failed) the reading before it is no interval of the last k (found in
        # QA: 2 -> 4 req/s across 96 minutes read as a one-interval rise). Half an interval of slack for the loop's
        # timing; readings at regular intervals keep the same k + 1.
        ts = np.asarray(mem.t_s, dtype=float)
        tail = y[ts >= ts[-1] - (k + 0.5) * iv][-(k + 1):]
    if k > 0 and tail.size >= 2:
        # a rise counts when above the tolerance AND (rise_noise_sigmas > 0) above that many standard
        # deviations of the difference of two Poisson counts (sqrt(a + b) requests over one interval)
        noise = f.rise_noise_sigmas * np.sqrt(np.maximum(tail[1:] + tail[:-1], 0.0) / iv)
        rising = bool(np.any(tail[1:] > np.maximum(tail[:-1] * (1 + f.rise_tolerance), tail[:-1] + noise) + 1e-9))
        # in a trough (last rate below rise_min_share x the envelope) a rise does not veto a scale-down
        rising = rising and float(y[-1]) >= f.rise_min_share * env
    traffic = bool(y.size and float(y[in_env].max()) > 0) or waiting > 0
    return ModelForecast(rate, ptok, otok, env, margin, short, seas, period * iv if period else None, rising, traffic)


# ---------------------------------------------------------------------- memory update
def _remember(mem: ModelMemory, cfg: ControllerConfig, now: float, arrival_rps: float, isl: float | None,
              osl: float | None, completion_rps: float,
              idc: Mapping[float, float] | None = None,
              prompt_buckets: tuple[tuple[float, float], ...] = (),
              output_buckets: tuple[tuple[float, float], ...] = (),
              peaks: Mapping[float, float] | None = None, peak_span_s: float | None = None) -> ModelMemory:
    n = history_len(cfg)
    lengths = (isl, osl) if isl and osl and completion_rps > 0 else mem.lengths
    li, lo = (isl, osl) if isl and osl else (lengths or (None, None))
    pt = arrival_rps * li if li else 0.0
    ot = arrival_rps * lo if lo else 0.0
    t = (mem.t_s + (now,))[-n:]
    rates = (mem.rate_rps + (arrival_rps,))[-n:]
    # forecast errors: a decision made at t0 planned for `base`; its horizon (t0, t0 + H] is now past
    H = horizon_s(cfg)
    errors, pending = list(mem.errors), []
    for t0, base in mem.pending:
        if now - t0 >= H - 1e-9:
            seen = [r for ti, r in zip(t, rates) if t0 < ti <= t0 + H + 1e-9]
            if seen and base > 0:
                errors.append(max(seen) / base)
        else:
            pending.append((t0, base))
    d = idc or {}
    # the prompt-length histograms of the envelope window, in prompts (rates x the interval since the last one)
    dt = now - mem.t_s[-1] if mem.t_s else 0.0
    hists = mem.prompt_buckets
    if prompt_buckets and dt > 0:
        hists = hists + ((now, tuple((le, r * dt) for le, r in prompt_buckets)),)
    hists = tuple(h for h in hists if h[0] > now - envelope_s(cfg) + 1e-9)
    # a history that did not record spreads from its start is padded with None (aligned with t_s)
    scv = (((None, None),) * (len(mem.t_s) - len(mem.length_scv)) + mem.length_scv
           + ((histogram_scv(prompt_buckets, dt), histogram_scv(output_buckets, dt)),))[-n:]
    peak = observed_peak(peaks or {}, peak_span_s, cfg, dt)
    kept = ((None,) * (len(mem.t_s) - len(mem.peak_rps)) + mem.peak_rps + (peak,))[-n:]
    return replace(mem, t_s=t, rate_rps=rates, idc=(mem.idc + ((d.get(1.0), d.get(10.0)),))[-n:], peak_rps=kept,
                   prompt_buckets=hists, length_scv=scv,
                   prompt_tps=(mem.prompt_tps + (pt,))[-n:],
                   output_tps=(mem.output_tps + (ot,))[-n:], lengths=lengths, pending=tuple(pending),
                   errors=tuple(errors[-cfg.forecast.margin_history:]))


def slo_ratio(mo: ModelObservation, slo: Slo | None) -> float | None:
    """Observed latency at the SLO percentile / the SLO bound, the worse of TTFT and ITL; None when
    neither was observed this interval (no completions: nothing to learn from)."""
    if slo is None:
        return None
    parts = [o / b for o, b in ((mo.ttft_ms, slo.ttft_ms), (mo.itl_ms, slo.itl_ms)) if o is not None and b]
    return max(parts) if parts else None


def update_headroom(mem: ModelMemory, ratio: float | None, waiting: float, cfg: ControllerConfig,
                    load_share: float = 1.0) -> ModelMemory:
    """SLO-headroom feedback (pure): the load factor falls by `headroom_step` (to `headroom_floor`) after
    `headroom_low_intervals` consecutive intervals whose latency / SLO is <= `headroom_low` with no
    request waiting, and returns to 1 AT ONCE when latency / SLO reaches `headroom_high` or a request
    waits. Why: the capacity model is 20-30% conservative against the engine (tuning set: the
    hindsight schedule meets the target at 0.73-0.80 x the planned load), and latency well below the
    SLO with empty queues is the direct evidence that the fleet has more room than the model says.
    Only an interval whose arrival rate is at least `headroom_min_load` x the recent-peak envelope
    (`load_share`) counts as low: latency in a trough says nothing about the room at the peak the
    fleet is held for (tuning set: learning in the off phases of on/off bursts cost 0.94 attainment).
    An interval without latency samples (no completions) keeps the factor and the run as they are."""
    f = cfg.forecast
    if not f.headroom:
        return replace(mem, headroom=1.0, low_run=0)
    if waiting > f.headroom_max_waiting or (ratio is not None and ratio >= f.headroom_high):
        return replace(mem, headroom=1.0, low_run=0)
    if ratio is None:
        return mem
    if ratio > f.headroom_low or waiting > 0:
        return replace(mem, low_run=0)
    if load_share < f.headroom_min_load:
        return mem  # a trough: no evidence about the peak
    run = mem.low_run + 1
    h = max(f.headroom_floor, mem.headroom - f.headroom_step) if run >= f.headroom_low_intervals else mem.headroom
    return replace(mem, headroom=h, low_run=run)


def planned_burstiness(mem: ModelMemory, cfg: ControllerConfig) -> Burstiness | None:
    """The arrival dispersion planned for: the mean over the envelope window of the intervals' IDCs
    at 1 s and 10 s (the pooled within-interval dispersion, as planner.io.traces.measure_burstiness
    pools it within minutes); None (Poisson) when no interval observed it or the mean 1-s IDC is
    within `burst_min_idc` of 1 (counting noise of 60 one-second bins: sd of a Poisson IDC ~
    sqrt(2 / 59) = 0.18)."""
    if not mem.idc or not mem.t_s:
        return None
    ts = np.asarray(mem.t_s, dtype=float)
    keep = ts > ts[-1] - envelope_s(cfg) + 1e-9
    one = [a for (a, _), k in zip(mem.idc, keep) if k and a is not None]
    ten = [b for (_, b), k in zip(mem.idc, keep) if k and b is not None]
    if not one:
        return None
    i1 = float(np.mean(one))
    if i1 < cfg.forecast.burst_min_idc:
        return None
    return Burstiness(idc_1s=max(i1, MIN_IDC), idc_10s=max(float(np.mean(ten)), MIN_IDC) if ten else None)


# ---------------------------------------------------------------------- the workload planned for
def planned_spread(mem: ModelMemory, max_context: int | None) -> LengthSpread | None:
    """The prompt lengths' spread planned for (forecast.length_spread): read from the summed prompt-length
    histograms of the envelope window (planner/planning/lengths.py, spread_from_histogram), the open top
    bucket closed at the model's context window. None: no histogram observed."""
    if not mem.prompt_buckets:
        return None
    total: dict[float, float] = {}
    for _, hist in mem.prompt_buckets:
        for le, count in hist:
            total[le] = total.get(le, 0.0) + count
    edges = sorted(total)
    return spread_from_histogram(edges, [total[e] for e in edges], None if max_context is None else float(max_context))


def planned_output_scv(mem: ModelMemory, cfg: ControllerConfig) -> float | None:
    """The output lengths' squared CV planned for (forecast.length_spread): the count-weighted mean of the envelope
    window's intervals' (ModelObservation.output_token_buckets, vLLM's vllm:request_generation_tokens); None: not
    observed."""
    if not mem.t_s:
        return None
    ts = np.asarray(mem.t_s, dtype=float)
    keep = ts > ts[-1] - envelope_s(cfg) + 1e-9
    # length_scv is aligned with t_s (`_remember`)
    return pooled_scv(x[1] for x, k in zip(mem.length_scv, keep, strict=False) if k)


def workload_for(cfg: ControllerConfig, obs: Observation, memories: Mapping[str, ModelMemory],
                 forecasts: Mapping[str, ModelForecast], backlog: bool = True,
                 max_context: Mapping[str, int] | None = None) -> Workload:
    """The classes planned for (lengths = planned token rates / planned rate; with forecast.length_spread, the
    prompt lengths' spread observed, `planned_spread`, and the outputs', `planned_output_scv`) and, with `backlog`,
    the backlog classes."""
    max_context = max_context or {}
    classes: list[RequestClass] = []
    drain = cfg.guard.queue_drain_s or horizon_s(cfg)
    for m, mo in obs.models.items():
        mem, fc = memories[m], forecasts[m]
        isl, osl = mem.lengths or (DEFAULT_ISL, DEFAULT_OSL)
        if cfg.forecast.token_rates and fc.rate_rps > 0 and fc.prompt_tps > 0 and fc.output_tps > 0:
            # plan for the work, not only the request count: lengths such that rate x length = the
            # planned token rates (prefill work scales with prompt tokens, decode with output tokens)
            isl, osl = fc.prompt_tps / fc.rate_rps, fc.output_tps / fc.rate_rps
        isl_i, osl_i = max(1, round(isl)), max(1, round(osl))
        spread = planned_spread(mem, max_context.get(m)) if cfg.forecast.length_spread else None
        out_scv = planned_output_scv(mem, cfg) if cfg.forecast.length_spread else None
        # the SLO-headroom factor scales the arrivals planned for, never the backlog (requests that wait)
        classes.append(RequestClass(
            id=m, model=m, isl=isl_i, osl=osl_i, rate_rps=fc.rate_rps * mem.headroom,
            burstiness=planned_burstiness(mem, cfg) if cfg.forecast.burstiness else None,
            isl_scv=round(spread.isl_scv, 4) if spread is not None and spread.isl_scv > 0 else None,
            isl_max=max(isl_i, math.ceil(spread.isl_max)) if spread is not None and spread.isl_scv > 0 and spread.isl_max else None,
            osl_scv=round(out_scv, 4) if out_scv else None))
        w_prefill = sum(v for r, v in mo.waiting.items() if r == "prefill") if backlog else 0.0
        w_other = sum(v for r, v in mo.waiting.items() if r != "prefill") if backlog else 0.0
        if w_prefill > 0:
            classes.append(RequestClass(id=f"{m}/backlog-prefill", model=m, isl=isl_i, osl=1, rate_rps=w_prefill / drain))
        if w_other > 0:
            classes.append(RequestClass(id=f"{m}/backlog", model=m, isl=isl_i, osl=osl_i, rate_rps=w_other / drain))
    return Workload(models={m: ModelEntry(slo=mc.slo) for m, mc in cfg.models.items() if m in obs.models}, classes=classes)


def decode_kv_pooled(cfg: ControllerConfig, obs: Observation, forecasts: Mapping[str, ModelForecast],
                     rising_models: frozenset[str]) -> bool:
    """Whether this decision plans decode pools with the pooled KV check (forecast.decode_kv_pooling and its two
    conditions, rules R5 and R6): never while a model's load rises unless decode_kv_pooling_when_rising, and only
    while every model's last rate is at least decode_kv_pooling_min_share of its recent-peak envelope."""
    f = cfg.forecast
    share = f.decode_kv_pooling_min_share
    return bool(f.decode_kv_pooling and (f.decode_kv_pooling_when_rising or not rising_models)
                and (share is None or all(obs.models[m].arrival_rps >= share * fc.envelope_rps
                                          for m, fc in forecasts.items())))


# ---------------------------------------------------------------------- correction
def _learn(state: State, obs: Observation, memories: Mapping[str, ModelMemory], ready: Mapping[str, int],
           settled: bool, rising: frozenset[str] = frozenset()) -> tuple[Corrections, dict[str, int], list[str]]:
    """New correction factors (see the module docstring), the quiet flags, and notes. `rising`: models whose load
    is rising, learned from only with correct.learn_while_rising."""
    c = state.cfg.correct
    quiet_now = {m: (state.models[m].quiet + 1 if m in state.models else 1)
                 if settled and sum(mo.waiting.values()) <= c.max_waiting_to_learn else 0 for m, mo in obs.models.items()}
    if not c.enabled or state.last_plan is None:
        return state.corrections, quiet_now, []
    observed: dict[str, dict[str, float | None]] = {}
    predicted: dict[str, dict[str, float | None]] = {}
    s_observed: dict[str, dict[str, float | None]] = {}
    s_predicted: dict[str, dict[str, float | None]] = {}
    gaps: list[str] = []  # the service-time side a model could not learn from this interval
    for m, mo in obs.models.items():
        mp = state.last_plan.models.get(m)
        lengths = memories[m].lengths
        if mp is None or mo.completion_rps < c.min_rate_rps or not lengths:
            continue
        if m in rising and not c.learn_while_rising:
            continue  # a factor learned on a ramp moves the plan while it must not shrink (rule R4)
        if c.source == "service" and (mo.prefill_time_ms is not None or mo.tpot_ms is not None):
            # service times carry no queueing delay: learned whatever the queues do (issue 9)
            running = sum(v for r, v in mo.running.items() if r in ("decode", "mixed")) if mo.running else None
            sp = predict_service(CorrectedPerf(state.planner.perf, state.corrections), dict(ready), mp.routing.get(m, {}),
                                 mo.arrival_rps, lengths[0], lengths[1], mo.prefill_time_ms, running,
                                 c.service_max_prefill_occupancy)
            if sp is not None:
                s_observed[m] = {"ttft_ms": mo.prefill_time_ms, "itl_ms": mo.tpot_ms}
                s_predicted[m] = sp
                # one side without its service time learns nothing while the other moves (found in QA: a vLLM before
                # 0.11 exports no vllm:request_time_per_output_token_seconds, so the ITL factor silently never moved)
                if mo.tpot_ms is None or mo.prefill_time_ms is None:
                    key, side, metric = (("itl", "decode", "vllm:request_time_per_output_token_seconds, vLLM >= 0.11")
                                         if mo.tpot_ms is None else
                                         ("ttft", "prefill", "vllm:request_prefill_time_seconds"))
                    gaps.append(f"correct {m} {key}: no {side} service time observed ({metric}): the {key} factor keeps "
                                f"{state.corrections.factor(key, m):.3f}, service times correct the other side only")
            continue
        # latency samples are taken at completion: a request finishing now may have queued an interval
        # or more ago, so the quiet run must cover the samples' age too (issue 9: learning the queue a
        # flash crowd left clipped the factor at 2)
        if quiet_now[m] < c.quiet_intervals_to_learn:
            continue
        if c.skip_when_bursty and state.cfg.forecast.burstiness and planned_burstiness(memories[m], state.cfg) is not None:
            continue  # the burst-aware capacity already plans the bursts' queueing: learning it again double-counts
        spread = planned_spread(memories[m], state.planner.max_context.get(m)) if state.cfg.forecast.length_spread else None
        pred = predict_at_load(CorrectedPerf(state.planner.perf, state.corrections), dict(ready), mp.routing.get(m, {}),
                               mo.arrival_rps, lengths[0], lengths[1], state.cfg.models[m].slo.percentile,
                               spread.isl_scv if spread is not None else 0.0, spread.isl_max if spread is not None else None,
                               state.planner.fleet.limits.routing if c.pooled_prediction else "one_replica")
        if pred is None:
            continue
        observed[m] = {k.key: getattr(mo, k.key) for k in SloMetric}
        predicted[m] = dict(pred)
    hist = any(obs.models[m].from_histograms for m in observed)
    corr, notes = update_corrections(state.corrections, observed, predicted, c.smoothing, c.min_factor, c.max_factor,
                                     buckets={"ttft": TTFT_BUCKETS_MS, "itl": ITL_BUCKETS_MS} if hist else None)
    # service-time means are rate(sum) / rate(count): exact, no histogram bucket to respect
    corr, s_notes = update_corrections(corr, s_observed, s_predicted, c.smoothing, c.service_min_factor, c.max_factor)
    return corr, quiet_now, notes + s_notes + gaps


# ---------------------------------------------------------------------- per-role sizing factors
def scale_roles(replicas: Mapping[str, int], factors: Mapping[str, float]) -> dict[str, int]:
    """The ILP's replicas with the decode pools of each model x its factor (`factors`: model ->
    decode factor), rounded up, at least 1 where the ILP asked for any. Pure."""
    out: dict[str, int] = {}
    for p, n in replicas.items():
        v = Variant.parse(p)
        f = factors.get(v.model, 1.0) if v.role == "decode" else 1.0
        out[p] = n if n <= 0 or f >= 1.0 else max(1, math.ceil(n * f - 1e-9))
    return out


# ---------------------------------------------------------------------- the decision
def _scaled(f: ModelForecast, rate_rps: float) -> ModelForecast:
    """The same forecast at another request rate, with the same planned lengths."""
    k = rate_rps / f.rate_rps if f.rate_rps > 0 else 0.0
    return replace(f, rate_rps=rate_rps, prompt_tps=f.prompt_tps * k, output_tps=f.output_tps * k)


def _routing(plan: Plan | None) -> dict[str, dict[str, dict[str, float]]]:
    """Routing weights of the main class per model: {model: {class: {pool: weight}}}."""
    if plan is None:
        return {}
    return {m: {c: dict(w) for c, w in mp.routing.items() if c == m} for m, mp in plan.models.items()}


def _pairing(plan: Plan | None) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    if plan is None:
        return {}
    return {m: {c: {p: dict(d) for p, d in pp.items()} for c, pp in mp.pairing.items() if c == m}
            for m, mp in plan.models.items() if mp.pairing}


def _one_per_side(counts: Mapping[str, int], current: Mapping[str, int], proposal: Mapping[str, int], models: set[str],
                  running_only: bool) -> tuple[dict[str, int], list[str]]:
    """`counts` with one replica kept on each side (prefill: prefill or mixed pools; decode: decode or mixed) of each
    model in `models` that `counts` leaves at 0 there: on the side's pool running the most replicas now (then the
    proposal's, then the id); with `running_only`, only a pool that runs now (none is started). A mixed replica serves
    both sides (found by hand at stop 52: floors per ROLE kept a mixed replica forever beside the prefill and decode
    pools that had replaced it). Returns (the counts, the pools raised to 1)."""
    out, kept = dict(counts), []
    for m in sorted(models):
        pools = [p for p in sorted(set(current) | set(out)) if Variant.parse(p).model == m]
        for side in (("prefill", "mixed"), ("decode", "mixed")):
            ps = [p for p in pools if Variant.parse(p).role in side]
            cands = [p for p in ps if current.get(p, 0) > 0] if running_only else ps
            if cands and sum(out.get(p, 0) for p in ps) == 0:
                keep = max(cands, key=lambda p: (current.get(p, 0), proposal.get(p, 0), p))
                out[keep] = 1
                kept.append(keep)
    return out, kept


def _left_alone(pools: Mapping[str, PoolStatus], cfg: ControllerConfig, fleet: Fleet,
                held_models: set[str]) -> dict[str, tuple[PoolStatus, str]]:
    """The pools this interval's decision leaves as they are, each with why: another model's (not in the config),
    one on a GPU type the fleet file does not list, one of a model whose metrics cannot be used this interval."""
    out: dict[str, tuple[PoolStatus, str]] = {}
    for p, st in pools.items():
        v = Variant.parse(p)
        why = ("models not in the config" if v.model not in cfg.models else
               "metrics unusable" if v.model in held_models else
               "GPU types not in the fleet file" if v.gpu not in fleet.gpus else None)
        if why is not None:
            out[p] = (st, why)
    return out


def _less_held(fleet: Fleet, others: Mapping[str, tuple[PoolStatus, str]]) -> dict[str, GpuInventory]:
    """The fleet's inventory less the GPUs the pools the controller leaves alone hold (desired x TP): other models',
    pools on GPU types the fleet file does not list, a model's whose metrics cannot be used this interval."""
    held: dict[str, int] = {}
    for p, (st, _why) in others.items():
        v = Variant.parse(p)
        held[v.gpu] = held.get(v.gpu, 0) + st.desired * v.tp
    return {g: inv.model_copy(update={"available": max(0, inv.available - held.get(g, 0))})
            for g, inv in fleet.gpus.items()}


def implausible(mo: ModelObservation, drain_s: float) -> str | None:
    """Why a model's observation cannot be planned on, or None: a rate, mean length or queue that is not a finite
    number >= 0, an arrival rate above the most a workload may state (planner.io.schema.MAX_RATE_RPS), or a queue
    that, drained over `drain_s`, would be such a rate. Such a model is held on its own, as one the observer calls
    unusable (found in fault QA: an observation of 1e9 req/s, or 1e12 queued prompts, raised a ValidationError out of
    decide() and so out of Controller.run(); a NaN rate likewise a ValueError; a negative rate went into the
    forecast's memory)."""
    values = {"arrival_rps": mo.arrival_rps, "completion_rps": mo.completion_rps, "mean_isl": mo.mean_isl,
              "mean_osl": mo.mean_osl, **{f"waiting[{r}]": v for r, v in mo.waiting.items()},
              **{f"arrival_peak_rps[{w:g}s]": v for w, v in mo.arrival_peak_rps.items()}}
    for name, v in values.items():
        if v is not None and not (math.isfinite(v) and v >= 0):
            return f"{name} = {v:g}, not a finite number >= 0"
    for name, v in (("arrival_rps", mo.arrival_rps), ("completion_rps", mo.completion_rps),
                    *((f"arrival_peak_rps[{w:g}s]", r) for w, r in mo.arrival_peak_rps.items())):
        if v > MAX_RATE_RPS:
            return f"{name} = {v:g} req/s, above the {MAX_RATE_RPS:g} req/s a workload may state"
    for role, n in mo.waiting.items():
        if n / drain_s > MAX_RATE_RPS:
            return (f"waiting[{role}] = {n:g} requests, more than {MAX_RATE_RPS:g} req/s drained over "
                    f"{drain_s:g}s can serve")
    return None


def _without_implausible(obs: Observation, cfg: ControllerConfig) -> Observation:
    """`obs` with the models whose observation is `implausible` moved to `unusable` (not ok when none is left)."""
    if not obs.ok:
        return obs
    drain_s = cfg.guard.queue_drain_s or horizon_s(cfg)
    bad = {m: why for m, mo in obs.models.items() if (why := implausible(mo, drain_s)) is not None}
    if not bad:
        return obs
    models = {m: mo for m, mo in obs.models.items() if m not in bad}
    unusable = {**obs.unusable, **{m: f"implausible observation: {why}" for m, why in bad.items()}}
    return replace(obs, models=models, unusable=unusable, ok=bool(models),
                   reason=obs.reason if models else "; ".join(unusable.values()))


def decide(state: State, snapshot: Snapshot, now: float) -> tuple[Decision, State]:
    """One interval's decision (see the module docstring). Pure except for the injected planner."""
    cfg = state.cfg
    gstate = copy.deepcopy(state.guard)  # guard() updates its state in place: work on a copy
    if snapshot.pools is None:
        g = hold(gstate, {}, f"platform unreachable ({snapshot.platform_error})")
        return Decision(t_s=now, target=g.target, held=True, reasons=tuple(g.reasons), hold_reason="platform",
                        errors=(f"read pools: {snapshot.platform_error}",)), state
    # Only the configured models' pools are the controller's: another model's pools (labelled alike, another team's
    # service) are left as they are and their GPUs are not free (found by hand at stop 52: the controller of
    # llama-2-70b took a llama-3.1-8b Deployment of 3 replicas to 0 once its scale-down window had passed).
    # Pools on a GPU type the fleet file does not list are outside the inventory the controller plans: left alone too.
    # A model whose metrics cannot be used this interval (Observation.unusable) is held the same way, on its own: the
    # other models are still planned (found by hand at stop 52: one model without series held every model's scaling).
    metrics = _without_implausible(snapshot.metrics, cfg)
    held_models = set(metrics.unusable) if metrics.ok else set()
    others = _left_alone(snapshot.pools, cfg, state.planner.fleet, held_models)
    snapshot = replace(snapshot, metrics=metrics, pools={p: st for p, st in snapshot.pools.items() if p not in others})
    assert snapshot.pools is not None
    current = {p: s.desired for p, s in snapshot.pools.items()}
    ready = {p: s.ready for p, s in snapshot.pools.items()}
    obs = snapshot.metrics
    reasons: list[str] = []
    errors: list[str] = []
    if held_models:
        reasons.extend(f"hold {m}'s pools: metrics unusable ({why})" for m, why in sorted(obs.unusable.items()))
    for why in ("models not in the config", "GPU types not in the fleet file"):
        left = {p: st for p, (st, w) in sorted(others.items()) if w == why and st.desired > 0}
        if left:
            reasons.append(f"left as they are ({why}): " + ", ".join(f"{p} ({st.desired})" for p, st in left.items())
                           + f"; their {sum(st.desired * Variant.parse(p).tp for p, st in left.items())} GPUs are not "
                           "planned on")
    if not obs.ok:
        g = guard(cfg.guard, gstate, now, current, None, metrics_ok=False, metrics_reason=obs.reason,
                  stabilization_s=stabilization_s(cfg))
        return (Decision(t_s=now, target=g.target, held=True, reasons=tuple(g.reasons), hold_reason="metrics"),
                replace(state, guard=gstate))

    # A held model's pools are left as they are, floors included: its floors are neither planned nor guarded (the
    # guard, which sees only the pools planned on, set a held pool of 6 replicas to its floor of 2: found in review)
    floors = {p: n for p, n in cfg.guard.min_replicas.items() if Variant.parse(p).model not in held_models}

    # forecast
    memories = dict(state.models)
    forecasts: dict[str, ModelForecast] = {}
    for m, mo in obs.models.items():
        mem = _remember(memories.get(m, ModelMemory()), cfg, now, mo.arrival_rps, mo.mean_isl, mo.mean_osl, mo.completion_rps,
                        mo.arrival_idc, mo.prompt_token_buckets, mo.output_token_buckets, mo.arrival_peak_rps,
                        mo.arrival_peak_span_s)
        fc = model_forecast(mem, cfg, sum(mo.waiting.values()))
        mem = update_headroom(mem, slo_ratio(mo, cfg.models[m].slo if m in cfg.models else None), sum(mo.waiting.values()),
                              cfg, mo.arrival_rps / fc.envelope_rps if fc.envelope_rps > 0 else 0.0)
        base = max(fc.envelope_rps, fc.short_rps, fc.seasonal_rps)
        memories[m] = replace(mem, pending=mem.pending + ((now, base),))
        forecasts[m] = fc
    # correct
    settled = all(ready.get(p, 0) >= n for p, n in current.items())
    rising_models = frozenset(m for m, fc in forecasts.items() if fc.rising)
    corrections, quiet, notes = _learn(state, obs, memories, ready, settled, rising_models)
    reasons.extend(notes)
    memories = {m: replace(mem, quiet=quiet.get(m, 0)) for m, mem in memories.items()}
    # propose
    proposal: dict[str, int] | None = None
    hold_proposal: dict[str, int] | None = None
    plan: Plan | None = None
    solver_ok, solver_reason, solve_s = True, "", None
    workload: Workload | None = None
    unplannable = False  # the solver proved the interval's load infeasible, or the schema refused its workload
    # the decode factor (a margin below 1 for the pool the capacity model over-sizes) is off for a model
    # with requests waiting for a decode slot now: its cache is full, the factor's premise fails, and
    # the backlog's scale-up must not be damped
    factors = {m: 1.0 if sum(v for r, v in mo.waiting.items() if r == "decode") > 0 else cfg.forecast.decode_factor
               for m, mo in obs.models.items()}
    try:
        # inside the try: a workload the schema refuses (a forecast beyond its bounds) holds as a failed solve does
        workload = workload_for(cfg, obs, memories, forecasts, max_context=state.planner.max_context)
        fleet_now = state.planner.fleet
        # the controller's own limits: its decode KV headroom (forecast.decode_kv_pooling: pooled only at a level near
        # the recent peak by default, rule R6; per replica on a ramp or in a trough) and, where set, the
        # utilization its forecast carries the headroom for (see config)
        limits: dict[str, object] = {"decode_kv_pooling": decode_kv_pooled(cfg, obs, forecasts, rising_models)}
        if cfg.forecast.plan_utilization is not None:
            if abs(cfg.forecast.plan_utilization - fleet_now.limits.utilization) > 1e-9:
                # said in every decision: the user's fleet file says otherwise
                reasons.append(f"planned at utilization {cfg.forecast.plan_utilization:g} (forecast.plan_utilization) "
                               f"instead of the fleet's limits.utilization {fleet_now.limits.utilization:g}")
            limits["utilization"] = cfg.forecast.plan_utilization
        # the guard's floors (guard.min_replicas) are lower bounds of the ILP's pools, so that the plan holds them
        # inside the inventory: applied only after the plan, a floor of 3 decode replicas on top of a plan using all
        # 8 H100s asked for 10 (found in review)
        if floors:
            own = fleet_now.limits.pool_min_replicas
            limits["pool_min_replicas"] = {p: max(n, floors.get(p, 0)) for p, n in {**floors, **own}.items()}
        fleet_now = fleet_now.model_copy(update={"current": {p: n for p, n in current.items() if n > 0},
                                                 "limits": fleet_now.limits.model_copy(update=limits),
                                                 "gpus": _less_held(fleet_now, others)})
        t0 = time.perf_counter()  # only reported (solve_s), never decided on
        cand = state.planner.plan_fn(workload, fleet_now, CorrectedPerf(state.planner.perf, corrections))
        solve_s = cand.solver.seconds or (time.perf_counter() - t0)
        if cand.feasible and cand.solver.status in ("optimal", "feasible", "time_limit") and cand.models:
            plan, proposal = cand, scale_roles(cand.replicas(), factors)
            if cand.solver.status == "time_limit":  # feasible, maybe not optimal: the decision says so
                # (found in QA: such a plan was proposed and applied without a word)
                gap = f"; gap to its proven bound {cand.solver.gap:.1%}" if cand.solver.gap is not None else ""
                reasons.append(f"solver stopped at its time limit (solver_time_limit_s {cfg.solver_time_limit_s:g} s"
                               f"{gap}): the best plan found is proposed, feasible but maybe not the cheapest")
            trend_leads = not cfg.forecast.hold_trend and any(
                f.short_rps > max(f.envelope_rps * f.margin, f.seasonal_rps * f.margin) for f in forecasts.values())
            has_backlog = not cfg.guard.hold_backlog and len(workload.classes) > len(obs.models)
            if trend_leads or has_backlog:
                # what the scale-down window remembers: the plan for the ARRIVAL rate's envelope, without
                # the trend term (a trend that stops was a wrong forecast; the envelope holds the load
                # that did arrive) and without the backlog classes (a drained queue needs no capacity:
                # remembering them locks in a fleet sized for a surge that is over)
                steady = ({m: _scaled(f, max(f.envelope_rps * f.margin, f.seasonal_rps * f.margin, memories[m].rate_rps[-1]))
                           for m, f in forecasts.items()} if trend_leads else forecasts)
                hold_plan = state.planner.plan_fn(workload_for(cfg, obs, memories, steady, backlog=False,
                                                             max_context=state.planner.max_context), fleet_now,
                                                  CorrectedPerf(state.planner.perf, corrections))
                if hold_plan.feasible and hold_plan.models:
                    hold_proposal = scale_roles(hold_plan.replicas(), factors)
        else:
            solver_ok = False
            solver_reason = f"status {cand.solver.status}" + (f": {'; '.join(cand.diagnosis)}" if cand.diagnosis else "")
            if cand.solver.status == "error":  # the solver failed, which is not a plan it proved impossible
                errors.append(f"propose: {solver_reason}")
            unplannable = cand.solver.status == "infeasible"
    except Exception as exc:  # noqa: BLE001 - a failed solve holds the last good plan
        solver_ok, solver_reason = False, f"{type(exc).__name__}: {exc}"
        unplannable = workload is None  # workload_for raised: the schema refused the load planned for
        errors.append(f"propose: {solver_reason}")
    # guard
    pools = sorted(set(current) | set(proposal or {}))  # the platform's pools (current) are among them
    parsed = {p: Variant.parse(p) for p in pools}
    model_of = {p: v.model for p, v in parsed.items()}
    queue_growing = {p for p in current if (mg := obs.models.get(model_of[p])) is not None
                     and mg.waiting_growth_per_s.get(parsed[p].role, 0.0) > 0 and mg.waiting.get(parsed[p].role, 0.0) > 0}
    rising = {p for p in pools if model_of[p] in rising_models}
    # capacity coming: replicas asked for (desired) and not ready yet, while the model has a backlog
    coming = {p for p, st in snapshot.pools.items() if st.desired > st.ready and cfg.guard.keep_starting
              and (mw := obs.models.get(model_of[p])) is not None and sum(mw.waiting.values()) > 0}
    # a silent model (no traffic in the envelope window) keeps one running replica per role unless guard.scale_to_zero:
    # given to the guard as the proposal's floor, so that it neither plans a scale-down nor starts a cooldown for it
    silent = ({m for m, fc in forecasts.items() if not fc.traffic}
              if cfg.forecast.floor_while_traffic and not cfg.guard.scale_to_zero else set())
    guarded, kept = _one_per_side(proposal, current, proposal, silent, running_only=True) if proposal is not None else (None, [])
    reasons.extend(f"{p}: kept at 1 replica ({Variant.parse(p).model} has no traffic; guard.scale_to_zero is off)"
                   for p in kept)
    g = guard(cfg.guard.model_copy(update={"min_replicas": floors}), gstate, now, current, guarded, metrics_ok=True,
              solver_ok=solver_ok, solver_reason=solver_reason,
              queue_growing=queue_growing, rising=rising, stabilization_s=stabilization_s(cfg), coming=coming,
              decode_pools={p for p, v in parsed.items() if v.role == "decode"}, interval_s=cfg.interval_s,
              hold_proposal=(_one_per_side({p: min(n, (proposal or {}).get(p, n)) for p, n in hold_proposal.items()},
                                           current, proposal or {}, silent, running_only=True)[0] if hold_proposal else None))
    target = dict(g.target)
    reasons.extend(g.reasons)
    if not g.held and cfg.forecast.floor_while_traffic:
        # a model with traffic keeps a replica per side even where its plan has none; a silent model's floor is the
        # guard's input above (it keeps a running replica, it never starts one)
        target, kept = _one_per_side(target, current, proposal or {}, {m for m, fc in forecasts.items() if fc.traffic},
                                     running_only=False)
        reasons.extend(f"{p}: kept at 1 replica ({Variant.parse(p).model} has traffic)" for p in kept)
        gstate.last_good = dict(target)
    if unplannable:
        # the interval is left out of the models' memory: remembered, a load no plan meets (an absurd rate below
        # MAX_RATE_RPS, 9.9e5 req/s) stayed in the envelope for its window and held every later interval as
        # infeasible too (found in QA: 2 req/s after one interval of 9.9e5 held the fleet for 480 s)
        memories = dict(state.models)
        reasons.append("this interval's observations are not remembered (envelope, trend, margin): no plan meets the "
                       f"load planned for ({', '.join(f'{m} {f.rate_rps:g} req/s' for m, f in sorted(forecasts.items()))})")
    new_plan = plan if plan is not None else state.last_plan
    new_state = replace(state, models=memories, corrections=corrections, guard=gstate, last_plan=new_plan)
    return (Decision(t_s=now, target=target, held=g.held, reasons=tuple(reasons), errors=tuple(errors), proposal=proposal,
                     forecasts=forecasts, workload=workload, plan=plan, solve_s=solve_s,
                     hold_reason="solver" if g.held else "",
                     routing=_routing(new_plan) if not g.held else {}, pairing=_pairing(new_plan) if not g.held else {}),
            new_state)


def initial_state(cfg: ControllerConfig, plan_fn: PlanFn, fleet: Fleet,
                  perf: PerfSource, max_context: Mapping[str, int] | None = None) -> State:
    """The first state. `max_context`: each model's context window (default: the catalog's, where `perf` is a
    planner.perf.laws.PerfModel that has one)."""
    if max_context is None:
        from planner.perf.laws import PerfModel
        max_context = {}
        if isinstance(perf, PerfModel):
            for m in cfg.models:
                spec = perf.catalog.models.get(m)
                if spec is not None and spec.max_context:
                    max_context[m] = spec.max_context
    return State(cfg=cfg, planner=Planner(plan_fn=plan_fn, fleet=fleet, perf=perf, max_context=dict(max_context)))
