"""Fixtures of the capture tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from emotune_common.redis_client import connect


@pytest.fixture
async def redis(redis_server) -> AsyncIterator[aioredis.Redis]:
    """A client of the test's own Redis server (``redis_server``)."""
    client = connect(redis_server.url)
    yield client
    await client.aclose()
