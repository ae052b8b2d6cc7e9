"""An open-loop load generator for the controller's end-to-end tests, acting as a P/D proxy.

Loopback only, bounded in requests, concurrency and duration. Each request goes as vLLM's
disaggregated-prefill proxy example sends it: first to a prefill replica with max_tokens=1, then
the whole request to a decode replica (the emulated decode engine has no KV connector, so it
recomputes the short prompt; its prefill is a few percent of the decode time here). Arrivals are
Poisson at `rate_fn(emulated_t)` requests per EMULATED second; replicas are picked round-robin
from lists the test updates as the controller scales the pools.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import httpx
import numpy as np


@dataclass
class LoadStats:
    sent: int = 0
    ok: int = 0
    errors: int = 0
    last_error: str = ""


@dataclass
class Backends:
    """Current replica URLs per role; the test swaps the lists when pools scale."""

    prefill: list[str] = field(default_factory=list)
    decode: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, role: str, urls: list[str]) -> None:
        with self.lock:
            setattr(self, role, list(urls))

    def pick(self, role: str, k: int) -> str | None:
        with self.lock:
            urls = getattr(self, role)
            return urls[k % len(urls)] if urls else None


class LoadGenerator:
    def __init__(self, backends: Backends, model: str, rate_fn: Callable[[float], float], *, isl: int, osl: int,
                 time_scale: float, max_requests: int, max_duration_s: float, max_concurrency: int = 128, seed: int = 0):
        self.backends = backends
        self.model = model
        self.rate_fn = rate_fn
        self.isl, self.osl = isl, osl
        self.ts = time_scale
        self.max_requests = max_requests
        self.max_duration_s = max_duration_s
        self.max_concurrency = max_concurrency
        self.rng = np.random.default_rng(seed)
        self.stats = LoadStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def emulated_now(self) -> float:
        return time.monotonic() / self.ts

    async def _one(self, client: httpx.AsyncClient, k: int, sem: asyncio.Semaphore) -> None:
        async with sem:
            try:
                pf, dc = self.backends.pick("prefill", k), self.backends.pick("decode", k)
                if pf is None or dc is None:
                    raise RuntimeError("no replica to send to")
                body = {"model": self.model, "prompt": [7] * self.isl}
                (await client.post(f"{pf}/v1/completions", json={**body, "max_tokens": 1})).raise_for_status()
                (await client.post(f"{dc}/v1/completions", json={**body, "max_tokens": self.osl})).raise_for_status()
                self.stats.ok += 1
            except Exception as exc:  # noqa: BLE001 - counted; a replica stopped under a request is expected
                self.stats.errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"

    async def _run(self) -> None:
        sem = asyncio.Semaphore(self.max_concurrency)
        start = time.monotonic()
        tasks: set[asyncio.Task] = set()
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=self.max_concurrency)) as client:
            for k in itertools.count():
                if self._stop.is_set() or k >= self.max_requests or time.monotonic() - start > self.max_duration_s:
                    break
                rate = max(self.rate_fn(self.emulated_now()), 1e-3)
                await asyncio.sleep(float(self.rng.exponential(1.0 / rate)) * self.ts)
                t = asyncio.create_task(self._one(client, k, sem))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
                self.stats.sent += 1
            if tasks:
                await asyncio.wait(tasks, timeout=30)

    def start(self) -> "LoadGenerator":
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="load-generator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(40)
