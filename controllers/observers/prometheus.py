"""Observe the serving fleet through the Prometheus HTTP API (PromQL over vLLM's metrics).

Per model (vLLM's `model_name` label) and, where it matters, per pool role (a label relabelled
from the pod's pd-planner.io/role, name set by `role_label`):
  completions     sum(rate(vllm:request_success_total[w]))              on the decode/mixed side
  arrivals        completions + d/dt(waiting + running) on the PREFILL side when there is one (a
                  prefill finishes a request one TTFT after it arrives), else on the decode/mixed
                  side (a growing queue is load that has arrived but not completed: completions
                  alone under-count a backlog); where resets(vllm:request_success_total[w]) shows a
                  server of that side restarted in the window, the d/dt term counts only when >= 0
                  (its gauges restart at 0: their fall is the restart's, not a drain)
  mean ISL / OSL  rate(vllm:request_{prompt,generation}_tokens_sum) / rate(..._count)
  TTFT            histogram_quantile(p, sum by (le) (rate(vllm:time_to_first_token_seconds_bucket[w]))) on
                  the decode/mixed side; in a P/D fleet (prefill series present) PLUS the same quantile
                  on the prefill side: llm-d's routing sidecar (and the P/D proxy of the tests) sends a
                  request to a prefill pod first and then to the decode pod, whose own TTFT therefore
                  starts after the remote prefill (it holds the KV pull and the decode queue). The sum
                  of the two quantiles is the client's quantile when the two are comonotone (a slow
                  prefill and a slow first decode step come from the same load) and an upper bound
                  for the usual right-skewed latencies otherwise: the conservative side for an SLO.
                  A P/D fleet whose prefill side has no quantile (no prefill in the window) reads the
                  decode side alone, and ttft_source says so ('decode alone (P/D, ...)').
                  A gateway-side TTFT histogram (`gateway_ttft_metric`), when configured and present,
                  replaces both: it is what the client sees, queueing in the gateway included.
  ITL             histogram_quantile(p, ... vllm:request_time_per_output_token_seconds_bucket): each
                  request's MEAN time per output token, the quantity an ITL SLO percentile is over
                  (vLLM 0.26.0 names; vllm:time_per_output_token_seconds is gone there). A server
                  that does not export it falls back to vllm:inter_token_latency_seconds (per token,
                  lighter tail than per request), and one exporting neither (vLLM 0.10 and earlier) to
                  vllm:time_per_output_token_seconds, that histogram's name before 0.11; the
                  observation says which (itl_source).
                  `itl_metric: per_token` forces the per-token histogram.
  running/waiting sum by role of vllm:num_requests_{running,waiting}, and deriv() of waiting; the
                  endpoint picker's flow-control queue (`epp_queue_metric`, by target_model_name, the model
                  that serves the request after the EPP's aliasing and traffic splitting, else by model_name,
                  the model requested, where a series has no target) is added as waiting["gateway"]: requests
                  held there still need a prefill and a decode. The
                  default llm_d_epp_flow_control_queue_size falls back to its deprecated name
                  inference_extension_flow_control_queue_size where it has no series (gateway_queue_source
                  says which); a name set in the config is read alone
  arrival peak    (prometheus.peak_window_s, off by default) max_over_time of the arrival estimate above over
                  windows of peak_window_s stepping through the rate window (a subquery): the sub-interval peak
                  forecast.peak_envelope reads, over rate_window_s / peak_window_s windows
  KV usage        avg by role of vllm:kv_cache_usage_perc; a server without it (vLLM 0.9.1 and earlier) falls back
                  to vllm:gpu_cache_usage_perc, that gauge's name before 0.9.2 (kv_usage_source says which)
  service times   rate(vllm:request_prefill_time_seconds_sum) / rate(..._count) (prefill side) and
                  the same of vllm:request_time_per_output_token_seconds (decode side): per-request
                  times WITHOUT queueing, what controllers.correct learns the laws' factors from

Roles: series carry the pool role in `role_label` (the PodMonitor in controllers/deploy relabels
llm-d.ai/role onto it; llm-d's `both` reads as mixed). A series of a configured model WITHOUT it
fails the observation (`missing_role: fail`, the default): read as mixed, the prefill side's
completions and prompt tokens would be counted a second time and every rate and length would be
wrong while looking healthy.
Prefill instances of a P/D deployment also finish each request (with max_tokens=1), so counts and
lengths are read on the non-prefill side to avoid double counting.
Staleness: the newest sample of vllm:num_requests_running per model must be younger than
`staleness_s` (Prometheus keeps answering with the last sample for 5 minutes after a target
dies); an unreachable Prometheus, an HTTP/PromQL error or a missing model makes the observation
not ok, and the guard then holds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TypedDict, TypeVar

import httpx

from controllers.config import PrometheusConfig
from controllers.observers.base import OBSERVERS, ModelObservation, Observation, ObserverContext


class PromSeries(TypedDict):
    """One series of an instant-vector answer (/api/v1/query, resultType vector)."""

    metric: dict[str, str]
    value: tuple[float, str]
    """(evaluation time, sample value as a string)."""


class PromError(Exception):
    pass


ROLE_VALUES = {"prefill": "prefill", "decode": "decode", "mixed": "mixed", "both": "mixed"}
"""Series role label value -> pool role (llm-d's llm-d.ai/role `both` is a mixed pool)."""
TPOT_REQUEST = "vllm:request_time_per_output_token_seconds"
ITL_PER_TOKEN = "vllm:inter_token_latency_seconds"
ITL_PER_TOKEN_LEGACY = "vllm:time_per_output_token_seconds"
"""The per-token histogram (every inter-token gap, as ITL_PER_TOKEN) under its name in vLLM 0.10 and earlier, whose
v1 engine exports neither TPOT_REQUEST nor ITL_PER_TOKEN; deprecated for ITL_PER_TOKEN in 0.11, absent in 0.26.0
(shared/tools/vllm-offline/README.md). Read only where neither newer histogram has a series."""
EPP_QUEUE = "llm_d_epp_flow_control_queue_size"
"""The endpoint picker's flow-control queue gauge in llm-d's EPP (the default prometheus.epp_queue_metric)."""
EPP_QUEUE_LEGACY = "inference_extension_flow_control_queue_size"
"""EPP_QUEUE under its gateway-api-inference-extension name, which llm-d's EPP still exports beside it, marked
"[Deprecated: Use llm_d_epp_flow_control_queue_size]". Read only where EPP_QUEUE has no series, and only when
epp_queue_metric is EPP_QUEUE: once it is dropped, a default that named it would read every backlog as empty."""
KV_USAGE = "vllm:kv_cache_usage_perc"
KV_USAGE_LEGACY = "vllm:gpu_cache_usage_perc"
"""KV_USAGE under its name in vLLM 0.9.1 and earlier: renamed in 0.9.2 (both exported, this one marked "DEPRECATED: Use
vllm:kv_cache_usage_perc instead"), gone in 0.12 (vllm/v1/metrics/loggers.py at those tags). Read only where KV_USAGE
has no series."""


V = TypeVar("V")


def _fill_from_legacy(found: dict[str, V], source: dict[str, str], served: Iterable[str],
                      read_legacy: Callable[[], dict[str, V]], legacy: str, current: str) -> None:
    """Where a served model has no series of the `current` metric in `found`, its value under the metric's former
    name `legacy` (`read_legacy`, queried only then), and `source` says so: an older vLLM's or EPP's name (KV usage,
    the gateway's queue), which without it read nothing (found in QA at stop 59)."""
    if all(m in found for m in served):
        return
    for m, v in read_legacy().items():
        if m not in found:
            found[m], source[m] = v, f"{legacy} (fallback: no {current})"


def _ratio_ms(num: dict[str, float], den: dict[str, float], m: str) -> float | None:
    """rate(x_sum) / rate(x_count) in ms, None when no request was counted."""
    return num[m] / den[m] * 1e3 if den.get(m, 0.0) > 0 and m in num else None


class PrometheusObserver:
    """Runs the PromQL above against one Prometheus; `served_names` maps planner model -> model_name label."""

    def __init__(self, cfg: PrometheusConfig, served_names: dict[str, str], percentile: dict[str, float],
                 time_scale: float = 1.0, client: httpx.Client | None = None):
        self.cfg = cfg
        self.served = served_names
        self.by_label = {v: k for k, v in served_names.items()}
        self.percentile = percentile
        self.time_scale = time_scale
        """Wall seconds per emulated second (1 in production; emulator tests run faster than real time)."""
        self.http = client or httpx.Client(base_url=cfg.url.rstrip("/"), timeout=cfg.timeout_s)

    def close(self) -> None:
        self.http.close()

    # ------------------------------------------------------------------ plumbing
    def _result(self, promql: str) -> object:
        """`data.result` of /api/v1/query for `promql`; PromError for anything else. A 200 whose body is not the API's
        (a JSON list, no `data`, a null result: a wrong URL, a proxy) raised KeyError / AttributeError / TypeError out
        of observe() and so out of the control loop, and `status: error` on time() read 'Prometheus unreachable ...:
        'data'' (found in QA)."""
        try:
            r = self.http.get("/api/v1/query", params={"query": promql})
        except httpx.HTTPError as exc:
            raise PromError(f"Prometheus unreachable at {self.cfg.url}: {exc}") from exc
        try:
            body = r.json()
        except ValueError as exc:
            raise PromError(f"Prometheus answered HTTP {r.status_code} without JSON") from exc
        if not isinstance(body, dict):
            raise PromError(f"Prometheus answered HTTP {r.status_code} with JSON that is not its API's "
                            f"({type(body).__name__}): is prometheus.url {self.cfg.url} a Prometheus?")
        if r.status_code != 200 or body.get("status") != "success":
            raise PromError(f"PromQL failed (HTTP {r.status_code}): {body.get('error', body)} in {promql}")
        data = body.get("data")
        if not isinstance(data, dict) or "result" not in data:
            raise PromError(f"Prometheus answered status success without data.result in {promql}")
        return data["result"]

    def query(self, promql: str) -> list[PromSeries]:
        """The instant vector `promql` evaluates to (PromError: unreachable, an error, or not a vector's shape)."""
        result = self._result(promql)
        if not isinstance(result, list) or not all(
                isinstance(s, dict) and isinstance(s.get("metric"), dict) and isinstance(s.get("value"), list)
                and len(s["value"]) == 2 for s in result):
            raise PromError(f"Prometheus answered a result that is not an instant vector in {promql}")
        series: list[PromSeries] = result
        return series

    def now_s(self) -> float:
        """Prometheus's clock (time()), the observation's time: its samples' ages are measured against it."""
        result = self._result("time()")
        try:
            return float(result[0])  # type: ignore[index]
        except (TypeError, IndexError, KeyError, ValueError) as exc:
            raise PromError(f"Prometheus answered time() with {result!r}, not a scalar") from exc

    def _other_model_names(self, sel: str) -> str:
        """'; Prometheus has vLLM series of model_name 'a', 'b' (...served_name...)' for the labels no configured model
        reads, '' when there are none or the query fails (found by hand at stop 52: a config naming a model by its
        planner name where vLLM exported its Hugging Face id said only that no metrics came)."""
        try:
            names = sorted({s["metric"].get("model_name", "") for s in
                            self.query(f"count by (model_name) (vllm:num_requests_running{sel})")} - set(self.by_label) - {""})
        except PromError:
            return ""
        if not names:
            return ""
        return ("; Prometheus has vLLM series of model_name " + ", ".join(repr(n) for n in names[:5])
                + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                + ": set models.<name>.served_name to the label vLLM exports (its --served-model-name)")

    def _has_series(self, metric: str, sel: str, model: str) -> bool:
        """Whether Prometheus holds any series of `metric` for `model` (tells a counter never exported from a rate()
        without series); True when the query fails (the message of the caller then stands)."""
        try:
            return model in self._by_model(f"count by (model_name) ({metric}{sel})")
        except PromError:
            return True

    def _absent(self, histograms: Iterable[str], sel: str, model: str, window: str) -> str:
        """Why a latency percentile of `model` was not read from any of `histograms` (asked only then): none has a
        series (a vLLM older or newer than these names, or a scrape or metrics filter without them), or one has series
        but no observation in the rate window (histogram_quantile is NaN there). Found in QA: the observation said
        nothing (itl_source / ttft_source ''), so the decision log showed a null latency with no cause."""
        names = list(dict.fromkeys(histograms))
        held = [h for h in names if self._has_series(f"{h}_bucket", sel, model)]
        if held:
            return f"absent: no request observed in the {window} window ({', '.join(held)} has series)"
        return "absent: no series of " + ", ".join(names)

    def _unread(self, histograms: list[str], sel: str, model: str, window: str) -> str:
        """Why a fallback was read instead of `histograms` (asked only then): 'no A nor B' for those without a series,
        'no request observed in the <window> window in C' for those with series but none in the window (a per-request
        histogram is observed at a request's end: a window of long requests running, none finished, has per-token
        samples but none of it). Found in QA: the second read 'no C', as if the server did not export it."""
        held = [h for h in histograms if self._has_series(f"{h}_bucket", sel, model)]
        missing = [h for h in histograms if h not in held]
        return "; ".join(([f"no {' nor '.join(missing)}"] if missing else [])
                         + ([f"no request observed in the {window} window in {', '.join(held)}"] if held else []))

    def _sel(self, *extra: str) -> str:
        parts = [p for p in (self.cfg.selector, *extra) if p]
        return "{" + ",".join(parts) + "}" if parts else ""

    def _by_model(self, promql: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for s in self.query(promql):
            label = s["metric"].get("model_name", "")
            v = float(s["value"][1])
            if label in self.by_label and math.isfinite(v):
                out[self.by_label[label]] = v
        return out

    def _by_served_model(self, gauge: str, sel: str) -> dict[str, float]:
        """Per-model sum of an endpoint-picker gauge (the flow-control queue), attributed to the model the request is
        SERVED by: llm-d's EPP labels it `model_name` (the model the client asked for) and `target_model_name` (the model
        after the EPP's rewrites: an alias, a traffic split between versions), and only the latter is the `model_name`
        vLLM exports, which `served_names` holds. `model_name` is read where a series has no (or an empty)
        `target_model_name` (an EPP before the label). Matching `model_name` alone (found in QA) read a queue
        behind an alias as no backlog, and one of a model split onto another version as backlog of the wrong model."""
        out: dict[str, float] = {}
        for s in self.query(f"sum by (model_name, target_model_name) ({gauge}{sel})"):
            label = s["metric"].get("target_model_name") or s["metric"].get("model_name", "")
            v = float(s["value"][1])
            if label in self.by_label and math.isfinite(v):
                m = self.by_label[label]
                out[m] = out.get(m, 0.0) + v
        return out

    def _by_model_role(self, promql: str) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for s in self.query(promql):
            label = s["metric"].get("model_name", "")
            role = ROLE_VALUES.get(s["metric"].get(self.cfg.role_label, "mixed"), "mixed")
            v = float(s["value"][1])
            if label in self.by_label and math.isfinite(v):
                out.setdefault(self.by_label[label], {})[role] = v
        return out

    def _buckets(self, bucket_metric: str, sel: str, window: str, scale: float) -> dict[str, list[tuple[float, float]]]:
        """model -> the cumulative histogram (le, per-second rate x `scale`) of `bucket_metric` over `window`."""
        out: dict[str, list[tuple[float, float]]] = {}
        for srs in self.query(f"sum by (model_name, le) (rate({bucket_metric}{sel}[{window}]))"):
            label, le, v = srs["metric"].get("model_name", ""), srs["metric"].get("le", ""), float(srs["value"][1])
            if label in self.by_label and le and math.isfinite(v):
                out.setdefault(self.by_label[label], []).append((float(le), v * scale))
        return out

    # ------------------------------------------------------------------ the observation
    def observe(self) -> Observation:
        w = f"{max(1, round(self.cfg.rate_window_s))}s"
        rl = self.cfg.role_label
        side = self._sel(f'{rl}!="prefill"')
        allsel = self._sel()
        ts = self.time_scale
        try:
            now_s = self.now_s()
        except PromError as exc:
            return Observation(t_s=float("nan"), ok=False, reason=str(exc))
        try:
            def rate(metric: str, sel: str) -> dict[str, float]:
                """Per-model sum of a counter's per-second rate over the window, on the series `sel` picks."""
                return self._by_model(f"sum by (model_name) (rate({metric}{sel}[{w}]))")

            newest = self._by_model(f"max by (model_name) (timestamp(vllm:num_requests_running{allsel}))")
            completion = rate("vllm:request_success_total", side)
            p_sum = rate("vllm:request_prompt_tokens_sum", side)
            p_cnt = rate("vllm:request_prompt_tokens_count", side)
            g_sum = rate("vllm:request_generation_tokens_sum", side)
            g_cnt = rate("vllm:request_generation_tokens_count", side)
            running = self._by_model_role(f"sum by (model_name, {rl}) (vllm:num_requests_running{allsel})")
            waiting = self._by_model_role(f"sum by (model_name, {rl}) (vllm:num_requests_waiting{allsel})")
            growth = self._by_model_role(f"sum by (model_name, {rl}) (deriv(vllm:num_requests_waiting{allsel}[{w}]))")
            inflight = self._by_model(
                f"sum by (model_name) (deriv(vllm:num_requests_waiting{side}[{w}]) + deriv(vllm:num_requests_running{side}[{w}]))"
            )
            # P/D: prefill instances finish each request right after its prefill (max_tokens=1), so
            # their completions + in-flight growth track arrivals with a lag of one TTFT, not of a
            # whole generation as the decode side's completions do
            pf = self._sel(f'{rl}="prefill"')
            pf_completion = rate("vllm:request_success_total", pf)
            pf_inflight = self._by_model(
                f"sum by (model_name) (deriv(vllm:num_requests_waiting{pf}[{w}]) + deriv(vllm:num_requests_running{pf}[{w}]))"
            )
            # a vLLM restart inside the window: its counters reset (rate() accounts for that) and its gauges restart at
            # 0, so deriv() of the in-flight gauges reads the requests the restart dropped as a drain, and the arrival
            # estimate under-read by them for a window (found in QA). resets() of the success counter tells it, per role
            restarts = self._by_model_role(f"sum by (model_name, {rl}) (resets(vllm:request_success_total{allsel}[{w}]))")
            # the sub-interval peak of the same arrival estimate (prometheus.peak_window_s): a subquery stepping one
            # window at a time through the rate window
            pw = self.cfg.peak_window_s
            peak: dict[str, float] = {}
            pf_peak: dict[str, float] = {}
            if pw is not None:
                pws = f"{max(1, round(pw))}s"

                def arrivals_peak(sel: str) -> dict[str, float]:
                    # completions + in-flight growth; completions alone where a window holds too few samples of the
                    # gauges for deriv() (PromQL's `or`)
                    done = f"sum by (model_name) (rate(vllm:request_success_total{sel}[{pws}]))"
                    est = (f"({done} + sum by (model_name) (deriv(vllm:num_requests_waiting{sel}[{pws}]) "
                           f"+ deriv(vllm:num_requests_running{sel}[{pws}]))) or {done}")
                    return self._by_model(f"max_over_time(({est})[{w}:{pws}])")
                peak, pf_peak = arrivals_peak(side), arrivals_peak(pf)
            kv = self._by_model_role(f"avg by (model_name, {rl}) ({KV_USAGE}{allsel})")
            kv_src = dict.fromkeys(kv, KV_USAGE)
            # an older vLLM (<= 0.9.1) has the gauge under its former name only: without it no KV usage was read
            # (found in QA: kv_usage {} from such a fleet)
            _fill_from_legacy(kv, kv_src, self.served,
                              lambda: self._by_model_role(f"avg by (model_name, {rl}) ({KV_USAGE_LEGACY}{allsel})"),
                              KV_USAGE_LEGACY, KV_USAGE)
            nolabel = self._sel(f'{rl}=""')
            unlabelled = self._by_model(f"count by (model_name) (vllm:num_requests_running{nolabel})") \
                if self.cfg.missing_role == "fail" else {}
            epp_metric = self.cfg.epp_queue_metric
            epp_queue = self._by_served_model(epp_metric, allsel) if epp_metric else {}
            epp_src = dict.fromkeys(epp_queue, epp_metric or "")
            # the deprecated name, for an EPP that exports only it (found in QA: the default named it alone)
            if epp_metric == EPP_QUEUE:
                _fill_from_legacy(epp_queue, epp_src, self.served,
                                  lambda: self._by_served_model(EPP_QUEUE_LEGACY, allsel),
                                  EPP_QUEUE_LEGACY, EPP_QUEUE)
            # service times without queueing (vLLM >= 0.7 names, checked against 0.26.0: shared/tools/vllm-offline):
            # prefill on the prefill side when there is one (the decode side's "prefill" is the KV load)
            pf_sum = rate("vllm:request_prefill_time_seconds_sum", pf)
            pf_cnt = rate("vllm:request_prefill_time_seconds_count", pf)
            mx_sum = rate("vllm:request_prefill_time_seconds_sum", side)
            mx_cnt = rate("vllm:request_prefill_time_seconds_count", side)
            tp_sum = rate("vllm:request_time_per_output_token_seconds_sum", side)
            tp_cnt = rate("vllm:request_time_per_output_token_seconds_count", side)
            # the prompt-length histogram (cumulative per-second rates by le), for the lengths' spread
            p_buckets = self._buckets("vllm:request_prompt_tokens_bucket", side, w, ts)
            # the output-length histogram, for how far one interval's mean output length moves by chance
            g_buckets = self._buckets("vllm:request_generation_tokens_bucket", side, w, ts)
            ttft: dict[str, float] = {}
            itl: dict[str, float] = {}
            itl_src: dict[str, str] = {}
            ttft_src: dict[str, str] = {}
            for q in sorted(set(self.percentile.values())):
                t = self._by_model(
                    f"histogram_quantile({q / 100:g}, sum by (model_name, le) (rate(vllm:time_to_first_token_seconds_bucket{side}[{w}])))")
                t_pf = self._by_model(
                    f"histogram_quantile({q / 100:g}, sum by (model_name, le) (rate(vllm:time_to_first_token_seconds_bucket{pf}[{w}])))")
                i_req = self._by_model(
                    f"histogram_quantile({q / 100:g}, sum by (model_name, le) (rate({TPOT_REQUEST}_bucket{side}[{w}])))") \
                    if self.cfg.itl_metric == "request_mean" else {}
                t_gw = self._by_model(
                    f"histogram_quantile({q / 100:g}, sum by (model_name, le) (rate({self.cfg.gateway_ttft_metric}_bucket{allsel}[{w}])))") \
                    if self.cfg.gateway_ttft_metric else {}
                i_tok = self._by_model(
                    f"histogram_quantile({q / 100:g}, sum by (model_name, le) (rate({ITL_PER_TOKEN}_bucket{side}[{w}])))")
                # an older vLLM (<= 0.10) has the per-token histogram under its former name only: without it no ITL
                # at all was read from such a fleet (found in QA: itl_ms None, itl_source '')
                i_old = self._by_model(
                    f"histogram_quantile({q / 100:g}, sum by (model_name, le) (rate({ITL_PER_TOKEN_LEGACY}_bucket{side}[{w}])))") \
                    if any(pq == q and m not in i_req and m not in i_tok for m, pq in self.percentile.items()) else {}
                for m, pq in self.percentile.items():
                    if pq != q:
                        continue
                    if m in t_gw:
                        ttft[m], ttft_src[m] = t_gw[m] * 1e3, "gateway"
                    elif m in t:
                        ttft[m] = (t[m] + t_pf.get(m, 0.0)) * 1e3
                        ttft_src[m] = "decode+prefill" if m in t_pf else "decode/mixed"
                        if m not in t_pf and m in pf_completion:
                            # P/D, but no prefill-side quantile (NaN: no prefill observed in the window, or no series):
                            # the decode side's TTFT, which starts after a remote prefill, was read alone and said
                            # 'decode/mixed' like a fleet without prefill pods (found in QA). Still read alone: no
                            # request of the window was prefilled remotely as far as the prefill side shows (llm-d's
                            # sidecar prefills short prompts on the decode pod), but the source says so
                            why = self._absent(["vllm:time_to_first_token_seconds"], pf, m, w).removeprefix("absent: ")
                            ttft_src[m] = f"decode alone (P/D, prefill side: {why}; a remote prefill's time is not in it)"
                    if m in i_req:
                        itl[m], itl_src[m] = i_req[m] * 1e3, TPOT_REQUEST
                    elif m in i_tok:
                        itl[m] = i_tok[m] * 1e3
                        itl_src[m] = ITL_PER_TOKEN + (f" (fallback: {self._unread([TPOT_REQUEST], side, m, w)})"
                                                      if self.cfg.itl_metric == "request_mean" else "")
                    elif m in i_old:
                        itl[m] = i_old[m] * 1e3
                        unread = [ITL_PER_TOKEN] + ([TPOT_REQUEST] if self.cfg.itl_metric == "request_mean" else [])
                        itl_src[m] = f"{ITL_PER_TOKEN_LEGACY} (fallback: {self._unread(unread, side, m, w)})"
        except PromError as exc:
            return Observation(t_s=now_s, ok=False, reason=str(exc))

        obs = Observation(t_s=now_s, ok=True)
        problems: dict[str, str] = {}  # model -> why its metrics cannot be used this interval
        others: str | None = None  # the model_name labels Prometheus does have, asked once when a model has none
        for m in self.served:
            if m not in newest:
                if others is None:
                    others = self._other_model_names(allsel)
                problems[m] = f"no vLLM metrics for model {m} (model_name={self.served[m]!r}){others}"
                continue
            if m in unlabelled:
                problems[m] = (f"{int(unlabelled[m])} vLLM series of {m} have no {rl!r} label: relabel the pod's "
                               f"llm-d.ai/role onto it (controllers/deploy/examples/podmonitor.yaml); not read as mixed, which "
                               f"would count the prefill side's completions and prompts twice")
                continue
            if m not in completion and m not in pf_completion and not self._has_series("vllm:request_success_total", allsel, m):
                # the gauges are there but the counter is not exported at all (a vLLM without it): no window would help
                problems[m] = (f"no vllm:request_success_total for {m} while its gauges are scraped: the request rate "
                               "cannot be read (a vLLM version or metrics filter without that counter)")
                continue
            if m not in completion and m not in pf_completion:
                # the gauges are there but rate() over the window gave no series: fewer than two scrapes in it (found by
                # hand at stop 52: rate_window_s 1 at a 2-s scrape read 6 req/s of load as 0 and planned 1 -> 0)
                problems[m] = (f"no request rate for {m} over prometheus.rate_window_s={self.cfg.rate_window_s:g}s while "
                               "its gauges are scraped: rate() needs two scrapes inside the window (a scrape target or "
                               "Prometheus just started, or a window shorter than two scrape intervals: use >= 4)")
                continue
            age = now_s - newest[m]
            if age > self.cfg.staleness_s:
                problems[m] = f"metrics of {m} are stale (newest sample {age:.0f}s old > {self.cfg.staleness_s:g}s)"
            comp = completion.get(m, 0.0) * ts
            restarted = {r for r, n in restarts.get(m, {}).items() if n > 0}
            if m in pf_completion:
                grown = pf_inflight.get(m, 0.0)
                arr = max(0.0, (pf_completion[m] + (max(0.0, grown) if "prefill" in restarted else grown)) * ts)
                pk = pf_peak.get(m)
            else:
                # where a server of the side restarted, in-flight growth counts only when positive: a fall of the
                # gauges is then (partly) the restart's, not completions, which rate() has counted already
                grown = inflight.get(m, 0.0)
                arr = max(0.0, comp + (max(0.0, grown) if restarted - {"prefill"} else grown) * ts)
                pk = peak.get(m)
            obs.models[m] = ModelObservation(
                model=m,
                completion_rps=comp,
                arrival_rps=arr,
                mean_isl=p_sum[m] / p_cnt[m] if p_cnt.get(m) and m in p_sum else None,
                mean_osl=g_sum[m] / g_cnt[m] if g_cnt.get(m) and m in g_sum else None,
                ttft_ms=ttft.get(m),
                itl_ms=itl.get(m),
                running=running.get(m, {}),
                waiting={**waiting.get(m, {}), **({"gateway": epp_queue[m]} if epp_queue.get(m) else {})},
                waiting_growth_per_s={k: v * ts for k, v in growth.get(m, {}).items()},
                kv_usage=kv.get(m, {}),
                kv_usage_source=kv_src.get(m, ""),
                gateway_queue_source=epp_src.get(m, ""),
                newest_sample_age_s=age,
                from_histograms=True,
                itl_source=itl_src.get(m) or self._absent(
                    ([TPOT_REQUEST] if self.cfg.itl_metric == "request_mean" else []) + [ITL_PER_TOKEN, ITL_PER_TOKEN_LEGACY],
                    side, m, w),
                ttft_source=ttft_src.get(m) or self._absent(
                    ["vllm:time_to_first_token_seconds"] + ([self.cfg.gateway_ttft_metric] if self.cfg.gateway_ttft_metric else []),
                    allsel if self.cfg.gateway_ttft_metric else side, m, w),
                prefill_time_ms=_ratio_ms(pf_sum, pf_cnt, m) if m in pf_cnt else _ratio_ms(mx_sum, mx_cnt, m),
                tpot_ms=_ratio_ms(tp_sum, tp_cnt, m),
                prompt_token_buckets=tuple(sorted(p_buckets.get(m, []))),
                output_token_buckets=tuple(sorted(g_buckets.get(m, []))),
                arrival_peak_rps={pw / ts: max(arr, pk * ts)} if pw is not None and pk is not None else {},
                arrival_peak_span_s=self.cfg.rate_window_s / ts if pw is not None else None,
            )
        # A model whose metrics cannot be used is held on its own (Observation.unusable); the observation fails only
        # when no model's can (found by hand at stop 52: one model without series held every model's scaling).
        for m in problems:
            obs.models.pop(m, None)
        obs.unusable = dict(problems)
        if problems and not obs.models:
            obs.ok = False
            obs.reason = "; ".join(problems.values())
        return obs


@OBSERVERS.register("prometheus", "PromQL over vLLM's metrics through the Prometheus HTTP API")
def build(ctx: ObserverContext) -> PrometheusObserver:
    return PrometheusObserver(ctx.cfg.prometheus, ctx.served_names, ctx.percentile, time_scale=ctx.time_scale)
