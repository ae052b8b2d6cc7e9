"""The observer seam: what the loop reads each interval (`Observation`), and the registry of observers.

An observer turns a metrics source into one `Observation` per interval: per model, the request
rates, lengths, latency percentiles, queues and service times the decision needs
(`ModelObservation`); `ok=False` with a reason when the source cannot be trusted (the guard then
holds), `unusable` naming a model whose metrics cannot be used while others' can (that model's pools are held on
their own). An implementation registers a builder with `@OBSERVERS.register(name, summary)`; the builder
gets an `ObserverContext` and returns the observer. `observer` in the controller config picks one
by name; adding an observer is one module in controllers/observers/ (plus its tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from controllers.config import ControllerConfig
from controllers.registry import Registry


@dataclass
class ModelObservation:
    model: str
    completion_rps: float = 0.0
    arrival_rps: float = 0.0
    mean_isl: float | None = None
    mean_osl: float | None = None
    ttft_ms: float | None = None
    itl_ms: float | None = None
    running: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)
    waiting_growth_per_s: dict[str, float] = field(default_factory=dict)
    kv_usage: dict[str, float] = field(default_factory=dict)
    newest_sample_age_s: float | None = None
    from_histograms: bool = False
    """TTFT/ITL were read with histogram_quantile() over vLLM's buckets (Prometheus), not from samples."""
    itl_source: str = ""
    """Histogram the ITL came from (vllm:request_time_per_output_token_seconds, or a per-token fallback:
    vllm:inter_token_latency_seconds, or vllm:time_per_output_token_seconds on vLLM <= 0.10); 'absent: ...' with why
    where `itl_ms` is None (no series of any, or no request in the window); '' where the observer names none."""
    ttft_source: str = ""
    """'decode+prefill' (P/D: the two sides' quantiles summed), 'decode/mixed' or 'gateway'; 'decode alone (P/D, ...)'
    where a P/D fleet's prefill side has no quantile in the window (the decode side's, without a remote prefill's
    time); 'absent: ...' with why where `ttft_ms` is None, as `itl_source`."""
    gateway_queue_source: str = ""
    """Gauge the endpoint picker's flow-control queue (waiting['gateway'], when not 0) was read from: prometheus.
    epp_queue_metric, or inference_extension_flow_control_queue_size as the default's fallback; '' when it has no
    series (flow control off, or no request queued yet) or none is configured."""
    kv_usage_source: str = ""
    """Gauge `kv_usage` came from (vllm:kv_cache_usage_perc, or vllm:gpu_cache_usage_perc on vLLM <= 0.9.1); '' when
    not observed."""
    prefill_time_ms: float | None = None
    """Mean per-request prefill SERVICE time (scheduled -> prefill done, no queueing) on the prefill side
    (vllm:request_prefill_time_seconds sum / count); None: not exported or no request."""
    tpot_ms: float | None = None
    """Mean per-request time per output token after the first (decode steps only, no queueing;
    vllm:request_time_per_output_token_seconds sum / count); None: not exported or no request."""
    prompt_token_buckets: tuple[tuple[float, float], ...] = ()
    """The prompt-length histogram of the interval's requests, cumulative as Prometheus keeps it: (upper edge
    `le` in tokens, prompts per second of at most that many tokens), ascending, +inf last (vLLM's
    vllm:request_prompt_tokens, 1-2-5 buckets up to max_model_len). The controller reads the lengths' spread
    from it (planner/planning/lengths.py, spread_from_histogram); empty: not observed."""
    output_token_buckets: tuple[tuple[float, float], ...] = ()
    """The output-length histogram of the interval, as `prompt_token_buckets` (vLLM's
    vllm:request_generation_tokens, same buckets): the controller reads from it how far one interval's mean
    output length moves by chance (forecast.length_noise_sigmas); empty: not observed."""
    arrival_idc: dict[float, float] = field(default_factory=dict)
    """Arrival over-dispersion of the interval: {window_s: index of dispersion (variance / mean) of the
    arrival counts in consecutive windows of window_s} at 1 s and 10 s (1 for Poisson arrivals).
    Needs per-request arrival times (the router's log, or the simulator); vLLM's Prometheus counters,
    scraped every 15-30 s, cannot resolve 1-s clusters, so the Prometheus observer leaves it empty
    (the controller then plans Poisson arrivals unless the workload states burstiness)."""
    arrival_peak_rps: dict[float, float] = field(default_factory=dict)
    """The interval's sub-interval peak: {window_s: the highest arrival rate over consecutive windows of window_s
    inside the span} (the simulator: 10 s and 30 s over the interval; Prometheus: prometheus.peak_window_s over its
    rate window, a subquery of the same arrival estimate as `arrival_rps`). An on-burst shorter than the interval
    shows here at its level where the interval's mean shows a fraction of it (forecast.peak_envelope). Empty: not
    observed (the interval's mean then stands)."""
    arrival_peak_span_s: float | None = None
    """The span `arrival_peak_rps` and `arrival_rps` were taken over (the windows in it: span / window_s); None: the
    time since the previous observation (the simulator's)."""


@dataclass
class Observation:
    t_s: float
    ok: bool
    reason: str = ""
    models: dict[str, ModelObservation] = field(default_factory=dict)
    unusable: dict[str, str] = field(default_factory=dict)
    """Configured models whose metrics cannot be used this interval (no series, stale, unlabelled), with why: held on
    their own while the others are planned; `ok` is False only when no model's metrics can be used."""


class Observer(Protocol):
    """A metrics source the loop reads once per interval."""

    def observe(self) -> Observation: ...


@dataclass
class ObserverContext:
    """What an observer builder may use; the parts tests and replays swap are fields."""

    cfg: ControllerConfig
    time_scale: float = 1.0
    """Wall seconds per emulated second (1 in production; emulator tests run faster than real time)."""
    sim: object | None = None
    """A discrete-event simulator (planner.simulate.FleetSimulator) for replays; None in `planner control`."""

    @property
    def served_names(self) -> dict[str, str]:
        """planner model -> the `model_name` label vLLM exports it under."""
        return {m: mc.served_name or m for m, mc in self.cfg.models.items()}

    @property
    def percentile(self) -> dict[str, float]:
        """model -> the percentile its SLO is stated at (the latency percentiles observed)."""
        return {m: mc.slo.percentile for m, mc in self.cfg.models.items()}


ObserverBuilder = Callable[[ObserverContext], Observer]
OBSERVERS: Registry[ObserverBuilder] = Registry("observer", default="prometheus")
"""Every observer by name (`observer` in the controller config)."""


def build_observer(ctx: ObserverContext) -> Observer:
    """The observer registered under `ctx.cfg.observer`, built for `ctx`."""
    return OBSERVERS.get(ctx.cfg.observer).factory(ctx)
