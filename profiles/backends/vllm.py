"""vLLM backend: launch ``vllm serve`` (or attach to a running endpoint) and measure it over HTTP.

Life cycle: launch the server as a subprocess in its own process group (or attach to ``--endpoint``),
wait for ``GET /health`` with a timeout, read the served model and max_model_len from
``GET /v1/models`` and the KV capacity from ``GET /metrics`` (``vllm:cache_config_info``:
num_gpu_blocks x block_size), sweep, and stop the server it started on exit, error or Ctrl-C.

How one point is measured (all requests are OpenAI ``/v1/completions`` with ``stream: true`` and a
prompt of random token ids of exact length, distinct per request so no prefix cache can help):

* prefill (isl, batch): one forward pass of `batch` prompts. Sending the prompts at once would let
  the engine start on the first before the others arrive; so a *blocker* prompt is sent first,
  and the batch while the engine is busy with it: the batch then waits and is scheduled together
  in the next step. Prefill time = last first-token of the batch - the blocker's first token. Both
  pass the same HTTP path, so the client's latency cancels. Median of `repeats`. This is the
  ``--prefill-method blocker`` of the first vLLM runs; its weakness showed on vLLM 0.26.0: a batch
  reaching the engine after the blocker's step ended starts at once, one request a step (FP8
  Llama-3.1-8B: 4 x 512 tokens measured 62 ms where 1 x 2048 takes 35; 128 x 1 anywhere in 1.3-14
  ms), and a short blocker step on an MoE model lets chunked prefill pack the batch into it.
* prefill, ``--prefill-method engine`` (the default): the engine's own clock. vLLM records per request
  ``vllm:request_prefill_time_seconds`` = first-token time - first-scheduled time, both engine-core
  timestamps, so no HTTP, tokenisation or client delay is in it. A point is one non-streamed request
  whose prompt is the list of `batch` prompts (``max_tokens`` 1) on an idle server; its time is the
  change of the histogram's sum over the change of its count, read from ``/metrics`` before and after.
  The list's prompts are added to the engine back to back; a sample where they did not share one step
  (``vllm:iteration_tokens_total`` counted more than one output step) is measured again
  (:func:`engine_prefill_sample`). A batch larger than one step's token budget spreads over steps
  that its requests do not share, so those points (batch > 1 only) use the blocker method above.
  Tried and dropped on vLLM 0.26.0 (2026-12-03, profiles/runs/2026-12-03-s3): a *decoding* blocker
  whose token gaps mark the steps, read on the client: the chunks' client arrival times are not the
  engine's step times (bf16 Llama-3.1-8B 2048 x 1 measured 23.7 ms against 50.5 ms by the blocker
  method and 55 ms client TTFT; 128 x 1 at 2.3 ms, under one decode step).
* decode (batch, context): `batch` streams with prompts of `context - decode_tokens/2` tokens and
  ``ignore_eos``, long enough to outlast the staggered prefills. Steady state = the window where
  every stream is decoding (after the last first token, before the first stream ends). ITL per
  stream = slope of its token timestamps in that window; the point's ITL is the median over streams.
* rate (optional): Poisson arrivals at `rate` req/s of (isl, osl) requests; TTFT and ITL
  percentiles and goodput (requests meeting the SLO per second) -> goodput.csv; the engine's own
  account of each run from ``/metrics`` (steps, queue / prefill / decode times, running and waiting
  gauges; profiles/engine_load.py) -> engine_load.csv.

Emulated servers run on a compressed clock: ``time_scale`` = wall seconds per emulated second, and
every measured wall duration is divided by it.

Errors are :class:`ProfilerError` (a PlannerError: the CLI prints it, exit 2) and say what happened
and where the measured points are; points are written after each one, so they are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import os
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

import httpx

from planner.io.errors import PlannerError
from planner.io.webserve import EMULATOR_VERSION_KEY, error_message
from profiles import engine_load, sweep
from profiles import format as pfmt
from profiles.backends.launch_env import server_env
from profiles.iterations import ITERATION_FLAG, ITERATIONS_FILE, write_iterations

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from planner.io.schema import Dtype

# Token ids drawn for prompts: [100, 10000) exists in every modern tokenizer (vocab >= 32000) and
# skips the low ids where special tokens live (Llama-3: 128000+, Llama-2: 0-2, Qwen: 151643+).
TOKEN_ID_LOW, TOKEN_ID_HIGH = 100, 10_000
# Blocker prompt for prefill points: long enough that its step outlasts sending a batch (a 2048-token
# prefill of an 8B model takes ~60 ms on an H100: profiles/data/llama-3.1-8b), capped by the token budget.
BLOCKER_TOKENS = 2048
# Engine method (module doc): attempts at a sample whose prompts shared one step, and how long the
# histogram may take to show a finished request (it is updated when the response is produced).
ENGINE_ATTEMPTS = 5
ENGINE_METRICS_WAIT_S = 5.0
# Minimum pure-decode gaps per stream for a steady-state ITL (fewer = a noisy slope).
MIN_WINDOW_GAPS = 8
# A decode point whose streams started too far apart to decode together for MIN_WINDOW_GAPS steps (a loaded
# client opens its streams late: CI of stop 28, 16 streams over more than 8 steps) is measured again with
# more tokens per stream (decode_tokens more each time, so the shared window grows by as many steps), at most
# this many times, before the point fails with advice to raise --decode-tokens.
DECODE_WINDOW_RETRIES = 2
DEFAULT_HEALTH_TIMEOUT_S = 900.0  # loading a large model with --load-format dummy still compiles CUDA graphs: minutes
DEFAULT_ATTACH_TIMEOUT_S = 30.0
DEFAULT_REQUEST_TIMEOUT_S = 600.0


class ProfilerError(PlannerError):
    """The server could not be profiled (unreachable, unhealthy, died, answered nonsense)."""


class ServerDied(ProfilerError):
    pass


class MalformedStream(ProfilerError):
    pass


class ShortDecodeWindow(ProfilerError):
    """Fewer than MIN_WINDOW_GAPS steps in which every stream of a decode point was decoding."""


class StreamsNeverTogether(ProfilerError):
    """No step at all in which every stream of a decode point was decoding: the first ended before the last began.
    The server held fewer at once than the grid assumed (its KV cache or max_num_seqs), or the client opened the
    streams too far apart; not a short window (not retried): the point's axis stops (VllmClient.decode_ms says why)."""


# =========================================================================== the server process
@dataclass
class LaunchConfig:
    """How to start ``vllm serve`` for one variant (flags as in vLLM's EngineArgs)."""

    model: str
    """What vLLM loads (a Hugging Face id or a local path)."""
    served_model_name: str
    tp: int = 1
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 256
    gpu_memory_utilization: float = 0.9
    load_format_dummy: bool = True
    max_model_len: int | None = None
    """vllm --max-model-len (None: the model's own context length)."""
    quantization: str | None = None
    """vllm --quantization, e.g. 'fp8' (FP8 weights, per-tensor scales computed at load)."""
    kv_cache_dtype: str | None = None
    """vllm --kv-cache-dtype, e.g. 'fp8' (None = 'auto' = the model dtype)."""
    skip_tokenizer_init: bool = False
    port: int = 8000
    host: str = "127.0.0.1"
    extra_args: list[str] = field(default_factory=list)
    server_cmd: list[str] = field(default_factory=lambda: ["vllm", "serve"])
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment (e.g. CUDA_VISIBLE_DEVICES); launch_env.server_env adds the multi-GPU rules."""

    def argv(self) -> list[str]:
        # `vllm serve MODEL` takes the model as an argument; `python -m vllm.entrypoints.openai.api_server`
        # (what runs where the `vllm` script is not on PATH) takes it as --model.
        model = [self.model] if self.server_cmd and self.server_cmd[-1] == "serve" else ["--model", self.model]
        args = [
            *self.server_cmd, *model,
            "--served-model-name", self.served_model_name,
            "--tensor-parallel-size", str(self.tp),
            "--max-num-batched-tokens", str(self.max_num_batched_tokens),
            "--max-num-seqs", str(self.max_num_seqs),
            "--gpu-memory-utilization", str(self.gpu_memory_utilization),
            "--host", self.host,
            "--port", str(self.port),
            # Prefix caching would let repeated prompt prefixes skip prefill; our prompts are random,
            # but turning it off makes the measurement independent of that.
            "--no-enable-prefix-caching",
        ]
        if self.load_format_dummy:
            args += ["--load-format", "dummy"]
        if self.max_model_len:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.quantization:
            args += ["--quantization", self.quantization]
        if self.kv_cache_dtype:
            args += ["--kv-cache-dtype", self.kv_cache_dtype]
        if self.skip_tokenizer_init:
            args += ["--skip-tokenizer-init"]
        return args + list(self.extra_args)

    @property
    def weight_dtype(self) -> Dtype:
        """The precision contract's weight dtype: 'fp8' with --quantization fp8, else 'bf16'."""
        return "fp8" if (self.quantization or "").lower().startswith("fp8") else "bf16"

    @property
    def kv_dtype(self) -> Dtype:
        """The precision contract's KV dtype: 'fp8' with --kv-cache-dtype fp8*, else 'bf16' ('auto')."""
        return "fp8" if (self.kv_cache_dtype or "").lower().startswith("fp8") else "bf16"

    def engine_flags(self) -> list[str]:
        """The flags for meta.yaml (everything after the model argument)."""
        skip = 1 if self.server_cmd and self.server_cmd[-1] == "serve" else 2
        return self.argv()[len(self.server_cmd) + skip:]

    def engine_env(self) -> dict[str, str]:
        """The launched server's VLLM_* variables, for meta.yaml (the environment it gets: inherited,
        the launch's own, the offline bundle's defaults)."""
        return {k: v for k, v in sorted(server_env(self.env).items()) if k.startswith("VLLM_")}


class ManagedServer:
    """A ``vllm serve`` subprocess we started: its own process group, output to a log file, and
    stopped (SIGINT, then SIGTERM, then SIGKILL to the group) by :meth:`stop` or the context manager."""

    def __init__(self, cfg: LaunchConfig, log_path: Path):
        self.cfg = cfg
        self.log_path = Path(log_path)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.cfg.host}:{self.cfg.port}"

    def start(self) -> ManagedServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(self.cfg.argv(), stdout=self._log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=server_env(self.cfg.env))
        except FileNotFoundError as exc:
            self._log.close()
            raise ProfilerError(f"cannot launch the server: {shlex.join(self.cfg.argv()[:2])}: {exc.strerror}; "
                                "install vLLM (pip install vllm) or attach to a running server with "
                                "--endpoint URL") from None
        return self

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def log_text(self) -> str:
        """The server's log so far ("" when it cannot be read)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self, grace_s: float = 30.0) -> None:
        p = self.proc
        if p is None or p.poll() is not None:
            self._close_log()
            return
        for sig, wait in ((signal.SIGINT, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)
            try:
                p.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self._close_log()

    def _close_log(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# =========================================================================== endpoint facts
def _describe_http_error(exc: Exception) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"connection refused or host unreachable ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"


def wait_healthy(url: str, timeout_s: float, server: ManagedServer | None = None, poll_s: float = 0.5) -> None:
    """Poll GET /health until it answers 200; a server process that exits, or the timeout, is an error."""
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with httpx.Client(timeout=min(10.0, max(1.0, timeout_s))) as client:
        while True:
            if server is not None and server.exit_code() is not None:
                raise ServerDied(f"the server exited with code {server.exit_code()} before it was healthy; "
                                 f"last lines of {server.log_path}:\n{server.log_tail()}")
            try:
                r = client.get(f"{url}/health")
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = _describe_http_error(exc)
            if time.monotonic() >= deadline:
                hint = " (is the endpoint right and the server running?)" if "refused" in last else ""
                raise ProfilerError(f"{url}/health: not healthy after {timeout_s:g} s; last answer: {last}{hint}")
            time.sleep(poll_s)


@dataclass(frozen=True)
class EndpointInfo:
    model: str
    max_model_len: int | None
    kv_capacity_tokens: int
    num_gpu_blocks: int
    block_size: int


def read_kv_capacity(metrics_text: str, url: str = "") -> tuple[int, int]:
    """(num_gpu_blocks, block_size) from vLLM's ``vllm:cache_config_info`` gauge labels."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        families = list(text_string_to_metric_families(metrics_text))
    except Exception as exc:  # noqa: BLE001 - the parser raises bare ValueErrors of many kinds
        raise ProfilerError(f"{url}/metrics: not Prometheus text format ({exc})") from None
    for fam in families:
        if fam.name == "vllm:cache_config_info":
            for s in fam.samples:
                try:
                    return int(s.labels["num_gpu_blocks"]), int(s.labels["block_size"])
                except (KeyError, ValueError):
                    raise ProfilerError(f"{url}/metrics: vllm:cache_config_info lacks integer "
                                        f"num_gpu_blocks/block_size labels: {s.labels}") from None
    raise ProfilerError(f"{url}/metrics: no vllm:cache_config_info metric, so the KV capacity is unknown "
                        "(is this a vLLM server? pass --kv-capacity TOKENS to give it)")


def endpoint_info(url: str, timeout_s: float = 30.0) -> EndpointInfo:
    """The served model (first of /v1/models), its max_model_len and the KV capacity."""
    try:
        with httpx.Client(timeout=timeout_s) as c:
            models = c.get(f"{url}/v1/models")
            models.raise_for_status()
            metrics = c.get(f"{url}/metrics")
            metrics.raise_for_status()
    except httpx.HTTPError as exc:
        raise ProfilerError(f"{url}: {_describe_http_error(exc)}") from None
    try:
        entry = models.json()["data"][0]
        model = str(entry["id"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise ProfilerError(f"{url}/v1/models: expected {{'data': [{{'id': MODEL, ...}}]}}, "
                            f"got {models.text[:200]!r}") from None
    blocks, bs = read_kv_capacity(metrics.text, url)
    mml = entry.get("max_model_len")
    return EndpointInfo(model=model, max_model_len=int(mml) if mml else None, kv_capacity_tokens=blocks * bs,
                        num_gpu_blocks=blocks, block_size=bs)


def server_version(url: str) -> str | None:
    """vLLM's GET /version ({"version": "0.x.y"}); None when the server does not say."""
    try:
        r = httpx.get(f"{url}/version", timeout=5.0)
        if r.status_code == 200:
            v = r.json().get("version")
            return f"vllm {v}" if v else None
    except (httpx.HTTPError, ValueError, AttributeError):
        pass
    return None


def emulator_time_scale(url: str) -> float | None:
    """The time_scale (wall seconds per emulated second) pd-planner's emulator states in its GET /version; None when
    the server states none (a real vLLM server, or one that does not answer /version)."""
    try:
        r = httpx.get(f"{url}/version", timeout=5.0)
        ts = r.json().get(EMULATOR_VERSION_KEY, {}).get("time_scale") if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return float(ts) if isinstance(ts, int | float) and math.isfinite(ts) and ts > 0 else None


def check_time_scale(url: str, time_scale: float) -> None:
    """Refuse a --time-scale other than the one the emulator at url runs at: the profiler divides every wall-clock
    latency by --time-scale, so a profile of an emulator at 0.1 taken with --time-scale 1 would be 10x too fast."""
    stated = emulator_time_scale(url)
    if stated is not None and not math.isclose(stated, time_scale, rel_tol=1e-9):
        raise ProfilerError(f"--time-scale {time_scale:g}: the endpoint {url} is pd-planner's emulator running at "
                            f"time scale {stated:g}; give --time-scale {stated:g}")


# =========================================================================== streaming client
@dataclass
class StreamResult:
    """Client-side arrival times (time.monotonic seconds) of the streamed chunks of one request.

    A chunk can carry several tokens (vLLM merges a request's outputs when its API server lags the
    engine, e.g. at batch 128): ``token_counts[i]`` is the number of tokens received up to and
    including chunk i, from the chunk's ``token_ids`` (``return_token_ids``) when the server sends
    them, else one per chunk. ``completion_tokens`` is the server's own count (``usage``)."""

    sent: float
    token_times: list[float]
    completion_tokens: int | None = None
    token_counts: list[int] = field(default_factory=list)
    prompt_tokens: int | None = None
    """The prompt's length as sent (a rate run with a length spread draws one per request)."""

    def __post_init__(self) -> None:
        if not self.token_counts:
            self.token_counts = list(range(1, len(self.token_times) + 1))

    @property
    def first(self) -> float:
        return self.token_times[0]

    @property
    def last(self) -> float:
        return self.token_times[-1]

    @property
    def tokens(self) -> int:
        """Generated tokens: the server's usage count, else what the chunks said."""
        return self.completion_tokens if self.completion_tokens else self.token_counts[-1]

    @property
    def counts_exact(self) -> bool:
        """True when the per-chunk counts add up to the server's usage (each token is placed in time)."""
        return self.completion_tokens is None or self.token_counts[-1] == self.completion_tokens

    def decode_s_per_token(self) -> float | None:
        """(t_last - t_first) / (tokens - 1): the request's mean time per output token after the first."""
        n = self.tokens
        return (self.last - self.first) / (n - 1) if n > 1 and self.last > self.first else None


def decode_itl_s(results: Sequence[StreamResult], batch: int, context: int, decode_tokens: int) -> float:
    """Steady-state seconds per decode step of `batch` streams that ran together (tokens, not chunks).

    Window = after the last stream's first token, before the first stream's last: every stream is
    decoding, so each step emits one token per stream. Per stream, the step time is the time between
    its first and last chunk in the window over the TOKENS between them (chunk token counts); the
    point's value is the median over streams. Where the chunks' token counts do not add up to the
    server's usage count (a server that merges tokens without listing them), the per-request
    (t_last - t_first) / (tokens - 1) is used instead, median over streams.
    """
    start = max(r.first for r in results)
    end = min(r.last for r in results)
    if end <= start:
        # The first stream ended before the last one started: the engine never ran them as one batch (its KV cache
        # or max_num_seqs full, requests queued), or the client sent them too far apart (decode_ms retries, then
        # stops the axis saying which it can be).
        raise StreamsNeverTogether(f"the {batch} streams never decoded together")
    if not all(r.counts_exact for r in results):
        per_req = [v for v in (r.decode_s_per_token() for r in results) if v is not None]
        if not per_req:
            raise ProfilerError(f"decode batch={batch} context={context}: no stream produced 2 or more tokens")
        return statistics.median(per_req)
    slopes = []
    for r in results:
        idx = [i for i, t in enumerate(r.token_times) if start <= t <= end]
        if not idx:
            continue
        i0, i1 = idx[0], idx[-1]
        tokens = r.token_counts[i1] - r.token_counts[i0]
        if tokens >= MIN_WINDOW_GAPS:
            slopes.append((r.token_times[i1] - r.token_times[i0]) / tokens)
    if not slopes:
        raise ShortDecodeWindow(f"decode batch={batch} context={context}: fewer than {MIN_WINDOW_GAPS} steps where all "
                            f"{batch} streams were decoding; raise --decode-tokens (now {decode_tokens})")
    return statistics.median(slopes)


@dataclass(frozen=True)
class EngineCounters:
    """The cumulative engine counters the engine method reads from ``/metrics`` (summed over engines)."""

    prefill_sum_s: float
    prefill_count: int
    output_steps: int


def engine_counters(metrics_text: str, url: str = "") -> EngineCounters:
    """``vllm:request_prefill_time_seconds`` sum and count and ``vllm:iteration_tokens_total`` count."""
    from prometheus_client.parser import text_string_to_metric_families

    want = {"vllm:request_prefill_time_seconds_sum": 0.0, "vllm:request_prefill_time_seconds_count": 0.0,
            "vllm:iteration_tokens_total_count": 0.0}
    seen: set[str] = set()
    try:
        for fam in text_string_to_metric_families(metrics_text):
            for smp in fam.samples:
                if smp.name in want:
                    want[smp.name] += float(smp.value)
                    seen.add(smp.name)
    except Exception as exc:  # noqa: BLE001 - the parser raises bare ValueErrors of many kinds
        raise ProfilerError(f"{url}/metrics: not Prometheus text format ({exc})") from None
    missing = sorted(set(want) - seen)
    if missing:
        raise ProfilerError(f"{url}/metrics: no {', '.join(missing)} (vLLM >= 0.10 exports them); "
                            "use --prefill-method blocker for this server")
    return EngineCounters(prefill_sum_s=want["vllm:request_prefill_time_seconds_sum"],
                          prefill_count=int(want["vllm:request_prefill_time_seconds_count"]),
                          output_steps=int(want["vllm:iteration_tokens_total_count"]))


@dataclass(frozen=True)
class EngineSample:
    """One prefill sample of the engine method: the requests' mean prefill time and the output steps."""

    ms: float
    steps: int

    @property
    def one_step(self) -> bool:
        return self.steps == 1


def engine_prefill_sample(before: EngineCounters, after: EngineCounters, batch: int) -> EngineSample | None:
    """The batch's mean engine prefill time between two scrapes; None unless exactly `batch` requests
    finished in between (another client's request would be mixed in). `steps` counts the engine's
    output steps in between: 1 when the batch's prompts were scheduled together and fit one step."""
    done = after.prefill_count - before.prefill_count
    if done != batch or batch < 1:
        return None
    return EngineSample(ms=(after.prefill_sum_s - before.prefill_sum_s) / batch * 1e3,
                        steps=after.output_steps - before.output_steps)


class VllmClient:
    """Async OpenAI-completions client that records when each streamed token arrives."""

    def __init__(self, url: str, model: str, time_scale: float = 1.0,
                 request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S, seed: int = 0, max_connections: int = 1024):
        self.url = url.rstrip("/")
        self.model = model
        self.time_scale = time_scale
        self.rng = random.Random(seed)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(request_timeout_s, connect=10.0), limits=limits)
        self.busy_wall_s = 0.0
        """Wall seconds spent measuring (the server's GPU was busy for us); / time_scale = emulated GPU time."""

    async def aclose(self) -> None:
        await self.http.aclose()

    def prompt(self, n: int) -> list[int]:
        return [self.rng.randrange(TOKEN_ID_LOW, TOKEN_ID_HIGH) for _ in range(n)]

    async def stream(self, prompt_tokens: int, max_tokens: int) -> StreamResult:
        """One streamed completion; raises ServerDied / MalformedStream / ProfilerError with the cause."""
        body = {"model": self.model, "prompt": self.prompt(prompt_tokens), "max_tokens": max_tokens, "stream": True,
                "ignore_eos": True, "temperature": 0.0, "stream_options": {"include_usage": True},
                # vLLM >= 0.10.2: each chunk lists its token ids, so multi-token chunks are counted.
                "return_token_ids": True}
        sent = time.monotonic()
        times: list[float] = []
        counts: list[int] = []
        usage_tokens = None
        done = False
        try:
            async with self.http.stream("POST", f"{self.url}/v1/completions", json=body) as resp:
                if resp.status_code != 200:
                    msg = error_message((await resp.aread()).decode(errors="replace"))
                    raise ProfilerError(f"{self.url}/v1/completions answered HTTP {resp.status_code}: {str(msg)[:300]}")
                async for line in resp.aiter_lines():
                    if not line or line.startswith(":"):
                        continue
                    if not line.startswith("data:"):
                        raise MalformedStream(f"{self.url}/v1/completions: stream line is not an SSE 'data:' line: "
                                              f"{line[:120]!r}")
                    data = line[5:].strip()
                    if data == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(data)
                    except ValueError:
                        raise MalformedStream(f"{self.url}/v1/completions: stream chunk is not JSON: "
                                              f"{data[:120]!r}") from None
                    if not isinstance(chunk, dict):
                        raise MalformedStream(f"{self.url}/v1/completions: stream chunk is not a JSON object: "
                                              f"{data[:120]!r}")
                    now = time.monotonic()
                    choices = chunk.get("choices") or []
                    if choices:
                        ids = choices[0].get("token_ids")
                        if isinstance(ids, list):
                            n = len(ids)
                        else:
                            n = 1 if (choices[0].get("text") or choices[0].get("finish_reason") is None) else 0
                        if n > 0:
                            times.append(now)
                            counts.append((counts[-1] if counts else 0) + n)
                    if chunk.get("usage"):
                        usage_tokens = chunk["usage"].get("completion_tokens")
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError) as exc:
            raise ServerDied(f"{self.url}: the server dropped the connection mid-request "
                             f"({_describe_http_error(exc)})") from None
        except httpx.TimeoutException as exc:
            raise ProfilerError(f"{self.url}: request timed out ({type(exc).__name__})") from None
        if not done:
            raise ServerDied(f"{self.url}: the stream ended without 'data: [DONE]' after {len(times)} tokens "
                             "(server died?)")
        if not times:
            raise MalformedStream(f"{self.url}/v1/completions: the stream carried no tokens")
        return StreamResult(sent=sent, token_times=times, completion_tokens=usage_tokens, token_counts=counts)

    # ------------------------------------------------------------------ points
    async def prefill_e2e_ms(self, isl: int, batch: int) -> float:
        """Client-side TTFT of `batch` prompts of `isl` tokens sent at once to an idle server: first
        request sent -> last first token (ms). Includes HTTP, tokenisation and scheduling overheads."""
        t0 = time.monotonic()
        try:
            results = await asyncio.gather(*(self.stream(isl, 1) for _ in range(batch)))
        finally:
            self.busy_wall_s += time.monotonic() - t0
        return (max(r.first for r in results) - min(r.sent for r in results)) / self.time_scale * 1e3

    async def prefill_ms(self, isl: int, batch: int, blocker_tokens: int) -> float:
        """Time of one prefill step of `batch` prompts of `isl` tokens (blocker method, module doc)."""
        t0 = time.monotonic()
        try:
            blocker = asyncio.create_task(self.stream(blocker_tokens, 1))
            # Let the blocker reach the engine and start its step before the batch is sent.
            await asyncio.sleep(self._blocker_lead_s)
            results = await asyncio.gather(*(self.stream(isl, 1) for _ in range(batch)))
            b = await blocker
        finally:
            self.busy_wall_s += time.monotonic() - t0
        last = max(r.first for r in results)
        return (last - b.first) / self.time_scale * 1e3

    _blocker_lead_s = 0.005
    last_decode_mean_gap_ms: float = math.nan
    """The last decode point's mean time per token after the first over all its streams and tokens (its staggered
    start included), client-side: the same gaps the engine's inter-token histogram averages (decode_engine.csv)."""

    async def metrics_text(self, required: bool = False) -> str | None:
        """``GET /metrics``'s text. A server that answers with an HTTP error has none: None, or ServerDied where
        it is `required`; a dropped connection is ServerDied either way."""
        try:
            r = await self.http.get(f"{self.url}/metrics")
            r.raise_for_status()
        except httpx.HTTPStatusError as exc:
            if required:
                raise ServerDied(f"{self.url}/metrics: {_describe_http_error(exc)}") from None
            return None
        except httpx.HTTPError as exc:
            raise ServerDied(f"{self.url}/metrics: {_describe_http_error(exc)}") from None
        return r.text

    async def counters(self) -> EngineCounters:
        text = await self.metrics_text(required=True)
        assert text is not None  # required: an HTTP error raised
        return engine_counters(text, self.url)

    async def complete_batch(self, isl: int, batch: int) -> None:
        """One non-streamed completion of `batch` prompts of `isl` token ids (a list prompt), max_tokens 1."""
        prompt: list[int] | list[list[int]] = (self.prompt(isl) if batch == 1
                                               else [self.prompt(isl) for _ in range(batch)])
        body = {"model": self.model, "prompt": prompt, "max_tokens": 1, "ignore_eos": True, "temperature": 0.0}
        try:
            r = await self.http.post(f"{self.url}/v1/completions", json=body)
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError) as exc:
            raise ServerDied(f"{self.url}: the server dropped the connection mid-request "
                             f"({_describe_http_error(exc)})") from None
        except httpx.TimeoutException as exc:
            raise ProfilerError(f"{self.url}: request timed out ({type(exc).__name__})") from None
        if r.status_code != 200:
            raise ProfilerError(f"{self.url}/v1/completions answered HTTP {r.status_code}: {r.text[:300]}")

    async def warm_up(self, isl: int, batch: int) -> None:
        """One untimed batch of `batch` prompts of `isl` tokens (VllmRunConfig.prefill_warmup)."""
        await self.complete_batch(isl, batch)

    async def prefill_engine_ms(self, isl: int, batch: int) -> float:
        """Engine-clock prefill time of `batch` prompts of `isl` tokens sharing one step (engine method,
        module doc): up to ENGINE_ATTEMPTS samples until the prompts shared a step."""
        last: EngineSample | None = None
        t0 = time.monotonic()
        try:
            for _ in range(ENGINE_ATTEMPTS):
                before = await self.counters()
                await self.complete_batch(isl, batch)
                waited = time.monotonic()
                while True:
                    after = await self.counters()
                    if (after.prefill_count - before.prefill_count >= batch
                            or time.monotonic() - waited > ENGINE_METRICS_WAIT_S):
                        break
                    await asyncio.sleep(0.005)
                sample = engine_prefill_sample(before, after, batch)
                if sample is None:
                    continue
                last = sample
                if batch == 1 or sample.one_step:
                    break
        finally:
            self.busy_wall_s += time.monotonic() - t0
        if last is None:
            raise ProfilerError(f"{self.url}: vllm:request_prefill_time_seconds did not count exactly {batch} requests "
                                f"for a batch of {batch} in {ENGINE_ATTEMPTS} tries "
                                "(is another client using the server?)")
        return last.ms

    async def calibrate_blocker(self, blocker_tokens: int) -> float:
        """Blocker TTFT alone (wall s); sets the lead before the batch is sent.

        The batch must reach the engine after the blocker's step was scheduled (else chunked prefill
        packs the batch's first chunk into the blocker's step and the measured step is too short:
        seen on vLLM 0.26.0 with Qwen3-30B-A3B, whose request overhead is ~25 ms) and before that
        step ends. The overhead is the TTFT of a 16-token prompt; the lead is that plus a quarter of
        the blocker's own compute, at most 80% of the blocker's TTFT."""
        t0 = time.monotonic()
        small = await self.stream(16, 1)
        r = await self.stream(blocker_tokens, 1)
        self.busy_wall_s += time.monotonic() - t0
        wall = r.first - r.sent
        overhead = min(small.first - small.sent, wall)
        self._blocker_lead_s = max(0.001, min(0.8 * wall, overhead + (wall - overhead) / 4))
        return wall

    async def decode_ms(self, batch: int, context: int, decode_tokens: int,
                        max_batched_tokens: int) -> tuple[float, int]:
        """Steady-state ITL (ms) of `batch` streams at mean context ~`context`; returns (itl_ms, streams used)."""
        prompt = max(1, context - decode_tokens // 2)
        # Streams admitted early decode while later prompts prefill: add the steps that staggering takes.
        stagger = math.ceil(batch * prompt / max_batched_tokens) + 2
        gaps = [0.0, 0.0]  # every stream's (t_last - t_first) and (tokens - 1), over every attempt

        async def attempt(max_tokens: int) -> tuple[float, int]:
            t0 = time.monotonic()
            try:
                results = await asyncio.gather(*(self.stream(prompt, max_tokens) for _ in range(batch)))
            finally:
                self.busy_wall_s += time.monotonic() - t0
            for r in results:
                if r.tokens > 1:
                    gaps[0] += r.last - r.first
                    gaps[1] += r.tokens - 1
            self.last_decode_mean_gap_ms = gaps[0] / gaps[1] / self.time_scale * 1e3 if gaps[1] else math.nan
            return decode_itl_s(results, batch, context, decode_tokens) / self.time_scale * 1e3, len(results)

        try:
            # each retry adds decode_tokens more per stream (DECODE_WINDOW_RETRIES says why); the last error stands
            for k in range(DECODE_WINDOW_RETRIES):
                try:
                    return await attempt(decode_tokens * (k + 1) + stagger)
                except ShortDecodeWindow:
                    continue
            return await attempt(decode_tokens * (DECODE_WINDOW_RETRIES + 1) + stagger)
        except StreamsNeverTogether as exc:
            # Not retried, and larger points of the axis are skipped: a server that cannot hold them would only take
            # longer, and an emulator run faster than its host keeps up with gives steps 1.2-3.3x too long once its
            # streams do overlap (measured by hand at stop 52: --time-scale 0.05, batch 32-256, against 0.25). Both
            # causes are named: the grid kept this point as fitting the KV capacity and max_num_seqs the profile
            # assumes (the message blamed a full KV cache that held 28x the point's tokens).
            slow = (f"; at --time-scale {self.time_scale:g} the client's and an emulator's own delays are "
                    f"{1 / self.time_scale:.0f}x longer on the server's clock (a larger --time-scale)"
                    if self.time_scale < 1 else "")
            raise sweep.StopAxis(f"{exc}: the server held fewer at once (its KV cache or max_num_seqs smaller than the "
                                 f"profile assumes) or the client opened them too far apart{slow}") from None

    async def rate_run(self, rate_rps: float, isl: int, osl: int, n_requests: int, seed: int = 0,
                       isl_scv: float = 0.0, isl_max: int | None = None, osl_scv: float = 0.0,
                       max_len: int | None = None) -> list[StreamResult]:
        """Poisson arrivals (emulated rate) of n_requests (isl, osl) requests; their stream results. With `isl_scv`
        each prompt's length is drawn (seeded) from the clipped log-normal of mean `isl` and that squared CV,
        clipped at `isl_max` (planner/planning/lengths.py), the law the planner sizes such a class with. With
        `osl_scv` each request's max_tokens (its output: the requests ignore EOS) is drawn the same way from mean
        `osl`, from a generator of its own (the prompts and arrivals stay those without it), and clipped where its
        prompt and output fit `max_len` (the server's max model length; None: unclipped)."""
        rng = random.Random(seed)
        t0 = time.monotonic()
        delays, t = [], 0.0
        for _ in range(n_requests):
            t += rng.expovariate(rate_rps) * self.time_scale
            delays.append(t)
        prompts, outs = [isl] * n_requests, [osl] * n_requests
        if isl_scv > 0 or osl_scv > 0:
            import numpy as np

            from planner.planning.lengths import draw_prompt_lengths

            # numpy seeds are non-negative; the warm-up runs use negative ones (VllmRunConfig.rate_warmup_s)
            if isl_scv > 0:
                prompts = [int(x) for x in draw_prompt_lengths(isl, isl_scv, isl_max, n_requests,
                                                               np.random.default_rng(seed % 2**32))]
            if osl_scv > 0:
                drawn = draw_prompt_lengths(osl, osl_scv, None, n_requests, np.random.default_rng([seed % 2**32, 1]))
                outs = [max(1, min(int(x), max_len - k)) if max_len else int(x)
                        for x, k in zip(drawn, prompts, strict=True)]
        try:
            sends = (self._sent_at(d, k, o) for d, k, o in zip(delays, prompts, outs, strict=True))
            return await asyncio.gather(*sends)
        finally:
            self.busy_wall_s += time.monotonic() - t0


    async def trace_run(self, arrivals: Sequence[tuple[float, int, int]]) -> list[StreamResult]:
        """A recorded trace replayed open loop: each (t_s from the trace's first request, prompt tokens, output
        tokens) sent at its own (emulated) time with its own lengths; their stream results, in send order."""
        t0 = time.monotonic()
        try:
            return await asyncio.gather(*(self._sent_at(t * self.time_scale, k, o) for t, k, o in arrivals))
        finally:
            self.busy_wall_s += time.monotonic() - t0

    async def _sent_at(self, delay_s: float, prompt: int, out: int) -> StreamResult:
        """One open-loop request: sent `delay_s` wall seconds from now, its stream's result with its prompt's length."""
        await asyncio.sleep(delay_s)
        r = await self.stream(prompt, out)
        r.prompt_tokens = prompt
        return r


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method) without numpy."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def goodput_row(results: Sequence[StreamResult], rate_rps: float, isl: int, osl: int, time_scale: float,
                slo_ttft_ms: float | None, slo_itl_ms: float | None) -> dict[str, float]:
    """Latency percentiles and goodput of one rate run (emulated ms and requests per emulated second)."""
    ttft = [(r.first - r.sent) / time_scale * 1e3 for r in results]
    itl = [v / time_scale * 1e3 for v in (r.decode_s_per_token() for r in results) if v is not None]
    ok = 0
    for r in results:
        t = (r.first - r.sent) / time_scale * 1e3
        v = r.decode_s_per_token()
        i = v / time_scale * 1e3 if v is not None else 0.0
        if (slo_ttft_ms is None or t <= slo_ttft_ms) and (slo_itl_ms is None or i <= slo_itl_ms):
            ok += 1
    span = (max(r.token_times[-1] for r in results) - min(r.sent for r in results)) / time_scale
    return {"rate_rps": rate_rps, "isl": isl, "osl": osl, "requests": len(results),
            "ttft_ms_p50": percentile(ttft, 50), "ttft_ms_p90": percentile(ttft, 90),
            "ttft_ms_p99": percentile(ttft, 99),
            "itl_ms_p50": percentile(itl, 50) if itl else float("nan"),
            "itl_ms_p90": percentile(itl, 90) if itl else float("nan"),
            "itl_ms_p99": percentile(itl, 99) if itl else float("nan"),
            "slo_attainment": ok / len(results), "goodput_rps": ok / span if span > 0 else float("nan")}


# =========================================================================== the run
@dataclass
class VllmRunConfig:
    model: str
    gpu: str
    tp: int
    out: Path
    endpoint: str | None = None
    launch: LaunchConfig | None = None
    prefill_isl: tuple[int, ...] = pfmt.PREFILL_ISL
    prefill_batch: tuple[int, ...] = pfmt.PREFILL_BATCH
    decode_batch: tuple[int, ...] = pfmt.DECODE_BATCH
    decode_context: tuple[int, ...] = pfmt.DECODE_CONTEXT
    decode_tokens: int = sweep.DEFAULT_DECODE_TOKENS
    repeats: int = 3
    decode_repeats: int | None = None
    """Repeats of a decode point (default: repeats); each is already a median over the batch's streams."""
    max_point_kv_tokens: int | None = None
    """Skip decode points holding more KV tokens than this (their prefill alone takes long on a big model)."""
    ttft_cap_ms: float = sweep.DEFAULT_TTFT_CAP_MS
    itl_cap_ms: float = sweep.DEFAULT_ITL_CAP_MS
    max_num_seqs: int = 256
    max_batched_tokens: int = 8192
    health_timeout_s: float | None = None
    kv_capacity_override: int | None = None
    time_scale: float = 1.0
    rates: tuple[float, ...] = ()
    rate_isl: int = 1024
    rate_osl: int = 128
    rate_requests: int = 200
    rate_isls: tuple[int, ...] = ()
    """ISLs of the rate sweep (default: (rate_isl,))."""
    rates_by_isl: dict[int, tuple[float, ...]] = field(default_factory=dict)
    """Rates of one ISL where they differ from `rates` (a 4k prompt saturates at a quarter of a 1k one's rate)."""
    rate_duration_s: float = 0.0
    """If > 0: each rate sends max(rate_requests, rate x this) requests (same arrival span per rate)."""
    rate_seed: int = 0
    """Seed of the first ISL's first rate's Poisson arrivals: the i-th ISL's k-th rate draws seed this
    + RATE_SEED_ISL_STEP x i + k. Every sweep run before stop 45 used 0 and drew seed k for every ISL's k-th rate,
    so the lowest rate of each ISL of every such sweep replays one arrival pattern, scaled by its rate: a new seed
    gives samples independent of theirs, and the ISLs of one sweep no longer share theirs."""
    rate_settle_s: float = 0.0
    """If > 0: each rate first sends this many seconds of its Poisson arrivals (part of the same seeded stream) whose
    requests are kept out of the sample: the replica reaches its steady state before the measured requests arrive
    (a sample from an empty replica holds fewer running sequences than the steady state for its first seconds to
    tens of seconds). Their rows are in load_sweep.csv with settle = 1; goodput.csv counts the sample alone."""
    rate_osl_scv: float = 0.0
    """Squared CV of the rate sweep's output lengths (0: every output of rate_osl): each request's max_tokens is drawn
    from the log-normal of mean rate_osl, clipped where prompt + output fit the server's max model length. A decode
    batch holds long outputs longer (planner/planning/capacity.py, Output-length dispersion): this measures what
    vLLM's KV cache does with them."""
    rate_isl_scv: float = 0.0
    """Squared CV of the rate sweep's prompt lengths (0: every prompt of the ISL): each request's prompt is drawn from
    the clipped log-normal of mean ISL (planner/planning/lengths.py), clipped where prompt + output fit the
    server's max model length. Real prompts spread (the Azure conversation trace's scv is ~0.66)."""
    rate_trace: tuple[tuple[float, int, int], ...] = ()
    """A recorded trace to replay instead of the Poisson rates: (t_s from its first request, prompt tokens, output
    tokens) per request, each sent at its own time (open loop) with its own lengths, after rate_warmup_s of Poisson
    arrivals at its mean rate and lengths (not recorded). Its rows go to TRACE_REPLAY_FILE in load_sweep.csv's
    columns (isl, osl: the trace's means; prompt_tokens and tokens: each request's own; sent_s: its send time), its
    percentiles to goodput.csv as one rate (its mean): the check of the simulator on arrivals that are not Poisson
    (bench/vllm_trace_replay.py)."""
    other_models: Mapping[str, str] = field(default_factory=dict)
    """Attach mode: the names (catalog name or hf_id, lower case) under which a server serves another catalog model
    than `model`, to the model's catalog name. An endpoint whose served model is one of them is refused before any
    point: its timings would be written as `model`'s profile (found in QA: --model qwen3-32b against an endpoint
    serving llama-3.1-8b wrote a qwen3-32b profile, exit 0). A name the catalog does not know passes: vLLM's
    --served-model-name is free."""
    engine_account: bool = True
    """Scrape /metrics around and during each measured rate run for the engine's account of it (engine_load.csv),
    and around each decode point repeat for the engine's inter-token gap (decode_engine.csv)."""
    prefill_warmup: bool = True
    """Send each prefill point's batch once, untimed, before its timed repeats: a token count the engine has not
    run yet may compile a kernel on first use (vLLM 0.26's fused-MoE Triton kernel warned so at the first
    prefill points of every MoE launch in sessions s5, s6 and s7), which would stall the first repeat."""
    rate_warmup_s: float = 5.0
    """Seconds of Poisson arrivals sent before an ISL's measured rates and not recorded, at its highest rate and
    then (`rate_warmup_ends`) at its lowest (0: none). Kernels compiled on the first use of a token count stall the
    engine otherwise: vLLM 0.26's fused-MoE Triton kernel (its jit_monitor: "Triton kernel JIT compilation during
    inference: fused_moe_kernel. This causes a latency spike"), which put 1.9-s TTFTs into the MoE's first
    measured rate of session s7 (profiles/runs/2026-12-03-s7/README.md). The highest rate reaches the largest
    mixed-step token counts."""
    rate_warmup_ends: bool = True
    """Warm up at the lowest rate too (after the highest). Why: with the highest-rate warm-up alone, every MoE
    launch of s8, s10 and s11 (four of four) still paused its engine for ~2 s early in the LOWEST rate (vLLM's
    per-step log of s10 has no step at all in those seconds, while requests were running), after the fused-MoE
    JIT warning of the warm-up: at the highest rate the steps fill the token budget (one token count), at a low
    rate each step holds one prompt plus a few decodes (token counts the budget-filling steps never had), and
    Triton compiles a kernel per shape class it has not seen (it specialises integer arguments on divisibility
    by 16). False: the highest rate only (the runs before s15)."""
    saturation_ttft_ms: float | None = None
    """Stop raising an ISL's rate once the median TTFT passes this (the queue grows without bound)."""
    time_budget_s: float | None = None
    """Wall seconds for the prefill + decode sweeps (points not started in time are skipped, said in run.yaml)."""
    deadline_unix_s: float | None = None
    """Absolute end (Unix time) of the prefill + decode sweeps, whatever the server's start-up took."""
    rate_deadline_unix_s: float | None = None
    """No rate run starts after this Unix time."""
    prefill_budget_frac: float = 0.3
    """Share of time_budget_s the prefill sweep may use."""
    prefill_method: str = "engine"
    """How a prefill point is timed: "engine" (the engine's own prefill-time histogram; batches over one
    step's token budget by the blocker method) or "blocker" (the first runs' method); module doc."""
    e2e_repeats: int = 3
    e2e_batches: tuple[int, ...] = (1,)
    """Prefill batches whose client-side TTFT on an idle server (ttft_e2e_ms) is also measured."""
    weight_dtype: Dtype = "bf16"
    kv_dtype: Dtype = "bf16"
    device_name: str | None = None
    slo_ttft_ms: float | None = None
    slo_itl_ms: float | None = None
    progress: bool = True
    engine_version: str | None = None


@dataclass
class RunSummary:
    out: Path
    kv_capacity_tokens: int
    prefill: sweep.SweepOutcome | None = None
    decode: sweep.SweepOutcome | None = None
    gpu_seconds: float = 0.0
    goodput_rows: list[dict[str, float]] = field(default_factory=list)
    engine_load_rows: list[dict[str, float]] = field(default_factory=list)
    decode_engine_rows: list[dict[str, float]] = field(default_factory=list)
    """The engine's mean inter-token gap of each decode point repeat (profiles/engine_load.py) -> decode_engine.csv."""
    """The engine's own account of each measured rate run (profiles/engine_load.py) -> engine_load.csv."""
    rate_warmup_requests: int = 0
    """Requests sent to warm the engine up before the rate sweep's measured runs (not in load_sweep.csv)."""


def _progress(enabled: bool) -> contextlib.AbstractContextManager[Progress | None]:
    if not enabled:
        return contextlib.nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=False)


def uses_blocker(cfg: VllmRunConfig, p: sweep.PrefillPoint) -> bool:
    """Whether a prefill point is timed by the blocker method (module doc): always with
    --prefill-method blocker; with engine, a batch of several prompts over one step's token budget."""
    return cfg.prefill_method == "blocker" or (p.batch > 1 and p.batch * p.isl > cfg.max_batched_tokens)


_ENGINE_ROW_KEYS = ("batch", "context_tokens", "repeat")


def resumed_engine_rows(path: Path, done: Mapping[tuple[int, int], float]) -> list[dict[str, float]]:
    """The rows of an interrupted run's decode_engine.csv whose decode point it finished (in `done`): the file is
    rewritten whole after each repeat, so a resumed run starts from these rather than lose the points it skips
    (found in QA: a resume rewrote 29 rows as 7); a point cut off mid-way is measured again, its rows dropped.
    [] for a file that is absent or not a table of numbers."""
    try:
        # the sizes and the repeat whole, as decode_engine_row writes them; the counts and times floats
        rows = [{k: int(v) if k in _ENGINE_ROW_KEYS else float(v) for k, v in r.items()}
                for r in pfmt.read_table(path)]
        return [r for r in rows if (int(r["batch"]), int(r["context_tokens"])) in done]
    except (OSError, ValueError, KeyError, csv.Error):
        return []


async def _run_async(cfg: VllmRunConfig, url: str, info: EndpointInfo, server: ManagedServer | None) -> RunSummary:
    store = pfmt.ProfileStore(cfg.out)
    kv = cfg.kv_capacity_override or info.kv_capacity_tokens
    client = VllmClient(url, info.model, time_scale=cfg.time_scale)
    summary = RunSummary(out=cfg.out, kv_capacity_tokens=kv,
                         decode_engine_rows=resumed_engine_rows(cfg.out / "decode_engine.csv", store.decode_done()))
    if not cfg.rate_isls:
        cfg.rate_isls = (cfg.rate_isl,)

    def died_context(exc: ProfilerError, what: str) -> ProfilerError:
        n = len(store.prefill_rows) + len(store.decode_rows)
        extra = ""
        if server is not None and server.exit_code() is not None:
            extra = (f"; the server exited with code {server.exit_code()}, last lines of {server.log_path}:\n"
                     f"{server.log_tail(10)}")
        return type(exc)(f"{exc} (during {what}); {n} measured points are kept in {cfg.out} (rerun to resume){extra}")

    max_isl = info.max_model_len
    pre_pts = sweep.prefill_grid(cfg.prefill_isl, cfg.prefill_batch, max_isl=max_isl)
    dec_pts = sweep.decode_grid(cfg.decode_batch, cfg.decode_context,
                                kv_capacity_tokens=min(kv, cfg.max_point_kv_tokens or kv),
                                decode_tokens=cfg.decode_tokens, max_num_seqs=cfg.max_num_seqs)
    if max_isl:
        dec_pts = [p for p in dec_pts if p.context + cfg.decode_tokens < max_isl]
    blocker = min(BLOCKER_TOKENS, cfg.max_batched_tokens, (max_isl or BLOCKER_TOKENS + 1) - 1)
    try:
        with _progress(cfg.progress) as prog:
            t_pre = prog.add_task("prefill", total=len(pre_pts)) if prog else None
            t_dec = prog.add_task("decode", total=len(dec_pts)) if prog else None
            if any(uses_blocker(cfg, p) for p in pre_pts):
                await client.calibrate_blocker(blocker)

            def advance(task: TaskID | None) -> Callable[[sweep.Point, str], None] | None:
                return (lambda p, status: prog.advance(task)) if prog and task is not None else None

            # run_sweep is synchronous (shared with the torch backend): measure points through the loop.
            # Each point: `repeats` timings; a median below the monotone floor (jitter on a busy
            # machine) is measured again, and raised to the floor if it stays below, so the profile
            # written is always one planner.perf.profiledata accepts. The spread stays in the min/max columns.
            # (samples, central, client-side TTFTs) of each prefill point; (samples, central) of each decode point
            prefill_samples: dict[tuple[int, int], tuple[list[float], float, list[float]]] = {}
            decode_samples: dict[tuple[int, int], tuple[list[float], float]] = {}

            async def measured_with_floor(key: tuple[int, int], done: dict[tuple[int, int], float],
                                          once: Callable[[], Awaitable[float]],
                                          repeats: int) -> tuple[list[float], float]:
                samples = [await once() for _ in range(repeats)]
                floor = sweep.monotone_floor(key, done)
                for _ in range(sweep.MONOTONE_RETRIES):
                    if statistics.median(samples) >= floor:
                        break
                    samples += [await once() for _ in range(repeats)]
                central, _raised = sweep.central_with_floor(samples, floor)
                return samples, central

            def prefill_once(p: sweep.PrefillPoint) -> Callable[[], Awaitable[float]]:
                if uses_blocker(cfg, p):
                    return lambda: client.prefill_ms(p.isl, p.batch, blocker)
                return lambda: client.prefill_engine_ms(p.isl, p.batch)

            async def measure_prefill_async(p: sweep.PrefillPoint) -> float:
                if cfg.prefill_warmup:
                    await client.warm_up(p.isl, p.batch)
                samples, central = await measured_with_floor(p.key, store.prefill_done(),
                                                             prefill_once(p), cfg.repeats)
                e2e = ([await client.prefill_e2e_ms(p.isl, p.batch) for _ in range(cfg.e2e_repeats)]
                       if p.batch in cfg.e2e_batches else [])
                prefill_samples[p.key] = (samples, central, e2e)
                return central

            async def measure_decode_async(p: sweep.DecodePoint) -> float:
                async def once() -> float:
                    before = await _engine_counters(client) if cfg.engine_account else None
                    ms, _n = await client.decode_ms(p.batch, p.context, cfg.decode_tokens, cfg.max_batched_tokens)
                    after = await _engine_counters(client) if before is not None else None
                    if before is not None and after is not None:
                        repeat = sum(1 for r in summary.decode_engine_rows
                                     if (r["batch"], r["context_tokens"]) == p.key)
                        summary.decode_engine_rows.append(engine_load.decode_engine_row(
                            before, after, p.batch, p.context, repeat, ms, client.last_decode_mean_gap_ms))
                        _write_rows(cfg.out / "decode_engine.csv", summary.decode_engine_rows,
                                    engine_load.DECODE_ENGINE_COLUMNS)
                    return ms
                samples, central = await measured_with_floor(p.key, store.decode_done(), once,
                                                             cfg.decode_repeats or cfg.repeats)
                decode_samples[p.key] = (samples, central)
                return central

            t_start = time.monotonic()
            budget = cfg.time_budget_s
            if cfg.deadline_unix_s is not None:
                left = cfg.deadline_unix_s - time.time()
                budget = min(budget, left) if budget else left
            pre_deadline = t_start + budget * cfg.prefill_budget_frac if budget is not None else None
            deadline = t_start + budget if budget is not None else None
            what = "the prefill sweep"
            summary.prefill = await run_sweep_async(
                pre_pts, measure_prefill_async,
                lambda p, ms: store.add_prefill(p.isl, p.batch, prefill_samples[p.key][0], prefill_samples[p.key][1],
                                                prefill_samples[p.key][2]),
                done=store.prefill_done(), latency_cap_ms=cfg.ttft_cap_ms, on_point=advance(t_pre),
                deadline=pre_deadline)
            what = "the decode sweep"
            summary.decode = await run_sweep_async(
                dec_pts, measure_decode_async,
                lambda p, ms: store.add_decode(p.batch, p.context, decode_samples[p.key][0], decode_samples[p.key][1]),
                done=store.decode_done(), latency_cap_ms=cfg.itl_cap_ms, on_point=advance(t_dec), deadline=deadline)
            if cfg.rates or cfg.rates_by_isl or cfg.rate_trace:
                what = "the trace's replay" if cfg.rate_trace else "the request-rate sweep"
                t_rate = (prog.add_task("rates", total=1 if cfg.rate_trace else
                                        sum(len(cfg.rates_by_isl.get(i, cfg.rates)) for i in cfg.rate_isls))
                          if prog else None)
                rate_deadline = (time.monotonic() + (cfg.rate_deadline_unix_s - time.time())
                                 if cfg.rate_deadline_unix_s else None)
                await _rate_sweep(cfg, client, summary, rate_deadline,
                                  (lambda: prog.advance(t_rate)) if prog and t_rate is not None else None)
    except ProfilerError as exc:
        raise died_context(exc, what if "what" in locals() else "calibration") from None
    finally:
        summary.gpu_seconds = client.busy_wall_s / cfg.time_scale
        await client.aclose()
    return summary


async def run_sweep_async(points: Sequence[sweep.P], measure: Callable[[sweep.P], Awaitable[float]],
                          record: Callable[[sweep.P, float], None],
                          done: dict[tuple[int, int], float] | Iterable[tuple[int, int]], latency_cap_ms: float | None,
                          on_point: Callable[[sweep.P, str], None] | None = None,
                          deadline: float | None = None) -> sweep.SweepOutcome:
    """:func:`profiles.sweep.run_sweep` with an async `measure` (same order, resumption and early stop);
    points not started by `deadline` (time.monotonic) are skipped with the reason 'time budget'."""
    state = sweep.SweepState(done, latency_cap_ms)
    for p in points:
        status = state.classify(p)
        if status is None and deadline is not None and time.monotonic() > deadline:
            state.outcome.dominated.append(p.key)
            state.outcome.stop_reasons.setdefault(p.key, "time budget spent")
            status = "skipped"
        if status is None:
            result: float | sweep.StopAxis
            try:
                result = await measure(p)
            except sweep.StopAxis as stop:
                result = stop
            status = state.settle(p, result, record)
        if on_point:
            on_point(p, status)
    return state.outcome


RATE_SEED_ISL_STEP = 1000
"""Seeds between two ISLs' first rates (VllmRunConfig.rate_seed): more rates than this per ISL would share seeds."""

LOAD_SWEEP_COLUMNS = ["isl", "osl", "rate_rps", "seed", "request", "sent_s", "ttft_ms", "itl_ms", "tokens", "e2e_ms",
                      "prompt_tokens", "isl_scv", "osl_scv", "settle"]
"""`isl`: the run's mean prompt length; `prompt_tokens`: this request's (= isl without a spread); `isl_scv`: the
squared CV its prompts were drawn with (0: all of `isl` tokens); `osl`: the mean output, `tokens` this request's,
`osl_scv` the squared CV its outputs were drawn with (0: all of `osl` tokens); `settle`: 1 where the request was sent
in the rate's settle window (VllmRunConfig.rate_settle_s) and is not part of the sample, else 0 (files written
before stop 45 have no such column: every request is in the sample)."""


def load_sweep_rows(results: Sequence[StreamResult], rate_rps: float, isl: int, osl: int, seed: int, time_scale: float,
                    isl_scv: float = 0.0, osl_scv: float = 0.0, settle_requests: int = 0) -> list[dict[str, float]]:
    """One row per request of a Poisson rate run (emulated ms; sent_s from the run's first send); the first
    `settle_requests` sent are the settle window's (settle = 1)."""
    t0 = min(r.sent for r in results)
    rows = []
    for i, r in enumerate(sorted(results, key=lambda r: r.sent)):
        v = r.decode_s_per_token()
        rows.append({"isl": isl, "osl": osl, "rate_rps": rate_rps, "seed": seed, "request": i,
                     "sent_s": (r.sent - t0) / time_scale, "ttft_ms": (r.first - r.sent) / time_scale * 1e3,
                     "itl_ms": v / time_scale * 1e3 if v is not None else float("nan"), "tokens": r.tokens,
                     "e2e_ms": (r.last - r.sent) / time_scale * 1e3,
                     "prompt_tokens": r.prompt_tokens if r.prompt_tokens is not None else isl, "isl_scv": isl_scv,
                     "osl_scv": osl_scv, "settle": int(i < settle_requests)})
    return rows


# The running / waiting gauges are read this often during a rate run (emulated seconds): 2 Hz keeps the
# scrapes' cost on the API server small (one /metrics render each) and still gives ~120 samples a minute.
GAUGE_SAMPLE_INTERVAL_S = 0.5


def _parsed(text: str | None) -> engine_load.EngineLoadCounters | None:
    """/metrics text parsed for the engine's account, None when there is none or it does not parse."""
    if text is None:
        return None
    try:
        return engine_load.parse_engine_load(text)
    except ValueError:
        return None


async def _engine_counters(client: VllmClient) -> engine_load.EngineLoadCounters | None:
    """One /metrics scrape parsed for the engine's account (`_parsed`)."""
    return _parsed(await client.metrics_text())


def _finished(c: engine_load.EngineLoadCounters) -> float:
    """Requests the engine's queue-time histogram has counted (one per finished request)."""
    h = c.histograms.get("queue")
    return h.count if h is not None else 0.0


async def _accounted_rate_run(client: VllmClient, cfg: VllmRunConfig, rate: float, isl: int, n: int,
                              seed: int, isl_max: int | None = None,
                              max_len: int | None = None) -> tuple[list[StreamResult], dict[str, float] | None]:
    """One measured rate run with the engine's own account of it (profiles/engine_load.py): /metrics scraped
    before, every GAUGE_SAMPLE_INTERVAL_S during, and after the run's last request finished. A server with no
    parsable /metrics gives None and the run alone. `isl_max`: the longest prompt a spread run draws
    (`_rate_sweep`); `max_len`: where an output spread's prompt + output must fit."""
    before = await _engine_counters(client) if cfg.engine_account else None
    texts: list[str] = []  # parsed after the run: a parse on the event loop that times the streams would delay them

    async def sample() -> None:
        while True:
            await asyncio.sleep(GAUGE_SAMPLE_INTERVAL_S * cfg.time_scale)
            text = await client.metrics_text()
            if text is not None:
                texts.append(text)

    sampler = asyncio.create_task(sample()) if before is not None else None
    t0 = time.monotonic()
    try:
        res = await client.rate_run(rate, isl, cfg.rate_osl, n, seed=seed, isl_scv=cfg.rate_isl_scv,
                                    isl_max=isl_max, osl_scv=cfg.rate_osl_scv, max_len=max_len)
    finally:
        if sampler is not None:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError, ServerDied):
                await sampler
    span_s = (time.monotonic() - t0) / cfg.time_scale
    if before is None:
        return res, None
    # the request histograms count a request when its response is produced, which may trail the client's last
    # token: scrape until they count the run's n requests (at most ENGINE_METRICS_WAIT_S, as the engine method)
    after = await _engine_counters(client)
    waited = time.monotonic()
    counts = "queue" in before.histograms
    while (counts and after is not None and _finished(after) - _finished(before) < n
           and time.monotonic() - waited < ENGINE_METRICS_WAIT_S):
        await asyncio.sleep(0.05)
        after = await _engine_counters(client)
    if after is None:
        return res, None
    samples = [c for c in map(_parsed, texts) if c is not None]
    return res, engine_load.engine_load_row(before, after, samples, span_s, isl, cfg.rate_osl, rate)


def _rate_max_model_len(cfg: VllmRunConfig) -> int | None:
    """The server's max model length, where a spread rate sweep's prompt and output must fit: the launch's
    --max-model-len, else the catalog's max_context of the model; None when neither is known (unclipped)."""
    ctx = cfg.launch.max_model_len if cfg.launch is not None else None
    if not ctx:
        from planner.io.catalog import Catalog

        spec = Catalog.load().models.get(cfg.model)
        ctx = spec.max_context if spec is not None else None
    return int(ctx) if ctx else None


async def _rate_sweep(cfg: VllmRunConfig, client: VllmClient, summary: RunSummary, deadline: float | None,
                      tick: Callable[[], None] | None) -> None:
    """Open-loop Poisson runs (seeded) at each rate of cfg.rates for each ISL of cfg.rate_isls, ascending;
    per-request rows -> load_sweep.csv, percentiles and goodput -> goodput.csv. An ISL's sweep stops
    at the first rate whose median TTFT passes cfg.saturation_ttft_ms (saturated: the queue grows),
    and the whole sweep at `deadline` (time.monotonic). With cfg.rate_trace the trace is replayed instead."""
    if cfg.rate_trace:
        await _trace_replay(cfg, client, summary, deadline)
        if tick:
            tick()
        return
    rows: list[dict[str, float]] = []
    # once per sweep (it may read the catalog): the longest prompt a prompt spread draws (room left for the mean
    # output) and the length an output spread's prompt + output must fit
    ctx = _rate_max_model_len(cfg) if cfg.rate_isl_scv > 0 or cfg.rate_osl_scv > 0 else None
    isl_max = max(1, ctx - cfg.rate_osl) if ctx is not None and cfg.rate_isl_scv > 0 else None
    max_len = ctx if cfg.rate_osl_scv > 0 else None
    for i, isl in enumerate(cfg.rate_isls):
        isl_rates = sorted(cfg.rates_by_isl.get(isl, cfg.rates))
        if cfg.rate_warmup_s > 0 and isl_rates and (deadline is None or time.monotonic() < deadline):
            # warm-up, not recorded (VllmRunConfig.rate_warmup_s, rate_warmup_ends): seeds apart from the measured runs'
            ends = [isl_rates[-1]] + ([isl_rates[0]] if cfg.rate_warmup_ends and len(isl_rates) > 1 else [])
            for j, warm_rate in enumerate(ends):
                n_warm = max(2, math.ceil(warm_rate * cfg.rate_warmup_s))
                await client.rate_run(warm_rate, isl, cfg.rate_osl, n_warm, seed=cfg.rate_seed - 1 - j,
                                      isl_scv=cfg.rate_isl_scv, isl_max=isl_max, osl_scv=cfg.rate_osl_scv,
                                      max_len=max_len)
                summary.rate_warmup_requests += n_warm
        for k, rate in enumerate(isl_rates):
            if deadline is not None and time.monotonic() > deadline:
                return
            n = (max(cfg.rate_requests, math.ceil(rate * cfg.rate_duration_s)) if cfg.rate_duration_s
                 else cfg.rate_requests)
            n_settle = math.ceil(rate * cfg.rate_settle_s) if cfg.rate_settle_s > 0 else 0
            seed = cfg.rate_seed + RATE_SEED_ISL_STEP * i + k
            res, eng = await _accounted_rate_run(client, cfg, rate, isl, n_settle + n, seed, isl_max, max_len)
            if eng is not None:
                summary.engine_load_rows.append(eng)
                _write_rows(cfg.out / "engine_load.csv", summary.engine_load_rows, engine_load.ENGINE_LOAD_COLUMNS)
            # the sample: the requests sent after the settle window (rate_run returns them in send order)
            g = goodput_row(res[n_settle:], rate, isl, cfg.rate_osl, cfg.time_scale, cfg.slo_ttft_ms, cfg.slo_itl_ms)
            summary.goodput_rows.append(g)
            _write_goodput(cfg.out / "goodput.csv", summary.goodput_rows)
            rows += load_sweep_rows(res, rate, isl, cfg.rate_osl, seed, cfg.time_scale, cfg.rate_isl_scv,
                                    cfg.rate_osl_scv, n_settle)
            _write_rows(cfg.out / "load_sweep.csv", rows, LOAD_SWEEP_COLUMNS)
            if tick:
                tick()
            if cfg.saturation_ttft_ms and g["ttft_ms_p50"] > cfg.saturation_ttft_ms:
                break


async def _trace_replay(cfg: VllmRunConfig, client: VllmClient, summary: RunSummary, deadline: float | None) -> None:
    """cfg.rate_trace replayed once (VllmRunConfig.rate_trace): a warm-up of Poisson arrivals at its mean rate and
    lengths first (not recorded), then every request at its own time; nothing once `deadline` (time.monotonic) has
    passed."""
    arrivals = cfg.rate_trace
    span_s = max(arrivals[-1][0] - arrivals[0][0], 1e-9)
    rate = len(arrivals) / span_s
    isl = max(1, round(sum(a[1] for a in arrivals) / len(arrivals)))
    osl = max(1, round(sum(a[2] for a in arrivals) / len(arrivals)))
    if deadline is not None and time.monotonic() > deadline:
        return
    if cfg.rate_warmup_s > 0:
        n_warm = max(2, math.ceil(rate * cfg.rate_warmup_s))
        await client.rate_run(rate, isl, osl, n_warm, seed=cfg.rate_seed - 1)
        summary.rate_warmup_requests += n_warm
    res = await client.trace_run(arrivals)
    g = goodput_row(res, rate, isl, osl, cfg.time_scale, cfg.slo_ttft_ms, cfg.slo_itl_ms)
    summary.goodput_rows.append(g)
    _write_goodput(cfg.out / "goodput.csv", summary.goodput_rows)
    # its own file: load_sweep.csv holds Poisson rates, which the benches read as such
    _write_rows(cfg.out / TRACE_REPLAY_FILE, load_sweep_rows(res, rate, isl, osl, cfg.rate_seed, cfg.time_scale),
                LOAD_SWEEP_COLUMNS)


TRACE_REPLAY_FILE = "trace_replay.csv"
"""Per-request rows of a replayed trace (VllmRunConfig.rate_trace), apart from load_sweep.csv's Poisson rates."""


def _write_rows(path: Path, rows: Sequence[Mapping[str, pfmt.Cell]], cols: list[str]) -> None:
    pfmt.write_atomic(path, pfmt.table_text(rows, cols))


def _write_goodput(path: Path, rows: list[dict[str, float]]) -> None:
    _write_rows(path, rows, list(rows[0]))


UNTUNED_KERNEL_WARNING = "Using default MoE config"
"""What vLLM 0.26's fused-MoE layer logs (model_executor/layers/fused_moe/fused_moe.py) when it finds no tuned kernel
configuration for the layer's shape, dtype and device and runs fallback tiles instead; the line goes on with "Config
file not found at <path>/E=..,N=..,device_name=..[,dtype=..].json"."""


def untuned_kernel_configs(server_log: str) -> list[str]:
    """The kernel configurations a vLLM server log says it ran without tuning (the missing configuration files' names,
    in order, once each; the warning's text where it names none). Rule V2b (stop 40): a profile measured on such
    kernels plans its variant, but the roofline prior is not calibrated on it."""
    found: list[str] = []
    for line in server_log.splitlines():
        if UNTUNED_KERNEL_WARNING not in line:
            continue
        tail = line.split("Config file not found at", 1)
        name = tail[1].strip().rsplit("/", 1)[-1].rstrip(".") if len(tail) == 2 else UNTUNED_KERNEL_WARNING
        if name not in found:
            found.append(name)
    return found


def untuned_by_engine_tables(cfg: VllmRunConfig) -> list[str]:
    """Attach mode has no server log to read the warning from: the engine's shipped kernel tables say it instead (rule
    V3, stop 41: planner.perf.kernel_tables, the lookup vLLM performs on the tables it ships). Empty where the variant
    is dense, tuned, or the engine version, model or GPU is not one the tables or the catalog know."""
    from planner.io.catalog import Catalog
    from planner.perf.kernel_tables import moe_kernel_tuning

    cat = Catalog.load()
    if cfg.model not in cat.models or cfg.gpu not in cat.gpus:
        return []
    t = moe_kernel_tuning(cat.models[cfg.model], cat.gpus[cfg.gpu], cfg.tp, cfg.weight_dtype, cfg.engine_version or "",
                          cfg.device_name)
    return [f"{t.table}.json"] if t.tuned is False else []


def _meta(cfg: VllmRunConfig, info: EndpointInfo, kv: int, flags: list[str], url: str,
          env: dict[str, str] | None = None, untuned: Sequence[str] = ()) -> dict[str, object]:
    """meta.yaml of a run (ProfileMeta dumped as JSON data); `untuned`: kernel configurations the server ran without
    tuning (untuned_kernel_configs), which set calibrate: false with the reason."""
    import datetime as dt

    from planner.perf.profiledata import ProfileMeta

    note = (f"vllm:cache_config_info num_gpu_blocks={info.num_gpu_blocks} x block_size={info.block_size}"
            if not cfg.kv_capacity_override else "given with --kv-capacity")
    meta = ProfileMeta(
        model=cfg.model, gpu=cfg.gpu, tp=cfg.tp, engine="vllm", engine_version=cfg.engine_version,
        engine_flags=flags, engine_env=env or {}, kv_capacity_tokens=kv, kv_capacity_note=note,
        max_num_seqs=cfg.max_num_seqs, max_batched_tokens=cfg.max_batched_tokens,
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), backend="vllm",
        weight_dtype=cfg.weight_dtype, kv_dtype=cfg.kv_dtype, device_name=cfg.device_name,
        notes=(f"measured over HTTP at {url} (served model '{info.model}'); prefill = the engine steps of the batch ("
               f"{cfg.prefill_method} method; ttft_e2e_ms = client-side TTFT on an idle server), "
               "decode = steady-state time per token "
               f"(tokens from token_ids/usage, not chunks); rows are medians of >= {cfg.repeats} repeats (more where a "
               f"point fell below the monotone floor; 'raised' marks a median raised to it)"
               + (f"; emulated clock time_scale={cfg.time_scale:g}" if cfg.time_scale != 1.0 else "")),
        calibrate=not untuned,
        calibrate_note=(f"the server ran without tuned kernel configurations ({', '.join(untuned)} not found: vLLM's "
                        "fallback tiles), so the roofline prior is not calibrated on this profile (rule V2b); its laws "
                        "plan its variant" if untuned else None),
    )
    out = meta.model_dump(mode="json", exclude_none=True)
    if not out.get("engine_env"):
        out.pop("engine_env", None)  # attached servers and engines with no VLLM_* setting: the key is left out
    if out.get("calibrate", True):
        out.pop("calibrate", None)  # the default, left out as before
    return out


def check_port_free(host: str, port: int, pid_file: Path) -> None:
    """Launch mode: refuse a --port where a server already listens. The server launched there would fail to bind
    and exit, but the one listening would answer /health first and be measured, its flags unknown, under this run's
    (found in QA: a killed run's orphaned server was profiled by the rerun); `pid_file` names such an orphan."""
    try:
        socket.create_connection((host, port), timeout=PORT_PROBE_TIMEOUT_S).close()
    except OSError:  # refused (free), or no answer: the launch's own bind error will tell
        return
    orphan = ""
    with contextlib.suppress(OSError, ValueError):  # no file, not a pid, or no such process (a launch that died)
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        orphan = f" (the server a killed run started there? {pid_file} says pid {pid}, which is running)"
    raise ProfilerError(f"--port {port}: a server already listens on {host}:{port}{orphan}; launch mode would "
                        "measure it instead of the one it starts: stop it, give a free --port, or attach to it "
                        "with --endpoint")


PORT_PROBE_TIMEOUT_S = 1.0
"""How long the launch's port check waits for a connection (a local port: an answer takes microseconds)."""


def run_profile(cfg: VllmRunConfig) -> RunSummary:
    """Launch or attach, measure, write cfg.out; the launched server is stopped however this ends."""
    if (cfg.endpoint is None) == (cfg.launch is None):
        raise ProfilerError("give either an endpoint to attach to or a launch configuration, not both or neither")
    if cfg.launch is not None:  # before the server starts: a profile filed under another GPU's name would plan that GPU
        if cfg.device_name is None:
            cfg.device_name = local_device_name()
        check_device_is_gpu(cfg.gpu, cfg.device_name)
        check_port_free(cfg.launch.host, cfg.launch.port, cfg.out / "server.pid")
    server: ManagedServer | None = None
    prev_term = signal.getsignal(signal.SIGTERM)

    # SIGTERM (e.g. from a job runner) stops like Ctrl-C: finally blocks run
    def on_term(signum: int, frame: FrameType | None) -> NoReturn:
        raise KeyboardInterrupt

    if threading_is_main():
        signal.signal(signal.SIGTERM, on_term)
    try:
        if cfg.launch is not None:
            server = ManagedServer(cfg.launch, cfg.out / "server.log").start()
            if server.proc is not None:  # for a supervisor that must stop it if this process is killed
                pfmt.write_atomic(cfg.out / "server.pid", f"{server.proc.pid}\n")
            url = server.url
            wait_healthy(url, cfg.health_timeout_s or DEFAULT_HEALTH_TIMEOUT_S, server)
            flags = cfg.launch.engine_flags()
            cfg.weight_dtype, cfg.kv_dtype = cfg.launch.weight_dtype, cfg.launch.kv_dtype
        else:
            url = cfg.endpoint.rstrip("/")  # type: ignore[union-attr]
            wait_healthy(url, cfg.health_timeout_s or DEFAULT_ATTACH_TIMEOUT_S)
            flags = [f"--endpoint={url}"]
        info = endpoint_info(url)
        served_as = cfg.other_models.get(info.model.lower())
        if served_as is not None:
            raise ProfilerError(f"--endpoint {url} serves '{info.model}' ({served_as} in the catalog), not --model "
                                f"{cfg.model}; expected the endpoint of the model profiled, or --model {served_as}")
        check_time_scale(url, cfg.time_scale)
        if cfg.engine_version is None:
            cfg.engine_version = server_version(url)
        kv = cfg.kv_capacity_override or info.kv_capacity_tokens
        summary = asyncio.run(_run_async(cfg, url, info, server))
        record = {"url": url, "served_model": info.model, "max_model_len": info.max_model_len, "kv_capacity_tokens": kv,
                  "num_gpu_blocks": info.num_gpu_blocks, "block_size": info.block_size, "time_scale": cfg.time_scale,
                  "gpu_seconds": round(summary.gpu_seconds, 3), "rate_warmup_requests": summary.rate_warmup_requests,
                  "rate_warmup_s": cfg.rate_warmup_s, "rate_warmup_ends": cfg.rate_warmup_ends,
                  "prefill_warmup": cfg.prefill_warmup,
                  "rate_seed": cfg.rate_seed, "rate_settle_s": cfg.rate_settle_s,
                  "prefill": _outcome_dict(summary.prefill), "decode": _outcome_dict(summary.decode)}
        store = pfmt.ProfileStore(cfg.out)
        if store.prefill_rows and store.decode_rows:
            untuned = (untuned_kernel_configs(server.log_text()) if server is not None
                       else untuned_by_engine_tables(cfg))
            store.write_record(record, _meta(cfg, info, kv, flags, url,
                                             cfg.launch.engine_env() if cfg.launch is not None else None, untuned))
        else:
            pfmt.write_atomic(cfg.out / pfmt.RUN_FILE, pfmt.yaml_text(record))
        return summary
    finally:
        if server is not None:
            server.stop()
            if ITERATION_FLAG in server.cfg.argv():
                # vLLM's per-step log (planner profile --log-iterations) as a table beside the profile
                write_iterations(cfg.out / "server.log", cfg.out / ITERATIONS_FILE)
        if threading_is_main():
            signal.signal(signal.SIGTERM, prev_term)


def _card_model(gpu: str) -> str:
    """The card model of a catalog GPU name, lower case: its first part (H100-SXM-80GB: h100, A100-80GB: a100, L40S:
    l40s), which NVIDIA's driver names carry."""
    return gpu.split("-")[0].lower()


def check_device_is_gpu(gpu: str, device_name: str | None) -> None:
    """A launched server runs on this machine's first GPU: refuse (before any work) to file its profile under `gpu` when
    the driver names another card. The catalog name's first part is the card's model (H100-SXM-80GB: H100, A100-80GB:
    A100, L40S), which NVIDIA's driver names carry ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"). No GPU or no
    driver (None, an emulated rehearsal): nothing to check."""
    if device_name is None:
        return
    card = _card_model(gpu)
    if card and card not in device_name.lower():
        raise ProfilerError(f"--gpu {gpu}: this machine's GPU is '{device_name}' (nvidia-smi), "
                            f"not the {gpu.split('-')[0]} that "
                            "--gpu names; name the catalog's entry for this card (profiles/gpus.yaml), or add one")


def catalog_gpu_of_device(device_name: str | None, gpu_names: list[str]) -> str | None:
    """The catalog's GPU name for the card the driver names, where exactly one catalog entry's card model (its name's
    first part, as `check_device_is_gpu` reads it) is in the driver's name; None otherwise (no GPU, an unknown card,
    or several entries of one card: the caller must name it)."""
    if device_name is None:
        return None
    hits = [g for g in gpu_names if _card_model(g) and _card_model(g) in device_name.lower()]
    return hits[0] if len(hits) == 1 else None


def local_device_name() -> str | None:
    """The first GPU's name as the driver reports it (nvidia-smi), or None where there is none."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    name = out.stdout.strip().splitlines()
    return name[0].strip() if out.returncode == 0 and name else None


def _outcome_dict(o: sweep.SweepOutcome | None) -> dict[str, int | dict[str, str]]:
    if o is None:
        return {}
    return {"measured": len(o.measured), "resumed": len(o.resumed), "skipped": len(o.dominated),
            "stops": {f"{k[0]}x{k[1]}": v for k, v in o.stop_reasons.items()}}


def threading_is_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":  # pragma: no cover - use `planner profile`
    sys.exit("use: planner profile --backend vllm ...")
