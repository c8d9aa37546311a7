"""Publishing protobuf messages to bounded Redis streams."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

import redis.asyncio as aioredis
from google.protobuf.message import Message

from emotune_common import metrics
from emotune_common.codec import encode
from emotune_common.streams import stats_key

TRIM_SCRIPT = files("emotune_common").joinpath("trim.lua").read_text()


class StreamProducer:
    """Adds messages to one stream and keeps it near ``maxlen`` entries.

    Entries are added with XADD (one pipeline per batch). After every ``slack`` entries a small
    server-side script trims the stream back to ``maxlen``: the stream never holds more than
    ``maxlen + slack`` entries per producer, trimming costs one call per ``slack`` entries, the
    oldest entries go first, and the evicted entries that the slowest consumer group had not read
    are counted as dropped (``emotune_stream_dropped_total``, and the ``dropped`` field of
    ``emotune:stats:<stream>`` that every producer shares). Publishing never waits for consumers.
    """

    def __init__(self, redis: aioredis.Redis, stream: str, maxlen: int, slack: int | None = None) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.slack = slack if slack is not None else max(1, min(1000, maxlen // 10))
        self._trim = redis.register_script(TRIM_SCRIPT)
        self._since_trim = 0

    async def publish(self, message: Message) -> str:
        """Add one message; returns its stream entry id."""
        return (await self.publish_many([message]))[0]

    async def publish_many(self, messages: Iterable[Message]) -> list[str]:
        """Add messages in one round trip, in order; returns their entry ids."""
        async with self.redis.pipeline(transaction=False) as pipe:
            count = 0
            for message in messages:
                pipe.xadd(self.stream, encode(message))
                count += 1
            if not count:
                return []
            ids = await pipe.execute()
        await self.published(count)
        return [i.decode() for i in ids]

    async def published(self, count: int) -> None:
        """Account for ``count`` entries added to the stream (here or in a caller's transaction)."""
        metrics.PUBLISHED.labels(self.stream).inc(count)
        self._since_trim += count
        if self._since_trim >= self.slack:
            await self.trim()

    async def trim(self) -> tuple[int, int]:
        """Enforce the bound now; returns (evicted, dropped)."""
        self._since_trim = 0
        evicted, dropped = await self._trim(keys=[self.stream, stats_key(self.stream)], args=[self.maxlen])
        if evicted:
            metrics.TRIMMED.labels(self.stream).inc(evicted)
        if dropped:
            metrics.DROPPED.labels(self.stream).inc(dropped)
        return int(evicted), int(dropped)


async def stream_stats(redis: aioredis.Redis, stream: str) -> dict[str, int]:
    """Length and the shared trimmed/dropped counters of a stream."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(stream)
        pipe.hgetall(stats_key(stream))
        length, counters = await pipe.execute()
    return {"length": int(length), **{k.decode(): int(v) for k, v in counters.items()}}
