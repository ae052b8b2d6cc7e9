"""Correct the performance model from observed vs predicted latency, with bounded factors.

The plan predicts TTFT and ITL percentiles per class from the (already corrected) performance
model; Prometheus gives the observed percentiles. The update is multiplicative in log space:
    f_new = clip(f_old * (observed / predicted) ** w, [min_factor, max_factor])
where w is the smoothing weight, so a model that keeps under-predicting converges to the observed
ratio and one that over-corrects comes back. TTFT factors scale the prefill law (a, b, c), ITL
factors the decode law (alpha, beta, gamma) of every variant of the model. Each change is logged
(returned as `notes`, which the loop records) so an operator can see why capacity moved.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from planner.perf.laws import VariantPerf, lookup_variant_perf
from planner.planning.slo_metrics import SloMetric


class PerfSource(Protocol):
    """What the planning core needs of a performance model (planner.perf.laws.PerfModel)."""

    def get(self, model: str, gpu: str, tp: int) -> VariantPerf | None: ...


@dataclass
class Corrections:
    """Current factors per model: ttft (prefill law) and itl (decode law); 1.0 = as profiled."""

    ttft: dict[str, float] = field(default_factory=dict)
    itl: dict[str, float] = field(default_factory=dict)

    def factor(self, metric: str, model: str) -> float:
        table: dict[str, float] = getattr(self, metric)
        return table.get(model, 1.0)


# vLLM's histogram buckets (vllm/v1/metrics/loggers.py, 0.9-0.10), in ms: histogram_quantile()
# interpolates linearly inside a bucket, so a percentile read from Prometheus is only known to lie
# in its bucket (e.g. a true ITL p90 of 40 ms reads as ~47.5 ms in the 25-50 ms bucket).
TTFT_BUCKETS_MS = (1, 5, 10, 20, 40, 60, 80, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, 20000, 40000,
                   80000, 160000, 640000, 2560000)
ITL_BUCKETS_MS = (10, 25, 50, 75, 100, 150, 200, 300, 400, 500, 750, 1000, 2500, 5000, 7500, 10000, 20000, 40000, 80000)


def bucket_consistent(observed: float | None, predicted: float | None, buckets_ms: tuple[float, ...] | None) -> float | None:
    """The observed value to learn from, given that it was read from a histogram with these buckets.

    A prediction inside the observed value's bucket agrees with it (nothing to learn); otherwise the
    nearest edge of that bucket is the observation closest to the prediction that the histogram
    allows (a conservative step). Without buckets (exact samples), the observation as is."""
    if observed is None or predicted is None or not buckets_ms or not math.isfinite(observed):
        return observed
    lo, hi = 0.0, math.inf
    for b in buckets_ms:
        if observed <= b:
            hi = b
            break
        lo = b
    if lo <= predicted <= hi:
        return predicted
    return lo if predicted < lo else hi


def update_factor(old: float, observed: float | None, predicted: float | None, weight: float, lo: float, hi: float) -> float:
    """One bounded multiplicative step; unusable samples (missing, non-positive, NaN) keep `old`."""
    if observed is None or predicted is None:
        return old
    if not (math.isfinite(observed) and math.isfinite(predicted)) or observed <= 0 or predicted <= 0:
        return old
    new = math.exp(math.log(old) + weight * math.log(observed / predicted))
    return min(hi, max(lo, new))


def update_corrections(
    current: Corrections,
    observed: dict[str, dict[str, float | None]],
    predicted: dict[str, dict[str, float | None]],
    weight: float,
    lo: float,
    hi: float,
    buckets: dict[str, tuple[float, ...]] | None = None,
) -> tuple[Corrections, list[str]]:
    """New factors from {model: {"ttft_ms": x, "itl_ms": y}} observed and predicted; notes say what moved.

    `buckets` ({"ttft": edges_ms, "itl": edges_ms}) says the observations were read from histograms
    (Prometheus): then only a prediction outside the observed bucket moves a factor (bucket_consistent)."""
    out = Corrections(dict(current.ttft), dict(current.itl))
    notes: list[str] = []
    for model, obs in observed.items():
        pred = predicted.get(model, {})
        for metric in SloMetric:
            key = metric.key
            old = current.factor(metric, model)
            seen = bucket_consistent(obs.get(key), pred.get(key), (buckets or {}).get(metric))
            new = update_factor(old, seen, pred.get(key), weight, lo, hi)
            getattr(out, metric)[model] = new
            if abs(new - old) > 1e-3:
                notes.append(
                    f"correct {model} {metric}: observed {obs.get(key):.1f} ms vs predicted {pred.get(key):.1f} ms "
                    f"-> factor {old:.3f} -> {new:.3f} (bounds [{lo:g}, {hi:g}])"
                )
    return out, notes


def scale_perf(vp: VariantPerf, ttft_factor: float, itl_factor: float) -> VariantPerf:
    """A copy of `vp` whose prefill law is `ttft_factor` x and decode law `itl_factor` x slower."""
    return dataclasses.replace(
        vp,
        prefill_a_ms=vp.prefill_a_ms * ttft_factor,
        prefill_b_ms_per_token=vp.prefill_b_ms_per_token * ttft_factor,
        prefill_c_ms_per_token2=vp.prefill_c_ms_per_token2 * ttft_factor,
        prefill_floor_ms=vp.prefill_floor_ms * ttft_factor,
        decode_alpha_ms=vp.decode_alpha_ms * itl_factor,
        decode_beta_ms_per_seq=vp.decode_beta_ms_per_seq * itl_factor,
        decode_gamma_ms_per_token=vp.decode_gamma_ms_per_token * itl_factor,
        decode_moe_ms=vp.decode_moe_ms * itl_factor,
        decode_knee_ms_per_seq=vp.decode_knee_ms_per_seq * itl_factor,
    )


class CorrectedPerf:
    """A performance model seen through the correction factors; everything else is delegated."""

    def __init__(self, base: PerfSource, corrections: Corrections):
        self._base = base
        self._corr = corrections

    def get(self, model: str, gpu: str, tp: int, weight_dtype: str = "bf16", kv_dtype: str = "bf16") -> VariantPerf | None:
        vp = lookup_variant_perf(self._base.get, model, gpu, tp, weight_dtype, kv_dtype)
        if vp is None:
            return None
        f_t, f_i = self._corr.factor("ttft", model), self._corr.factor("itl", model)
        if f_t == 1.0 and f_i == 1.0:
            return vp
        return scale_perf(vp, f_t, f_i)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)


def predict_at_load(
    perf: PerfSource,
    ready: dict[str, int],
    weights: dict[str, float],
    arrival_rps: float,
    isl: float,
    osl: float,
    percentile: float,
    isl_scv: float = 0.0,
    isl_max: float | None = None,
    routing: str = "one_replica",
) -> dict[str, float | None] | None:
    """The model's TTFT/ITL percentiles for the load OBSERVED on the fleet that served it.

    The plan's own prediction is for the forecast's upper quantile on the replicas then planned;
    comparing it with latency observed at a different (usually lower) load on a different fleet
    would learn the forecast's headroom as model error. So the comparison point is recomputed:
    each routed pool (weight w, n ready replicas) gets arrival * w / n per replica and
    planner.planning.capacity.latency gives its percentile; TTFT is the worst prefill-side pool, ITL the
    worst decode-side pool. None when no routed pool has a ready replica or the model says a pool
    is saturated at this load (a queueing regime: nothing to learn about service times).
    `isl_scv` / `isl_max`: the prompt-length spread the plan was made with (forecast.length_spread), so
    that the spread's waiting is not learned again as model error.
    """
    from planner.io.schema import Variant
    from planner.perf.laws import quiet_extrapolation
    from planner.planning.capacity import POISSON, ArrivalShape, latency

    ttft = itl = 0.0
    seen = False
    for pid, w in weights.items():
        n = ready.get(pid, 0)
        if w <= 0 or n <= 0:
            continue
        v = Variant.parse(pid)
        vp = lookup_variant_perf(perf.get, v.model, v.gpu, v.tp, v.weight_dtype, v.kv_dtype)
        if vp is None:
            continue
        # the observed operating point may lie outside the profiled range: the plan itself already
        # carries the extrapolation notes, so the probe stays quiet (as planner.planning.assemble's probes do)
        with quiet_extrapolation():
            shape = ArrivalShape(isl_scv=isl_scv, isl_max=isl_max) if isl_scv > 0 else POISSON
            if routing == "least_loaded" and v.role == "prefill" and n > 1:
                shape = replace(shape, replicas=n)  # the pool's wait, as the plan sized it (capacity.py, Pool of replicas)
            lat = latency(vp, v.role, isl, osl, arrival_rps * w / n, percentile, shape)
        if v.role in ("prefill", "mixed"):
            ttft = max(ttft, lat.ttft_ms)
        if v.role in ("decode", "mixed"):
            itl = max(itl, lat.itl_ms)
        seen = True
    if not seen or not (math.isfinite(ttft) and math.isfinite(itl)):
        return None
    return {"ttft_ms": ttft or None, "itl_ms": itl or None}


def predict_service(
    perf: PerfSource,
    ready: dict[str, int],
    weights: dict[str, float],
    arrival_rps: float,
    isl: float,
    osl: float,
    prefill_time_ms: float | None,
    decode_running: float | None,
    max_prefill_occupancy: float = 0.3,
) -> dict[str, float | None] | None:
    """The laws' per-request SERVICE times at the operating point observed, to compare with vLLM's
    request_prefill_time (prefill) and request_time_per_output_token (decode): no queueing model.

    Prefill: prefill_ms(isl, 1) of the worst routed prefill-side pool, only while the pool's
    prefill engine is lightly occupied (arrivals per replica x observed service time <=
    max_prefill_occupancy: a prompt then has its forward pass to itself; the per-pass batch is not
    observable, see below). Decode: one step of the observed
    decode batch per ready replica (running / ready) at the mean context isl + osl / 2 (the
    context grows from isl to isl + osl over a request), per output token. None when no routed pool
    has a ready replica; a side without an observation predicts None."""
    from planner.io.schema import Variant
    from planner.perf.laws import quiet_extrapolation

    pf_pred: float | None = None
    dc_pred: float | None = None
    seen = False
    dec_ready = sum(n for p, n in ready.items() if weights.get(p, 0) > 0 and Variant.parse(p).role in ("decode", "mixed"))
    for pid, w in weights.items():
        n = ready.get(pid, 0)
        if w <= 0 or n <= 0:
            continue
        v = Variant.parse(pid)
        vp = perf.get(v.model, v.gpu, v.tp)
        if vp is None:
            continue
        seen = True
        with quiet_extrapolation():
            if v.role in ("prefill", "mixed") and prefill_time_ms is not None:
                # occupancy of the replica's prefill engine (Little's law: arrivals x service time); at or
                # below max_prefill_occupancy a prompt almost always has the forward pass to itself, so the
                # law at batch 1 is the prediction; above, the batch is not observed (vLLM exports no
                # per-pass prompt count) and guessing it biased the factor by -25%/+20% on the bench:
                # the prefill side then predicts nothing and its factor keeps its value
                if arrival_rps * w / n * prefill_time_ms / 1e3 <= max_prefill_occupancy:
                    t = vp.prefill_ms(isl, 1.0)
                    pf_pred = t if pf_pred is None else max(pf_pred, t)
            if v.role in ("decode", "mixed") and decode_running is not None and dec_ready > 0:
                b = max(1.0, decode_running / dec_ready)
                t = vp.decode_step_ms(b, isl + osl / 2)
                dc_pred = t if dc_pred is None else max(dc_pred, t)
    if not seen:
        return None
    return {"ttft_ms": pf_pred, "itl_ms": dc_pred}
