"""observe.py against a REAL Prometheus server scraping emulated vLLM replicas.

The vLLM engines are fakes of an external system (planner.simulate.emulator, GPU-less, timed by a
performance law); Prometheus is the real server (Debian package, started on loopback by
tests/controller_prom.py). Skips when the Prometheus binary is missing.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
from collections.abc import Callable

import httpx
import pytest

from controllers.config import PrometheusConfig
from controllers.observe import Observation, PrometheusObserver
from controller_prom import PrometheusServer, require_prometheus, wait_for
from planner.perf.laws import VariantPerf
from planner.simulate.emulator import EmulatorFleet

MODEL = "llama-3.1-8b"
SERVED = "meta-llama/Llama-3.1-8B-Instruct"
# Illustrative laws of an 8B model on one H100 (order of magnitude of public vLLM numbers; the
# test checks what Prometheus reports about the emulator, not these values).
PERF = VariantPerf(
    model=MODEL, gpu="H100-SXM-80GB", tp=1, source="prior",
    prefill_a_ms=8.0, prefill_b_ms_per_token=0.07, prefill_c_ms_per_token2=2e-6,
    decode_alpha_ms=6.0, decode_beta_ms_per_seq=0.03, decode_gamma_ms_per_token=2e-5,
    kv_capacity_tokens=400_000, kv_bytes_per_token=131_072, kv_link_gb_s=50.0,
)
TIME_SCALE = 0.2  # wall s per emulated s: 5x faster than real time


def send(url: str, isl: int, osl: int) -> None:
    r = httpx.post(f"{url}/v1/completions", json={"model": SERVED, "prompt": [7] * isl, "max_tokens": osl}, timeout=60)
    r.raise_for_status()


def observer(url: str, staleness_s: float = 5.0) -> PrometheusObserver:
    cfg = PrometheusConfig(url=url, rate_window_s=5, staleness_s=staleness_s, timeout_s=2)
    return PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0}, time_scale=TIME_SCALE)


SHARED_SETUP = ("test_observe_rates_lengths_latency", "test_unreachable_prometheus_and_dead_targets_are_not_ok",
                "test_unknown_model_is_missing", "test_a_model_without_series_is_unusable_on_its_own")
SLOW_SCRAPE = "test_a_rate_window_shorter_than_two_scrapes_is_not_read_as_no_traffic"


@pytest.fixture(scope="module")
def started(tmp_path_factory):
    """Each test's own emulated replicas and its own REAL Prometheus scraping them (nothing is shared between two
    tests: one test stops its replicas and its Prometheus), all started together at the module's start. A Prometheus
    2.x scrapes its first target ~5 s after it starts (its service discovery hands the static targets to the scrape
    manager on a fixed 5-s tick): started one test at a time these waits added up; started together they overlap, and
    a test finds its Prometheus already scraping (it still waits until its observation holds what it asserts).
    Test name -> (fleet, Prometheus): two replicas for each test of `setup`; one replica, scraped every 3 s, for
    SLOW_SCRAPE."""
    import controller_prom

    require_prometheus()
    with contextlib.ExitStack() as stack:
        out = {}
        for name in (*SHARED_SETUP, SLOW_SCRAPE):
            slow = name == SLOW_SCRAPE
            fleet = stack.enter_context(EmulatorFleet(PERF, replicas=1 if slow else 2, model_name=SERVED,
                                                      time_scale=TIME_SCALE))
            addrs = [u.removeprefix("http://") for u in fleet.urls]
            targets = {f"{MODEL}/mixed/H100-SXM-80GB/tp1": ("mixed", addrs)}
            with pytest.MonkeyPatch.context() as mp:
                if slow:  # the config is written when the server starts (these tests never reload it)
                    mp.setattr(controller_prom, "SCRAPE_INTERVAL", "3s")
                prom = stack.enter_context(PrometheusServer(tmp_path_factory.mktemp(name[:30]), targets))
            out[name] = (fleet, prom)
        # the Prometheus servers are stopped together, not one after another
        stack.callback(controller_prom.terminate_together, [p for _, p in out.values()])
        yield out


@pytest.fixture()
def setup(request, started):
    """(fleet of two emulated replicas, a REAL Prometheus scraping them), this test's own (see `started`)."""
    return started[request.function.__name__]


def test_observe_rates_lengths_latency(setup):
    fleet, prom = setup
    obs = observer(prom.url)
    wait_for(lambda: obs.observe().ok, 15)  # both targets scraped once
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda i: send(fleet.urls[i % 2], 512, 32), range(48)))
    o = wait_for(lambda: (lambda x: x if x.ok and x.models[MODEL].mean_osl else None)(obs.observe()), 15)
    m = o.models[MODEL]
    # rate() extrapolates each series over its own samples, and a scrape can land between two
    # counters of one request: 10% covers that on a loaded machine and still catches unit mix-ups.
    assert m.mean_isl == pytest.approx(512, rel=0.1)
    assert m.mean_osl == pytest.approx(32, rel=0.1)
    assert m.completion_rps > 0 and m.arrival_rps >= 0
    assert m.ttft_ms is not None and m.ttft_ms > 0
    assert m.itl_ms is not None and m.itl_ms > 0
    assert m.newest_sample_age_s is not None and m.newest_sample_age_s < 5
    assert "mixed" in m.running and "mixed" in m.kv_usage
    # the prompt-length histogram (vllm:request_prompt_tokens, 1-2-5 buckets): every 512-token prompt in (500, 1000]
    b = dict(m.prompt_token_buckets)
    assert b[500.0] == 0 and b[math.inf] > 0 and b[1000.0] == pytest.approx(b[math.inf])
    # and the output-length histogram (vllm:request_generation_tokens): every 32-token output in (20, 50]
    g = dict(m.output_token_buckets)
    assert g[20.0] == 0 and g[math.inf] > 0 and g[50.0] == pytest.approx(g[math.inf])
    # the sub-interval peak is off by default; with prometheus.peak_window_s the burst of 48 requests, then nothing,
    # shows a 2-s peak of the arrival estimate well above its 5-s mean, in emulated seconds with the window and span
    # it was read over (what forecast.peak_envelope denoises with)
    assert m.arrival_peak_rps == {} and m.arrival_peak_span_s is None
    cfg = PrometheusConfig(url=prom.url, rate_window_s=5, staleness_s=5.0, timeout_s=2, peak_window_s=2)
    peaky = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0}, time_scale=TIME_SCALE)
    w = 2 / TIME_SCALE

    def burst_seen(x: Observation) -> Observation | None:
        # scrapes land every 500 ms and the subquery's steps are aligned to the clock: the burst shows in the peak
        # once both have caught up with it, while the 5-s mean still holds it
        mm = x.models.get(MODEL) if x.ok else None
        return x if mm is not None and mm.arrival_rps > 0 and mm.arrival_peak_rps.get(w, 0.0) > 1.5 * mm.arrival_rps else None
    o = wait_for(lambda: burst_seen(peaky.observe()), 15)
    assert set(o.models[MODEL].arrival_peak_rps) == {w} and o.models[MODEL].arrival_peak_span_s == pytest.approx(5 / TIME_SCALE)


def test_unreachable_prometheus_and_dead_targets_are_not_ok(setup):
    fleet, prom = setup
    obs = observer(prom.url)
    wait_for(lambda: obs.observe().ok, 15)
    # the vLLM replicas die: Prometheus marks their series stale -> no metrics -> not ok
    fleet.stop_replica(0)
    fleet.stop_replica(1)
    o = wait_for(lambda: (lambda x: x if not x.ok else None)(obs.observe()), 15)
    assert MODEL in o.reason
    prom.stop()
    o = obs.observe()
    assert not o.ok and "unreachable" in o.reason


def test_unknown_model_is_missing(setup):
    fleet, prom = setup
    cfg = PrometheusConfig(url=prom.url, rate_window_s=5, staleness_s=5)
    obs = PrometheusObserver(cfg, {"other": "other-model"}, {"other": 90.0})
    o = obs.observe()
    assert not o.ok and "no vLLM metrics for model other" in o.reason
    # the labels Prometheus does have are named, and the field that maps them (found by hand at stop 52), once scraped
    o = wait_for(lambda: (lambda r: r if SERVED in r.reason else None)(obs.observe()))
    assert f"model_name {SERVED!r}" in o.reason and "served_name" in o.reason



def test_a_model_without_series_is_unusable_on_its_own(setup):
    """Two configured models, one served: the observation is ok with the served one and names the other in `unusable`
    (it failed as a whole before stop 52, which held every model's scaling); with no model usable it fails."""
    fleet, prom = setup
    cfg = PrometheusConfig(url=prom.url, rate_window_s=5, staleness_s=5)
    both = PrometheusObserver(cfg, {MODEL: SERVED, "other": "other-model"}, {MODEL: 90.0, "other": 90.0}, time_scale=TIME_SCALE)
    o = wait_for(lambda: (lambda r: r if r.ok and MODEL in r.models else None)(both.observe()))
    assert set(o.unusable) == {"other"} and "no vLLM metrics for model other" in o.unusable["other"] and "other" not in o.models


def test_a_rate_window_shorter_than_two_scrapes_is_not_read_as_no_traffic(started):
    """rate() over a window holding fewer than two scrapes gives no series: the model was read as 0 req/s under load
    and planned 1 -> 0 (found by hand at stop 52, rate_window_s 1 at a 2-s scrape). Now the model is unusable, held,
    with the window named. A REAL Prometheus scraping every 3 s (see `started`), a 1-s window."""
    _, prom = started[SLOW_SCRAPE]
    short = PrometheusObserver(PrometheusConfig(url=prom.url, rate_window_s=1, staleness_s=30), {MODEL: SERVED},
                               {MODEL: 90.0}, time_scale=TIME_SCALE)
    o = wait_for(lambda: (lambda r: r if "no request rate" in r.unusable.get(MODEL, "") else None)(short.observe()))
    assert not o.ok and MODEL not in o.models
    assert "no request rate for llama-3.1-8b over prometheus.rate_window_s=1s" in o.unusable[MODEL]


def test_the_validate_a_config_run_asks_prometheus_about_the_selector(tmp_path):
    """`planner control --dry-run --once` checks the config against a REAL Prometheus (no targets needed): a selector
    Prometheus cannot parse, and a URL that is not a Prometheus HTTP API, are exit 2 naming the field (found by hand
    at stop 52: `selector: 'namespace="llm'` passed with rc 0 and every interval held on 'PromQL failed (HTTP 400)')."""
    import pytest

    from planner.io.errors import InputError
    from planner.io.validate import check_prometheus_query

    require_prometheus()
    with PrometheusServer(tmp_path, {}) as prom:
        check_prometheus_query(prom.url, 'namespace="llm"', "c.yaml")  # well-formed: no series is not an error here
        check_prometheus_query(prom.url, "", "c.yaml")
        with pytest.raises(InputError, match=r"c\.yaml: field 'prometheus\.selector': Prometheus refused .*unterminated"):
            check_prometheus_query(prom.url, 'namespace="llm', "c.yaml")
        with pytest.raises(InputError, match=r"field 'prometheus\.url': answered HTTP 404"):
            check_prometheus_query(prom.url + "/not-prometheus", "", "c.yaml")


# ---------------------------------------------------------------- which vLLM histogram the ITL is read from
# A FAKE Prometheus HTTP API (httpx.MockTransport) holding the metric families one vLLM version exports: a query naming
# a family the version lacks has no series, as a real Prometheus answers. Each ITL histogram's quantile is a distinct
# value so the ITL says which one was read. Families from the vLLM 0.26.0 /metrics (shared/tools/vllm-offline/
# README.md) and the v1 loggers.py of vLLM 0.10, which has vllm:time_per_output_token_seconds (per token) and neither
# vllm:request_time_per_output_token_seconds nor vllm:inter_token_latency_seconds.
FAKE_NOW_S = 1000.0
COMMON = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
          "vllm:request_success_total", "vllm:request_prompt_tokens", "vllm:request_generation_tokens",
          "vllm:time_to_first_token_seconds", "vllm:request_prefill_time_seconds")
ITL_QUANTILE_S = {"vllm:request_time_per_output_token_seconds": 0.040, "vllm:inter_token_latency_seconds": 0.020,
                  "vllm:time_per_output_token_seconds": 0.030}
# the gauges that have a former name, a distinct value each so that the observation says which was read
GAUGE_VALUE = {"vllm:kv_cache_usage_perc": 0.6, "vllm:gpu_cache_usage_perc": 0.4,
               "llm_d_epp_flow_control_queue_size": 3.0, "inference_extension_flow_control_queue_size": 5.0}


def fake_prometheus(families: set[str], labels: dict[str, list[dict[str, str]]] | None = None,
                    unobserved: frozenset[str] = frozenset(),
                    answer: Callable[[str], float | None] | None = None) -> httpx.Client:
    """An httpx client whose /api/v1/query answers from `families` (one mixed-role series of SERVED per query; `labels`:
    family -> the label sets of its series instead, each with the family's value; `unobserved`: histograms with series
    but no observation in the window, whose histogram_quantile is NaN as Prometheus answers; `answer`: PromQL -> the
    value of its one series where not None, prefill side included, whatever `families` holds)."""
    import re

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params["query"]
        if q == "time()":
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "scalar",
                                                                           "result": [FAKE_NOW_S, str(FAKE_NOW_S)]}})
        forced = answer(q) if answer else None
        if forced is not None:
            return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {"model_name": SERVED, "role": "mixed"}, "value": [FAKE_NOW_S, str(forced)]}]}})
        names = [re.sub(r"_(bucket|sum|count)$", "", n)
                 for n in re.findall(r"vllm:[a-z_]+|\b(?:llm_d_epp|inference_extension)_[a-z_]+", q)]
        present = bool(names) and all(n in families for n in names) and 'role="prefill"' not in q and 'role=""' not in q
        value: float = FAKE_NOW_S if "timestamp(" in q else {**ITL_QUANTILE_S, **GAUGE_VALUE}.get(names[0], 1.0) if names else 1.0
        if "histogram_quantile(" in q and names and names[0] in unobserved:
            value = float("nan")
        sets = (labels or {}).get(names[0], [{"model_name": SERVED, "role": "mixed"}]) if names else []
        result = [{"metric": ls, "value": [FAKE_NOW_S, str(value)]} for ls in sets] if present else []
        return httpx.Response(200, json={"status": "success", "data": {"resultType": "vector", "result": result}})

    return httpx.Client(base_url="http://prometheus.test", transport=httpx.MockTransport(handler))


TPOT_REQ, ITL_TOK, ITL_OLD = ITL_QUANTILE_S
TTFT = "vllm:time_to_first_token_seconds"
ITL_CASES = [
    # (case, families beside COMMON, itl_metric, ITL ms expected, itl_source expected)
    ("vLLM 0.26: per-request mean", {TPOT_REQ, ITL_TOK}, "request_mean", 40.0, TPOT_REQ),
    ("vLLM 0.26: per_token asked", {TPOT_REQ, ITL_TOK}, "per_token", 20.0, ITL_TOK),
    ("no per-request histogram", {ITL_TOK}, "request_mean", 20.0, f"{ITL_TOK} (fallback: no {TPOT_REQ})"),
    ("deprecated name beside the new one: the new one", {ITL_TOK, ITL_OLD}, "per_token", 20.0, ITL_TOK),
    ("vLLM 0.10: former per-token name", {ITL_OLD}, "request_mean", 30.0,
     f"{ITL_OLD} (fallback: no {ITL_TOK} nor {TPOT_REQ})"),
    ("vLLM 0.10, per_token asked", {ITL_OLD}, "per_token", 30.0, f"{ITL_OLD} (fallback: no {ITL_TOK})"),
    ("no ITL histogram at all", set(), "request_mean", None, f"absent: no series of {TPOT_REQ}, {ITL_TOK}, {ITL_OLD}"),
    ("no ITL histogram at all, per_token asked", set(), "per_token", None, f"absent: no series of {ITL_TOK}, {ITL_OLD}"),
]


@pytest.mark.parametrize(("families", "itl_metric", "itl_ms", "source"), [c[1:] for c in ITL_CASES],
                         ids=[c[0] for c in ITL_CASES])
def test_itl_read_from_the_histogram_the_vllm_version_exports(families, itl_metric, itl_ms, source):
    """A fleet of vLLM 0.10 or earlier exports the per-token ITL histogram as vllm:time_per_output_token_seconds only:
    the observer read no ITL at all from it (itl_ms None, itl_source ''), and the SLO feedback then went by TTFT alone
    (found in QA). Now that name is the last fallback, and the source says so."""
    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120, itl_metric=itl_metric)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0}, client=fake_prometheus(set(COMMON) | families)).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert m.ttft_ms == pytest.approx(1000.0)
    assert (m.itl_ms, m.itl_source) == (pytest.approx(itl_ms) if itl_ms is not None else None, source)


ITL_UNOBSERVED_CASES = [
    # (case, families beside COMMON, histograms with series but no request in the window, ITL ms, itl_source)
    ("per-request histogram without a request", {TPOT_REQ, ITL_TOK}, {TPOT_REQ}, 20.0,
     f"{ITL_TOK} (fallback: no request observed in the 120s window in {TPOT_REQ})"),
    ("one not exported, one without a request", {ITL_TOK, ITL_OLD}, {ITL_TOK}, 30.0,
     f"{ITL_OLD} (fallback: no {TPOT_REQ}; no request observed in the 120s window in {ITL_TOK})"),
]


@pytest.mark.parametrize(("families", "unobserved", "itl_ms", "source"), [c[1:] for c in ITL_UNOBSERVED_CASES],
                         ids=[c[0] for c in ITL_UNOBSERVED_CASES])
def test_an_itl_fallback_says_when_the_histogram_passed_over_had_no_request(families, unobserved, itl_ms, source):
    """vllm:request_time_per_output_token_seconds is observed when a request ends: a window of long requests running
    and none finished has per-token ITL samples but none of it. The fallback's source then read 'fallback: no
    vllm:request_time_per_output_token_seconds', as if the server did not export it (found in QA); now it says no
    request was observed in the window, and 'no <name>' only for a histogram without series."""
    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0},
                           client=fake_prometheus(set(COMMON) | families, unobserved=frozenset(unobserved))).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert (m.itl_ms, m.itl_source) == (pytest.approx(itl_ms), source)


@pytest.mark.parametrize(("restarts", "arrival_rps"), [(1, 1.0), (0, 0.2)], ids=["restart in the window", "a drain"])
def test_a_vllm_restart_in_the_window_does_not_lower_the_arrival_estimate(restarts, arrival_rps):
    """A vLLM restart resets its counters (rate() accounts for it) and restarts its gauges at 0: deriv(running +
    waiting) then reads the requests the restart dropped as a drain, and arrivals (completions + in-flight growth)
    read 1.0 - 0.8 = 0.2 req/s for the window (found in QA). Where resets() of the success counter shows a restart,
    the growth term counts only when >= 0; a genuine drain (no reset) still lowers the estimate."""
    def answer(q: str) -> float | None:
        if "resets(" in q:
            return float(restarts)
        return -0.8 if " + deriv(" in q else None  # the in-flight growth: -0.8 req/s

    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0},
                           client=fake_prometheus(set(COMMON), answer=answer)).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert (m.completion_rps, m.arrival_rps) == (pytest.approx(1.0), pytest.approx(arrival_rps))


PD_TTFT_CASES = [
    # (case, the prefill side's TTFT quantile in s (NaN: no prefill in the window), whether its histogram has series,
    #  TTFT ms, ttft_source)
    ("both sides", 0.3, True, 1300.0, "decode+prefill"),
    ("no prefill in the window", math.nan, True, 1000.0,
     f"decode alone (P/D, prefill side: no request observed in the 120s window ({TTFT} has series); a remote "
     "prefill's time is not in it)"),
    ("prefill side without the histogram", math.nan, False, 1000.0,
     f"decode alone (P/D, prefill side: no series of {TTFT}; a remote prefill's time is not in it)"),
]


@pytest.mark.parametrize(("pf_ttft_s", "pf_series", "ttft_ms", "source"), [c[1:] for c in PD_TTFT_CASES],
                         ids=[c[0] for c in PD_TTFT_CASES])
def test_a_pd_ttft_without_the_prefill_side_says_it_is_the_decode_side_alone(pf_ttft_s, pf_series, ttft_ms, source):
    """In P/D the client's TTFT is the prefill side's plus the decode side's (the decode pod's starts after the remote
    prefill). A NaN prefill-side quantile (no prefill observed in the window) with a finite decode side read the decode
    side alone as 'decode/mixed', as a fleet without prefill pods (found in QA). It is still read alone (no request of
    the window went through a prefill pod as far as that side shows), and ttft_source says so and why."""
    def answer(q: str) -> float | None:
        if 'role="prefill"' not in q:
            return None
        if "histogram_quantile(" in q:
            return pf_ttft_s if TTFT in q else None
        if f"{TTFT}_bucket" in q:  # the series check behind the source's why
            return 1.0 if pf_series else None
        return 1.0 if "rate(vllm:request_success_total" in q else None  # the prefill side completes 1 req/s

    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0},
                           client=fake_prometheus(set(COMMON), answer=answer)).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert (m.ttft_ms, m.ttft_source) == (pytest.approx(ttft_ms), source)


def test_a_request_counter_never_exported_is_named_not_blamed_on_the_window():
    """Gauges scraped but no vllm:request_success_total at all (a vLLM or a metrics filter without it): the model was
    held with 'rate() needs two scrapes inside the window ... use >= 4' at a 120-s window, advice that cannot help
    (found in QA). Now the reason names the missing counter; the model is still held."""
    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0},
                           client=fake_prometheus(set(COMMON) - {"vllm:request_success_total"})).observe()
    assert not o.ok and MODEL not in o.models
    assert "no vllm:request_success_total for llama-3.1-8b" in o.unusable[MODEL] and "rate_window_s" not in o.unusable[MODEL]


KV_NEW, KV_OLD = "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"


@pytest.mark.parametrize(("families", "kv", "source"), [
    ({KV_NEW}, 0.6, KV_NEW),  # vLLM >= 0.12
    ({KV_NEW, KV_OLD}, 0.6, KV_NEW),  # vLLM 0.9.2-0.11: both, the current name read
    ({KV_OLD}, 0.4, f"{KV_OLD} (fallback: no {KV_NEW})"),  # vLLM <= 0.9.1
    (set(), None, ""),
], ids=["new name", "both", "former name only", "neither"])
def test_kv_usage_read_from_the_gauge_the_vllm_version_exports(families, kv, source):
    """A fleet of vLLM 0.9.1 or earlier exports the KV usage as vllm:gpu_cache_usage_perc only (renamed
    vllm:kv_cache_usage_perc in 0.9.2): the observer read kv_usage {} from it (found in QA). Now the former name is
    the fallback, and kv_usage_source says which was read."""
    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0},
                           client=fake_prometheus((set(COMMON) - {KV_NEW}) | families)).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert (m.kv_usage, m.kv_usage_source) == ({"mixed": pytest.approx(kv)} if kv is not None else {}, source)


EPP_NEW, EPP_OLD = "llm_d_epp_flow_control_queue_size", "inference_extension_flow_control_queue_size"
EPP_CASES = [
    # (case, families beside COMMON, prometheus.epp_queue_metric (None: the default), waiting["gateway"], source)
    ("llm-d EPP, current name only", {EPP_NEW}, None, 3.0, EPP_NEW),
    ("llm-d EPP today: both, the current name read", {EPP_NEW, EPP_OLD}, None, 3.0, EPP_NEW),
    ("deprecated name only", {EPP_OLD}, None, 5.0, f"{EPP_OLD} (fallback: no {EPP_NEW})"),
    ("no flow-control queue", set(), None, None, ""),
    ("deprecated name set by the user: read alone", {EPP_NEW, EPP_OLD}, EPP_OLD, 5.0, EPP_OLD),
    ("a name set by the user has no fallback", {EPP_OLD}, "my_gateway_queue", None, ""),
]


@pytest.mark.parametrize(("families", "metric", "queued", "source"), [c[1:] for c in EPP_CASES],
                         ids=[c[0] for c in EPP_CASES])
def test_gateway_backlog_read_from_the_epp_queue_gauge_of_either_name(families, metric, queued, source):
    """The default epp_queue_metric was inference_extension_flow_control_queue_size, which llm-d's endpoint picker
    marks deprecated for llm_d_epp_flow_control_queue_size: an EPP exporting the new name only read as no backlog
    (found in QA). Now the default is the new name, the former one its fallback, and gateway_queue_source says which;
    a name the user sets is read alone."""
    kw = {} if metric is None else {"epp_queue_metric": metric}
    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120, **kw)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0}, client=fake_prometheus(set(COMMON) | families)).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert (m.waiting.get("gateway"), m.gateway_queue_source) == (queued, source)


EPP_LABEL_CASES = [
    # (case, label sets of the EPP queue's series (3 queued each), waiting["gateway"] expected)
    ("requested under an alias, served by the model", [{"model_name": "llama", "target_model_name": SERVED}], 3.0),
    ("EPP without target_model_name: model_name", [{"model_name": SERVED}], 3.0),
    ("empty target_model_name: model_name", [{"model_name": SERVED, "target_model_name": ""}], 3.0),
    ("split onto another version: not this model's", [{"model_name": SERVED, "target_model_name": "llama-3.1-8b-v2"}],
     None),
    ("an alias and the model itself: both", [{"model_name": "llama", "target_model_name": SERVED},
                                             {"model_name": SERVED, "target_model_name": SERVED}], 6.0),
]


@pytest.mark.parametrize(("series", "queued"), [c[1:] for c in EPP_LABEL_CASES], ids=[c[0] for c in EPP_LABEL_CASES])
def test_gateway_backlog_is_attributed_to_the_model_that_serves_it(series, queued):
    """llm-d's EPP labels its flow-control queue with model_name (the model the client asked for) and target_model_name
    (the model after aliasing / traffic splitting, vLLM's model_name): the observer read model_name alone, so 3
    requests queued for an alias read as no backlog of the model serving them, and 3 split onto another version as
    backlog of this one (found in QA). Now target_model_name, model_name where a series has none."""
    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0},
                           client=fake_prometheus(set(COMMON) | {EPP_NEW}, {EPP_NEW: series})).observe()
    assert o.ok, o.reason
    assert o.models[MODEL].waiting.get("gateway") == queued


ABSENT_CASES = [
    # (case, families left out of COMMON + both new ITL histograms, histograms unobserved, itl_source, ttft_source)
    ("no TTFT histogram", {TTFT}, frozenset(), TPOT_REQ, f"absent: no series of {TTFT}"),
    ("no request in the window", set(), frozenset({TTFT, TPOT_REQ, ITL_TOK}),
     f"absent: no request observed in the 120s window ({TPOT_REQ}, {ITL_TOK} has series)",
     f"absent: no request observed in the 120s window ({TTFT} has series)"),
]


@pytest.mark.parametrize(("left_out", "unobserved", "itl_source", "ttft_source"), [c[1:] for c in ABSENT_CASES],
                         ids=[c[0] for c in ABSENT_CASES])
def test_an_absent_latency_says_why_in_the_observation_and_the_decision_log(left_out, unobserved, itl_source,
                                                                            ttft_source):
    """A latency histogram with no series (a vLLM without that name, a scrape missing it) or no observation in the
    window left ttft_ms / itl_ms None with ttft_source / itl_source '', which the decision log's `sources` drops: a
    null latency with no cause (found in QA). Now the source says 'absent: ...' and why, and the log records it."""
    from controllers.loop import Controller

    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    families = (set(COMMON) | {TPOT_REQ, ITL_TOK}) - left_out
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0}, client=fake_prometheus(families, unobserved=unobserved)).observe()
    assert o.ok, o.reason
    m = o.models[MODEL]
    assert (m.itl_ms is None, m.ttft_ms is None) == (TPOT_REQ in unobserved, TTFT in left_out | unobserved)
    assert (m.itl_source, m.ttft_source) == (itl_source, ttft_source)
    assert Controller._observed(m)["sources"] == {"itl_ms": itl_source, "ttft_ms": ttft_source, "kv_usage": KV_NEW}


OK_TIME = {"status": "success", "data": {"resultType": "scalar", "result": [FAKE_NOW_S, str(FAKE_NOW_S)]}}
BAD_ANSWER_CASES = [
    # (case, time()'s JSON body, every other query's JSON body, start of the reason expected)
    ("status error on time()", {"status": "error", "errorType": "timeout", "error": "query timed out"}, {},
     "PromQL failed (HTTP 200): query timed out in time()"),
    ("a JSON list", OK_TIME, [], "Prometheus answered HTTP 200 with JSON that is not its API's (list)"),
    ("success without data", OK_TIME, {"status": "success"}, "Prometheus answered status success without data.result"),
    ("a null result", OK_TIME, {"status": "success", "data": {"resultType": "vector", "result": None}},
     "Prometheus answered a result that is not an instant vector"),
    ("time() without a scalar", {"status": "success", "data": {"resultType": "scalar", "result": []}}, {},
     "Prometheus answered time() with [], not a scalar"),
]


@pytest.mark.parametrize(("time_body", "body", "reason"), [c[1:] for c in BAD_ANSWER_CASES],
                         ids=[c[0] for c in BAD_ANSWER_CASES])
def test_an_answer_that_is_not_the_prometheus_api_is_a_failed_observation(time_body, body, reason):
    """HTTP 200 whose JSON is not the query API's (a wrong prometheus.url, a proxy) raised AttributeError, KeyError or
    TypeError out of observe(), and so out of Controller.step() and the loop; 'status: error' on time() read
    "Prometheus unreachable at ...: 'data'" (found in QA). Now each is an observation not ok, its reason saying what
    came back (the guard then holds)."""
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=time_body if request.url.params["query"] == "time()" else body)

    cfg = PrometheusConfig(url="http://prometheus.test", rate_window_s=120)
    client = httpx.Client(base_url="http://prometheus.test", transport=httpx.MockTransport(handler))
    o = PrometheusObserver(cfg, {MODEL: SERVED}, {MODEL: 90.0}, client=client).observe()
    assert not o.ok and o.reason.startswith(reason), o.reason
