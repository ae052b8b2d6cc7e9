"""Start a REAL Prometheus server (the Debian `prometheus` binary) on loopback for the controller tests.

Generated config in a temporary directory: one scrape job per pool of emulated vLLM replicas, with
static labels `role` and `pool` (what relabelling of pd-planner.io/* pod labels gives in a
cluster), a short scrape interval so tests run in seconds. The process is killed at the end.
`tests/setup_prometheus.sh` installs the binary (make test calls it); without it the tests skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

SCRAPE_INTERVAL = "500ms"  # short so that rate() over a few seconds has samples; tests only


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None)


def require_prometheus() -> str:
    b = prometheus_binary()
    if b is None:
        pytest.skip("Prometheus server binary not found (run tests/setup_prometheus.sh: apt-get install prometheus)")
    return b


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never one this process handed out before: the servers of a module fixture are
    given their ports together and bind them later (a Prometheus process seconds later), and the kernel may offer a
    port again once its probe socket is closed (two servers on one port: "address already in use")."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class PrometheusServer:
    def __init__(self, workdir: Path, targets: dict[str, tuple[str, list[str]]]):
        """targets: pool id -> (role, ["127.0.0.1:port", ...])."""
        self.binary = require_prometheus()
        self.dir = workdir
        self.port = free_port()
        self.targets = targets
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self) -> dict:
        jobs = []
        for i, (pool, (role, addrs)) in enumerate(sorted(self.targets.items())):
            jobs.append({
                "job_name": f"vllm-{i}",
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "static_configs": [{"targets": addrs, "labels": {"role": role, "pool": pool}}],
            })
        return {"global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": "1s"}, "scrape_configs": jobs}

    def start(self) -> "PrometheusServer":
        cfg = self.dir / "prometheus.yml"
        cfg.write_text(yaml.safe_dump(self._config()))
        self.log = open(self.dir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(self.dir / 'prometheus.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("prometheus did not become ready in 30 s")

    def reload(self, targets: dict[str, tuple[str, list[str]]]) -> None:
        """New scrape targets (e.g. replicas added): rewrite the config and POST /-/reload."""
        self.targets = targets
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump(self._config()))
        httpx.post(f"{self.url}/-/reload", timeout=5).raise_for_status()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self.log.close()

    def __enter__(self) -> "PrometheusServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def terminate_together(servers: list[PrometheusServer]) -> None:
    """Ask every running server of a module fixture to stop at once, so that their own `stop` (the fixture's exit) then
    waits on processes already ending, not on one after another."""
    for s in servers:
        if s.proc is not None and s.proc.poll() is None:
            s.proc.terminate()


def wait_for(predicate, timeout_s: float = 20.0, every_s: float = 0.25):
    """Poll until predicate() is truthy; returns its value or raises AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s}s (last: {last!r})")
