"""Serve an aiohttp application on a host and port: the one start-up sequence that the emulated vLLM
server, the 1P1D proxy and the tests' fake Kubernetes API server share."""

from __future__ import annotations

from aiohttp import web


async def serve_app(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start `app` on host:port (port 0: any free port) without signal handlers or access log (the
    caller owns the process); returns the runner (clean it up to stop) and the port actually bound."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
