"""Redis connections with the retry policy every service uses."""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import BusyLoadingError, ConnectionError, TimeoutError

#: Errors after which a command may succeed on a fresh connection: Redis went away or is loading.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionError, TimeoutError, BusyLoadingError, OSError)


def connect(url: str, max_connections: int = 200, **kwargs) -> aioredis.Redis:
    """An asyncio client for ``url`` that retries a failed command a few times over about a second.

    Longer outages surface as :data:`TRANSIENT_ERRORS`; the stream consumer backs off and carries on.
    Responses are bytes (protobuf payloads are binary). Past ``max_connections`` commands wait for a
    free connection (up to 10 s) instead of failing: a burst of requests queues rather than errs.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=10,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), retries=3),
        retry_on_error=[ConnectionError, TimeoutError, BusyLoadingError],
        health_check_interval=10,
        socket_connect_timeout=2,
        **kwargs,
    )
    return aioredis.Redis(connection_pool=pool)


def connect_or_reuse(url: str, client: aioredis.Redis, client_url: str) -> aioredis.Redis:
    """``client`` when ``url`` is its URL, else a new client for ``url``.

    For a second Redis that may be the first (the frames Redis, by default REDIS_URL's): close the
    result only when it ``is not client``.
    """
    return client if url == client_url else connect(url)
