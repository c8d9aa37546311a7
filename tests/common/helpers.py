"""Small helpers for the stream library's tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from emotune.v1 import messages_pb2
from emotune_common.codec import decode
from emotune_common.ids import make_header
from emotune_common.shards import shard_streams

from ..processes import PATIENCE_S


def crops(n: int, user: str = "user-1") -> list[messages_pb2.FaceCrop]:
    """``n`` face crops with 48x48 pixel payloads (2.3 KB serialized)."""
    return [
        messages_pb2.FaceCrop(
            header=make_header("session-1", user), pixels=bytes([i % 256]) * 2304, width=48, height=48, frame_number=i
        )
        for i in range(n)
    ]


async def read_all(redis: aioredis.Redis, stream: str) -> list[tuple[str, dict]]:
    return [(i.decode(), f) for i, f in await redis.xrange(stream)]


async def read_shards(redis: aioredis.Redis, stream: str, shards: int) -> list[tuple[str, str, dict]]:
    """Every entry of every shard of ``stream``: (the shard's stream name, entry id, fields), shard by shard."""
    return [(name, i, f) for name in shard_streams(stream, shards) for i, f in await read_all(redis, name)]


async def shard_length(redis: aioredis.Redis, stream: str, shards: int) -> int:
    """The entries of every shard of ``stream`` together."""
    return sum([await redis.xlen(name) for name in shard_streams(stream, shards)])


async def crop_ids_in(redis: aioredis.Redis, stream: str) -> list[str]:
    """crop_id of every EmotionEvent in ``stream``, duplicates kept."""
    return [decode(f, messages_pb2.EmotionEvent).crop_id for _, f in await read_all(redis, stream)]


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float = PATIENCE_S, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


def slowed(handler: Callable, seconds: float = 0.05) -> Callable:
    """``handler``, taking ``seconds`` more a batch: a slow consumer, still busy when a fault strikes."""

    async def slow(batch):
        await asyncio.sleep(seconds)
        return await handler(batch)

    return slow
