"""The services' own code on a real Redis Cluster (3 masters, 3 replicas: the ``redis_cluster`` fixture), with
sessions on every shard: inference and the recommender's mood handler, one consumer per shard each (every crop
one event, every mood change on its session's shard); a user's deletion on every master and every shard;
capture's leases and registry (one hash tag) beside the session's record (another slot); the gateway's hub,
a reader per shard."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from redis.asyncio.cluster import RedisCluster as ClusterClient

from emotune.v1 import messages_pb2
from emotune_capture.__main__ import tracker
from emotune_capture.sessions import SessionWatcher
from emotune_capture.settings import CaptureSettings
from emotune_common.codec import decode, encode
from emotune_common.consumer import StreamConsumer
from emotune_common.ids import make_header
from emotune_common.keys import CAPTURE_INSTANCES, CAPTURE_SESSIONS, capture_lease, session_key, user_key
from emotune_common.redis_client import Client, connect
from emotune_common.settings import StreamSettings
from emotune_common.sharded import ShardedProducer, shard_consumers
from emotune_common.shards import session_stream, shard_of, shard_streams
from emotune_common.streams import EMOTIONS, FACES, FEEDBACK, RECOMMENDATIONS, dead_letter_stream
from emotune_gateway.hub import Cursor, Hub, Subscription
from emotune_gateway.privacy import delete_user_data
from emotune_inference.batcher import PredictionBatcher
from emotune_inference.worker import inference_handler
from emotune_recommender.events import SessionMoods, emotions_handler
from emotune_recommender.smoothing import Smoothing

from ..cluster import RedisCluster
from ..common.helpers import wait_for
from ..conftest import DATA_DIR
from ..processes import PATIENCE_S

SHARDS = 4
FAST = StreamSettings(shards=SHARDS, block_ms=50, claim_idle_ms=1000, batch_size=8)
VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"


@pytest.fixture
async def cluster(redis_cluster: RedisCluster) -> AsyncIterator[Client]:
    """A client of the whole cluster, emptied first: the services' stream and key names are fixed."""
    await asyncio.to_thread(redis_cluster.wait_ok)
    client = connect(redis_cluster.url)
    await client.flushall(target_nodes=ClusterClient.PRIMARIES)
    yield client
    await client.aclose()


def sessions(each: int = 2) -> list[str]:
    """Session ids, ``each`` on every shard."""
    found: dict[int, list[str]] = {s: [] for s in range(SHARDS)}
    i = 0
    while any(len(v) < each for v in found.values()):
        session = f"session-{i}"
        if len(found[shard_of(session, SHARDS)]) < each:
            found[shard_of(session, SHARDS)].append(session)
        i += 1
    return [s for v in found.values() for s in v]


class HappyModel:
    """A model client that scores every crop happy at once."""

    model = "emotion_cnn"

    async def predict(self, images: np.ndarray, stop: asyncio.Event) -> SimpleNamespace:
        probabilities = np.full((len(images), 7), 0.01, np.float32)
        probabilities[:, 3] = 0.94
        return SimpleNamespace(probabilities=probabilities, model_version=1)


@contextlib.asynccontextmanager
async def running(consumers: list[StreamConsumer]) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE_S)


async def entries(redis: Client, stream: str) -> list[tuple[str, messages_pb2.EmotionEvent]]:
    """(shard stream, message) of every shard of ``stream``."""
    return [(name, decode(f)) for name in shard_streams(stream, SHARDS) for _, f in await redis.xrange(name)]


async def test_every_crop_of_every_shard_gets_one_event_and_each_session_its_mood(cluster, redis_cluster):
    """Crops of 8 sessions (2 a shard, the shards on all three masters) through inference's and the
    recommender's handlers, one consumer per shard each: one event a crop, one first mood change a session,
    each on its session's shard; nothing left pending, nothing dead-lettered. A crop sent twice is scored once."""
    ids = sessions()
    masters = await asyncio.to_thread(lambda: {redis_cluster.master_of(s).port for s in shard_streams(FACES, SHARDS)})
    assert len(masters) == 3
    crops = [
        messages_pb2.FaceCrop(header=make_header(s, ""), pixels=bytes(2304), width=48, height=48, frame_number=i)
        for s in ids
        for i in range(5)
    ]  # fmt: skip  (no user: mood changes only, no recommender model)
    faces = ShardedProducer(cluster, FACES, SHARDS, 10_000)
    await faces.publish_many([*crops, crops[0]])
    emotions = ShardedProducer(cluster, EMOTIONS, SHARDS, 10_000)
    out = ShardedProducer(cluster, RECOMMENDATIONS, SHARDS, 10_000)
    moods = SessionMoods(Smoothing(time_constant_s=2.0, margin=0.1, hold=1), cluster, ttl_s=60, history=10)
    stop = asyncio.Event()
    batcher = PredictionBatcher(HappyModel(), stop)
    consumers = [
        *shard_consumers(cluster, FACES, "inference", lambda s: inference_handler(batcher, emotions.shard(s)),
                         FAST, message_type=messages_pb2.FaceCrop),
        *shard_consumers(cluster, EMOTIONS, "recommender", lambda s: emotions_handler(None, moods, out.shard(s)),
                         FAST, message_type=messages_pb2.EmotionEvent),
    ]  # fmt: skip

    async def done() -> bool:
        return len(await entries(cluster, RECOMMENDATIONS)) >= len(ids)

    async with running(consumers):
        await wait_for(done, PATIENCE_S, "a mood change of every session")
        await asyncio.sleep(0.5)  # anything more would come now
    events = await entries(cluster, EMOTIONS)
    assert sorted(e.crop_id for _, e in events) == sorted(c.header.id for c in crops)
    assert all(name == session_stream(EMOTIONS, e.header.session_id, SHARDS) for name, e in events)
    changes = await entries(cluster, RECOMMENDATIONS)
    assert sorted(m.header.session_id for _, m in changes) == sorted(ids)
    assert all(name == session_stream(RECOMMENDATIONS, m.header.session_id, SHARDS) for name, m in changes)
    for stream, group in ((FACES, "inference"), (EMOTIONS, "recommender")):
        for name in shard_streams(stream, SHARDS):
            assert (await cluster.xpending(name, group))["pending"] == 0
            assert await cluster.xlen(dead_letter_stream(name)) == 0


async def test_a_users_deletion_finds_their_keys_on_every_master_and_entries_on_every_shard(cluster, redis_cluster):
    alice, bob = "alice", "bob"
    for user in (alice, bob):
        for s in sessions(1):
            await cluster.hset(session_key(user, s), mapping={"id": s, "user_id": user})
            await cluster.zadd(user_key(user, "sessions"), {s: 1})
            for stream in (FACES, EMOTIONS, RECOMMENDATIONS):
                await cluster.xadd(session_stream(stream, s, SHARDS), encode(messages_pb2.EmotionEvent(
                    header=make_header(s, user))))  # fmt: skip
            await cluster.xadd(dead_letter_stream(session_stream(FACES, s, SHARDS)), {"junk": f"from {user}"})
        await cluster.xadd(
            session_stream(FEEDBACK, user, SHARDS),
            encode(messages_pb2.Feedback(header=make_header("", user), action=messages_pb2.LIKE)),
        )  # fmt: skip  (no session: the user's shard)
        for kind in ("liked", "genres", "played", "account"):
            await cluster.sadd(user_key(user, kind), "x")
    keys = [k async for k in cluster.scan_iter(match=f"emotune:user:{alice}:*")]
    masters = await asyncio.to_thread(lambda: {redis_cluster.master_of(k.decode()).port for k in keys})
    assert len(masters) == 3  # alice's keys lie on every master

    deleted = await delete_user_data(cluster, alice, SHARDS, account=True)
    assert deleted.stream_entries == 4 * 3 + 4 + 1 and deleted.keys == len(keys)
    assert not [k async for k in cluster.scan_iter(match=f"emotune:user:{alice}:*")]
    left = [m for _, m in await entries(cluster, FACES) + await entries(cluster, EMOTIONS)]
    assert left and {m.header.user_id for m in left} == {bob}
    assert len([k async for k in cluster.scan_iter(match=f"emotune:user:{bob}:*")]) == len(keys)


async def test_capture_runs_a_registry_session_with_its_lease_on_the_cluster(cluster):
    """The heartbeat, lease and status scripts on a cluster (the registry, instances and leases in one slot,
    the session's record in another): the session runs, its crops go to its shard, its status says so, and
    a stop hands the lease back."""
    settings = CaptureSettings(capture_poll_s=0.2, capture_lease_ms=1000, capture_fps=10.0, stream=FAST)
    record = session_key("alice", "s1")
    await cluster.hset(record, mapping={"id": "s1", "user_id": "alice", "state": "active"})
    await cluster.hset(CAPTURE_SESSIONS, "s1", json.dumps({"user_id": "alice", "source": f"video:{VIDEO}?loop=1"}))
    faces = ShardedProducer(cluster, FACES, SHARDS, 10_000)
    watcher = SessionWatcher(cluster, settings, faces, partial(tracker, settings), owner="w1")
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))

    async def running_with_crops() -> bool:
        state = await cluster.hget(record, "capture_state")
        return state == b"running" and await cluster.xlen(session_stream(FACES, "s1", SHARDS)) >= 3

    try:
        await wait_for(running_with_crops, PATIENCE_S, "the session running, its crops in its shard")
        assert await cluster.get(capture_lease("s1")) == b"w1"
        assert await cluster.zrange(CAPTURE_INSTANCES, 0, -1) == [b"w1"]
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    assert await cluster.get(capture_lease("s1")) is None  # handed back
    assert (await cluster.hget(record, "capture_owner")) == b""


async def test_the_hub_reads_every_shard_and_resumes_from_a_cursor_of_every_shard(cluster):
    ids = sessions(1)
    hub = Hub(cluster, SHARDS, block_ms=50)
    stop = asyncio.Event()
    reader = asyncio.create_task(hub.run(stop))
    try:
        await asyncio.wait_for(hub.started.wait(), PATIENCE_S)
        sub = hub.subscribe(Subscription("alice", position=hub.position))
        for i, s in enumerate(ids):
            event = messages_pb2.EmotionEvent(header=make_header(s, "alice"), probabilities=[1 / 7] * 7, frame_number=i)
            await cluster.xadd(session_stream(EMOTIONS, s, SHARDS), encode(event))
        got = [json.loads(sub.text(await asyncio.wait_for(sub.next(), PATIENCE_S))) for _ in ids]
        assert sorted(e["session_id"] for e in got) == sorted(ids)
        first = Cursor.parse(got[0]["id"], SHARDS)
        again = hub.subscribe(Subscription("alice", position=hub.position))
        missed = await hub.replay(again, first)
        assert {e.session_id for e in missed} == {e["session_id"] for e in got[1:]}
    finally:
        stop.set()
        await asyncio.wait_for(reader, PATIENCE_S)
