"""FAKE metric endpoints of llm-d pods for the controller's tests (vLLM and the endpoint picker are
external systems that cannot run here without GPUs): each serves, over real HTTP, the vLLM 0.26.0
series the observer reads (names verbatim from /work/shared/tools/vllm-offline/README.md), fed by a
thread that "completes" requests at a set rate with set lengths and latencies, so what a real
Prometheus scrapes and computes is known in advance. Also the Prometheus scrape config that applies
the relabelings of the shipped PodMonitor to `__meta_kubernetes_pod_label_*` target labels, as the
Prometheus Operator's generated config does.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from controller_prom import SCRAPE_INTERVAL, PrometheusServer, free_port

def serve(registry: CollectorRegistry, port: int) -> Any:
    """/metrics in the text format 0.0.4, as vLLM serves it: metric names keep their colons
    (prometheus_client's own server negotiates an escaping that turns them into underscores)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


LAT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TOKEN_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000)


@dataclass
class PodLoad:
    rate_rps: float
    isl: int
    osl: int
    ttft_s: float
    tpot_request_s: float
    """Each request's mean time per output token (vllm:request_time_per_output_token_seconds)."""
    itl_token_s: float
    """Every inter-token gap (vllm:inter_token_latency_seconds), deliberately different."""
    running: float = 4.0
    waiting: float = 0.0


class FakeVllmPod:
    def __init__(self, served: str, load: PodLoad, tick_s: float = 0.05):
        self.load = load
        self.tick_s = tick_s
        r = self.registry = CollectorRegistry()
        lab = ["model_name", "engine"]  # vLLM's label set (one series per engine core; "0" without data parallelism)
        self.success = Counter("vllm:request_success", "finished requests", lab + ["finished_reason"], registry=r)
        self.prompt = Histogram("vllm:request_prompt_tokens", "prompt tokens", lab, buckets=TOKEN_BUCKETS, registry=r)
        self.gen = Histogram("vllm:request_generation_tokens", "generation tokens", lab, buckets=TOKEN_BUCKETS, registry=r)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "ttft", lab, buckets=LAT_BUCKETS_S, registry=r)
        self.tpot = Histogram("vllm:request_time_per_output_token_seconds", "tpot", lab, buckets=LAT_BUCKETS_S, registry=r)
        self.itl = Histogram("vllm:inter_token_latency_seconds", "itl", lab, buckets=LAT_BUCKETS_S, registry=r)
        self.running = Gauge("vllm:num_requests_running", "running", lab, registry=r)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", lab, registry=r)
        self.kv = Gauge("vllm:kv_cache_usage_perc", "kv", lab, registry=r)
        self.served = served
        self.port = free_port()
        self._stop = threading.Event()
        self._server: Any = None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self) -> None:
        owed = 0.0
        last = time.monotonic()
        m = self.served
        while not self._stop.wait(self.tick_s):
            now = time.monotonic()
            owed += self.load.rate_rps * (now - last)
            last = now
            self.running.labels(m, "0").set(self.load.running)
            self.waiting.labels(m, "0").set(self.load.waiting)
            self.kv.labels(m, "0").set(0.3)
            while owed >= 1.0:
                owed -= 1.0
                self.success.labels(m, "0", "length").inc()
                self.prompt.labels(m, "0").observe(self.load.isl)
                self.gen.labels(m, "0").observe(self.load.osl)
                self.ttft.labels(m, "0").observe(self.load.ttft_s)
                self.tpot.labels(m, "0").observe(self.load.tpot_request_s)
                for _ in range(max(0, self.load.osl - 1)):
                    self.itl.labels(m, "0").observe(self.load.itl_token_s)

    def __enter__(self) -> "FakeVllmPod":
        for g in (self.running, self.waiting, self.kv):
            g.labels(self.served, "0").set(0)
        self.success.labels(self.served, "0", "length")
        for h in (self.prompt, self.gen, self.ttft, self.tpot, self.itl):
            h.labels(self.served, "0")
        self._server = serve(self.registry, self.port)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.shutdown()
        self._server.server_close()


class FakeEpp:
    """The endpoint picker's flow-control queue gauge (GIE EPP metric, labels model_name, inference_pool)
    and, when `ttft_metric` is given, a gateway-side TTFT histogram fed `ttft_s` at 5 per second."""

    def __init__(self, name: str, served: str, queued: float, pool: str = "llama-8b-h100-tp2",
                 ttft_metric: str | None = None, ttft_s: float = 0.0):
        self.registry = CollectorRegistry()
        g = Gauge(name, "requests queued in the EPP", ["model_name", "inference_pool"], registry=self.registry)
        g.labels(served, pool).set(queued)
        self.ttft = Histogram(ttft_metric, "gateway ttft", ["model_name"], buckets=LAT_BUCKETS_S,
                              registry=self.registry) if ttft_metric else None
        self.served, self.ttft_s = served, ttft_s
        self._stop = threading.Event()
        self.port = free_port()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.ttft.labels(self.served).observe(self.ttft_s)  # type: ignore[union-attr]

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "FakeEpp":
        self._server = serve(self.registry, self.port)
        if self.ttft is not None:
            self.ttft.labels(self.served)
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()


def _snake(relabel: dict[str, Any]) -> dict[str, Any]:
    keys = {"sourceLabels": "source_labels", "targetLabel": "target_label", "action": "action", "regex": "regex",
            "replacement": "replacement", "separator": "separator"}
    return {keys[k]: v for k, v in relabel.items()}


def podmonitor_relabelings(path: Path) -> list[dict[str, Any]]:
    """The relabelings of a PodMonitor manifest, as Prometheus relabel_configs."""
    pm = next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "PodMonitor")
    return [_snake(r) for r in pm["spec"]["podMetricsEndpoints"][0].get("relabelings", [])]


class PodMonitorPrometheus(PrometheusServer):
    """A REAL Prometheus whose targets carry the pod labels the Kubernetes service discovery would
    give (`__meta_kubernetes_pod_label_<sanitised key>`) and whose relabel_configs are those of a
    PodMonitor, so the series get the labels they would get in a cluster."""

    def __init__(self, workdir: Path, pods: list[tuple[str, dict[str, str]]], relabelings: list[dict[str, Any]]):
        super().__init__(workdir, {})
        self.pods = pods
        self.relabelings = relabelings

    def _config(self) -> dict:
        statics = []
        for addr, labels in self.pods:
            meta = {"__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in k): v for k, v in labels.items()}
            meta |= {"__meta_kubernetes_namespace": "llm-d", "__meta_kubernetes_pod_name": f"pod-{addr.rsplit(':', 1)[1]}"}
            statics.append({"targets": [addr], "labels": meta})
        return {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"},
                "scrape_configs": [{"job_name": "llm-d-pods", "scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                                    "static_configs": statics, "relabel_configs": self.relabelings}]}
