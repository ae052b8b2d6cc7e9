"""Emulated vLLM server: OpenAI completions + vLLM's Prometheus metrics, timed by the performance model.

A fake of an EXTERNAL system (a vLLM engine on a GPU), so that the profiler and the controller can be
tested end to end without GPUs. What it reproduces:

* HTTP surface of ``vllm serve``: ``POST /v1/completions`` (prompt as a string or a list of token ids,
  ``max_tokens``, ``stream`` with SSE ``data:`` chunks and ``data: [DONE]``,
  ``stream_options.include_usage`` and ``continuous_usage_stats`` (usage so far in every chunk), ``ignore_eos``,
  ``n`` sequences per prompt and a list of prompts, streamed or not (a stream's chunks carry each choice's
  ``index``); usage with prompt/completion tokens),
  ``GET /v1/models``, ``GET /health``, ``GET /metrics``; refusals in vLLM 0.26's ErrorResponse body
  (``{"error": {"message", "type", "param", "code"}}``, planner.io.webserve.error_body) and its HTTP status.
* Metric names, label sets (``model_name``, ``engine``) and histogram buckets of vLLM 0.26.0
  (vllm/v1/metrics/loggers.py; the names a real 0.26.0 server exported are listed verbatim in
  ../shared/tools/vllm-offline/README.md and tests/test_emulator_server.py holds these against that
  list): running/waiting gauges, ``vllm:kv_cache_usage_perc``, ``vllm:request_success_total{finished_reason}``,
  prompt/generation token counters, prefix-cache and estimated FLOP/byte counters, per-request
  histograms, TTFT, inter-token latency, request time per output token, end-to-end, queue/prefill/
  decode/inference-time histograms, ``vllm:cache_config_info`` with 0.26.0's labels. 0.26.0 no
  longer exports ``vllm:gpu_cache_usage_perc`` or ``vllm:time_per_output_token_seconds``; nor does this.
  ``GET /version`` answers ``{"version": "0.26.0"}`` plus one key of its own, ``pd_planner_emulator``:
  ``{"time_scale": S}``, so a client timing the wall clock (``planner profile``) can check it divides by the
  emulator's own scale (a client that reads only ``version``, as vLLM's do, is unaffected).
* Streaming as 0.26.0 does it: a request's tokens that pile up while its stream writer is busy go
  out in ONE chunk (at large batch the API server lags the engine, so chunks carry several tokens);
  with ``return_token_ids`` each chunk lists its token ids, so clients can count tokens, not chunks.
* Timing: a live engine loop per replica that schedules like vLLM V1 (continuous batching; each step
  carries one token per running decode plus prefill chunks up to ``max_batched_tokens``; FCFS
  admission while ``max_num_seqs`` and the KV cache allow) and sleeps each step for the time of
  :func:`planner.simulate.steptime.mixed_step_ms`. Latency under concurrency therefore follows the law.

Choices written down:
* A string prompt counts ``ceil(len(chars)/4)`` tokens (OpenAI's rule of thumb, ~4 characters per
  token); token-id prompts count exactly. Generation runs to ``max_tokens`` (no EOS model), so
  ``finished_reason`` is ``length``; ``ignore_eos`` is accepted and changes nothing. The generated text is synthetic
  (" the of and to in a is that for it", repeated), and a ``stop`` string it meets ends the request there as vLLM's
  detokenizer does (after ``min_tokens``; text cut before it, or after it with ``include_stop_str_in_output``;
  ``finish_reason`` "stop", ``stop_reason`` the string); a stop string it never holds changes nothing. A stream
  does not hold back the stop strings' length - 1 characters as vLLM's does: its chunks split the same text
  differently.
* KV on demand, as vLLM 0.26 allocates and as the simulator's mixed replicas do (planner/simulate/engine.py;
  ``kv_policy="reserve"`` for the old rule, prompt + max_tokens reserved at admission): a waiting request is
  admitted when its prompt fits beside what the running hold (decoding: prompt + generated; prefilling: the
  whole prompt), and none is admitted in a step that preempted; before each step, while the decodes' next
  tokens do not fit, the most recently admitted running request is preempted (``vllm:num_preemptions``),
  put back at the head of the queue, and when admitted again re-prefills its prompt and the tokens it had
  generated, then emits its next token.
  The KV-usage gauge reports blocks actually filled (prompt done + generated), in 16-token blocks.
* ``time_scale`` = wall seconds per emulated second (0.01 runs 100x faster than real time). Latency
  histograms record emulated seconds; clients measuring wall time must divide by ``time_scale``. The emulator's
  own Python work per step is not compressed: below 1, a step shorter than it reads long on the wall clock
  (`time_scale_warning`, said at `planner emulate`'s start-up).

Faults for tests (see :class:`Faults`): the server dies after N generated tokens (connections drop
mid-stream, the port closes), /health answers slowly or with an error code, a malformed SSE line.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from planner.io.webserve import EMULATOR_VERSION_KEY, error_body, serve_app
from planner.perf.laws import VariantPerf
from planner.planning.lengths import build_1_2_5_buckets
from planner.simulate.engine import KvPolicy
from planner.simulate.kvconnector import KvConnectorEmulation
from planner.simulate.steptime import check_perf, chunk_cost_isl2, mixed_step_ms

T = TypeVar("T")
log = logging.getLogger("pd_planner.emulator")

# vLLM's default KV block size in tokens (vllm CacheConfig.block_size default 16 on CUDA).
BLOCK_SIZE_TOKENS = 16
# vLLM's default max_tokens for /v1/completions when the request omits it (OpenAI's default, 16).
DEFAULT_MAX_TOKENS = 16
# vLLM's SamplingParams: a temperature below _SAMPLING_EPS is greedy sampling; _verify_args' highest temperature.
SAMPLING_EPS = 1e-5
MAX_TEMPERATURE = 2.0
# ~4 characters per token: OpenAI's published rule of thumb for English text.
CHARS_PER_TOKEN = 4
# Buckets copied from vllm/v1/metrics/loggers.py (vLLM 0.9-0.10).
TTFT_BUCKETS_S = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0]
ITL_BUCKETS_S = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                 20.0, 40.0, 80.0]
REQUEST_LATENCY_BUCKETS_S = [0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
                             60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0]
FINISH_REASONS = ("stop", "length", "abort")
# The vLLM version whose HTTP surface this emulates (GET /version).
EMULATED_VLLM_VERSION = "0.26.0"
# API-server output processing per running request per engine step, emulated seconds. Derived from the
# real 0.26.0 run on the H200 (vllm-offline README): at batch 128 and 10.67 ms per step, 256 tokens
# came in 212-256 chunks, i.e. the frontend fell behind the engine on some steps: 128 x 80 us = 10.2 ms
# is about one step there, while at batch 32 (2.6 ms per 5.8 ms step) every token is its own chunk.
FRONTEND_S_PER_RUNNING_REQUEST = 80e-6
# Below this wall-clock lag a stream writer does not wait: asyncio's timers resolve ~1 ms, and a timer per
# chunk would load the event loop that also times the engine's steps (a compressed clock makes lags tiny).
MIN_LAG_WALL_S = 1e-3


@dataclass
class Faults:
    """Failure injection, mutable while the server runs (tests flip these)."""

    kill_after_tokens: int | None = None
    """The server dies once it has generated this many tokens in total: open streams drop, port closes."""
    health_delay_s: float = 0.0
    """/health sleeps this long (wall seconds) before answering."""
    health_status: int = 200
    """/health answers with this HTTP status."""
    malformed_stream_after_tokens: int | None = None
    """Each stream writes a line that is not JSON after this many tokens, then continues."""
    step_jitter: float = 0.0
    """Each step lasts its law time x U(1 - j, 1 + j) (seeded): a busy machine's non-monotone timings."""
    jitter_seed: int = 0


class BadRequest(Exception):
    """A request vLLM refuses: HTTP 400, BadRequestError (vllm/entrypoints/openai serving's create_error_response)."""

    status = 400
    err_type = "BadRequestError"
    param: str | None = None

    def __init__(self, message: str, param: str | None = None):
        """`param`: the request field at fault, as vLLM's VLLMValidationError names it in the error's ``param``."""
        super().__init__(message)
        if param is not None:
            self.param = param


class ModelNotFound(BadRequest):
    """A model the server does not serve: vLLM's _check_model answers HTTP 404, NotFoundError, param 'model'."""

    status = 404
    err_type = "NotFoundError"
    param = "model"


@dataclass(eq=False)
class _Req:
    rid: str
    prompt_tokens: int
    max_tokens: int
    arrival: float
    out: asyncio.Queue[int | None] = field(default_factory=asyncio.Queue)
    prefilled: int = 0
    generated: int = 0
    recompute: int = 0
    """Generated tokens to re-prefill after a preemption (its prefill is then prompt + these)."""
    admitted: float | None = None
    first_token: float | None = None
    last_token: float | None = None
    done: bool = False
    aborted: bool = False
    """Its client went away and the engine dropped it (EmulatedEngine.abort)."""
    stop_at: _StopAt | None = None
    """The stop string this request's text meets by its max_tokens (it then ends there, finish_reason "stop")."""

    @property
    def finish(self) -> tuple[str, str | None]:
        """Its finish_reason and stop_reason as vLLM answers them."""
        return ("stop", self.stop_at.stop) if self.stop_at else ("length", None)

    @classmethod
    def asked(cls, rid: str, prompt_tokens: int, max_tokens: int, arrival: float, stop_at: _StopAt | None) -> _Req:
        """A request as asked: it ends at its stop string where its text meets one within max_tokens, else at
        max_tokens."""
        if stop_at is not None and stop_at.tokens <= max_tokens:
            return cls(rid, prompt_tokens, stop_at.tokens, arrival, stop_at=stop_at)
        return cls(rid, prompt_tokens, max_tokens, arrival)

    def text(self, a: int, b: int) -> str:
        """The text of its tokens a..b-1, cut where its stop string ends the text."""
        text = "".join(_token_text(i) for i in range(a, b))
        return text[:max(0, self.stop_at.chars - _text_chars(a))] if self.stop_at else text


@dataclass(frozen=True)
class _StopAt:
    tokens: int
    """Tokens generated when the stop string is met (the last one completes it)."""
    stop: str
    chars: int
    """Characters of text kept: up to the stop string, or through it with include_stop_str_in_output."""


def _stop_at(body: dict[str, object]) -> _StopAt | None:
    """Where the synthetic text (module doc) meets one of the request's ``stop`` strings, as vLLM 0.26's detokenizer
    checks them: after each token from the one past ``min_tokens`` on, each stop string in list order searched from
    1 - (the token's characters) - len(stop) from the end (vllm/v1/engine/detokenizer.py check_stop_strings); the text
    cut before the stop string, or after it with ``include_stop_str_in_output``. None: no stop string is ever met."""
    raw = body.get("stop")
    stops = [raw] if isinstance(raw, str) else [x for x in raw if isinstance(x, str) and x] if isinstance(raw, list) else []
    if not stops:
        return None
    include = bool(body.get("include_stop_str_in_output", False))
    m = body.get("min_tokens")
    min_tokens = m if isinstance(m, int) and not isinstance(m, bool) and m > 0 else 0
    text = "".join(_token_text(i) for i in range(min_tokens))
    # the text repeats every len(_WORDS) tokens and a token has at least 2 characters: past this many tokens every
    # window the search reads has been read before, so a stop string not met by then is never met
    for k in range(min_tokens + 1, min_tokens + len(_WORDS) + max(map(len, stops)) + 2):
        new = _token_text(k - 1)
        text += new
        for stop in stops:
            at = text.find(stop, 1 - len(new) - len(stop))
            if at != -1:
                return _StopAt(k, stop, min(at + len(stop), len(text)) if include else at)
    return None


class _Metrics:
    """vLLM's metric families on one per-server registry."""

    def set_waiting(self, n: int) -> None:
        """`n` requests wait for admission: vllm:num_requests_waiting and, every one waiting for capacity (KV blocks or
        a batch slot), its by_reason{reason="capacity"} (found in QA: that series stayed 0 while num_requests_waiting
        read 2, where vLLM's reasons add up to it)."""
        self.waiting.set(n)
        self.waiting_capacity.set(n)

    def __init__(self, model_name: str, perf: VariantPerf, max_model_len: int):
        self.registry = CollectorRegistry()
        r = self.registry
        labels = ["model_name", "engine"]
        lv = (model_name, "0")

        def g(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, labels, registry=r)

        self.running = g("vllm:num_requests_running", "Number of requests in model execution batches.").labels(*lv)
        self.waiting = g("vllm:num_requests_waiting", "Number of requests waiting to be processed.").labels(*lv)
        self.kv = g("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.").labels(*lv)
        by_reason = Gauge("vllm:num_requests_waiting_by_reason", "Number of requests waiting, by reason.",
                          labels + ["reason"], registry=r)
        self.waiting_capacity = by_reason.labels(*lv, "capacity")  # waiting for KV blocks or a batch slot
        by_reason.labels(*lv, "deferred").set(0)  # vLLM's other reason; no request of the emulator waits for it
        # vLLM's help and its three states (found in QA: the help said '0 = awake' beside awake=1, and the sleep
        # levels' series were missing); the emulator never sleeps
        sleep = Gauge("vllm:engine_sleep_state", "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means "
                      "engine is awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
                      labels + ["sleep_state"], registry=r)
        for state, value in (("awake", 1), ("weights_offloaded", 0), ("discard_all", 0)):
            sleep.labels(*lv, state).set(value)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Number of prefill tokens processed.", labels, registry=r).labels(*lv)
        self.generation_tokens = Counter("vllm:generation_tokens", "Number of generation tokens processed.", labels, registry=r).labels(*lv)
        self.num_preemptions = Counter("vllm:num_preemptions", "Cumulative number of preemption from the engine.", labels, registry=r).labels(*lv)
        # Prefix caching is off in the emulator (as the profiler runs vLLM): queries counted, never hits.
        self.prefix_queries = Counter("vllm:prefix_cache_queries", "Prefix cache queries, in terms of number of queried tokens.",
                                      labels, registry=r).labels(*lv)
        self.prefix_hits = Counter("vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                                   labels, registry=r).labels(*lv)
        # Estimated per-GPU FLOPs and bytes read (vLLM 0.26.0's MFU counters): 2 FLOPs per weight per token.
        self.est_flops = Counter("vllm:estimated_flops_per_gpu", "Estimated number of floating point operations per GPU.",
                                 labels, registry=r).labels(*lv)
        self.est_read = Counter("vllm:estimated_read_bytes_per_gpu", "Estimated number of bytes read from memory per GPU.",
                                labels, registry=r).labels(*lv)
        succ = Counter("vllm:request_success", "Count of successfully processed requests.", labels + ["finished_reason"], registry=r)
        self.success = {reason: succ.labels(*lv, reason) for reason in FINISH_REASONS}
        tok_b = build_1_2_5_buckets(max_model_len)

        def h(name: str, doc: str, buckets: list[float]) -> Histogram:
            return Histogram(name, doc, labels, buckets=buckets, registry=r).labels(*lv)

        self.req_prompt = h("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tok_b)
        self.req_gen = h("vllm:request_generation_tokens", "Number of generation tokens processed.", tok_b)
        self.max_tokens_param = h("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", tok_b)
        self.iter_tokens = h("vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                             [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384])
        self.ttft = h("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS_S)
        self.itl = h("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS_S)
        self.tpot = h("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.", ITL_BUCKETS_S)
        self.e2e = h("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS_S)
        self.queue = h("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", REQUEST_LATENCY_BUCKETS_S)
        self.prefill_time = h("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", REQUEST_LATENCY_BUCKETS_S)
        self.decode_time = h("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", REQUEST_LATENCY_BUCKETS_S)
        self.inference_time = h("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.",
                                REQUEST_LATENCY_BUCKETS_S)
        blocks = perf.kv_capacity_tokens // BLOCK_SIZE_TOKENS
        # Labels as vLLM 0.26.0 writes them (vllm-offline README): every CacheConfig field as a
        # string, None as "None", plus the derived KV size in tokens and the max concurrency at max_model_len.
        info = {
            "block_size": str(BLOCK_SIZE_TOKENS),
            "cache_dtype": "auto",
            "enable_prefix_caching": "False",
            "gpu_memory_utilization": "0.9",
            "num_cpu_blocks": "None",
            "num_gpu_blocks": str(blocks),
            "num_gpu_blocks_override": "None",
            "kv_cache_size_tokens": str(blocks * BLOCK_SIZE_TOKENS),
            "kv_cache_max_concurrency": f"{blocks * BLOCK_SIZE_TOKENS / max(1, max_model_len):.2f}",
            "engine": "0",
        }
        Gauge("vllm:cache_config_info", "Information of the LLMEngine CacheConfig", list(info), registry=r).labels(**info).set(1)


@functools.cache
def _weights_of(model: str) -> tuple[float, float]:
    """(parameters, weight bytes) of a catalog model for the estimated FLOP/byte counters; (0, 0) if unknown.
    Cached: replicas start inside the fleet's event loop, which must not stall on reading the catalog."""
    try:
        from planner.io.catalog import Catalog

        spec = Catalog.load().model(model)
        return float(spec.active_params), float(spec.weight_bytes)
    except Exception:  # noqa: BLE001 - counters are informational; an unknown model counts zero
        return 0.0, 0.0


def iteration_line(index: int, t_s: float, ctx_requests: int, ctx_tokens: int, gen_requests: int, step_ms: float,
                   kv_usage: float) -> str:
    """One step as vLLM 0.26's LoggingStatLogger logs it with --enable-logging-iteration-details
    (vllm/v1/metrics/loggers.py), its timestamp `t_s` (emulated seconds) at the logger's one-second resolution.
    The emulator's "elapsed" is the whole step (vLLM's misses the kernel launches: profiles/iterations.py)."""
    stamp = time.strftime("%m-%d %H:%M:%S", time.gmtime(t_s))
    return (f"INFO {stamp} [loggers.py:182] Engine 000: Iteration({index}): {ctx_requests} context requests, "
            f"{ctx_tokens} context tokens, {gen_requests} generation requests, {gen_requests} generation tokens, "
            f"iteration elapsed time: {step_ms:.2f} ms, GPU KV cache usage: {kv_usage * 100:.1f}%")


class EmulatedEngine:
    """One replica's scheduler loop: vLLM-V1-like continuous batching timed by the step law."""

    def __init__(self, perf: VariantPerf, model_name: str, time_scale: float, max_model_len: int, metrics: _Metrics,
                 kv_policy: KvPolicy = "on_demand"):
        self.perf = perf
        self.kv_policy: KvPolicy = kv_policy
        self.preemptions = 0
        self.model_name = model_name
        self.time_scale = time_scale
        self.max_model_len = max_model_len
        self.m = metrics
        self.waiting: deque[_Req] = deque()
        self.running: list[_Req] = []
        self.kv_reserved = 0
        self.tokens_generated_total = 0
        self.steps = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on_token: Callable[[EmulatedEngine], None] | None = None  # after each step, used by the kill fault
        # vLLM 0.26's per-step log (--enable-logging-iteration-details; profiles/iterations.py reads it): a line
        # per step in vLLM's format, stamped with the step's end on the emulated clock; None: not logged
        self.iteration_log: Callable[[str], None] | None = None
        self._step_end = 0.0  # wall-clock (monotonic) end of the last step, for back-to-back steps
        # Virtual time (busy-machine robustness, issue 11): while steps run back to back, each starts
        # at the previous one's scheduled end, not when the event loop got round to it, and tokens are
        # stamped with the scheduled end; so a late wake-up on a loaded CPU does not show in TTFT/ITL
        # (amplified by 1/time_scale). Requests are admitted once the virtual clock reaches their
        # arrival. The virtual clock resyncs to the wall when the engine idles, or when it lags the
        # wall by more than MAX_LAG_S emulated seconds (counted in `resyncs`: this machine cannot keep up).
        self._idle = True
        self.resyncs = 0
        self._weights, self._weight_bytes = _weights_of(perf.model)
        self.faults: Faults | None = None  # set by the server (step jitter)
        self._jitter_rng: random.Random | None = None
        self.aborts = 0  # requests dropped because their client went away (abort)

    def now(self) -> float:
        """Emulated seconds."""
        return time.monotonic() / self.time_scale

    def submit(self, req: _Req) -> None:
        self.waiting.append(req)
        self.m.set_waiting(len(self.waiting))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def abort(self, reqs: Sequence[_Req]) -> int:
        """Drop the requests of a client that went away, as vLLM's API server does on a disconnect (AsyncLLM.abort):
        a waiting one leaves the queue, a running one the batch, and its KV is free for the next admission at once
        (on demand it held its tokens; reserved, its reservation returns). No finished-request metric counts it:
        vLLM's output processor drops an aborted request's state before any is recorded, and a token of the step in
        flight is dropped with it. Found in QA: the emulator ran such a request to max_tokens, holding its KV and a
        batch slot that real vLLM frees. Returns how many were still in the engine."""
        gone = [r for r in reqs if not r.done]
        if not gone:
            return 0
        ids = {id(r) for r in gone}
        if self.kv_policy == "reserve":
            self.kv_reserved -= sum(r.prompt_tokens + r.max_tokens for r in self.running if id(r) in ids)
        self.running = [r for r in self.running if id(r) not in ids]
        self.waiting = deque(r for r in self.waiting if id(r) not in ids)
        for r in gone:
            r.done = r.aborted = True
            r.out.put_nowait(None)
        self.aborts += len(gone)
        self.m.running.set(len(self.running))
        self.m.set_waiting(len(self.waiting))
        self.m.kv.set(self._kv_usage())
        self._wake.set()  # a waiting request may fit now
        return len(gone)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for r in list(self.running) + list(self.waiting):
            r.out.put_nowait(None)

    def _kv_usage(self) -> float:
        blocks = sum(math.ceil((r.prompt_tokens + r.generated if self._decoding(r) else r.prefilled) / BLOCK_SIZE_TOKENS)
                     for r in self.running)
        return min(1.0, blocks * BLOCK_SIZE_TOKENS / self.perf.kv_capacity_tokens)

    @staticmethod
    def _target(r: _Req) -> int:
        """Tokens `r` prefills: its prompt, and after a preemption the tokens it had generated too."""
        return r.prompt_tokens + r.recompute

    def _decoding(self, r: _Req) -> bool:
        return r.prefilled >= self._target(r)

    def _held(self, r: _Req) -> int:
        """KV tokens a running request holds for on-demand admission: decoding, its prompt and what it generated;
        prefilling, its whole prefill (as the simulator counts it)."""
        return r.prompt_tokens + r.generated if self._decoding(r) else self._target(r)

    def _preempt_for_decodes(self) -> bool:
        """On demand: while the decodes' next tokens do not fit, preempt the most recently admitted running request
        (vLLM's FCFS policy: the last of its running list). True when one was preempted."""
        cap = self.perf.kv_capacity_tokens
        preempted = False
        while len(self.running) > 1:
            decoding = sum(1 for r in self.running if self._decoding(r))
            if sum(self._held(r) for r in self.running) + decoding <= cap:
                break
            victim = self.running.pop()
            victim.recompute = victim.generated
            victim.prefilled = 0
            self.waiting.appendleft(victim)
            self.preemptions += 1
            self.m.num_preemptions.inc()
            preempted = True
        return preempted

    MAX_LAG_S = 1.0
    """Most emulated seconds the virtual clock may trail the wall before it resyncs."""

    def _step_start(self) -> float:
        """Wall-monotonic start of the next step on the virtual timeline (see __init__)."""
        now = time.monotonic()
        if self._idle:
            self._idle = False
            return max(self._step_end, now)
        if now - self._step_end > self.MAX_LAG_S * self.time_scale:
            self.resyncs += 1
            if self.resyncs & (self.resyncs - 1) == 0:  # the 1st, 2nd, 4th, 8th...: said, without flooding a log
                # Stop 52: `resyncs` was counted and never shown; an emulator that cannot keep its clock now says so.
                log.warning("emulated %s: the engine fell %.2f emulated s behind the wall (%d times so far): this "
                            "machine cannot keep up at --time-scale %g, latencies read long (a larger --time-scale)",
                            self.model_name, (now - self._step_end) / self.time_scale, self.resyncs, self.time_scale)
            return now
        return self._step_end

    async def _loop(self) -> None:
        p = self.perf
        while True:
            if not self.running and not self.waiting:
                self._wake.clear()
                self._idle = True
                await self._wake.wait()
            # --- schedule one step (vLLM V1: running requests first, then admit waiting FCFS)
            on_demand = self.kv_policy == "on_demand"
            preempted = on_demand and self._preempt_for_decodes()
            held = sum(self._held(r) for r in self.running) if on_demand else 0
            budget = p.max_batched_tokens
            decodes = [r for r in self.running if self._decoding(r)]
            budget -= len(decodes)
            sum_ctx = sum(r.prompt_tokens + r.generated for r in decodes)
            chunks: list[tuple[_Req, int]] = []
            start = self._step_start()
            if not self.running and self.waiting:  # nothing to do before the first arrival: jump to it
                start = max(start, self.waiting[0].arrival * self.time_scale)
            for r in self.running:
                if not self._decoding(r) and budget > 0:
                    n = min(self._target(r) - r.prefilled, budget)
                    chunks.append((r, n))
                    budget -= n
            while (self.waiting and budget > 0 and len(self.running) < p.max_num_seqs and not preempted
                   and self.waiting[0].arrival * self.time_scale <= start):  # arrived by this step's (virtual) start
                r = self.waiting[0]
                if on_demand:
                    if self.running and held + self._target(r) > p.kv_capacity_tokens:
                        break
                    held += self._target(r)
                else:
                    need = r.prompt_tokens + r.max_tokens
                    if self.kv_reserved + need > p.kv_capacity_tokens:
                        break
                    self.kv_reserved += need
                self.waiting.popleft()
                if r.admitted is None:  # a resumed request keeps its first admission
                    r.admitted = start / self.time_scale
                    self.m.queue.observe(r.admitted - r.arrival)
                    self.m.prefix_queries.inc(r.prompt_tokens)
                self.running.append(r)
                n = min(self._target(r) - r.prefilled, budget)  # a remote-prefilled prompt has its KV already
                chunks.append((r, n))
                budget -= n
            if not decodes and not chunks:
                # waiting requests that cannot be admitted while nothing runs are rejected at submit,
                # so this only happens transiently; yield and retry
                self._wake.clear()
                self._idle = True
                await self._wake.wait()
                continue
            pre_tokens = sum(n for _, n in chunks)
            pre_isl2 = sum(chunk_cost_isl2(r.prefilled, n) for r, n in chunks)
            step_ms = mixed_step_ms(p, len(decodes), sum_ctx, pre_tokens, pre_isl2)
            if self.faults is not None and self.faults.step_jitter > 0:
                if self._jitter_rng is None:
                    self._jitter_rng = random.Random(self.faults.jitter_seed)
                step_ms *= 1.0 + self.faults.step_jitter * (2.0 * self._jitter_rng.random() - 1.0)
            self.m.running.set(len(self.running))
            self.m.set_waiting(len(self.waiting))
            # Back-to-back steps are timed against absolute deadlines, so the event loop's
            # millisecond timer overshoot does not pile up into a staircase of slow steps.
            self._step_end = start + step_ms / 1e3 * self.time_scale
            await asyncio.sleep(max(0.0, self._step_end - time.monotonic()))
            # --- apply the step, stamped with its scheduled (virtual) end
            t = self._step_end / self.time_scale
            self.steps += 1
            emitted = 0
            completed_prompt_tokens = 0
            decodes = [r for r in decodes if not r.aborted]  # dropped while the step ran (abort)
            chunks = [(r, n) for r, n in chunks if not r.aborted]
            for r in decodes:
                self.m.itl.observe(t - (r.last_token or t))
                r.generated += 1
                r.last_token = t
                r.out.put_nowait(1)
                emitted += 1
            for r, n in chunks:
                r.prefilled += n
                if r.recompute and self._decoding(r):  # a resumed request: its next token, not a first one
                    completed_prompt_tokens += self._target(r)
                    self.m.itl.observe(t - (r.last_token or t))
                    r.generated += 1
                    r.last_token = t
                    r.out.put_nowait(1)
                    emitted += 1
                elif self._decoding(r):
                    r.generated = 1
                    completed_prompt_tokens += r.prompt_tokens
                    r.first_token = r.last_token = t
                    self.m.ttft.observe(t - r.arrival)
                    self.m.prompt_tokens.inc(r.prompt_tokens)
                    r.out.put_nowait(1)
                    emitted += 1
            # vLLM V1's IterationStats: per output batch, generated tokens plus the whole prompt of each
            # request whose prefill completed in it (a partial prefill chunk counts nothing); a step
            # with no output records no iteration.
            if emitted:
                self.m.iter_tokens.observe(completed_prompt_tokens + emitted)
            self.m.generation_tokens.inc(emitted)
            self.tokens_generated_total += emitted
            still: list[_Req] = []
            for r in self.running:
                if r.generated >= r.max_tokens:
                    self._finish(r, t, r.finish[0])
                else:
                    still.append(r)
            self.running = still
            self.m.running.set(len(self.running))
            self.m.set_waiting(len(self.waiting))
            self.m.kv.set(self._kv_usage())
            tokens_step = pre_tokens + len(decodes)
            self.m.est_flops.inc(2.0 * self._weights * tokens_step)
            self.m.est_read.inc(self._weight_bytes + p.kv_bytes_per_token * (sum_ctx + pre_tokens))
            if self.iteration_log is not None:
                self.iteration_log(iteration_line(self.steps - 1, t, len(chunks), pre_tokens, len(decodes), step_ms,
                                                  self._kv_usage()))
            if self.on_token is not None:
                self.on_token(self)

    def _finish(self, r: _Req, t: float, reason: str) -> None:
        r.done = True
        if self.kv_policy == "reserve":
            self.kv_reserved -= r.prompt_tokens + r.max_tokens
        self.m.success[reason].inc()
        self.m.req_prompt.observe(r.prompt_tokens)
        self.m.req_gen.observe(r.generated)
        self.m.max_tokens_param.observe(r.max_tokens)
        self.m.e2e.observe(t - r.arrival)
        if r.first_token is not None:
            self.m.prefill_time.observe(r.first_token - (r.admitted or r.arrival))
            self.m.decode_time.observe(t - r.first_token)
            self.m.inference_time.observe(t - (r.admitted or r.arrival))
            if r.generated > 1:
                self.m.tpot.observe((t - r.first_token) / (r.generated - 1))
        r.out.put_nowait(None)


_WORDS = ("the", "of", "and", "to", "in", "a", "is", "that", "for", "it")


def _client_gone(rid: str, engine: EmulatedEngine, reqs: Sequence[_Req]) -> None:
    """A stream whose client closed its connection stops writing, with one line: as vLLM's API server, whose
    disconnect is no error. (Found in QA: aiohttp's "Error handling request" traceback, ClientConnectionResetError:
    Cannot write to closing transport, at ERROR.) The engine requests behind it are aborted (EmulatedEngine.abort),
    as vLLM aborts a request whose client disconnected, so none is left running or waiting."""
    n = engine.abort(reqs)
    log.info("%s: the client closed its connection mid-stream; its stream stops%s", rid,
             f" and {n} engine request{'' if n == 1 else 's'} aborted" if n else "")


async def _end_stream(resp: web.StreamResponse, head: dict[str, object], usage: dict[str, int] | None) -> None:
    """A completion stream's end as vLLM 0.26 writes it: with include_usage a chunk of no choices carrying `usage`
    (`head`: its id, object, created, model), then ``data: [DONE]``. Only this chunk has a ``usage`` key: vLLM's
    completion_stream_generator writes a content chunk with model_dump_json(exclude_unset=True), so its unset usage is
    left out, not null (found in QA: every content chunk read ``"usage": null``)."""
    if usage is not None:
        await resp.write(f"data: {json.dumps({**head, 'choices': [], 'usage': usage})}\n\n".encode())
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """An OpenAI usage object (vLLM's UsageInfo)."""
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def _token_text(i: int) -> str:
    return " " + _WORDS[i % len(_WORDS)]


def _text_chars(i: int) -> int:
    """Characters in the text of the first i tokens."""
    return (i // len(_WORDS)) * sum(len(w) + 1 for w in _WORDS) + sum(len(w) + 1 for w in _WORDS[:i % len(_WORDS)])


def _token_id(i: int) -> int:
    """The id of the i-th generated token (any fixed id in every tokenizer's range; 100 + word index)."""
    return 100 + i % len(_WORDS)


class EmulatedServer:
    """The HTTP face of one replica (an aiohttp app around an :class:`EmulatedEngine`)."""

    _ids = itertools.count()

    def __init__(self, perf: VariantPerf, model_name: str | None = None, *, time_scale: float = 1.0,
                 max_model_len: int | None = None, faults: Faults | None = None,
                 kv_connector: KvConnectorEmulation | None = None, iteration_log: Callable[[str], None] | None = None,
                 kv_policy: KvPolicy = "on_demand"):
        check_perf(perf, f"emulator {perf.model}/{perf.gpu}/tp{perf.tp}")
        self.kv_policy: KvPolicy = kv_policy
        """How the engine holds KV (module doc): on demand with preemption, as vLLM 0.26, or reserved at admission."""
        self.iteration_log = iteration_log
        """Where the engine's per-step lines go (vLLM's --enable-logging-iteration-details); None: nowhere."""
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        self.perf = perf
        self.model_name = model_name or perf.model
        self.time_scale = time_scale
        # vLLM caps max_model_len by what one sequence can hold in the KV cache.
        self.max_model_len = min(max_model_len or 131072, perf.kv_capacity_tokens)
        self.faults = faults or Faults()
        self.metrics = _Metrics(self.model_name, perf, self.max_model_len)
        self.kv_connector = kv_connector
        """Disaggregated-pair role (planner/simulate/kvconnector.py); None: a plain instance."""
        if kv_connector is not None:
            kv_connector.register(self.metrics.registry, self.model_name)
        self.engine: EmulatedEngine | None = None
        self.port: int | None = None
        self.host = "127.0.0.1"
        self._runner: web.AppRunner | None = None
        self._dead = False
        self._streams: set[web.StreamResponse] = set()
        self._created = int(time.time())

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --------------------------------------------------------------- lifecycle (inside the loop)
    async def astart(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.engine = EmulatedEngine(self.perf, self.model_name, self.time_scale, self.max_model_len, self.metrics,
                                     self.kv_policy)
        self.engine.on_token = self._check_kill
        self.engine.iteration_log = self.iteration_log
        self.engine.faults = self.faults
        self.engine.start()
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/version", self._version)
        self._runner, self.port = await serve_app(app, host, port)

    async def astop(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _check_kill(self, engine: EmulatedEngine) -> None:
        k = self.faults.kill_after_tokens
        if k is not None and not self._dead and engine.tokens_generated_total >= k:
            self._dead = True
            asyncio.get_running_loop().create_task(self._die())

    async def _die(self) -> None:
        """Abrupt death: drop every open connection without a clean end, then close the port."""
        for s in list(self._streams):
            tr = s._req.transport if s._req is not None else None
            if tr is not None:
                tr.abort()
        await self.astop()

    # --------------------------------------------------------------- handlers
    async def _health(self, request: web.Request) -> web.Response:
        if self.faults.health_delay_s > 0:
            await asyncio.sleep(self.faults.health_delay_s)
        return web.Response(status=self.faults.health_status)

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": EMULATED_VLLM_VERSION,
                                  EMULATOR_VERSION_KEY: {"time_scale": self.time_scale}})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{
            "id": self.model_name, "object": "model", "created": self._created, "owned_by": "vllm",
            "root": self.model_name, "parent": None, "max_model_len": self.max_model_len}]})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @staticmethod
    def _error(status: int, msg: str, err_type: str = "BadRequestError", param: str | None = None) -> web.Response:
        return web.json_response(error_body(status, msg, err_type, param), status=status)

    @classmethod
    def _refuse(cls, exc: BadRequest) -> web.Response:
        """The error response of a refused request: its status, type and parameter, as vLLM answers it."""
        return cls._error(exc.status, str(exc), exc.err_type, exc.param)

    def _parse(self, body: object) -> tuple[int, int, bool, bool, str]:
        if not isinstance(body, dict):
            raise BadRequest("request body must be a JSON object")
        # found in QA: a model it does not serve was HTTP 400 BadRequestError, where vLLM answers 404 NotFoundError
        # (and a client telling a wrong name from a bad request by the status read it as a bad body)
        # an absent, null or empty model is the served one, as vLLM's _is_model_supported takes it (found in QA:
        # "model": null was a 404 where vLLM serves its only model)
        model = body.get("model") or self.model_name
        if model != self.model_name:
            raise ModelNotFound(f"The model `{model}` does not exist.")
        prompt = body.get("prompt")
        if isinstance(prompt, str):
            n_prompt = max(1, math.ceil(len(prompt) / CHARS_PER_TOKEN))
        elif isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
            n_prompt = len(prompt)
        elif isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            return self._parse({**body, "prompt": prompt[0]})
        else:
            raise BadRequest("prompt must be a string or a non-empty list of token ids (one prompt per request in this emulator)")
        max_tokens = body.get("max_tokens", DEFAULT_MAX_TOKENS)
        # vLLM 0.26's context checks and their words (serving's _validate_input; found in QA: the emulator answered
        # vLLM <= 0.9's 'However, you requested N tokens (P in the messages, M in the completion)', which a client
        # parsing 0.26's 'your request has P input tokens' does not read, and a prompt filling the context with
        # max_tokens null read 'max_tokens must be an integer >= 1, got 0')
        if max_tokens is None:
            if n_prompt >= self.max_model_len:
                raise BadRequest(f"This model's maximum context length is {self.max_model_len} tokens. However, your request "
                                 f"has {n_prompt} input tokens. Please reduce the length of the input messages.")
            max_tokens = self.max_model_len - n_prompt
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise BadRequest(f"max_tokens must be an int, but is of type {type(max_tokens).__name__}", param="max_tokens")
        if max_tokens < 1:  # SamplingParams._verify_args
            raise BadRequest(f"max_tokens must be at least 1, got {max_tokens}.", param="max_tokens")
        if n_prompt + max_tokens > self.max_model_len:
            raise BadRequest(f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum context "
                             f"length is {self.max_model_len} tokens and your request has {n_prompt} input tokens "
                             f"({max_tokens} > {self.max_model_len} - {n_prompt}).", param="max_tokens")
        self._check_sampling(body, max_tokens)
        stream = bool(body.get("stream", False))
        opts = body.get("stream_options") or {}
        include_usage = bool(opts.get("include_usage", False)) if isinstance(opts, dict) else False
        self._want_ids = bool(body.get("return_token_ids", False))
        # vLLM's should_include_usage: continuous_usage_stats counts only beside include_usage
        self._continuous_usage = include_usage and isinstance(opts, dict) and bool(opts.get("continuous_usage_stats", False))
        return n_prompt, max_tokens, stream, include_usage, model

    @staticmethod
    def _check_sampling(body: dict[str, object], max_tokens: int) -> None:
        """Refuse the sampling fields vLLM 0.26's SamplingParams._verify_args refuses, in its words (found in QA: the
        emulator served temperature 3, min_tokens 50 with max_tokens 10, and a stop list holding "", which vLLM answers
        with a 400). Within range they change nothing here but `stop` (and `min_tokens` before it): generation runs to
        max_tokens or to a stop string its synthetic text meets (module doc)."""
        t = body.get("temperature")
        if t is not None:
            if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
                raise BadRequest(f"temperature must be a finite number, got {t!r}.", param="temperature")
            if t < 0:
                raise BadRequest(f"temperature must be non-negative, got {t}.", param="temperature")
            if t > MAX_TEMPERATURE:
                raise BadRequest(f"temperature must be in [0, 2], got {t}.", param="temperature")
        m = body.get("min_tokens")
        if m is not None:
            if not isinstance(m, int) or isinstance(m, bool):
                raise BadRequest(f"min_tokens must be an int, but is of type {type(m).__name__}", param="min_tokens")
            if m < 0:
                raise BadRequest(f"min_tokens must be greater than or equal to 0, got {m}.")
            if m > max_tokens:
                raise BadRequest(f"min_tokens must be less than or equal to max_tokens={max_tokens}, got {m}.")
        stop = body.get("stop")
        if stop is not None and not isinstance(stop, str) and not (
                isinstance(stop, list) and all(isinstance(x, str) for x in stop)):
            # vLLM's CompletionRequest types it str | list[str] | None: anything else fails its validation (a 400)
            raise BadRequest(f"stop must be a string or a list of strings, got {stop!r}.", param="stop")
        if stop == "" or (isinstance(stop, list) and any(not s for s in stop)):
            raise BadRequest("stop cannot contain an empty string.")

    @staticmethod
    def _parse_n(body: dict[str, object]) -> int:
        """The request's ``n``, sequences per prompt (absent or null: 1); below 1 or not an integer is a 400, as
        vLLM's SamplingParams._verify_args refuses it ('n must be at least 1, got 0.')."""
        n = body.get("n")
        if n is None:
            return 1
        if not isinstance(n, int) or isinstance(n, bool):
            raise BadRequest(f"n must be an int, but is of type {type(n).__name__}")
        if n < 1:
            raise BadRequest(f"n must be at least 1, got {n}.")
        t = body.get("temperature")
        # greedy sampling gives one sequence: vLLM's _verify_greedy_sampling refuses n > 1 with it (found in QA: the
        # emulator served n = 3 at temperature 0, three choices)
        if n > 1 and isinstance(t, (int, float)) and 0 <= t < SAMPLING_EPS:
            raise BadRequest(f"n must be 1 when using greedy sampling, got {n}.")
        return n

    async def _completions_batch(self, request: web.Request, body: dict[str, object], prompts: list[object]) -> web.StreamResponse:
        """A list of prompts, or one prompt with ``n`` > 1, in one request (OpenAI batch form): ``n`` engine requests
        per prompt, all submitted at once (so an idle engine schedules them together, as vLLM's frontend adds a list's
        prompts back to back); choices in prompt order, prompt ``p``'s j-th sequence at index p x n + j, and each
        prompt's tokens counted once in usage, as vLLM's request_output_to_completion_response numbers and counts them
        (found in QA: ``n`` was ignored, one choice answered for n = 3). Streamed, as vLLM's completion_stream_generator
        (found in QA: a stream of n > 1 was a 400 where vLLM streams it): see :meth:`_stream_many`."""
        try:
            n_seq = self._parse_n(body)
            parsed = [self._parse({**body, "prompt": p}) for p in prompts]
            kvc = self.kv_connector
            if kvc is not None and kvc.hands_off(body, request.headers.get("X-Request-Id")):
                # found in QA: such a request took this batch path, the producer answered without kv_transfer_params
                # and the consumer prefilled the prompts itself, with no transfer (kvconnector.py's module doc)
                raise BadRequest(f"a KV-transfer request (kv_transfer_params or a P2P request id) must be one prompt with "
                                 f"n = 1, got {len(prompts)} prompt(s) with n = {n_seq}: send one request per sequence",
                                 param="n")
        except BadRequest as exc:
            return self._refuse(exc)
        want_ids, continuous = self._want_ids, self._continuous_usage
        assert self.engine is not None
        base = f"cmpl-{next(self._ids)}"  # vLLM's request id; its engine requests are f"{request_id}-{i}"
        stop_at = _stop_at(body)
        reqs = [_Req.asked(f"{base}-{i * n_seq + j}", n, mt, self.engine.now(), stop_at)
                for i, (n, mt, _s, _u, _m) in enumerate(parsed) for j in range(n_seq)]
        for r in reqs:
            self.engine.submit(r)
        _n, _mt, stream, include_usage, model = parsed[0]
        n_p = sum(n for n, *_ in parsed)
        if stream:
            return await self._stream_many(request, base, reqs, n_p, model, include_usage, want_ids, continuous)
        for r in reqs:
            while await r.out.get() is not None:
                pass
            if not r.done:
                raise web.HTTPServiceUnavailable()
        choices = [{"index": i, "text": r.text(0, r.generated), "logprobs": None,
                    "finish_reason": r.finish[0], "stop_reason": r.finish[1]} for i, r in enumerate(reqs)]
        n_g = sum(r.generated for r in reqs)
        return web.json_response({"id": base, "object": "text_completion", "created": int(time.time()), "model": model,
                                  "choices": choices, "usage": {"prompt_tokens": n_p, "completion_tokens": n_g, "total_tokens": n_p + n_g}})

    async def _stream_many(self, request: web.Request, rid: str, reqs: list[_Req], n_prompt_total: int, model: str,
                           include_usage: bool, want_ids: bool, continuous: bool = False) -> web.StreamResponse:
        """The SSE stream of several engine requests (n > 1, or a list of prompts), as vLLM 0.26's
        completion_stream_generator writes it: the engine requests' outputs merged as they come (its
        merge_async_iterators), each chunk one choice whose ``index`` is the choice's (prompt p's j-th sequence:
        p x n + j), the last tokens' chunk of each carrying its finish reason, and with ``include_usage`` a final
        chunk of no choices counting every prompt's tokens once and every sequence's generated tokens. `continuous`
        (``stream_options.continuous_usage_stats``): each content chunk's usage is its choice's prompt and that
        choice's tokens so far, as vLLM's include_continuous_usage writes it."""
        assert self.engine is not None
        merged: asyncio.Queue[tuple[int, int | None]] = asyncio.Queue()

        async def forward(i: int, r: _Req) -> None:
            while True:
                item = await r.out.get()
                merged.put_nowait((i, item))
                if item is None:
                    return

        forwarders = [asyncio.ensure_future(forward(i, r)) for i, r in enumerate(reqs)]
        created = int(time.time())
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        self._streams.add(resp)
        try:
            sent = [0] * len(reqs)
            open_streams = len(reqs)
            while open_streams:
                batch = [await merged.get()]
                # the API server's output processing for this step, as in the single stream: outputs that come meanwhile
                # join this round, each choice's tokens in one chunk
                lag_s = FRONTEND_S_PER_RUNNING_REQUEST * len(self.engine.running) * self.time_scale
                if lag_s >= MIN_LAG_WALL_S:
                    await asyncio.sleep(lag_s)
                while not merged.empty():
                    batch.append(merged.get_nowait())
                tokens: dict[int, int] = {}  # choice index -> tokens this round, in order of arrival
                ended: set[int] = set()
                for i, item in batch:
                    if item is None:
                        ended.add(i)
                    else:
                        tokens[i] = tokens.get(i, 0) + 1
                open_streams -= len(ended)
                for i in dict.fromkeys(i for i, _ in batch):
                    n, last = tokens.get(i, 0), i in ended and reqs[i].done
                    if n == 0 and not last:  # the engine stopped under it: no chunk
                        continue
                    total = sum(sent)
                    if self.faults.malformed_stream_after_tokens is not None and total <= self.faults.malformed_stream_after_tokens < total + n:
                        await resp.write(b"data: {not json\n\n")
                    choice: dict[str, object] = {"index": i, "text": reqs[i].text(sent[i], sent[i] + n), "logprobs": None,
                                                 "finish_reason": reqs[i].finish[0] if last else None,
                                                 "stop_reason": reqs[i].finish[1] if last else None}
                    if want_ids:
                        choice["token_ids"] = [_token_id(k) for k in range(sent[i], sent[i] + n)]
                    chunk: dict[str, object] = {"id": rid, "object": "text_completion", "created": created, "model": model,
                                                "choices": [choice]}
                    if continuous:
                        chunk["usage"] = _usage(reqs[i].prompt_tokens, sent[i] + n)
                    await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    sent[i] += n
            if not all(r.done for r in reqs):  # engine stopped under us: drop without a clean end
                if request.transport is not None:
                    request.transport.abort()
                return resp
            n_g = sum(r.generated for r in reqs)
            await _end_stream(resp, {"id": rid, "object": "text_completion", "created": created, "model": model},
                              {"prompt_tokens": n_prompt_total, "completion_tokens": n_g,
                               "total_tokens": n_prompt_total + n_g} if include_usage else None)
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError among them: the client went away
            _client_gone(rid, self.engine, reqs)
        finally:
            for t in forwarders:
                t.cancel()
            self._streams.discard(resp)
        return resp

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if self._dead or self.engine is None:
            raise web.HTTPServiceUnavailable()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(400, "request body is not valid JSON")
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if isinstance(prompt, list) and len(prompt) > 1 and all(isinstance(p, (str, list)) for p in prompt):
            return await self._completions_batch(request, body, prompt)
        try:
            n_prompt, max_tokens, stream, include_usage, model = self._parse(body)
            many = self._parse_n(body) > 1
        except BadRequest as exc:
            return self._refuse(exc)
        if many:  # n sequences of the one prompt: the batch form's answer
            return await self._completions_batch(request, body, [prompt])
        want_ids, continuous = self._want_ids, self._continuous_usage
        rid = f"cmpl-{next(self._ids)}"
        kvc, kv_params = self.kv_connector, None
        remote = kvc is not None and kvc.is_remote_prefill(body, request.headers.get("X-Request-Id"))
        if remote:  # the prompt's KV arrives from the prefill instance; vLLM recomputes its last token
            await kvc.receive(n_prompt, self.time_scale)  # type: ignore[union-attr]
        elif kvc is not None:
            kv_params = kvc.producer_params(body, self.host, self.port, n_prompt)
        req = _Req.asked(rid, n_prompt, max_tokens, self.engine.now(), _stop_at(body))
        req.prefilled = n_prompt - 1 if remote else 0
        self.engine.submit(req)
        created = int(time.time())

        def usage() -> dict[str, int]:
            return {"prompt_tokens": n_prompt, "completion_tokens": req.generated, "total_tokens": n_prompt + req.generated}

        if not stream:
            while await req.out.get() is not None:
                pass
            if not req.done:
                raise web.HTTPServiceUnavailable()
            text = req.text(0, req.generated)
            return web.json_response({"id": rid, "object": "text_completion", "created": created, "model": model,
                                      "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": req.finish[0],
                                                   "stop_reason": req.finish[1]}],
                                      "usage": usage(), **({"kv_transfer_params": kv_params} if kv_params else {})})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        self._streams.add(resp)
        try:
            sent = 0
            ended = finished = False
            while not ended:
                item = await req.out.get()
                if item is None:
                    break
                # The API server's output processing for this step (per running request): tokens the
                # engine emits meanwhile join this chunk, as in vLLM's merged streaming deltas.
                lag_s = FRONTEND_S_PER_RUNNING_REQUEST * len(self.engine.running) * self.time_scale
                if lag_s >= MIN_LAG_WALL_S:  # shorter waits only cost event-loop turns (timers are ~1 ms)
                    await asyncio.sleep(lag_s)
                n = 1
                while not req.out.empty():
                    nxt = req.out.get_nowait()
                    if nxt is None:
                        ended = True
                        break
                    n += 1
                if self.faults.malformed_stream_after_tokens is not None and sent <= self.faults.malformed_stream_after_tokens < sent + n:
                    await resp.write(b"data: {not json\n\n")
                # the last tokens' chunk carries the finish reason, as vLLM's completion_stream_generator sends
                # output.finish_reason with the final delta (found in QA: it came on an extra chunk of empty text)
                last = ended and req.done
                choice = {"index": 0, "text": req.text(sent, sent + n), "logprobs": None,
                          "finish_reason": req.finish[0] if last else None, "stop_reason": req.finish[1] if last else None}
                if want_ids:
                    choice["token_ids"] = [_token_id(i) for i in range(sent, sent + n)]
                chunk = {"id": rid, "object": "text_completion", "created": created, "model": model, "choices": [choice]}
                if continuous:  # stream_options.continuous_usage_stats: usage so far in every chunk, as vLLM
                    chunk["usage"] = _usage(n_prompt, sent + n)
                await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
                sent += n
                finished = last
            if not req.done:  # engine stopped under us: drop without a clean end
                if request.transport is not None:
                    request.transport.abort()
                return resp
            if not finished:  # the end came apart from the last tokens (the engine queues them together): say it alone
                fin = {"id": rid, "object": "text_completion", "created": created, "model": model,
                       "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": req.finish[0],
                                    "stop_reason": req.finish[1]}]}
                if continuous:
                    fin["usage"] = _usage(n_prompt, sent)
                await resp.write(f"data: {json.dumps(fin)}\n\n".encode())
            await _end_stream(resp, {"id": rid, "object": "text_completion", "created": created, "model": model},
                              usage() if include_usage else None)
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError among them: the client went away
            _client_gone(rid, self.engine, [req])
        finally:
            self._streams.discard(resp)
        return resp


class EmulatorFleet:
    """Several emulated replicas in one process, on distinct loopback ports, served by one background
    thread with its own event loop. Usable from pytest: ``with EmulatorFleet(perf, replicas=2) as f: f.urls``.
    """

    def __init__(self, perf: VariantPerf | list[VariantPerf], replicas: int = 1, *, model_name: str | None = None,
                 time_scale: float = 1.0, host: str = "127.0.0.1", base_port: int = 0, max_model_len: int | None = None,
                 iteration_log: Callable[[str], None] | None = None, kv_policy: KvPolicy = "on_demand"):
        perfs = perf if isinstance(perf, list) else [perf] * replicas
        self.kv_policy: KvPolicy = kv_policy
        if not perfs:
            raise ValueError("an emulator fleet needs at least one replica")
        self.iteration_log = iteration_log
        self.host = host
        self.base_port = base_port
        self.time_scale = time_scale
        self.model_name = model_name
        self.max_model_len = max_model_len
        self.servers: list[EmulatedServer] = [self._make(p) for p in perfs]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _make(self, perf: VariantPerf) -> EmulatedServer:
        return EmulatedServer(perf, self.model_name, time_scale=self.time_scale, max_model_len=self.max_model_len,
                              iteration_log=self.iteration_log, kv_policy=self.kv_policy)

    @property
    def urls(self) -> list[str]:
        return [s.url for s in self.servers]

    def _call(self, coro: Coroutine[object, object, T], timeout: float = 30.0) -> T:
        assert self._loop is not None, "fleet not started"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> EmulatorFleet:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="emulator-fleet", daemon=True)
        self._thread.start()
        for i, s in enumerate(self.servers):
            self._call(s.astart(self.host, self.base_port + i if self.base_port else 0))
        return self

    def add_replica(self, perf: VariantPerf | None = None) -> EmulatedServer:
        """Start one more replica (e.g. the controller scaled a pool up); returns it."""
        s = self._make(perf or self.servers[0].perf)
        port = self.base_port + len(self.servers) if self.base_port else 0
        self._call(s.astart(self.host, port))
        self.servers.append(s)
        return s

    def stop_replica(self, i: int) -> None:
        """Stop replica i cleanly (its port closes; open streams end without [DONE])."""
        self._call(self.servers[i].astop())

    def stop(self) -> None:
        if self._loop is None:
            return
        for s in self.servers:
            try:
                self._call(s.astop())
            except Exception:  # noqa: BLE001 - best effort on shutdown (a killed server is already down)
                pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop.close()
        self._loop = None

    def __enter__(self) -> EmulatorFleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def time_scale_warning(perf: VariantPerf, time_scale: float) -> str | None:
    """What a `time_scale` below 1 distorts, said at `planner emulate`'s start-up; None at 1 or more. Each step
    sleeps `time_scale` x its law's time, but the emulator's own Python work per step (scheduling, metrics, writing
    each running request's stream: more at a larger batch) is not compressed, so a step shorter than that work lasts
    as long as the work, and a client that divides wall time by the time scale reads it long (found by a helper: at
    0.1, batch 32 of llama-3.1-8b/mixed/H100-SXM-80GB/tp1 read 14-19 ms per token on one CPU machine where its laws
    give 7.0; at 1, 7.0). How long that work is depends on the machine and the batch, so no scale is refused and nothing is
    subtracted; `_step_start` warns once the engine falls MAX_LAG_S behind, which a short burst never reaches."""
    if time_scale >= 1.0:
        return None
    step_ms = mixed_step_ms(perf, 1, 1.0, 0, 0)  # the shortest step: one decode at a one-token context
    return (f"warning: --time-scale {time_scale:g} runs each engine step in {time_scale:g}x its laws' time (the "
            f"shortest, a batch-1 decode step of {step_ms:.2f} ms, in {step_ms * time_scale * 1e3:,.0f} us of wall time) "
            "but not the emulator's own Python work per step (scheduling, metrics, each running request's stream: more "
            "at a larger batch): a step shorter than that work lasts as long as the work, so latencies timed on the "
            "wall clock and divided by the time scale read long for it, by an amount this machine and the batch decide "
            "(on one machine, batch 32 at 0.1 read about 2x its law); where latencies matter (a profile), --time-scale 1")


def serve_forever(perf: VariantPerf, *, port: int, replicas: int = 1, host: str = "127.0.0.1", time_scale: float = 1.0,
                  model_name: str | None = None, log_iterations: bool = False, max_model_len: int | None = None) -> None:
    """Blocking entry point of ``planner emulate``: replicas on port, port+1, ... (port 0: ports the OS picks, their
    URLs printed once bound; found in QA: --port 0 said '127.0.0.1:0..0' and never where it listened) until Ctrl-C; with
    `log_iterations`, every step's line on stdout as vLLM's --enable-logging-iteration-details prints it;
    `max_model_len` as vLLM's (a longer prompt + max_tokens is a 400)."""
    fleet = EmulatorFleet(perf, replicas, model_name=model_name, time_scale=time_scale, host=host, base_port=port,
                          max_model_len=max_model_len,
                          iteration_log=(lambda line: print(line, flush=True)) if log_iterations else None)
    fleet.start()
    if port == 0:  # the OS picked the ports: where to connect is said once they are bound
        print("listening on " + " ".join(fleet.urls), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.stop()
