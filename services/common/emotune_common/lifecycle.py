"""Process lifecycle: stop on SIGTERM/SIGINT, and the ops HTTP server (/healthz, /readyz, /metrics)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import uvicorn
from prometheus_client import make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from emotune_common.logs import configure_logging, get_logger
from emotune_common.settings import ServiceSettings

log = get_logger("emotune.lifecycle")

ReadyCheck = Callable[[], Awaitable[bool]]
S = TypeVar("S", bound=ServiceSettings)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Set ``stop`` on the first SIGTERM or SIGINT; the service then finishes its work in hand."""
    loop = asyncio.get_running_loop()

    def request_stop(sig: signal.Signals) -> None:
        log.info("stop_requested", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, request_stop, sig)


def ops_app(ready: ReadyCheck) -> Starlette:
    """``/healthz`` (the process runs), ``/readyz`` (its dependencies answer) and ``/metrics``."""

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        try:
            ok = await ready()
        except Exception as e:  # a failing check means not ready, never a crash
            return JSONResponse({"status": "unavailable", "error": str(e)}, status_code=503)
        return JSONResponse({"status": "ready" if ok else "unavailable"}, status_code=200 if ok else 503)

    return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), Mount("/metrics", make_asgi_app())])


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_ops(port: int, ready: ReadyCheck, stop: asyncio.Event, host: str = "0.0.0.0") -> None:
    """Serve :func:`ops_app` on ``port`` until ``stop`` is set (nothing when port is 0)."""
    if not port:
        return
    server = _QuietServer(uvicorn.Config(ops_app(ready), host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


def run_service(serve: Callable[[S, asyncio.Event], Awaitable[None]], settings: S, name: str) -> None:
    """A service's main: configure the logs, turn SIGTERM/SIGINT into a stop event, run ``serve``."""
    configure_logging(settings.log_level, settings.log_json, service=name)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await serve(settings, stop)

    asyncio.run(main())
