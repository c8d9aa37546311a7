"""Each session's mood persisted in Redis by the emotions handler: the mood hash, the capped
timeline, their expiry, resuming after a restart, and idle sessions leaving memory."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emotune.v1 import messages_pb2
from emotune_common.consumer import Delivery
from emotune_common.ids import make_header
from emotune_common.keys import session_key
from emotune_common.labels import EMOTIONS
from emotune_common.producer import StreamProducer
from emotune_recommender.events import SessionMoods, emotions_handler, feedback_handler
from emotune_recommender.mood import EMOTION_POINTS
from emotune_recommender.smoothing import Smoothing

START_US = 1_700_000_000_000_000
SMOOTHING = Smoothing(time_constant_s=2.0, margin=0.1, hold=2)


@pytest.fixture
def out(aredis, names):
    return StreamProducer(aredis, names("recommendations"), 100)


def event(user: str, session: str, label: str, i: int, strength: float = 0.88) -> Delivery:
    p = np.full(7, (1 - strength) / 6)
    p[EMOTIONS.index(label)] = strength
    message = messages_pb2.EmotionEvent(header=make_header(session, user, START_US + i * 200_000),
                                        probabilities=p.tolist(), label=EMOTIONS.index(label) + 1,
                                        confidence=strength)  # fmt: skip
    return Delivery(f"{i}-0", message, 1)


def changes(outcome) -> list[tuple[int, int]]:
    return [(m.previous_mood, m.mood) for _, m in outcome.publish if isinstance(m, messages_pb2.MoodChange)]


async def test_a_batch_writes_each_sessions_mood_hash_and_timeline(core, aredis, out, user):
    moods = SessionMoods(SMOOTHING, aredis, ttl_s=3600, history=600)
    handle = emotions_handler(core, moods, out, k=3)
    batch = [event(user, "s1", "happy", i) for i in range(4)] + [event(user, "s2", "sad", 0)]
    batch += [event("", "anonymous", "angry", 0)]
    outcome = await handle(batch)
    assert not outcome.failed
    assert sorted(changes(outcome)) == [(0, messages_pb2.ANGRY), (0, messages_pb2.HAPPY), (0, messages_pb2.SAD)]
    assert sum(isinstance(m, messages_pb2.RecommendationSet) for _, m in outcome.publish) == 2  # not for ""

    saved = {k.decode(): v.decode() for k, v in (await aredis.hgetall(session_key(user, "s1", "mood"))).items()}
    state = moods.sessions[(user, "s1")].state
    smoothed = json.loads(saved["smoothed"])
    assert saved["mood"] == "happy" and saved["last_label"] == "happy"
    assert smoothed == [round(v, 4) for v in state.average] and len(smoothed) == 7
    assert float(saved["confidence"]) == pytest.approx(state.confidence, abs=1e-4) and state.confidence > 0.8
    assert (float(saved["valence"]), float(saved["arousal"])) == EMOTION_POINTS["happy"]
    assert int(saved["updated_at_us"]) == START_US + 3 * 200_000
    assert float(saved["last_confidence"]) == pytest.approx(0.88)
    assert json.loads(saved["last_probabilities"]) == [round(float(v), 4) for v in batch[3].message.probabilities]

    points = [json.loads(p) for p in await aredis.lrange(session_key(user, "s1", "timeline"), 0, -1)]
    assert [p["t"] for p in points] == [START_US + i * 200_000 for i in range(4)]
    assert all(p["label"] == "happy" and p["mood"] == "happy" and len(p["probabilities"]) == 7 for p in points)
    assert points[-1]["smoothed"] == smoothed and points[0]["confidence"] == pytest.approx(0.88)
    assert (await aredis.hget(session_key(user, "s2", "mood"), "mood")) == b"sad"
    assert await aredis.llen(session_key(user, "s2", "timeline")) == 1
    for key in (session_key(user, "s1", "mood"), session_key(user, "s1", "timeline")):
        assert 3500 < await aredis.ttl(key) <= 3600
    # a session without a user is smoothed, not kept
    assert moods.mood_of("", "anonymous") == messages_pb2.ANGRY
    assert not await aredis.exists(session_key("", "anonymous", "mood"), session_key("", "anonymous", "timeline"))


async def test_the_timeline_keeps_the_last_points_and_bad_events_fail_alone(core, aredis, out, user):
    handle = emotions_handler(core, SessionMoods(SMOOTHING, aredis, ttl_s=60, history=5), out, k=3)
    for start in (0, 4, 8):
        assert not (await handle([event(user, "s", "neutral", i) for i in range(start, start + 4)])).failed
    points = [json.loads(p) for p in await aredis.lrange(session_key(user, "s", "timeline"), 0, -1)]
    assert [p["t"] for p in points] == [START_US + i * 200_000 for i in range(7, 12)]
    assert 0 < await aredis.ttl(session_key(user, "s", "timeline")) <= 60

    broken = event(user, "s", "neutral", 12)
    del broken.message.probabilities[3:]
    outcome = await handle([broken, event(user, "s", "neutral", 13)])
    assert list(outcome.failed) == [broken.entry_id] and "7 finite probabilities" in outcome.failed[broken.entry_id]
    assert json.loads(await aredis.lindex(session_key(user, "s", "timeline"), -1))["t"] == START_US + 13 * 200_000


async def test_a_restarted_recommender_resumes_each_sessions_mood_from_redis(core, aredis, out, user):
    first = SessionMoods(SMOOTHING, aredis)
    await emotions_handler(core, first, out, k=3)([event(user, "s", "happy", i) for i in range(10)])
    before = first.sessions[(user, "s")].state

    restarted = SessionMoods(SMOOTHING, aredis)
    handle = emotions_handler(core, restarted, out, k=3)
    assert restarted.mood_of(user, "s") == messages_pb2.NEUTRAL  # nothing held before a first sight
    # one sad frame neither starts the session afresh (no "first" mood change) nor flips it
    outcome = await handle([event(user, "s", "sad", 10)])
    assert changes(outcome) == [] and restarted.mood_of(user, "s") == messages_pb2.HAPPY
    resumed = restarted.sessions[(user, "s")].state
    alpha = 1 - np.exp(-0.2 / SMOOTHING.time_constant_s)
    sad = np.array(event(user, "s", "sad", 10).message.probabilities)
    expected = (1 - alpha) * np.round(before.average, 4) + alpha * sad
    assert resumed.average == pytest.approx(expected, abs=1e-6)
    # a lasting change still flips it, from the resumed mood
    outcome = await handle([event(user, "s", "sad", i) for i in range(11, 30)])
    assert changes(outcome) == [(messages_pb2.HAPPY, messages_pb2.SAD)]

    # feedback for a session not yet seen since the restart ranks for its persisted mood
    again = SessionMoods(SMOOTHING, aredis)
    skip = messages_pb2.Feedback(header=make_header("s", user), action=messages_pb2.SKIP,
                                 track_id=str(core.space.catalogue.tracks.index[0]))  # fmt: skip
    outcome = await feedback_handler(core, again, out, k=3)([Delivery("1-0", skip, 1)])
    assert [m.mood for _, m in outcome.publish] == [messages_pb2.SAD]


async def test_idle_sessions_leave_memory_and_come_back_from_redis(core, aredis, out, user):
    now = [0.0]
    moods = SessionMoods(SMOOTHING, aredis, ttl_s=60, clock=lambda: now[0])
    handle = emotions_handler(core, moods, out, k=3)
    await handle([event(user, "idle", "surprise", i) for i in range(3)])
    now[0] = 30.0
    await handle([event(user, "busy", "happy", 0)])
    now[0] = 61.0  # "idle" unused for 61 s, "busy" for 31 s
    await handle([event(user, "busy", "happy", 1)])
    assert list(moods.sessions) == [(user, "busy")]

    now[0] = 200.0  # "busy" goes too when "idle" comes back, and "idle" resumes its mood
    outcome = await handle([event(user, "idle", "surprise", 3)])
    assert list(moods.sessions) == [(user, "idle")] and changes(outcome) == []
    assert moods.mood_of(user, "idle") == messages_pb2.SURPRISE
    points = await aredis.lrange(session_key(user, "idle", "timeline"), 0, -1)
    assert [json.loads(p)["mood"] for p in points] == ["surprise"] * 4
