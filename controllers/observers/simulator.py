"""SimulatorObserver: the Observation from planner.simulate's FleetSimulator (replays in simulated time).
Registered as observer `simulator` (replays only: it needs the simulator).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from controllers.observers.base import OBSERVERS, ModelObservation, Observation, ObserverContext
from planner.io.errors import InputError
from planner.planning.lengths import build_1_2_5_buckets

if TYPE_CHECKING:
    from planner.simulate.fleet import FleetSimulator, PoolObservation


ARRIVAL_IDC_WINDOWS_S = (1.0, 10.0)
"""Time scales of the arrival dispersion observed (the workload's Burstiness.idc_1s / idc_10s)."""
ARRIVAL_PEAK_WINDOWS_S = (10.0, 30.0)
"""Time scales of the sub-interval peak rate observed (ModelObservation.arrival_peak_rps): the IDC's 10 s (the
simulator's default, forecast.peak_window_s), and 30 s, what a Prometheus subquery resolves at a 15-s scrape."""


def _peak_rps(t_s: np.ndarray, window_s: float, span_s: float) -> float | None:
    """The highest arrival rate over the whole windows of [0, span_s); None with < 2 windows."""
    n = int(span_s // window_s)
    if n < 2:
        return None
    counts = np.bincount((t_s // window_s).astype(int), minlength=n)[:n] if t_s.size else np.zeros(n)
    return float(counts.max()) / window_s


def _idc(t_s: np.ndarray, window_s: float, span_s: float) -> float | None:
    """Variance / mean of the counts in the whole windows of [0, span_s); None with < 6 windows or no arrival."""
    n = int(span_s // window_s)
    if n < 6 or t_s.size == 0:
        return None
    counts = np.bincount((t_s // window_s).astype(int), minlength=n)[:n]
    mean = float(counts.mean())
    return float(counts.var() / mean) if mean > 0 else None


@dataclass
class _ModelTotals:
    """One model's pools summed over one observation: counter deltas, gauges and latency samples."""

    done: float = 0.0
    ptok: float = 0.0
    preq: float = 0.0
    gtok: float = 0.0
    greq: float = 0.0
    inflight: float = 0.0
    ttft_s: list[float] = field(default_factory=list)
    itl_s: list[float] = field(default_factory=list)
    prefill_s: list[float] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)
    kv: dict[str, float] = field(default_factory=dict)


class SimulatorObserver:
    """The same Observation from planner.simulate's FleetSimulator (for replays in simulated time).

    The simulator's observe() gives per-pool counters, gauges and the latency samples since the
    previous call, i.e. what the PromQL of controllers/observers/prometheus.py computes from
    scrapes; the maths is the same: completions and mean lengths from counter deltas, arrivals =
    completions + in-flight growth, TTFT/ITL percentiles of the interval's samples (client-side:
    decode/mixed pools)."""

    def __init__(self, sim: FleetSimulator, model_of_pool: dict[str, str], percentile: dict[str, float],
                 model_of_class: dict[str, str] | None = None, max_model_len: dict[str, int] | None = None):
        self.sim = sim
        self.model_of = model_of_pool
        self.percentile = percentile
        self.model_of_class = model_of_class or {}
        """class id -> model: with it, arrivals come from the router's request counter
        (Observation.arrivals_total), the exact arrival count, instead of completions + growth."""
        self.max_model_len = max_model_len or {}
        """model -> its context window: vLLM's prompt-token buckets end there (+Inf above); absent: 10^9."""
        self._prev_arrived: dict[str, float] = {}
        self._prev: dict[str, PoolObservation] | None = None
        self._prev_t: float | None = None
        self._prev_inflight: dict[str, float] = {}
        self._prev_waiting: dict[tuple[str, str], float] = {}

    def observe(self) -> Observation:
        o = self.sim.observe()
        t = float(o.t_s)
        prev, dt = self._prev, (t - self._prev_t) if self._prev_t is not None else 0.0
        out = Observation(t_s=t, ok=True)
        acc: dict[str, _ModelTotals] = {}
        for pid, po in o.pools.items():
            m = self.model_of.get(pid)
            if m is None:
                continue
            a = acc.setdefault(m, _ModelTotals())
            pp = prev.get(pid) if prev else None
            if po.role != "prefill":
                done = po.requests_total - (pp.requests_total if pp is not None else 0)
                a.done += done
                a.gtok += po.generation_tokens_total - (pp.generation_tokens_total if pp is not None else 0)
                a.greq += done
                a.ttft_s.extend(po.ttft_s.tolist())
                a.itl_s.extend(po.itl_s.tolist())
            if po.role == "prefill":
                a.prefill_s.extend(getattr(po, "prefill_s", np.zeros(0)).tolist())
            if po.role != "decode":
                a.ptok += po.prompt_tokens_total - (pp.prompt_tokens_total if pp is not None else 0)
                a.preq += po.requests_total - (pp.requests_total if pp is not None else 0)
            a.inflight += po.running + po.waiting
            a.running[po.role] = a.running.get(po.role, 0.0) + po.running
            a.waiting[po.role] = a.waiting.get(po.role, 0.0) + po.waiting
            a.kv[po.role] = po.kv_usage
        arrived: dict[str, float] = {}
        for cid, n in (getattr(o, "arrivals_total", None) or {}).items():
            if cid in self.model_of_class:
                arrived[self.model_of_class[cid]] = arrived.get(self.model_of_class[cid], 0.0) + n
        for m, a in acc.items():
            q = self.percentile.get(m, 90.0)
            comp = a.done / dt if dt > 0 else 0.0
            growth = (a.inflight - self._prev_inflight.get(m, a.inflight)) / dt if dt > 0 else 0.0
            if m in arrived:
                arr = (arrived[m] - self._prev_arrived.get(m, 0.0)) / dt if dt > 0 else 0.0
                self._prev_arrived[m] = arrived[m]
            else:
                arr = max(0.0, comp + growth)
            out.models[m] = ModelObservation(
                model=m, completion_rps=comp, arrival_rps=arr,
                mean_isl=a.ptok / a.preq if a.preq else None,
                mean_osl=a.gtok / a.greq if a.greq else None,
                ttft_ms=float(np.percentile(a.ttft_s, q)) * 1e3 if a.ttft_s else None,
                itl_ms=float(np.percentile(a.itl_s, q)) * 1e3 if a.itl_s else None,
                running=a.running, waiting=a.waiting, kv_usage=a.kv,
                waiting_growth_per_s={r: (w - self._prev_waiting.get((m, r), w)) / dt if dt > 0 else 0.0
                                      for r, w in a.waiting.items()},
                newest_sample_age_s=0.0,
                prefill_time_ms=float(np.mean(a.prefill_s)) * 1e3 if a.prefill_s else None,
                tpot_ms=float(np.mean(a.itl_s)) * 1e3 if a.itl_s else None,
            )
            self._prev_inflight[m] = a.inflight
            for r, w in a.waiting.items():
                self._prev_waiting[(m, r)] = w
        if dt > 0:  # arrival dispersion of the interval, from the arrival times the router saw
            arrivals = getattr(self.sim, "arrivals", None)
            if arrivals is not None and self.model_of_class:
                lo_i, hi_i = np.searchsorted(arrivals.t_s, [t - dt, t], side="right")
                ts, cl = arrivals.t_s[lo_i:hi_i], arrivals.cls[lo_i:hi_i]
                for m in out.models:
                    ks = [k for k, c in enumerate(arrivals.class_ids) if self.model_of_class.get(c) == m]
                    sel = np.isin(cl, ks)
                    tm = ts[sel] - (t - dt)
                    out.models[m].arrival_idc = {w: v for w in ARRIVAL_IDC_WINDOWS_S
                                                 if (v := _idc(tm, w, dt)) is not None}
                    out.models[m].arrival_peak_rps = {w: v for w in ARRIVAL_PEAK_WINDOWS_S
                                                      if (v := _peak_rps(tm, w, dt)) is not None}
                    # what vllm:request_prompt_tokens's buckets would hold of these prompts, per second
                    edges = build_1_2_5_buckets(self.max_model_len.get(m, 10**9)) + [math.inf]
                    isl = arrivals.isl[lo_i:hi_i][sel]
                    if isl.size:
                        cum = np.searchsorted(np.sort(isl), edges, side="right") / dt
                        out.models[m].prompt_token_buckets = tuple(zip(edges, cum.tolist(), strict=True))
                    # and vllm:request_generation_tokens's, of the same requests' output lengths (vLLM counts a
                    # request when it finishes; the interval's arrivals stand for the same law)
                    osl = arrivals.osl[lo_i:hi_i][sel]
                    if osl.size:
                        cum = np.searchsorted(np.sort(osl), edges, side="right") / dt
                        out.models[m].output_token_buckets = tuple(zip(edges, cum.tolist(), strict=True))
        first = self._prev_t is None or dt <= 0
        self._prev, self._prev_t = dict(o.pools), t
        if not out.models:
            out.ok, out.reason = False, "the simulator reports no pool of a configured model"
        elif first:
            # like rate() over a window with one sample: no interval observed yet, nothing to plan from
            out.ok, out.reason = False, "first observation: no interval to compute rates over yet"
        return out


@OBSERVERS.register("simulator", "planner.simulate's FleetSimulator, what Prometheus would report (replays)")
def build(ctx: ObserverContext) -> SimulatorObserver:
    """A SimulatorObserver on `ctx.sim`: pools map to models by their ids, classes by the simulator's routes."""
    from planner.io.schema import Variant
    from planner.simulate.fleet import FleetSimulator

    if not isinstance(ctx.sim, FleetSimulator):
        raise InputError(None, "observer", "'simulator' is for replays (bench/autoscale_trace.py), not `planner control`")
    return SimulatorObserver(ctx.sim, {p: Variant.parse(p).model for p in ctx.sim.pools}, ctx.percentile,
                             model_of_class=dict(ctx.sim.class_model))
