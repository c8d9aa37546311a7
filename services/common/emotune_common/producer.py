"""Publishing protobuf messages to bounded Redis streams."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from importlib.resources import files

from google.protobuf.message import Message
from redis.asyncio.cluster import RedisCluster

from emotune_common import metrics
from emotune_common.codec import encode
from emotune_common.logs import get_logger
from emotune_common.redis_client import TRANSIENT_ERRORS, Client, node_of
from emotune_common.settings import StreamSettings
from emotune_common.streams import stats_key

TRIM_SCRIPT = files("emotune_common").joinpath("trim.lua").read_text()
log = get_logger("emotune.producer")

#: How often a stream is trimmed for age when fewer than ``slack`` entries were published meanwhile.
EXPIRE_EVERY_S = 60.0
#: Entries evicted for age by one call of the trim script: one call holds Redis for a bounded time.
EXPIRE_BATCH = 1000
#: A master found without any replica is not waited for (WAIT) again for this long.
NO_REPLICA_RECHECK_S = 5.0


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

    With ``wait_replicas`` (default: ``EMOTUNE_STREAM_WAIT_REPLICAS``; -1 means 1 on a Redis Cluster and
    0 on one Redis) each batch ends with WAIT in the same pipeline: the publish returns once that many
    replicas have its entries, or after ``wait_timeout_ms``. Replication is asynchronous, so a master that
    dies right after it answered XADD can take the entries with it when its replica takes over; with
    WAIT the publisher sees the failure instead (a connection error: ``publish_retrying`` writes them
    again to the new master, and consumers skip the message ids they already handled). Entries the
    replicas did not confirm in time are counted (``emotune_stream_unreplicated_total``) and kept: the
    master has them. A master that has no replica at all (its replica died, or has just taken over from
    it) is not waited for during ``NO_REPLICA_RECHECK_S``, its writes counted the same: waiting for a
    replica that is not there would only slow every publish by the timeout. RELIABILITY.md has what each
    choice loses in a failover.
    """

    def __init__(
        self,
        redis: Client,
        stream: str,
        maxlen: int | None,
        slack: int | None = None,
        retention_s: int | None = None,
        expire_every_s: float = EXPIRE_EVERY_S,
        wait_replicas: int | None = None,
        wait_timeout_ms: int | None = None,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.slack = slack if slack is not None else max(1, min(1000, (maxlen or 0) // 10))
        defaults = StreamSettings()
        self.retention_s = defaults.retention_s if retention_s is None else retention_s
        wait = defaults.wait_replicas if wait_replicas is None else wait_replicas
        self.wait_replicas = (1 if isinstance(redis, RedisCluster) else 0) if wait < 0 else wait
        self.wait_timeout_ms = defaults.wait_timeout_ms if wait_timeout_ms is None else wait_timeout_ms
        self._no_replica_until = 0.0
        self._trim = redis.register_script(TRIM_SCRIPT)
        self._since_trim = 0
        self.expire_every_s = expire_every_s
        self._next_expire = time.monotonic() + expire_every_s

    async def publish(self, message: Message) -> str:
        """Add one message; returns its stream entry id."""
        return (await self.publish_many([message]))[0]

    async def publish_many(self, messages: Iterable[Message]) -> list[str]:
        """Add messages in one round trip, in order; returns their entry ids."""
        waits = self.wait_replicas and time.monotonic() >= self._no_replica_until
        node = await node_of(self.redis, self.stream) if waits else {}
        async with self.redis.pipeline(transaction=False) as pipe:
            count = 0
            for message in messages:
                pipe.xadd(self.stream, encode(message))
                count += 1
            if not count:
                return []
            if waits:
                pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms, **node)
            replies = await pipe.execute()
        if self.wait_replicas and (not waits or replies[count] < self.wait_replicas):
            metrics.UNREPLICATED.labels(self.stream).inc(count)
            if waits:
                await self._unconfirmed(count, replies[count], node)
        await self.published(count)
        return [i.decode() for i in replies[:count]]

    async def _unconfirmed(self, count: int, replicas: int, node: dict) -> None:
        """A WAIT that timed out: a replica that lags is waited for again next time; a master with no replica
        at all (its replica died, or took over and the old master is not back) is not, for a while."""
        role = await self.redis.execute_command("ROLE", **node)
        alone = role[0] in (b"master", "master") and not role[2]
        if alone:
            self._no_replica_until = time.monotonic() + NO_REPLICA_RECHECK_S
        log.warning("publish_unreplicated", stream=self.stream, count=count, replicas=replicas,
                    wanted=self.wait_replicas, timeout_ms=self.wait_timeout_ms,
                    waits_again_in_s=NO_REPLICA_RECHECK_S if alone else 0)  # fmt: skip

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
