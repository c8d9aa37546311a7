"""Live subscriptions over WebSocket and SSE: only the user's own events, resumable, slow subscribers
cut off without holding anyone up."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import redis

from emotune.v1 import messages_pb2
from emotune_common.codec import encode
from emotune_common.ids import make_header
from emotune_common.settings import StreamSettings
from emotune_common.shards import session_stream
from emotune_common.streams import EMOTIONS, RECOMMENDATIONS
from emotune_gateway.hub import Cursor

from ..conftest import RedisServer, free_port
from ..processes import PATIENCE_S
from .conftest import Stack

SHARDS = StreamSettings().shards


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A private Redis and no recommender: the events seen are exactly the ones the tests write."""
    store = RedisServer(free_port(), tmp_path_factory.mktemp("events"), appendonly=False)
    store.start()
    yield Stack(store.url, "127.0.0.1:1")
    store.stop()


def emotion(user_id: str, session_id: str, label: int = messages_pb2.HAPPY, frame: int = 0) -> dict:
    probabilities = [0.02] * 7
    probabilities[label - 1] = 0.88
    return encode(messages_pb2.EmotionEvent(
        header=make_header(session_id, user_id), probabilities=probabilities, label=label, confidence=0.88,
        model_name="emotion_cnn", model_version=1, frame_number=frame,
    ))  # fmt: skip


def mood(user_id: str, session_id: str) -> dict:
    change = messages_pb2.MoodChange(header=make_header(session_id, user_id), mood=messages_pb2.HAPPY,
                                     previous_mood=messages_pb2.NEUTRAL, smoothed=[0.1] * 7,
                                     confidence=0.6)  # fmt: skip
    return encode(change)


def recommendations(user_id: str, session_id: str, policy: int = messages_pb2.MATCH) -> dict:
    item = messages_pb2.Recommendation(artist_id="89", artist_name="Lady Gaga", score=0.9, genres=["pop"],
                                       tracks=[messages_pb2.Track(spotify_id="t1", name="Poker Face")])  # fmt: skip
    return encode(messages_pb2.RecommendationSet(header=make_header(session_id, user_id), mood=messages_pb2.HAPPY,
                                                 policy=policy, items=[item]))  # fmt: skip


def shard(stream: str, session_id: str) -> str:
    """The shard of ``stream`` that the session's entries are in (the gateway's shards: the default)."""
    return session_stream(stream, session_id, SHARDS)


def receive(ws, n: int) -> list[dict]:
    return [json.loads(ws.receive_text()) for _ in range(n)]


def test_websocket_gets_the_users_events_and_only_theirs(client, users, stack):
    store = redis.Redis.from_url(stack.redis_url)
    alice, bob = users("alice"), users("bob")
    with client.websocket_connect(f"/v1/users/{alice.id}/events/ws?key={alice.key}") as ws:
        store.xadd(shard(EMOTIONS, "s-bob"), emotion(bob.id, "s-bob"))
        store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=7))
        store.xadd(shard(RECOMMENDATIONS, "s1"), mood(alice.id, "s1"))
        store.xadd(shard(RECOMMENDATIONS, "s1"), recommendations(alice.id, "s1"))
        got = receive(ws, 3)
    assert [e["type"] for e in got] == ["emotion", "mood", "recommendations"]
    assert all(e["session_id"] == "s1" for e in got)
    assert got[0]["data"]["label"] == "happy" and got[0]["data"]["frame_number"] == 7
    assert got[0]["data"]["probabilities"]["happy"] == pytest.approx(0.88)
    assert got[1]["data"]["mood"] == "happy" and got[1]["data"]["previous_mood"] == "neutral"
    track = got[2]["data"]["items"][0]["tracks"][0]
    assert track["embed_url"] == "https://open.spotify.com/embed/track/t1"
    cursors = [Cursor.parse(e["id"], SHARDS) for e in got]
    assert all(later.merged(earlier) == later for earlier, later in itertools.pairwise(cursors))  # only forward


def test_resume_from_the_last_event_id_misses_nothing(client, users, stack):
    store = redis.Redis.from_url(stack.redis_url)
    alice = users("alice")
    base = f"/v1/users/{alice.id}/events/ws?key={alice.key}"
    with client.websocket_connect(base) as ws:
        store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=1))
        last = receive(ws, 1)[-1]["id"]
    # while away: events of two streams and of two sessions
    for frame in range(2, 6):
        session = "s1" if frame % 2 else "s2"  # on shards 4 and 10 of 16
        store.xadd(shard(EMOTIONS, session), emotion(alice.id, session, frame=frame))
    store.xadd(shard(RECOMMENDATIONS, "s1"), recommendations(alice.id, "s1"))
    with client.websocket_connect(f"{base}&last_event_id={last}") as ws:
        missed = receive(ws, 5)
        store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=6))
        live = receive(ws, 1)
    frames = [(e["session_id"], e["data"]["frame_number"]) for e in missed if e["type"] == "emotion"]
    # in order within each session (its shard); sessions on different shards have no order between them
    assert [f for s, f in frames if s == "s1"] == [3, 5] and [f for s, f in frames if s == "s2"] == [2, 4]
    assert [e["type"] for e in missed].count("recommendations") == 1
    assert live[0]["data"]["frame_number"] == 6
    with client.websocket_connect(f"{base}&last_event_id={last}&session=s2&types=emotion") as ws:
        assert [e["data"]["frame_number"] for e in receive(ws, 2)] == [2, 4]


def test_a_set_from_a_newer_recommender_arrives_and_the_events_after_it_too(client, users, stack):
    """A policy this gateway does not know yet (a recommender upgraded first): the set reaches the listener
    with its tracks and no policy name, live and replayed, and the shard's later events follow it."""
    store = redis.Redis.from_url(stack.redis_url)
    alice = users("alice")
    base = f"/v1/users/{alice.id}/events/ws?key={alice.key}"
    unknown = max(messages_pb2.Policy.values()) + 7
    with client.websocket_connect(base) as ws:
        store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=1))
        first = receive(ws, 1)[0]
        store.xadd(shard(RECOMMENDATIONS, "s1"), recommendations(alice.id, "s1", policy=unknown))
        store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=2))
        live = receive(ws, 2)
    with client.websocket_connect(f"{base}&last_event_id={first['id']}") as ws:
        replayed = receive(ws, 2)
    for got in (live, replayed):  # two streams: written in the same millisecond, their order is open
        by_type = {e["type"]: e["data"] for e in got}
        assert sorted(by_type) == ["emotion", "recommendations"]
        assert by_type["recommendations"]["policy"] is None
        assert by_type["recommendations"]["items"][0]["artist_name"] == "Lady Gaga"
        assert by_type["emotion"]["frame_number"] == 2


def test_sse_streams_and_resumes_with_last_event_id(client, users, stack):
    store = redis.Redis.from_url(stack.redis_url)
    alice = users("alice")
    store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=1))
    start = "0-0_0-0"
    got: list[tuple[str, dict]] = []
    with client.stream("GET", f"/v1/users/{alice.id}/events", headers={**alice.headers, "Last-Event-ID": start}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event_id = None
        for line in r.iter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                got.append((event_id, json.loads(line[6:])))
                if len(got) == 1:
                    store.xadd(shard(RECOMMENDATIONS, "s1"), mood(alice.id, "s1"))
                if len(got) == 2:
                    break
    assert [e["type"] for _, e in got] == ["emotion", "mood"]
    assert all(i == e["id"] for i, e in got)
    store.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=9))
    with client.stream("GET", f"/v1/users/{alice.id}/events?key={alice.key}&last_event_id={got[-1][0]}") as r:
        data = next(line for line in r.iter_lines() if line.startswith("data: "))
    assert json.loads(data[6:])["data"]["frame_number"] == 9
    bad = client.get(f"/v1/users/{alice.id}/events?last_event_id=12", headers=alice.headers)
    assert bad.status_code == 422 and "event id" in bad.json()["detail"]
    assert client.get(f"/v1/users/{alice.id}/events?types=gossip", headers=alice.headers).status_code == 422


async def test_a_slow_subscriber_is_cut_off_and_resumes_without_loss_while_others_keep_up(stack, users):
    """At the hub: the subscription that does not read overflows; the one that reads gets everything, at
    once; the slow one resumes from its last event id and misses nothing."""
    from emotune_common.redis_client import connect
    from emotune_gateway.hub import Hub, Overflow, Subscription

    alice = users("alice")
    client = connect(stack.redis_url)
    stop = asyncio.Event()
    hub = Hub(client, SHARDS, block_ms=50)
    reader = asyncio.create_task(hub.run(stop))
    await hub.started.wait()
    slow = hub.subscribe(Subscription(alice.id, maxsize=5, position=hub.position))
    fast = hub.subscribe(Subscription(alice.id, maxsize=5, position=hub.position))
    fast_got: list[int] = []

    async def read_fast() -> None:
        while len(fast_got) < 40:
            fast_got.append(json.loads(fast.text(await fast.next()))["data"]["frame_number"])

    fast_reader = asyncio.create_task(read_fast())
    for frame in range(40):
        await client.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=frame))
    await asyncio.wait_for(fast_reader, PATIENCE_S)
    assert fast_got == list(range(40)) and not fast.overflowed
    assert slow.overflowed
    slow_got = []
    with pytest.raises(Overflow):
        while True:
            slow_got.append(json.loads(slow.text(await slow.next())))
    assert [e["data"]["frame_number"] for e in slow_got] == list(range(5))
    hub.unsubscribe(slow)
    again = hub.subscribe(Subscription(alice.id, maxsize=5, position=hub.position))
    missed = await hub.replay(again, Cursor.parse(slow_got[-1]["id"], SHARDS))
    assert [json.loads(again.text(e))["data"]["frame_number"] for e in missed] == list(range(5, 40))
    await client.xadd(shard(EMOTIONS, "s1"), emotion(alice.id, "s1", frame=40))
    live = json.loads(again.text(await asyncio.wait_for(again.next(), PATIENCE_S)))
    assert live["data"]["frame_number"] == 40 and hub.subscribers == 2
    stop.set()
    await reader
    await client.aclose()
