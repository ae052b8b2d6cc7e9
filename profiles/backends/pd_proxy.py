"""A small 1P1D disaggregation proxy: each completion goes to the prefill instance first, then to the
decode instance, whose stream is passed back to the client.

It does what vLLM's disaggregated proxy examples (examples/online_serving/disaggregated_serving*/) and
llm-d's routing sidecar do, for one prefill and one decode instance:

1. prefill: the request with ``max_tokens = 1``, ``stream = false``; with the NIXL-style connector
   (``connector="nixl"``) it carries ``kv_transfer_params = {"do_remote_decode": true, ...}`` and the
   prefill instance answers with the ``kv_transfer_params`` the decode side needs (engine id, block
   ids, host, port); with vLLM's P2pNcclConnector (``connector="p2p-nccl"``) both requests carry the
   request id ``___prefill_addr_<P kv addr>___decode_addr_<D kv addr>_<uuid>`` (``X-Request-Id``)
   that tells the two engines where to send and expect the KV cache;
2. decode: the original request (stream as the client asked), with the prefill's
   ``kv_transfer_params`` (NIXL-style). The token the prefill instance generated is dropped: the decode
   instance produces the first token itself, as in vLLM's examples.

For the pair measurement (profiles/backends/pd_pair.py) the response carries the prefill leg's
duration as the header ``X-PD-Prefill-Ms`` (wall ms from the proxy receiving the request to the
prefill answer), so a client can split TTFT into prefill and hand-off + first decode step.
Errors of an instance come back with its status and message; an unreachable instance is HTTP 502.

    python -m profiles.backends.pd_proxy --prefill http://127.0.0.1:8100 --decode http://127.0.0.1:8200 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import aiohttp
from aiohttp import web

from planner.io.webserve import error_body, serve_app

Connector = Literal["nixl", "p2p-nccl"]
JsonBody = dict[str, object]
"""A completions request or answer body as the JSON it is (a JSON blob: its values are any JSON type)."""
PREFILL_MS_HEADER = "X-PD-Prefill-Ms"
# vLLM's toy proxy (tests/v1/kv_connector/nixl_integration/toy_proxy_server.py) asks the prefill
# instance to keep the KV for a remote decode with exactly these fields.
NIXL_PREFILL_PARAMS = {"do_remote_decode": True, "do_remote_prefill": False, "remote_engine_id": None,
                       "remote_block_ids": None, "remote_host": None, "remote_port": None}
DEFAULT_TIMEOUT_S = 6 * 3600.0  # vLLM's examples: 6 h per request (long generations under load)


@dataclass(frozen=True)
class ProxyConfig:
    prefill_url: str
    decode_url: str
    connector: Connector = "nixl"
    prefill_kv_addr: str | None = None
    """p2p-nccl: the prefill engine's KV address ``ip:kv_port`` (VLLM_HOST_IP and kv_port of its kv-transfer-config)."""
    decode_kv_addr: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.connector not in ("nixl", "p2p-nccl"):
            raise ValueError(f"connector must be 'nixl' or 'p2p-nccl', got {self.connector!r}")
        if self.connector == "p2p-nccl" and not (self.prefill_kv_addr and self.decode_kv_addr):
            raise ValueError("connector 'p2p-nccl' needs prefill_kv_addr and decode_kv_addr "
                             "(ip:kv_port of each engine)")


def prefill_request(body: JsonBody, cfg: ProxyConfig) -> JsonBody:
    """The body sent to the prefill instance: one token, not streamed, KV kept for the decode side."""
    pre = {k: v for k, v in body.items() if k not in ("stream_options",)}
    pre.update(max_tokens=1, stream=False)
    if "max_completion_tokens" in pre:
        pre["max_completion_tokens"] = 1
    if cfg.connector == "nixl":
        pre["kv_transfer_params"] = dict(NIXL_PREFILL_PARAMS)
    return pre


def decode_request(body: JsonBody, prefill_answer: JsonBody, cfg: ProxyConfig) -> JsonBody:
    """The body sent to the decode instance: the client's request plus the prefill's kv_transfer_params."""
    dec = dict(body)
    if cfg.connector == "nixl":
        params = prefill_answer.get("kv_transfer_params")
        if not isinstance(params, dict):
            raise ValueError("the prefill instance answered without kv_transfer_params: is it started with "
                             "--kv-transfer-config {\"kv_connector\": \"NixlConnector\", \"kv_role\": \"kv_both\"}?")
        dec["kv_transfer_params"] = params
    return dec


def p2p_request_id(cfg: ProxyConfig) -> str:
    return f"___prefill_addr_{cfg.prefill_kv_addr}___decode_addr_{cfg.decode_kv_addr}_{uuid.uuid4().hex}"


class PdProxy:
    """The proxy as an aiohttp app; start inside a running loop with :meth:`astart`."""

    def __init__(self, cfg: ProxyConfig):
        self.cfg = cfg
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def astart(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        conn = aiohttp.TCPConnector(limit=0)  # no client-side cap: the engines queue, not the proxy
        self._session = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s))
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/health", self._health)
        self._runner, self.port = await serve_app(app, host, port)

    async def astop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def _error(status: int, msg: str) -> web.Response:
        """The proxy's own error in vLLM's ErrorResponse shape (planner.io.webserve.error_body), as the
        instances' errors it passes on are, so a client reads one shape from either."""
        return web.json_response(error_body(status, msg, "ProxyError"), status=status)

    async def _health(self, request: web.Request) -> web.Response:
        assert self._session is not None
        for name, url in (("prefill", self.cfg.prefill_url), ("decode", self.cfg.decode_url)):
            try:
                async with self._session.get(f"{url}/health") as r:
                    if r.status != 200:
                        return self._error(503, f"{name} instance {url}: /health answered {r.status}")
            except aiohttp.ClientError as exc:
                return self._error(503, f"{name} instance {url}: {exc}")
        return web.Response(status=200)

    async def _models(self, request: web.Request) -> web.Response:
        assert self._session is not None
        try:
            async with self._session.get(f"{self.cfg.decode_url}/v1/models") as r:
                return web.Response(status=r.status, body=await r.read(), content_type="application/json")
        except aiohttp.ClientError as exc:
            return self._error(502, f"decode instance {self.cfg.decode_url}: {exc}")

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        t0 = time.monotonic()
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object")
        self.requests += 1
        headers = {"X-Request-Id": p2p_request_id(self.cfg)} if self.cfg.connector == "p2p-nccl" else {}
        try:
            async with self._session.post(f"{self.cfg.prefill_url}/v1/completions",
                                          json=prefill_request(body, self.cfg), headers=headers) as r:
                if r.status != 200:
                    return web.Response(status=r.status, body=await r.read(), content_type="application/json")
                answer = await r.json(content_type=None)
        except aiohttp.ClientError as exc:
            return self._error(502, f"prefill instance {self.cfg.prefill_url}: {exc}")
        prefill_ms = (time.monotonic() - t0) * 1e3
        try:
            dec = decode_request(body, answer, self.cfg)
        except ValueError as exc:
            return self._error(502, str(exc))
        extra = {PREFILL_MS_HEADER: f"{prefill_ms:.3f}"}
        try:
            async with self._session.post(f"{self.cfg.decode_url}/v1/completions", json=dec, headers=headers) as r:
                if r.status != 200 or not body.get("stream"):
                    return web.Response(status=r.status, body=await r.read(), content_type="application/json",
                                        headers=extra)
                resp = web.StreamResponse(status=200,
                                          headers={"Content-Type": r.headers.get("Content-Type", "text/event-stream"),
                                                   "Cache-Control": "no-cache", **extra})
                await resp.prepare(request)
                async for chunk in r.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except aiohttp.ClientError as exc:
            return self._error(502, f"decode instance {self.cfg.decode_url}: {exc}")


async def _serve(cfg: ProxyConfig, host: str, port: int) -> None:
    proxy = PdProxy(cfg)
    await proxy.astart(host, port)
    print(f"pd-proxy on {proxy.url}: prefill {cfg.prefill_url} -> decode {cfg.decode_url} ({cfg.connector})",
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await proxy.astop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefill", required=True, help="URL of the prefill instance")
    ap.add_argument("--decode", required=True, help="URL of the decode instance")
    ap.add_argument("--connector", choices=["nixl", "p2p-nccl"], default="nixl")
    ap.add_argument("--prefill-kv-addr", help="p2p-nccl: ip:kv_port of the prefill engine")
    ap.add_argument("--decode-kv-addr", help="p2p-nccl: ip:kv_port of the decode engine")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    a = ap.parse_args(argv)
    try:
        cfg = ProxyConfig(a.prefill.rstrip("/"), a.decode.rstrip("/"), a.connector, a.prefill_kv_addr, a.decode_kv_addr)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve(cfg, a.host, a.port))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
