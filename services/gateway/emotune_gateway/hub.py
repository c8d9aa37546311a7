"""Live events for subscribers: one Redis reader per shard in each gateway process, fanned out in memory.

For each shard (emotune_common.shards) the hub reads that shard of emotune:emotions and of
emotune:recommendations with one blocking XREAD (the two keys share the shard's slot, as a cluster
requires), turns each entry into JSON once, and offers it to the subscriptions of the entry's user. Each
subscription has a bounded queue: a subscriber that falls behind by ``maxsize`` events is cut off (and
told so) rather than slowing the hub or anyone else; it reconnects with its last event id and replays
what it missed from the streams.

An event id is a cursor over every shard of both streams: per shard ``<emotions entry id>_<recommendations
entry id>``, the shards in order joined by ``.`` (a shard still at its start is left empty): every entry of
a stream's shard up to its part of the cursor has been delivered. Entry ids are comparable within one
stream only (a cluster's masters have their own clocks), so the cursor keeps every shard's position.
Resuming replays the entries after it (XRANGE), then carries on live, skipping what the replay already
sent. An id of one part only (from before the streams were sharded) stands for every shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from emotune.v1 import messages_pb2
from emotune_common.codec import DecodeError, decode
from emotune_common.logs import get_logger
from emotune_common.redis_client import TRANSIENT_ERRORS, Client
from emotune_common.shards import shard_of, shard_stream
from emotune_common.streams import EMOTIONS, RECOMMENDATIONS
from emotune_gateway import metrics, views

log = get_logger("emotune.gateway.hub")

STREAMS = (EMOTIONS, RECOMMENDATIONS)
TYPES = ("emotion", "mood", "recommendations")
_PAIR = re.compile(r"^(\d{1,20}-\d{1,20})_(\d{1,20}-\d{1,20})$")
#: A shard's position before anything: (emotions, recommendations).
START = ("0-0", "0-0")
#: The longest event id taken from a client: every part of 16 shards at its longest, and room to spare.
MAX_CURSOR = 4096


def _id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


@dataclass(frozen=True)
class Cursor:
    """A position in every shard of both streams: per shard (emotions entry id, recommendations entry id).
    A shard past the end of ``positions`` is at its start."""

    positions: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str, shards: int) -> Cursor:
        """The cursor of an event id; ValueError for one that is malformed or of another number of shards."""
        parts = text.strip().split(".")
        if len(parts) == 1:  # from before the shards (or of one shard): the same position in every shard
            parts *= shards
        if len(parts) != shards:
            raise ValueError(f"bad event id: {len(parts)} shards in it, the streams have {shards}")
        positions = []
        for part in parts:
            match = _PAIR.match(part) if part else None
            if part and not match:
                raise ValueError(f"bad event id part {part[:60]!r}: expected <entry id>_<entry id>, e.g. 17000-0_0-0")
            positions.append((match[1], match[2]) if match else START)
        return cls(tuple(positions))

    def __str__(self) -> str:
        return ".".join("" if p == START else f"{p[0]}_{p[1]}" for p in self.positions) or "_".join(START)

    def get(self, shard: int, stream: str) -> str:
        emotions, recommendations = self.positions[shard] if shard < len(self.positions) else START
        return emotions if stream == EMOTIONS else recommendations

    def advanced(self, shard: int, stream: str, entry_id: str) -> Cursor:
        if _id(entry_id) <= _id(self.get(shard, stream)):
            return self
        positions = list(self.positions) + [START] * (shard + 1 - len(self.positions))
        emotions, recommendations = positions[shard]
        positions[shard] = (entry_id, recommendations) if stream == EMOTIONS else (emotions, entry_id)
        return Cursor(tuple(positions))

    def merged(self, other: Cursor) -> Cursor:
        """The later position in each shard of each stream."""
        cursor = self
        for shard, (emotions, recommendations) in enumerate(other.positions):
            cursor = cursor.advanced(shard, EMOTIONS, emotions).advanced(shard, RECOMMENDATIONS, recommendations)
        return cursor


@dataclass(frozen=True)
class Event:
    shard: int
    stream: str  # the stream's name in emotune_common.streams, not its shard's
    entry_id: str
    user_id: str
    session_id: str
    type: str
    cursor: Cursor
    body: str  # the JSON object without its "id", which each subscription adds (see Subscription.text)
    created_at_us: int


def parse(fields: dict[bytes, bytes]):
    """The message of a stream entry, or None when it does not decode (the hub skips it)."""
    try:
        return decode(fields)
    except DecodeError:
        return None


def to_event(shard: int, stream: str, entry_id: str, message, cursor: Cursor) -> Event | None:
    """The event of a stream entry's message, or None for a message that is no event."""
    if isinstance(message, messages_pb2.EmotionEvent):
        kind, data = "emotion", views.emotion(message)
    elif isinstance(message, messages_pb2.MoodChange):
        kind, data = "mood", views.mood(message)
    elif isinstance(message, messages_pb2.RecommendationSet):
        kind, data = "recommendations", views.recommendations(message)
    else:
        return None
    h = message.header
    body = json.dumps({"type": kind, "session_id": h.session_id, "data": data}, separators=(",", ":"))
    return Event(shard, stream, entry_id, h.user_id, h.session_id, kind, cursor, body, h.created_at_us)


class Overflow(Exception):
    """The subscriber fell too far behind; it should resume from its last event id."""


class Closed(Exception):
    """The subscription was closed (its client went away)."""


@dataclass(eq=False)
class Subscription:
    """One subscriber's filter, queue and position."""

    user_id: str
    session_id: str | None = None
    types: frozenset[str] = frozenset(TYPES)
    maxsize: int = 1000
    position: Cursor = field(default_factory=Cursor)
    overflowed: bool = False
    closed: bool = False
    replayed_to: Cursor = field(default_factory=Cursor)  # entries up to here were replayed
    _queue: asyncio.Queue[Event | None] = field(init=False)

    def __post_init__(self) -> None:
        self._queue = asyncio.Queue(self.maxsize)

    def wants(self, event: Event) -> bool:
        return (
            event.user_id == self.user_id
            and event.type in self.types
            and (self.session_id is None or event.session_id == self.session_id)
        )

    def replayed(self, event: Event) -> bool:
        """Whether the replay sent ``event`` already."""
        return _id(event.entry_id) <= _id(self.replayed_to.get(event.shard, event.stream))

    def offer(self, event: Event) -> None:
        """Called by the hub: never waits. A full queue cuts the subscriber off."""
        if self.overflowed or not self.wants(event) or self.replayed(event):
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            metrics.SUBSCRIBER_OVERFLOWS.inc()

    async def next(self) -> Event:
        """The next event; raises Overflow once the queue is drained after an overflow, Closed after close()."""
        if self.closed:
            raise Closed()
        if self.overflowed and self._queue.empty():
            raise Overflow(str(self.position))
        while True:
            event = self._queue.get_nowait() if self.overflowed else await self._queue.get()
            if event is None:
                raise Closed()
            if not self.replayed(event):
                return event
            if self.overflowed and self._queue.empty():
                raise Overflow(str(self.position))

    def close(self) -> None:
        """Wake a waiting :meth:`next` with Closed."""
        self.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def text(self, event: Event) -> str:
        """The event as sent, with this subscriber's cursor as its id (the cursor only moves forward)."""
        self.position = self.position.merged(event.cursor)
        return '{"id":"' + str(self.position) + '",' + event.body[1:]


class Hub:
    """The fan-out of one gateway process: a reader per shard, all offering to the same subscriptions."""

    def __init__(self, redis: Client, shards: int = 1, block_ms: int = 1000, count: int = 500) -> None:
        self.redis = redis
        self.shards = shards
        self.block_ms = block_ms
        self.count = count
        self.position = Cursor((START,) * shards)
        self.started = asyncio.Event()  # every shard's reader has found its streams' ends
        self._tailed: set[int] = set()
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    async def _tail(self, shard: int) -> None:
        """Start ``shard`` at the current ends of its streams."""
        for stream in STREAMS:
            last = await self.redis.xrevrange(shard_stream(stream, shard), count=1)
            if last:
                self.position = self.position.advanced(shard, stream, last[0][0].decode())
        self._tailed.add(shard)
        if len(self._tailed) == self.shards:
            self.started.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Read every shard from its streams' current ends and dispatch, until ``stop``."""
        await asyncio.gather(*(self._read(shard, stop) for shard in range(self.shards)))

    async def _read(self, shard: int, stop: asyncio.Event) -> None:
        """The reader of one shard: both of its streams in one blocking XREAD (one slot).

        Nothing but ``stop`` ends it: were it to end, its shard's events would stop while the gateway looks
        well. Redis away (a restart, a failover; a connection that hangs times out, redis-py's socket
        timeout) and any other error are logged and the read made again, with backoff.
        """
        names = {shard_stream(stream, shard): stream for stream in STREAMS}
        backoff = 0.1
        while not stop.is_set():
            try:
                if shard not in self._tailed:
                    await self._tail(shard)
                reply = await self.redis.xread(
                    {name: self.position.get(shard, stream) for name, stream in names.items()},
                    count=self.count,
                    block=self.block_ms,
                )
                self.dispatch(shard, _merge((names[s.decode()], entries) for s, entries in reply or []))
                backoff = 0.1
                continue
            except TRANSIENT_ERRORS as e:
                log.warning("hub_read_failed", shard=shard, error=f"{type(e).__name__}: {e}", retry_in_s=backoff)
            except Exception:
                log.exception("hub_read_crashed", shard=shard, retry_in_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def dispatch(self, shard: int, entries: list[tuple[str, str, dict[bytes, bytes]]]) -> None:
        """Offer one shard's entries (stream, entry id, fields) to the subscriptions of their users."""
        for stream, entry_id, fields in entries:
            self.position = self.position.advanced(shard, stream, entry_id)
            message = parse(fields) if self._subscribers else None
            subscribers = self._subscribers.get(message.header.user_id) if message is not None else None
            if not subscribers:
                continue
            event = to_event(shard, stream, entry_id, message, self.position)
            if event is None:
                continue
            metrics.EVENTS_DISPATCHED.labels(event.type).inc()
            for sub in subscribers:
                sub.offer(event)

    def subscribe(self, sub: Subscription) -> Subscription:
        """Register ``sub``: it receives every matching entry the hub reads from now on."""
        self._subscribers[sub.user_id].add(sub)
        metrics.SUBSCRIBERS.inc()
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.user_id)
        if subs and sub in subs:
            subs.discard(sub)
            metrics.SUBSCRIBERS.dec()
            if not subs:
                del self._subscribers[sub.user_id]

    async def replay(self, sub: Subscription, since: Cursor, page: int = 1000) -> list[Event]:
        """The matching events after ``since``, in order (call after :meth:`subscribe`, so that
        together with the live queue nothing is missed); later live duplicates are skipped.

        A subscription to one session reads its shard only; one to all of a user's sessions reads every shard.
        """
        shards = [shard_of(sub.session_id, self.shards)] if sub.session_id else range(self.shards)
        entries: list[tuple[int, str, str, dict[bytes, bytes]]] = []
        for shard in shards:
            for stream in STREAMS:
                entries.extend((shard, stream, i, f) for i, f in await self._after(shard, stream, since, page))
        events, cursor = [], since
        for shard, stream, entry_id, fields in sorted(entries, key=lambda e: _id(e[2])):
            cursor = cursor.advanced(shard, stream, entry_id)
            message = parse(fields)
            event = to_event(shard, stream, entry_id, message, cursor) if message is not None else None
            if event is not None and sub.wants(event):
                events.append(event)
        sub.replayed_to = cursor
        # The client has everything up to ``since``, not up to the hub's position: each replayed event's id is
        # then its own place in the streams, and a client cut off mid-replay resumes where it really was.
        sub.position = since
        return events

    async def _after(self, shard: int, stream: str, since: Cursor, page: int) -> list[tuple[str, dict[bytes, bytes]]]:
        """The entries of ``stream``'s shard after ``since``'s position in it (XRANGE, ``page`` at a time)."""
        name, start, found = shard_stream(stream, shard), "(" + since.get(shard, stream), []
        while True:
            chunk = await self.redis.xrange(name, min=start, max="+", count=page)
            found.extend((i.decode(), f) for i, f in chunk)
            if len(chunk) < page:
                return found
            start = "(" + chunk[-1][0].decode()


def _merge(replies: Iterable[tuple[str, list]]) -> list[tuple[str, str, dict[bytes, bytes]]]:
    """Entries of several streams in one order (by entry id, i.e. by time of writing)."""
    entries = [(stream, i.decode(), fields) for stream, chunk in replies for i, fields in chunk]
    return sorted(entries, key=lambda e: _id(e[1]))
