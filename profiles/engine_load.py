"""The engine's own account of a load run: what vLLM's ``/metrics`` says happened between two scrapes.

A client-side TTFT under load is frontend + queue + the prompt's steps; the client cannot tell them apart.
vLLM 0.26.0 exports, per finished request, the time it spent WAITING (``vllm:request_queue_time_seconds``,
arrival at the engine core to first scheduled), from first scheduled to first token
(``vllm:request_prefill_time_seconds``), in decode (``vllm:request_decode_time_seconds``), and per engine step
the tokens it carried (``vllm:iteration_tokens_total``: its count is the number of steps). The change of each
histogram's sum and count between a scrape before a rate run and one after it gives that run's means; the change
of its buckets, quantiles by linear interpolation inside a bucket (as Prometheus' ``histogram_quantile``), kept
only for the engine's TTFT, whose buckets are fine (1 ms up); the request-phase histograms' first bucket ends at
0.3 s, so only their means are. The
gauges ``vllm:num_requests_running`` / ``waiting``, sampled during the run, give the batch and the queue.

This is the lightweight alternative to vLLM's per-step log (``--enable-logging-iteration-details``), which slows
the API server under load (profiles/runs/2026-12-03-s10/README.md: the 8B's TTFT p90 170 ms against 102 unlogged).

Pure functions over the metrics text; the profiler (profiles/backends/vllm.py, the rate sweep) does the I/O and
writes one :func:`engine_load_row` per rate to ``engine_load.csv``, and one :func:`decode_engine_row` per decode
point repeat to ``decode_engine.csv``: the engine's mean inter-token gap beside the client's, which says whether a
large batch's client-side ITL is the engine's or the API server's (streaming 256 streams).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# Histograms read, by the short name used in the row's columns.
HISTOGRAMS = {
    "queue": "vllm:request_queue_time_seconds",
    "prefill": "vllm:request_prefill_time_seconds",
    "decode": "vllm:request_decode_time_seconds",
    "engine_ttft": "vllm:time_to_first_token_seconds",
    "engine_itl": "vllm:inter_token_latency_seconds",
    "step_tokens": "vllm:iteration_tokens_total",
}
COUNTERS = {"preemptions": "vllm:num_preemptions", "generation_tokens": "vllm:generation_tokens",
            "prompt_tokens": "vllm:prompt_tokens"}
GAUGES = {"running": "vllm:num_requests_running", "waiting": "vllm:num_requests_waiting"}
# A decode-only step carries one token per running request, at most max_num_seqs (256, vLLM's default and the
# profiler's): a step of more tokens carried a prompt's chunk (vllm:iteration_tokens_total has a bucket bound there).
MAX_DECODE_ONLY_TOKENS = 256.0

ENGINE_LOAD_COLUMNS = [
    "isl", "osl", "rate_rps", "span_s", "requests", "steps", "steps_per_s", "tokens_per_step_mean",
    "steps_over_256_tokens",
    "queue_ms_mean", "prefill_ms_mean", "decode_ms_mean",
    "engine_ttft_ms_mean", "engine_ttft_ms_p90", "engine_itl_ms_mean", "preemptions", "generation_tokens",
    "prompt_tokens",
    "running_mean", "running_max", "waiting_mean", "waiting_p90", "waiting_max", "gauge_samples",
]


@dataclass(frozen=True)
class Histogram:
    """One histogram's cumulative state: sum, count and the cumulative count at each upper bound."""

    sum: float
    count: float
    buckets: tuple[tuple[float, float], ...]  # (le, cumulative count), ascending le, +Inf last

    def minus(self, before: Histogram) -> Histogram:
        prev = dict(before.buckets)
        return Histogram(self.sum - before.sum, self.count - before.count,
                         tuple((le, c - prev.get(le, 0.0)) for le, c in self.buckets))

    def count_at_most(self, bound: float) -> float:
        """Observations <= `bound`, which must be one of the bucket bounds (nan otherwise)."""
        return dict(self.buckets).get(bound, math.nan)

    def quantile(self, q: float) -> float:
        """Prometheus' histogram_quantile: linear inside the bucket holding rank q·count; nan when empty.
        A rank in the +Inf bucket returns the largest finite bound (nothing better is known)."""
        if self.count <= 0 or not self.buckets:
            return math.nan
        rank, lo_le, lo_c = q * self.count, 0.0, 0.0
        for le, c in self.buckets:
            if c >= rank:
                if math.isinf(le):
                    return lo_le
                return lo_le + (le - lo_le) * ((rank - lo_c) / (c - lo_c) if c > lo_c else 0.0)
            lo_le, lo_c = le, c
        return lo_le


@dataclass(frozen=True)
class EngineLoadCounters:
    """The cumulative engine state one scrape of ``/metrics`` gives (summed over engines and label sets)."""

    histograms: dict[str, Histogram] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)


def parse_engine_load(metrics_text: str) -> EngineLoadCounters:
    """The histograms, counters and gauges this module reads; a name the server does not export is absent
    (an attached server of another engine: the row then has nan there, nothing fails)."""
    from prometheus_client.parser import text_string_to_metric_families

    hist_names = {v: k for k, v in HISTOGRAMS.items()}
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    counters: dict[str, float] = {}
    gauges: dict[str, float] = {}
    ctr_names = {v: k for k, v in COUNTERS.items()}
    gauge_names = {v: k for k, v in GAUGES.items()}
    for fam in text_string_to_metric_families(metrics_text):
        for s in fam.samples:
            name = s.name
            for suffix, into in (("_sum", sums), ("_count", counts)):
                base = name[: -len(suffix)] if name.endswith(suffix) else None
                if base in hist_names:
                    into[hist_names[base]] = into.get(hist_names[base], 0.0) + float(s.value)
            if name.endswith("_bucket") and name[: -len("_bucket")] in hist_names:
                key = hist_names[name[: -len("_bucket")]]
                le = float(s.labels.get("le", "inf"))
                buckets.setdefault(key, {})
                buckets[key][le] = buckets[key].get(le, 0.0) + float(s.value)
            base = name[: -len("_total")] if name.endswith("_total") else name
            if base in ctr_names and name.endswith("_total"):
                counters[ctr_names[base]] = counters.get(ctr_names[base], 0.0) + float(s.value)
            if name in gauge_names:
                gauges[gauge_names[name]] = gauges.get(gauge_names[name], 0.0) + float(s.value)
    hists = {k: Histogram(sums.get(k, 0.0), counts[k], tuple(sorted(buckets.get(k, {}).items())))
             for k in counts}
    return EngineLoadCounters(hists, counters, gauges)


def _mean_ms(h: Histogram | None) -> float:
    return h.sum / h.count * 1e3 if h is not None and h.count > 0 else math.nan


def _q_ms(h: Histogram | None, q: float) -> float:
    return h.quantile(q) * 1e3 if h is not None else math.nan


def _pct(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def _counter_delta(before: EngineLoadCounters, after: EngineLoadCounters, key: str) -> float:
    """A counter's change between two scrapes; nan where either lacks it."""
    if key not in after.counters or key not in before.counters:
        return math.nan
    return after.counters[key] - before.counters[key]


DECODE_ENGINE_COLUMNS = ["batch", "context_tokens", "repeat", "client_itl_ms", "client_mean_gap_ms",
                         "engine_itl_ms_mean", "steps", "generation_tokens"]


def decode_engine_row(before: EngineLoadCounters, after: EngineLoadCounters, batch: int, context: int, repeat: int,
                      client_itl_ms: float, client_mean_gap_ms: float) -> dict[str, float]:
    """One decode point's repeat as the engine saw it: the mean inter-token gap over every token of the point
    (vLLM 0.26 times it on the engine core's output timestamps, so the API server's streaming is not in it), beside
    the client's mean gap over the same tokens (`client_mean_gap_ms`: the staggered start's long gaps are in both)
    and the client's steady-window ITL (the profile's point); steps and generated tokens. client_mean_gap_ms over
    engine_itl_ms_mean above 1 is the API server's streaming delay."""
    itl = after.histograms.get("engine_itl")
    itl0 = before.histograms.get("engine_itl")
    steps = after.histograms.get("step_tokens")
    steps0 = before.histograms.get("step_tokens")

    return {"batch": batch, "context_tokens": context, "repeat": repeat, "client_itl_ms": client_itl_ms,
            "client_mean_gap_ms": client_mean_gap_ms,
            "engine_itl_ms_mean": _mean_ms(itl.minus(itl0)) if itl is not None and itl0 is not None else math.nan,
            "steps": steps.count - steps0.count if steps is not None and steps0 is not None else math.nan,
            "generation_tokens": _counter_delta(before, after, "generation_tokens")}


def engine_load_row(before: EngineLoadCounters, after: EngineLoadCounters, gauge_samples: list[EngineLoadCounters],
                    span_s: float, isl: int, osl: int, rate_rps: float) -> dict[str, float]:
    """One rate run's engine-side account (emulated seconds in `span_s`): steps and tokens per step, the
    finished requests' queue / prefill / decode times and the engine's TTFT, preemptions, and the running and
    waiting gauges over the run's samples. Requests still running at the second scrape are not in the request
    histograms (they count when they finish), so `requests` may trail the run's."""
    d = {k: after.histograms[k].minus(before.histograms[k]) for k in after.histograms if k in before.histograms}
    steps = d["step_tokens"].count if "step_tokens" in d else math.nan
    running = [g.gauges["running"] for g in gauge_samples if "running" in g.gauges]
    waiting = [g.gauges["waiting"] for g in gauge_samples if "waiting" in g.gauges]

    return {
        "isl": isl, "osl": osl, "rate_rps": rate_rps, "span_s": span_s,
        "requests": d["queue"].count if "queue" in d else math.nan,
        "steps": steps, "steps_per_s": steps / span_s if span_s > 0 else math.nan,
        "tokens_per_step_mean": d["step_tokens"].sum / steps if steps and steps > 0 else math.nan,
        "steps_over_256_tokens": steps - d["step_tokens"].count_at_most(MAX_DECODE_ONLY_TOKENS)
        if "step_tokens" in d else math.nan,
        "queue_ms_mean": _mean_ms(d.get("queue")), "prefill_ms_mean": _mean_ms(d.get("prefill")),
        "decode_ms_mean": _mean_ms(d.get("decode")),
        "engine_ttft_ms_mean": _mean_ms(d.get("engine_ttft")), "engine_ttft_ms_p90": _q_ms(d.get("engine_ttft"), 0.9),
        "engine_itl_ms_mean": _mean_ms(d.get("engine_itl")),
        "preemptions": _counter_delta(before, after, "preemptions"),
        "generation_tokens": _counter_delta(before, after, "generation_tokens"),
        "prompt_tokens": _counter_delta(before, after, "prompt_tokens"),
        "running_mean": sum(running) / len(running) if running else math.nan,
        "running_max": max(running, default=math.nan),
        "waiting_mean": sum(waiting) / len(waiting) if waiting else math.nan, "waiting_p90": _pct(waiting, 0.9),
        "waiting_max": max(waiting, default=math.nan), "gauge_samples": float(len(gauge_samples)),
    }
