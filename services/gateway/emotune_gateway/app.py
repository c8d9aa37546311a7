"""The gateway's FastAPI app: the clients it holds, its routers, the web page, health and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files

import grpc
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import make_asgi_app

from emotune.v1 import recommender_pb2_grpc
from emotune_common.logs import get_logger
from emotune_common.redis_client import TRANSIENT_ERRORS, connect, connect_or_reuse
from emotune_common.sharded import ShardedProducer
from emotune_common.streams import FEEDBACK, FRAMES
from emotune_gateway.deps import Clients, make_limiter, parse_limit
from emotune_gateway.hub import Hub
from emotune_gateway.routers import catalogue, events, listening, sessions, spotify, users
from emotune_gateway.settings import GatewaySettings
from emotune_gateway.spotify import Spotify

STATIC = files("emotune_gateway") / "static"
log = get_logger("emotune.gateway")
DESCRIPTION = """Live mood and music. Every route but `/healthz`, `/readyz` and `/metrics` needs an API key
(`Authorization: Bearer <key>` or `X-API-Key`; keys come from `python -m emotune_gateway keys create <user>`),
and a user reaches only their own data (403 otherwise)."""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: GatewaySettings = app.state.settings
    redis = connect(settings.redis_url)
    frames_redis = connect_or_reuse(settings.frames_url(), redis, settings.redis_url)
    # gRPC's reconnect backoff would grow toward 2 minutes while the recommender is away: capped, the
    # gateway's calls get through within 2 s of its return instead of a fraction of the outage later.
    channel = grpc.aio.insecure_channel(settings.recommender_addr, options=[("grpc.max_reconnect_backoff_ms", 2000)])
    shards = settings.stream.shards
    hub = Hub(redis, shards, block_ms=settings.stream.block_ms)
    stop = asyncio.Event()
    app.state.clients = Clients(
        settings=settings, redis=redis, frames_redis=frames_redis, channel=channel,
        recommender=recommender_pb2_grpc.RecommenderStub(channel), hub=hub, spotify=Spotify(settings, redis),
        frames=ShardedProducer(frames_redis, FRAMES, shards, settings.frames_maxlen),
        feedback=ShardedProducer(redis, FEEDBACK, shards, settings.feedback_maxlen),
        limiter=make_limiter(), limit=parse_limit(settings.rate_limit),
        frame_limit=parse_limit(settings.frame_rate_limit),
    )  # fmt: skip
    reader = asyncio.create_task(hub.run(stop))
    try:
        yield
    finally:
        stop.set()
        await reader
        await channel.close()
        await redis.aclose()
        if frames_redis is not redis:
            await frames_redis.aclose()


def create_app(settings: GatewaySettings | None = None) -> FastAPI:
    app = FastAPI(title="emotune", version="1.0.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings or GatewaySettings()
    if app.state.settings.origins():
        app.add_middleware(
            CORSMiddleware, allow_origins=app.state.settings.origins(), allow_methods=["*"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Last-Event-ID"],
        )  # fmt: skip
    for module in (users, sessions, listening, catalogue, events, spotify):
        app.include_router(module.router)

    async def redis_unavailable(request: Request, error: Exception) -> JSONResponse:
        """Redis away (a restart, a failover) is a 503 the client may retry, not a 500: nothing was done."""
        log.warning("redis_unavailable", path=request.url.path, error=f"{type(error).__name__}: {error}")
        return JSONResponse({"detail": "Redis is unavailable, retry shortly"}, status_code=503,
                            headers={"Retry-After": "1"})  # fmt: skip

    for error in TRANSIENT_ERRORS:
        app.add_exception_handler(error, redis_unavailable)

    @app.get("/healthz", tags=["health"], summary="The process runs")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Both Redis servers answer and the event reader runs",
             responses={503: {"description": "Not ready"}})  # fmt: skip
    async def readyz() -> JSONResponse:
        clients: Clients = app.state.clients
        try:
            ok = bool(await clients.redis.ping() and await clients.frames_redis.ping()) and clients.hub.started.is_set()
        except Exception as e:  # not ready, never a crash
            return JSONResponse({"status": "unavailable", "error": str(e)}, status_code=503)
        return JSONResponse({"status": "ready" if ok else "unavailable"}, status_code=200 if ok else 503)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"), headers={"Cache-Control": "no-cache"})

    app.mount("/metrics", make_asgi_app())
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return app
