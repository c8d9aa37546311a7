"""FastAPI dependencies: the shared clients, the caller's identity, ownership and rate limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import grpc
import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from emotune.v1 import recommender_pb2_grpc
from emotune_common.sharded import ShardedProducer
from emotune_gateway import accounts
from emotune_gateway.hub import Hub
from emotune_gateway.settings import GatewaySettings
from emotune_gateway.spotify import Spotify


@dataclass
class Clients:
    """What the app holds for its lifetime (made in app.lifespan)."""

    settings: GatewaySettings
    redis: aioredis.Redis
    frames_redis: aioredis.Redis  #: emotune:frames (the same client as redis unless set apart)
    channel: grpc.aio.Channel
    recommender: recommender_pb2_grpc.RecommenderStub
    hub: Hub
    spotify: Spotify
    frames: ShardedProducer  #: a frame goes to its session's shard
    feedback: ShardedProducer  #: to its session's shard, or its user's without a session
    limiter: MovingWindowRateLimiter
    limit: RateLimitItem
    frame_limit: RateLimitItem


def make_limiter() -> MovingWindowRateLimiter:
    """Rate limits per process: with several gateway replicas, each allows the rate (see the README)."""
    return MovingWindowRateLimiter(MemoryStorage())


def parse_limit(text: str) -> RateLimitItem:
    return parse(text)


def get_clients(request: Request) -> Clients:
    return request.app.state.clients


ClientsDep = Annotated[Clients, Depends(get_clients)]

_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key in a header")


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(clients: Clients, api_key: str | None) -> str:
    """The user of ``api_key``; 401 without a valid key, 429 past the rate limit."""
    if not api_key:
        raise unauthorized("an API key is required (Authorization: Bearer <key>, or X-API-Key)")
    user_id = await accounts.user_of_key(clients.redis, api_key)
    if user_id is None:
        raise unauthorized("unknown or revoked API key")
    await check_rate(clients, clients.limit, user_id)
    return user_id


async def check_rate(clients: Clients, limit: RateLimitItem, user_id: str, scope: str = "api") -> None:
    if not await clients.limiter.hit(limit, scope, user_id):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, f"rate limit {limit} exceeded", headers={"Retry-After": "1"}
        )


async def current_user(
    clients: ClientsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> str:
    return await authenticate(clients, bearer.credentials if bearer else header_key)


CurrentUser = Annotated[str, Depends(current_user)]


async def path_owner(user_id: Annotated[str, Path(max_length=64)], caller: CurrentUser) -> str:
    """The ``user_id`` of the path, when it is the caller's own; 403 otherwise."""
    if user_id != caller:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a user reaches only their own data")
    return user_id


Owner = Annotated[str, Depends(path_owner)]
