"""Live events for subscribers: one Redis reader per gateway process, fanned out in memory.

The hub reads emotune:emotions and emotune:recommendations with one blocking XREAD, turns each entry
into JSON once, and offers it to the subscriptions of the entry's user. Each subscription has a
bounded queue: a subscriber that falls behind by ``maxsize`` events is cut off (and told so) rather
than slowing the hub or anyone else; it reconnects with its last event id and replays what it missed
from the streams.

An event id is a cursor over both streams, ``<emotions entry id>_<recommendations entry id>``: every
entry of either stream up to its part of the cursor has been delivered. Resuming replays the entries
after it (XRANGE), then carries on live, skipping what the replay already sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis.asyncio as aioredis

from emotune.v1 import messages_pb2
from emotune_common.codec import DecodeError, decode
from emotune_common.logs import get_logger
from emotune_common.redis_client import TRANSIENT_ERRORS
from emotune_common.streams import EMOTIONS, RECOMMENDATIONS
from emotune_gateway import metrics, views

log = get_logger("emotune.gateway.hub")

STREAMS = (EMOTIONS, RECOMMENDATIONS)
TYPES = ("emotion", "mood", "recommendations")
_CURSOR = re.compile(r"^(\d{1,20}-\d{1,20})_(\d{1,20}-\d{1,20})$")


def _id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


@dataclass(frozen=True)
class Cursor:
    """A position in both streams (entry ids as strings)."""

    emotions: str = "0-0"
    recommendations: str = "0-0"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.match(text.strip())
        if not match:
            raise ValueError(f"bad event id {text[:60]!r}: expected <entry id>_<entry id>, e.g. 1700000000000-0_0-0")
        return cls(match[1], match[2])

    def __str__(self) -> str:
        return f"{self.emotions}_{self.recommendations}"

    def get(self, stream: str) -> str:
        return self.emotions if stream == EMOTIONS else self.recommendations

    def advanced(self, stream: str, entry_id: str) -> Cursor:
        if _id(entry_id) <= _id(self.get(stream)):
            return self
        if stream == EMOTIONS:
            return Cursor(entry_id, self.recommendations)
        return Cursor(self.emotions, entry_id)

    def merged(self, other: Cursor) -> Cursor:
        """The later position in each stream."""
        return self.advanced(EMOTIONS, other.emotions).advanced(RECOMMENDATIONS, other.recommendations)


@dataclass(frozen=True)
class Event:
    stream: str
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


def to_event(stream: str, entry_id: str, message, cursor: Cursor) -> Event | None:
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
    return Event(stream, entry_id, h.user_id, h.session_id, kind, cursor, body, h.created_at_us)


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

    def offer(self, event: Event) -> None:
        """Called by the hub: never waits. A full queue cuts the subscriber off."""
        if self.overflowed or not self.wants(event) or _id(event.entry_id) <= _id(self.replayed_to.get(event.stream)):
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
            if _id(event.entry_id) > _id(self.replayed_to.get(event.stream)):  # else the replay sent it already
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
    def __init__(self, redis: aioredis.Redis, block_ms: int = 1000, count: int = 500) -> None:
        self.redis = redis
        self.block_ms = block_ms
        self.count = count
        self.position = Cursor()
        self.started = asyncio.Event()
        self._subscribers: dict[str, set[Subscription]] = defaultdict(set)

    @property
    def subscribers(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    async def _tail(self) -> Cursor:
        cursor = Cursor()
        for stream in STREAMS:
            last = await self.redis.xrevrange(stream, count=1)
            if last:
                cursor = cursor.advanced(stream, last[0][0].decode())
        return cursor

    async def run(self, stop: asyncio.Event) -> None:
        """Read both streams from their current ends and dispatch, until ``stop``."""
        backoff = 0.1
        while not stop.is_set():
            try:
                if not self.started.is_set():
                    self.position = await self._tail()
                    self.started.set()
                reply = await self.redis.xread(
                    {s: self.position.get(s) for s in STREAMS}, count=self.count, block=self.block_ms
                )
                backoff = 0.1
            except TRANSIENT_ERRORS as e:
                log.warning("hub_read_failed", error=str(e), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self.dispatch(_merge((s.decode(), entries) for s, entries in reply or []))

    def dispatch(self, entries: list[tuple[str, str, dict[bytes, bytes]]]) -> None:
        for stream, entry_id, fields in entries:
            self.position = self.position.advanced(stream, entry_id)
            message = parse(fields) if self._subscribers else None
            subscribers = self._subscribers.get(message.header.user_id) if message is not None else None
            if not subscribers:
                continue
            event = to_event(stream, entry_id, message, self.position)
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
        together with the live queue nothing is missed); later live duplicates are skipped."""
        entries: list[tuple[str, str, dict[bytes, bytes]]] = []
        for stream in STREAMS:
            start = "(" + since.get(stream)
            while True:
                chunk = await self.redis.xrange(stream, min=start, max="+", count=page)
                entries.extend((stream, i.decode(), f) for i, f in chunk)
                if len(chunk) < page:
                    break
                start = "(" + chunk[-1][0].decode()
        events, cursor = [], since
        for stream, entry_id, fields in sorted(entries, key=lambda e: _id(e[1])):
            cursor = cursor.advanced(stream, entry_id)
            message = parse(fields)
            event = to_event(stream, entry_id, message, cursor) if message is not None else None
            if event is not None and sub.wants(event):
                events.append(event)
        sub.replayed_to = cursor
        # The client has everything up to ``since``, not up to the hub's position: each replayed event's id is
        # then its own place in the streams, and a client cut off mid-replay resumes where it really was.
        sub.position = since
        return events


def _merge(replies: Iterable[tuple[str, list]]) -> list[tuple[str, str, dict[bytes, bytes]]]:
    """Entries of several streams in one order (by entry id, i.e. by time of writing)."""
    entries = [(stream, i.decode(), fields) for stream, chunk in replies for i, fields in chunk]
    return sorted(entries, key=lambda e: _id(e[1]))
