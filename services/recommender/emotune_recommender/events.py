"""The stream side: emotions in, mood changes and fresh recommendations out; feedback in.

Consumer group ``recommender`` on emotune:emotions keeps each session's mood smoothed (see
smoothing.py); when it changes, a MoodChange and a new RecommendationSet for the session go to
emotune:recommendations, written with the acknowledgement. Consumer group ``recommender`` on
emotune:feedback applies feedback in batches and publishes a fresh set for the session.

Both are read per shard (emotune_common.sharded): a handler is made for one shard, and ``out`` is that
shard's producer of emotune:recommendations, so its sets go with the acknowledgement in one slot. A
session's events, feedback and sets share its shard; feedback without a session is on its user's shard,
and so is the set it brings.

Each session's mood is also kept in Redis, so that the gateway answers "current mood" and "recent
history" in O(1): ``session_key(user, sid, "mood")``, a hash of the state after the newest event, and
``session_key(user, sid, "timeline")``, a list of one JSON point per event (the last ``history``),
and ``session_key(user, sid, "trace")``, one point a second for an hour (what implicit feedback
reads: the mood before and during a track), all expiring ``ttl_s`` after the last write. A session
not held in memory (first seen since a restart, or back after being idle) starts from its mood
hash, so a restart does not reset moods.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis.asyncio as aioredis

from emotune.v1 import messages_pb2
from emotune_common.consumer import Delivery, Outcome
from emotune_common.ids import derived_header
from emotune_common.keys import session_key
from emotune_common.labels import EMOTIONS
from emotune_common.logs import get_logger
from emotune_common.producer import StreamProducer
from emotune_recommender import metrics
from emotune_recommender.core import RecommenderCore
from emotune_recommender.mood import EMOTION_POINTS
from emotune_recommender.smoothing import MoodState, Smoothing

log = get_logger("emotune.recommender")

#: the session trace (what implicit feedback reads): one point a second, for an hour
TRACE_STEP_US = 1_000_000
TRACE_POINTS = 3600
#: (user id, session id)
SessionId = tuple[str, str]


def session_of(message: messages_pb2.EmotionEvent | messages_pb2.Feedback) -> SessionId:
    return message.header.user_id, message.header.session_id


def _rounded(values: Iterable[float]) -> list[float]:
    return [round(float(v), 4) for v in values]


@dataclass
class _Held:
    state: MoodState
    touched: float  # clock() at the last use
    traced_us: int = 0  # capture time of the last point on the session's trace


@dataclass(frozen=True)
class Point:
    """One event's point of its session's timeline, with the session's state for the mood hash."""

    session: SessionId
    state: MoodState
    data: dict[str, Any]


class SessionMoods:
    """The smoothed mood of every live session: in memory, and in Redis when given a client.

    Sessions unused for longer than ``ttl_s`` leave memory. The dict is kept in order of last use,
    so each use looks at the oldest entries only: eviction costs O(1) per update, amortized.
    """

    def __init__(self, smoothing: Smoothing, redis: aioredis.Redis | None = None, ttl_s: int = 86400,
                 history: int = 600, clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.smoothing = smoothing
        self.redis = redis
        self.ttl_s = ttl_s
        self.history = history
        self.clock = clock
        self.sessions: OrderedDict[SessionId, _Held] = OrderedDict()

    def _hold(self, session: SessionId, state: MoodState | None = None) -> MoodState:
        """The state held for ``session`` (else ``state``, else a fresh one), marked as just used."""
        now = self.clock()
        held = self.sessions.get(session)
        if held is None:
            held = self.sessions[session] = _Held(state if state is not None else MoodState(self.smoothing), now)
        held.touched = now
        self.sessions.move_to_end(session)
        while (oldest := next(iter(self.sessions.values()))) is not held and now - oldest.touched > self.ttl_s:
            self.sessions.popitem(last=False)
        return held.state

    async def load(self, sessions: Iterable[SessionId]) -> None:
        """Bring back, in one round trip, the persisted mood of sessions not held in memory."""
        missing = sorted({s for s in sessions if s[0] and s not in self.sessions})
        if not missing or self.redis is None:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for user, sid in missing:
                pipe.hgetall(session_key(user, sid, "mood"))
            saved = await pipe.execute()
        for session, fields in zip(missing, saved, strict=True):
            if session not in self.sessions and (state := self._restore(session, fields)) is not None:
                self._hold(session, state)

    def _restore(self, session: SessionId, fields: dict[bytes, bytes]) -> MoodState | None:
        if not fields:
            return None
        try:
            average = np.array(json.loads(fields[b"smoothed"]), dtype=np.float64)
            mood, last_us = fields[b"mood"].decode(), int(fields[b"updated_at_us"])
            if average.shape != (len(EMOTIONS),) or not np.isfinite(average).all() or mood not in EMOTIONS:
                raise ValueError(f"smoothed {average.tolist()}, mood {mood!r}")
        except (KeyError, ValueError, TypeError) as e:  # a hash of another version, or damaged: start afresh
            log.warning("mood_not_restored", user_id=session[0], session_id=session[1], reason=repr(e))
            return None
        return MoodState(self.smoothing, average, mood, last_us)

    def update(self, event: messages_pb2.EmotionEvent) -> messages_pb2.MoodChange | None:
        """Fold in one event (ValueError if its probabilities are not 7 finite numbers)."""
        state = self._hold(session_of(event))
        change = state.update(np.array(event.probabilities), event.header.captured_at_us)
        if change is None:
            return None
        previous, mood = change
        valence, arousal = EMOTION_POINTS[mood]
        metrics.MOOD_CHANGES.labels(mood).inc()
        return messages_pb2.MoodChange(
            header=derived_header(event.header), mood=EMOTIONS.index(mood) + 1,
            previous_mood=EMOTIONS.index(previous) + 1 if previous else 0, smoothed=state.average.tolist(),
            confidence=state.confidence, valence=valence, arousal=arousal,
        )  # fmt: skip

    def point(self, event: messages_pb2.EmotionEvent) -> Point:
        """The timeline point of an event just folded in: what was seen, and the mood it left."""
        session = session_of(event)
        state = self.sessions[session].state
        p = np.asarray(event.probabilities, dtype=np.float64)
        label = EMOTIONS[event.label - 1] if 1 <= event.label <= len(EMOTIONS) else EMOTIONS[int(p.argmax())]
        return Point(session, state, {
            "t": event.header.captured_at_us, "label": label, "confidence": round(float(event.confidence), 4),
            "probabilities": _rounded(p), "mood": state.mood, "smoothed": _rounded(state.average),
        })  # fmt: skip

    async def save(self, points: Sequence[Point]) -> None:
        """Write, in one round trip, the mood hash and the new timeline points of each session in
        ``points``, and refresh their expiry. Sessions without a user are not kept: nobody could
        ask for them, nor delete them."""
        by_session: dict[SessionId, list[Point]] = {}
        for point in points:
            if point.session[0]:
                by_session.setdefault(point.session, []).append(point)
        if not by_session or self.redis is None:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for (user, sid), new in by_session.items():
                state, last = new[-1].state, new[-1].data
                mood_key, timeline_key = session_key(user, sid, "mood"), session_key(user, sid, "timeline")
                valence, arousal = EMOTION_POINTS[state.mood]
                pipe.hset(mood_key, mapping={
                    "mood": state.mood, "confidence": round(state.confidence, 4),
                    "smoothed": json.dumps(_rounded(state.average)), "valence": valence, "arousal": arousal,
                    "updated_at_us": state.last_us, "last_label": last["label"],
                    "last_confidence": last["confidence"], "last_probabilities": json.dumps(last["probabilities"]),
                })  # fmt: skip
                pipe.rpush(timeline_key, *(json.dumps(p.data) for p in new))
                pipe.ltrim(timeline_key, -self.history, -1)
                trace = self._trace((user, sid), new)
                if trace:
                    trace_key = session_key(user, sid, "trace")
                    pipe.rpush(trace_key, *trace)
                    pipe.ltrim(trace_key, -TRACE_POINTS, -1)
                    pipe.expire(trace_key, self.ttl_s)
                pipe.expire(mood_key, self.ttl_s)
                pipe.expire(timeline_key, self.ttl_s)
            await pipe.execute()

    def _trace(self, session: SessionId, points: Sequence[Point]) -> list[str]:
        """The points of ``points`` that go on the session's trace: at most one a second, so that
        the mood over a whole track (minutes) can be read back after it; see listener.lift_of."""
        held = self.sessions.get(session)
        out = []
        for point in points:
            last = held.traced_us if held else 0
            if point.data["t"] - last >= TRACE_STEP_US:
                out.append(json.dumps({"t": point.data["t"], "p": point.data["smoothed"]}))
                if held:
                    held.traced_us = point.data["t"]
        return out

    def mood_of(self, user_id: str, session_id: str) -> int:
        held = self.sessions.get((user_id, session_id))
        return EMOTIONS.index(held.state.mood) + 1 if held and held.state.mood else messages_pb2.NEUTRAL


def emotions_handler(core: RecommenderCore, moods: SessionMoods, out: StreamProducer, k: int = 10):
    async def handle(batch: Sequence[Delivery]) -> Outcome:
        outcome = Outcome()
        await moods.load(session_of(d.message) for d in batch)
        points: list[Point] = []
        for delivery in batch:
            event = delivery.message
            try:
                change = moods.update(event)
            except ValueError as e:  # this entry is retried, then dead-lettered; the others go on
                outcome.failed[delivery.entry_id] = str(e)
                continue
            points.append(moods.point(event))
            if change is None:
                continue
            outcome.publish.append((out, change))
            if change.header.user_id:  # without a user there is nobody to recommend to (core refuses)
                recommendations = await core.recommend(change.header.user_id, change.header.session_id,
                                                       change.mood, k, 0, [])  # fmt: skip
                outcome.publish.append((out, recommendations))
        # The state is written here, before the consumer's acknowledgement, not with it. A crash in
        # between redelivers the batch: its events are folded in again (a small nudge to the
        # average) and their points appended again, while the hash is overwritten with the newest
        # state. Idempotent enough for what it serves: a display of the mood and its recent history.
        await moods.save(points)
        return outcome

    return handle


def feedback_handler(core: RecommenderCore, moods: SessionMoods, out: StreamProducer, k: int = 10):
    async def handle(batch: Sequence[Delivery]) -> Outcome:
        refused = await core.feedback([d.message for d in batch])
        outcome = Outcome(failed={batch[i].entry_id: reason for i, reason in refused.items()})
        sessions = {session_of(d.message) for i, d in enumerate(batch) if i not in refused}
        await moods.load(sessions)
        for user, session in sorted(sessions):
            fresh = await core.recommend(user, session, moods.mood_of(user, session), k, 0, [])
            outcome.publish.append((out, fresh))
        for i, d in enumerate(batch):
            if i not in refused:
                metrics.FEEDBACK.labels(messages_pb2.FeedbackAction.Name(d.message.action)).inc()
        return outcome

    return handle
