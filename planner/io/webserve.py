"""Serve an aiohttp application on a host and port: the one start-up sequence that the emulated vLLM
server, the 1P1D proxy and the tests' fake Kubernetes API server share; the error body the first two answer; and the
key the emulator adds to vLLM's GET /version, which the profiler reads."""

from __future__ import annotations

import json

from aiohttp import web

# GET /version's key that pd-planner's emulator adds beside vLLM's "version": {"time_scale": S}, so that a client timing
# the wall clock (planner profile) can check it divides by the emulator's own scale; a real vLLM server has no such key.
EMULATOR_VERSION_KEY = "pd_planner_emulator"


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app` on host:port (port 0: any free port) without signal handlers or access log (the
    caller owns the process); returns the runner (clean it up to stop) and the port actually bound."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def error_body(status: int, msg: str, err_type: str, param: str | None = None) -> dict[str, object]:
    """An error answer's JSON as vLLM 0.26 writes it: its ErrorResponse, ``{"error": ErrorInfo}`` with message, type,
    param and the HTTP status as ``code`` (vllm/entrypoints/openai/protocol.py), the OpenAI API's nested shape. Found in
    QA: the emulator answered the older flat ``{"object": "error", "message": ...}``, so a client reading
    ``body["error"]["message"]`` as it must from a real server failed on the emulator."""
    return {"error": {"message": msg, "type": err_type, "param": param, "code": status}}


def error_message(text: str) -> str:
    """The message of an error answer's body `text`: vLLM 0.26's ``{"error": {"message": ...}}`` (error_body), or an
    older vLLM's flat ``{"message": ...}``; the text itself where it is neither."""
    try:
        body = json.loads(text)
    except ValueError:
        return text
    if not isinstance(body, dict):
        return text
    err = body.get("error")
    msg = err.get("message") if isinstance(err, dict) else body.get("message")
    return str(msg) if msg is not None else text
