"""Publishing protobuf messages to bounded Redis streams."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from importlib.resources import files

from google.protobuf.message import Message

from emotune_common import metrics
from emotune_common.codec import encode
from emotune_common.logs import get_logger
from emotune_common.redis_client import TRANSIENT_ERRORS, Client
from emotune_common.settings import StreamSettings
from emotune_common.streams import stats_key

TRIM_SCRIPT = files("emotune_common").joinpath("trim.lua").read_text()
log = get_logger("emotune.producer")

#: How often a stream is trimmed for age when fewer than ``slack`` entries were published meanwhile.
EXPIRE_EVERY_S = 60.0
#: Entries evicted for age by one call of the trim script: one call holds Redis for a bounded time.
EXPIRE_BATCH = 1000


class StreamProducer:
    """Adds messages to one stream and keeps it near ``maxlen`` entries.

    Entries are added with XADD (one pipeline per batch). After every ``slack`` entries a small
    server-side script trims the stream back to ``maxlen``: the stream never holds more than
    ``maxlen + slack`` entries per producer, trimming costs one call per ``slack`` entries, the
    oldest entries go first, and the evicted entries that the slowest consumer group had not read
    are counted as dropped (``emotune_stream_dropped_total``, and the ``dropped`` field of
    ``emotune:stats:<stream>`` that every producer shares). Publishing never waits for consumers.

    Entries older than ``retention_s`` (default: ``EMOTUNE_STREAM_RETENTION_S``; 0 keeps them) are
    evicted by the same script and counted the same way, on every trim and at least every
    ``expire_every_s`` while publishing. A stream nobody publishes to any more ages out through
    :meth:`expire`, which the stream's consumers call periodically (see ``StreamConsumer``).
    ``maxlen=None`` bounds the age only.
    """

    def __init__(
        self,
        redis: Client,
        stream: str,
        maxlen: int | None,
        slack: int | None = None,
        retention_s: int | None = None,
        expire_every_s: float = EXPIRE_EVERY_S,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.slack = slack if slack is not None else max(1, min(1000, (maxlen or 0) // 10))
        self.retention_s = StreamSettings().retention_s if retention_s is None else retention_s
        self._trim = redis.register_script(TRIM_SCRIPT)
        self._since_trim = 0
        self.expire_every_s = expire_every_s
        self._next_expire = time.monotonic() + expire_every_s

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

    async def publish_retrying(
        self, messages: Sequence[Message], stop: asyncio.Event, max_backoff_s: float = 2.0
    ) -> bool:
        """Add messages, riding out Redis being away: retried with backoff (up to ``max_backoff_s``) until
        they are written (True) or a stop is asked for (False: not written, or not known to be)."""
        backoff = 0.1
        while True:
            try:
                await self.publish_many(messages)
                return True
            except TRANSIENT_ERRORS as e:
                metrics.RECONNECTS.labels(self.stream).inc()
                log.warning("publish_failed", stream=self.stream, error=f"{type(e).__name__}: {e}",
                            count=len(messages), retry_in_s=backoff)  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                if stop.is_set():
                    return False
                backoff = min(2 * backoff, max_backoff_s)

    async def published(self, count: int) -> None:
        """Account for ``count`` entries added to the stream (here or in a caller's transaction)."""
        metrics.PUBLISHED.labels(self.stream).inc(count)
        self._since_trim += count
        if self._since_trim >= self.slack or time.monotonic() >= self._next_expire:
            await self.trim()

    async def trim(self) -> tuple[int, int]:
        """Enforce the bounds now (age: at most :data:`EXPIRE_BATCH` entries); returns (evicted, dropped)."""
        self._since_trim = 0
        self._next_expire = time.monotonic() + self.expire_every_s
        evicted, dropped = await self._trim(
            keys=[self.stream, stats_key(self.stream)],
            args=[self.maxlen or 0, self.retention_s * 1000, EXPIRE_BATCH],
        )
        if evicted:
            metrics.TRIMMED.labels(self.stream).inc(evicted)
        if dropped:
            metrics.DROPPED.labels(self.stream).inc(dropped)
        return int(evicted), int(dropped)

    async def expire(self) -> tuple[int, int]:
        """Trim until nothing is over the bounds, however many entries aged out; returns (evicted, dropped)."""
        evicted = dropped = 0
        while True:
            e, d = await self.trim()
            evicted, dropped = evicted + e, dropped + d
            if e < EXPIRE_BATCH:
                return evicted, dropped


async def stream_stats(redis: Client, stream: str) -> dict[str, int]:
    """Length and the shared trimmed/dropped counters of a stream."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.xlen(stream)
        pipe.hgetall(stats_key(stream))
        length, counters = await pipe.execute()
    return {"length": int(length), **{k.decode(): int(v) for k, v in counters.items()}}
