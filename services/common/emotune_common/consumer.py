"""Consuming a Redis stream in a consumer group, at least once.

The loop, for one consumer of one group:

1. On start (and after every reconnect) it re-reads its own pending entries first, so that it
   carries on where it was.
2. Every ``claim_idle_ms / 2`` it claims entries that any consumer left pending for longer than
   ``claim_idle_ms`` (XAUTOCLAIM): the work of a consumer that died.
3. Otherwise it reads up to ``batch_size`` new entries, blocking at most ``block_ms``.

Each batch is decoded and handed to the handler. What the handler returns to publish is written in
one MULTI/EXEC transaction together with the XACK of the handled entries, so an entry is
acknowledged only when its output is written, and never without it (outputs to another Redis are
written just before the transaction, see ``_commit``). Entries that fail stay pending
and come back through step 2; at the ``max_deliveries``-th failed delivery an entry goes to
``emotune:dlq:<stream>`` with the reason. Message ids that were handled are remembered for
``dedupe_ttl_s``, so an entry delivered twice (a slow consumer whose work was claimed) is skipped.
An entry larger than ``max_entry_bytes`` goes to the dead-letter stream at once, unparsed, and
without its payload (it would only get copied again).

Every ``expire_every_s`` the consumer also ages out (``retention_s``) the stream it reads, its
dead-letter stream and the streams it published to, so that entries leave even when nobody
publishes any more (producers trim for age as they publish too).

Redis going away is backed off from with jitter, forever, until a stop is asked for. A stop lets the
batch in hand finish and be acknowledged, then returns.

On a Redis Cluster (emotune_common.redis_client) the same code runs on a shard's hash-tagged stream
(emotune_common.shards): the transaction's keys are the input stream's and its shard's, one slot. An
output to another slot is written before the transaction, as an output to another Redis is; while a
resharding moves the slot, a refused transaction is tried again in place (``_transact_while_slot_moves``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from emotune_common import metrics
from emotune_common.codec import DecodeError, EntryTooLarge, decode, encode, entry_size
from emotune_common.logs import get_logger
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import SLOT_MOVING_ERRORS, TRANSIENT_ERRORS, Client
from emotune_common.settings import StreamSettings
from emotune_common.streams import dead_letter_stream

log = get_logger("emotune.consumer")

#: Dead letters of oversized entries keep only the fields up to this size (the message type, say).
_DLQ_FIELD_BYTES = 1024

#: How many claim periods a handler's entries are kept from other consumers (see _kept_claimed).
KEEP_CLAIMED_PERIODS = 10


@dataclass(frozen=True)
class Delivery:
    """One decoded entry handed to a handler."""

    entry_id: str
    message: Message
    deliveries: int


@dataclass
class Outcome:
    """What a handler made of a batch.

    ``publish``: (producer, message) to add, written atomically with the acknowledgement; the
    producer keeps its stream bounded and counts drops as for any other publish.
    ``failed``: entry id -> reason for entries to retry later; every other entry is acknowledged.
    """

    publish: list[tuple[StreamProducer, Message]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Sequence[Delivery]], Awaitable[Outcome | None]]


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class _Raw:
    entry_id: str
    fields: dict[bytes, bytes] | None
    deliveries: int = 1


class StreamConsumer:
    """Runs ``handler`` over the entries of ``stream`` as member ``consumer`` of ``group``."""

    def __init__(
        self,
        redis: Client,
        stream: str,
        group: str,
        handler: Handler,
        *,
        consumer: str | None = None,
        settings: StreamSettings | None = None,
        message_type: type[Message] | None = None,
        start_id: str = "0",
        expire_every_s: float = 60.0,
    ) -> None:
        if "{" in group or "}" in group:  # its handled-id sets would hash by the group's tag, not the stream's
            raise ValueError(f"a consumer group's name has no braces: {group!r}")
        self.redis = redis
        self.stream = stream
        self.group = group
        self.handler = handler
        self.consumer = consumer or default_consumer_name()
        self.settings = settings or StreamSettings()
        self.message_type = message_type
        self.start_id = start_id
        self.dlq = dead_letter_stream(stream)
        self._labels = (stream, group)
        self._next_claim = 0.0
        self._next_gauges = 0.0
        self._backoff = 0.0
        self.expire_every_s = expire_every_s
        self._next_expire = 0.0
        self._stop: asyncio.Event | None = None
        self._slot = key_slot(stream.encode())
        self._outside_slot: set[str] = set()  # outputs to other cluster slots, logged once each
        retention = self.settings.retention_s
        self._expiring: dict[str, StreamProducer] = {  # streams aged out by this consumer; outputs join
            name: StreamProducer(redis, name, maxlen=None, retention_s=retention) for name in (stream, self.dlq)
        }

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished first."""
        log.info("consumer_start", stream=self.stream, group=self.group, consumer=self.consumer)
        self._stop = stop
        ready = False  # the group exists and this consumer's own pending entries were handled
        while not stop.is_set():
            try:
                if not ready:
                    await self.ensure_group()
                    await self._drain_own_pending(stop)
                    ready = True
                await self.step()
                self._backoff = 0.0
            except TRANSIENT_ERRORS as e:
                ready = False
                await self._back_off(stop, e)
            except ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                ready = False
                log.warning("group_missing", stream=self.stream, group=self.group)  # Redis lost its data
        log.info("consumer_stop", stream=self.stream, group=self.group, consumer=self.consumer)

    async def step(self) -> int:
        """One round: claim stale entries when due, else read new ones; handle them. Returns the count."""
        batch: list[_Raw] = []
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.settings.claim_idle_ms / 2000
            batch = await self._claim_stale()
        if not batch:
            batch = await self._read(">")
        if batch:
            await self._handle(batch)
        if now >= self._next_gauges:
            self._next_gauges = now + 5
            await self.refresh_gauges()
        if now >= self._next_expire:
            self._next_expire = now + self.expire_every_s
            await self.expire()
        return len(batch)

    async def expire(self) -> int:
        """Age out the input stream, its dead letters and this consumer's outputs; returns the entries evicted.

        A refusal (a script or ACL error) is logged, never fatal: consuming matters more than expiring.
        """
        evicted = 0
        for producer in list(self._expiring.values()):
            try:
                evicted += (await producer.expire())[0]
            except ResponseError as e:
                log.warning("expire_failed", stream=producer.stream, error=str(e))
        return evicted

    async def ensure_group(self) -> None:
        """Create the group (and the stream) if missing; start from ``start_id``."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id=self.start_id, mkstream=True)
            log.info("group_created", stream=self.stream, group=self.group, start_id=self.start_id)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    # -- reading ------------------------------------------------------------------------------------

    async def _read(self, from_id: str) -> list[_Raw]:
        block = self.settings.block_ms if from_id == ">" else None
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: from_id}, count=self.settings.batch_size, block=block
        )
        entries = [_Raw(i.decode(), f) for _, items in reply for i, f in items]
        if from_id != ">" and entries:
            await self._fill_delivery_counts(entries)
        return entries

    async def _drain_own_pending(self, stop: asyncio.Event) -> None:
        """Handle what this consumer had been delivered but not acknowledged (a restart, a reconnect)."""
        last = "0-0"
        while not stop.is_set():
            batch = await self._read(last)
            if not batch:
                return
            last = batch[-1].entry_id
            metrics.RETRIED.labels(*self._labels).inc(len(batch))
            await self._handle(batch)

    async def _claim_stale(self) -> list[_Raw]:
        reply = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, self.settings.claim_idle_ms, "0-0", count=self.settings.batch_size
        )
        claimed, deleted = reply[1], (reply[2] if len(reply) > 2 else [])
        if deleted:
            metrics.LOST_PENDING.labels(*self._labels).inc(len(deleted))
            log.warning("pending_entries_trimmed", stream=self.stream, group=self.group, count=len(deleted))
        entries = [_Raw(i.decode(), f) for i, f in claimed]
        if entries:
            await self._fill_delivery_counts(entries)
            metrics.RETRIED.labels(*self._labels).inc(len(entries))
            log.info("claimed", stream=self.stream, group=self.group, count=len(entries))
        return entries

    async def _fill_delivery_counts(self, entries: list[_Raw]) -> None:
        """Delivery counts from XPENDING, one exact lookup per entry, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for e in entries:
                pipe.xpending_range(self.stream, self.group, e.entry_id, e.entry_id, 1)
            replies = await pipe.execute()
        for e, pending in zip(entries, replies, strict=True):
            e.deliveries = pending[0]["times_delivered"] if pending else 1

    # -- handling -----------------------------------------------------------------------------------

    async def _handle(self, batch: list[_Raw]) -> None:
        started = time.perf_counter()
        metrics.CONSUMED.labels(*self._labels).inc(len(batch))
        metrics.BATCH_SIZE.labels(*self._labels).observe(len(batch))
        by_id = {e.entry_id: e for e in batch}

        failures: dict[str, str] = {}
        poison: dict[str, str] = {}  # dead-lettered at once: no retry could change them
        deliveries: list[Delivery] = []
        for e in batch:
            if e.fields is None:  # trimmed away while pending: nothing left to handle or dead-letter
                metrics.LOST_PENDING.labels(*self._labels).inc()
                log.warning("pending_entry_trimmed", stream=self.stream, entry_id=e.entry_id)
                continue
            if e.deliveries > self.settings.max_deliveries:
                failures[e.entry_id] = f"delivered {e.deliveries} times without being acknowledged"
                continue
            try:
                message = decode(e.fields, self.message_type, self.settings.max_entry_bytes)
                deliveries.append(Delivery(e.entry_id, message, e.deliveries))
            except EntryTooLarge as err:
                poison[e.entry_id] = f"too large: {err}"
            except DecodeError as err:
                failures[e.entry_id] = f"undecodable: {err}"

        handled_before = await self._already_handled(deliveries)
        todo: list[Delivery] = []
        duplicates = 0
        for d in deliveries:  # skip ids handled earlier, and repeats within this batch
            if d.message.header.id in handled_before:
                duplicates += 1
            else:
                handled_before.add(d.message.header.id)
                todo.append(d)
        outcome = Outcome()
        if todo:
            try:
                async with self._kept_claimed([d.entry_id for d in todo]):
                    outcome = await self.handler(todo) or Outcome()
            except Exception as err:  # a handler bug must not stop the stream: retry, then dead-letter
                log.exception("handler_failed", stream=self.stream, group=self.group, count=len(todo))
                outcome = Outcome(failed={d.entry_id: f"handler error: {type(err).__name__}: {err}" for d in todo})
            failures.update(outcome.failed)

        dead = {i: r for i, r in failures.items() if by_id[i].deliveries >= self.settings.max_deliveries} | poison
        retry = {i: r for i, r in failures.items() if i not in dead}
        done = [e.entry_id for e in batch if e.entry_id not in retry]
        handled_ids = [d.message.header.id for d in todo if d.entry_id not in failures]
        await self._commit(outcome.publish, done, dead, by_id, handled_ids)

        message_ids = {d.entry_id: d.message.header.id for d in deliveries}
        if duplicates:
            metrics.DUPLICATES.labels(*self._labels).inc(duplicates)
        if retry:
            metrics.FAILED.labels(*self._labels).inc(len(retry))
            for entry_id, reason in retry.items():
                log.warning(
                    "entry_failed",
                    stream=self.stream,
                    entry_id=entry_id,
                    message_id=message_ids.get(entry_id),
                    reason=reason,
                    deliveries=by_id[entry_id].deliveries,
                )
        for entry_id, reason in dead.items():
            log.error(
                "dead_lettered",
                stream=self.stream,
                entry_id=entry_id,
                message_id=message_ids.get(entry_id),
                reason=reason,
                deliveries=by_id[entry_id].deliveries,
            )
        metrics.ACKED.labels(*self._labels).inc(len(done))
        metrics.DEAD_LETTERED.labels(*self._labels).inc(len(dead))
        metrics.HANDLE_SECONDS.labels(*self._labels).observe(time.perf_counter() - started)

    @contextlib.asynccontextmanager
    async def _kept_claimed(self, entry_ids: list[str]) -> AsyncIterator[None]:
        """While the handler works on ``entry_ids``, reset their idle time every third of a claim
        period (XCLAIM JUSTID: no new delivery is counted). Otherwise, when the handler waits longer
        than ``claim_idle_ms`` (a model server down), idle consumers claim the entries from this live
        one again and again, each claim a delivery, until a healthy entry reaches the dead-letter
        stream. Kept up for at most KEEP_CLAIMED_PERIODS periods: a hung handler's entries are still
        claimed by the others in the end."""

        async def refresh() -> None:
            for _ in range(3 * KEEP_CLAIMED_PERIODS):
                await asyncio.sleep(self.settings.claim_idle_ms / 3000)
                try:
                    await self.redis.xclaim(self.stream, self.group, self.consumer, 0, entry_ids, justid=True)
                except TRANSIENT_ERRORS:
                    continue
                except ResponseError as e:  # e.g. a Redis user without XCLAIM: the handler goes on regardless
                    log.warning("keep_claimed_failed", stream=self.stream, group=self.group, error=str(e))
                    return

        task = asyncio.create_task(refresh())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _already_handled(self, deliveries: list[Delivery]) -> set[str]:
        if not self.settings.dedupe_ttl_s or not deliveries:
            return set()
        ids = [d.message.header.id for d in deliveries]
        bucket = self._seen_bucket()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smismember(self._seen_key(bucket), ids)
            pipe.smismember(self._seen_key(bucket - 1), ids)
            now, before = await pipe.execute()
        return {i for i, a, b in zip(ids, now, before, strict=True) if a or b}

    def _seen_bucket(self) -> int:
        return int(time.time() // self.settings.dedupe_ttl_s)

    def _seen_key(self, bucket: int) -> str:
        """A set of handled message ids per ``dedupe_ttl_s`` window: one SADD per batch, not a key per id.

        Lookups check this window and the one before, so an id is remembered for at least the TTL.
        """
        return f"emotune:seen:{self.group}:{self.stream}:{bucket}"

    async def _commit(
        self,
        publish: list[tuple[StreamProducer, Message]],
        done: list[str],
        dead: dict[str, str],
        by_id: dict[str, _Raw],
        handled_ids: list[str],
    ) -> None:
        """Outputs, dead letters, handled-id marks and the acknowledgement, all or nothing.

        Outputs to another Redis (capture reads frames from a Redis of their own and writes crops to
        the main one) cannot join the transaction: they are written first, so that an acknowledgement
        still never comes before its output. A crash between the two delivers the entry again; its
        outputs are then written twice with the same message ids, and their consumers drop the repeat.
        """
        if not (publish or done):
            return
        elsewhere: dict[StreamProducer, list[Message]] = {}
        for producer, message in publish:
            if not self._joins_transaction(producer):
                elsewhere.setdefault(producer, []).append(message)
        for producer, messages in elsewhere.items():
            await self._publish_elsewhere(producer, messages, done)
            self._expiring.setdefault(producer.stream, producer)
        publish = [(p, m) for p, m in publish if p not in elsewhere]
        transact = functools.partial(self._transact, publish, done, dead, by_id, handled_ids)
        try:
            await transact()
        except SLOT_MOVING_ERRORS as e:
            async with self._kept_claimed(list(by_id)):
                await self._transact_while_slot_moves(transact, e, len(by_id))
        for producer, _ in publish:
            self._expiring.setdefault(producer.stream, producer)
            await producer.published(1)

    async def _transact(
        self,
        publish: list[tuple[StreamProducer, Message]],
        done: list[str],
        dead: dict[str, str],
        by_id: dict[str, _Raw],
        handled_ids: list[str],
    ) -> None:
        """The MULTI/EXEC of :meth:`_commit`."""
        async with self.redis.pipeline(transaction=True) as tx:
            for producer, message in publish:
                tx.xadd(producer.stream, encode(message))
            for entry_id, reason in dead.items():
                tx.xadd(
                    self.dlq,
                    self._dead_letter(by_id[entry_id], reason),
                    maxlen=self.settings.dlq_maxlen,
                    approximate=True,
                )
            if handled_ids and self.settings.dedupe_ttl_s:
                key = self._seen_key(self._seen_bucket())
                tx.sadd(key, *handled_ids)
                tx.expire(key, 2 * self.settings.dedupe_ttl_s)
            if done:
                tx.xack(self.stream, self.group, *done)
            await tx.execute()

    async def _transact_while_slot_moves(
        self, transact: Callable[[], Awaitable[None]], error: Exception, entries: int
    ) -> None:
        """Try the transaction (of ``entries`` entries) again, with backoff, until the cluster slot it is in has
        moved (or a stop is asked for: the entries then stay pending). While a resharding moves the slot key by
        key, a transaction whose keys are split between the two masters is refused whole (ASK, TRYAGAIN: none
        of it ran), after redis-py's own few tries. Reading the entries again instead would count a delivery
        each time, and a slow move would send healthy entries to the dead-letter stream."""
        backoff = 0.05
        while True:
            if self._stop is None or self._stop.is_set():
                raise error
            log.warning("commit_retried", stream=self.stream, group=self.group, count=entries,
                        error=f"{type(error).__name__}: {error}", retry_in_s=backoff)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)
            try:
                await transact()
                return
            except SLOT_MOVING_ERRORS as e:
                error, backoff = e, min(2 * backoff, 1.0)

    def _joins_transaction(self, producer: StreamProducer) -> bool:
        """Whether ``producer``'s outputs can be written in the transaction of the acknowledgement: the same
        Redis and, on a cluster, the same slot as the input stream (a shard's streams share one). An output
        to another slot of a cluster would fail the transaction (CROSSSLOT): it is written before it, as an
        output to another Redis is, and logged once, since a shard's outputs belong to the same shard."""
        if producer.redis is not self.redis:
            return False
        if not isinstance(self.redis, RedisCluster) or key_slot(producer.stream.encode()) == self._slot:
            return True
        if producer.stream not in self._outside_slot:
            self._outside_slot.add(producer.stream)
            log.warning("output_outside_slot", stream=self.stream, output=producer.stream,
                        written="before the acknowledgement, not in its transaction")  # fmt: skip
        return False

    async def _publish_elsewhere(self, producer: StreamProducer, messages: list[Message], entry_ids: list[str]) -> None:
        """Write outputs to another Redis, retrying while it is away (until a stop is asked for), the
        batch held and kept claimed. Reading the entries again instead would count a delivery each
        time, and a long outage of the other Redis would dead-letter healthy entries."""
        async with self._kept_claimed(entry_ids):
            if self._stop is None:  # stepped by hand, outside run(): nothing to wait on
                await producer.publish_many(messages)
            elif not await producer.publish_retrying(messages, self._stop, max_backoff_s=5.0):
                # stopped while that Redis was away: the entries stay pending, for this consumer's next start
                raise RedisConnectionError(f"stopped before {producer.stream} could be written")

    def _dead_letter(self, entry: _Raw, reason: str) -> dict[bytes | str, bytes | str | int]:
        """The original entry plus the reason; an oversized entry keeps only its small fields."""
        raw = entry.fields or {}
        fields: dict[bytes | str, bytes | str | int] = dict(raw)
        if (size := entry_size(raw)) > self.settings.max_entry_bytes:
            omitted = sorted(k for k, v in raw.items() if len(v) > _DLQ_FIELD_BYTES)
            fields = {k: v for k, v in raw.items() if k not in omitted}
            fields.update({"dlq_omitted": b",".join(omitted), "dlq_entry_bytes": size})
        fields.update(
            {
                "dlq_reason": reason,
                "dlq_stream": self.stream,
                "dlq_group": self.group,
                "dlq_entry_id": entry.entry_id,
                "dlq_deliveries": entry.deliveries,
                "dlq_at_us": time.time_ns() // 1000,
            }
        )
        return fields

    # -- health -------------------------------------------------------------------------------------

    async def refresh_gauges(self) -> dict[str, int | None]:
        """Pending and lag of this group, from XINFO GROUPS, into the gauges; returned too."""
        for g in await self.redis.xinfo_groups(self.stream):
            if g["name"].decode() == self.group:
                pending, lag = int(g["pending"]), g.get("lag")
                metrics.PENDING.labels(*self._labels).set(pending)
                if lag is not None:
                    metrics.LAG.labels(*self._labels).set(int(lag))
                return {"pending": pending, "lag": None if lag is None else int(lag)}
        return {"pending": 0, "lag": None}

    async def _back_off(self, stop: asyncio.Event, error: Exception) -> None:
        self._backoff = min(5.0, max(0.1, self._backoff * 2))
        delay = self._backoff * random.uniform(0.5, 1.0)
        metrics.RECONNECTS.labels(self.stream).inc()
        log.warning(
            "redis_unavailable",
            stream=self.stream,
            error=f"{type(error).__name__}: {error}",
            retry_in_s=round(delay, 2),
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
