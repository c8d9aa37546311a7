"""The stream library on a real Redis Cluster (3 masters, 3 replicas: the ``redis_cluster`` fixture), on
hash-tagged streams of several shards: every entry handled once after de-duplication, a consumer SIGKILLed
mid-batch and its entries claimed by another, poison entries in the shard's dead-letter stream, the bound,
an output in another slot, a master killed (its replica takes over) and a master restarted without a
failover (the cluster down meanwhile), and a service's Redis user on every node. The same code as on one
Redis: only the URL (``redis+cluster://``) and the stream names (``emotune:{s3}:...``) differ."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient
from redis.exceptions import NoPermissionError
from structlog.testing import capture_logs

from emotune.v1 import messages_pb2
from emotune_common import metrics
from emotune_common.codec import decode
from emotune_common.consumer import StreamConsumer
from emotune_common.ids import make_header
from emotune_common.producer import StreamProducer, stream_stats
from emotune_common.redis_client import Client, connect, connect_cluster, is_cluster_url
from emotune_common.shards import shard_key, shard_of
from emotune_common.streams import dead_letter_stream

from ..cluster import RedisCluster
from ..processes import PATIENCE_S, free_port
from .helpers import crop_ids_in, crops, slowed, wait_for
from .test_consumer import FAST, echo_handler, start_worker, wait_line

#: Shards s0..s3: their slots lie on all three masters of a fresh cluster (s0 and s1 on one).
SHARDS = 4


# -- the URL -------------------------------------------------------------------------------------------


def test_a_cluster_url_names_its_seeds_and_its_user():
    client = connect("redis+cluster://svc:p%40ss@127.0.0.1:7001,127.0.0.1:7002,[::1]:7003,node4?client_name=x")
    try:
        assert isinstance(client, ClusterClient)
        seeds = {(n.host, n.port) for n in client.nodes_manager.startup_nodes.values()}
        assert seeds == {("127.0.0.1", 7001), ("127.0.0.1", 7002), ("::1", 7003), ("node4", 6379)}
        kwargs = client.connection_kwargs
        assert (kwargs["username"], kwargs["password"], kwargs["client_name"]) == ("svc", "p@ss", "x")
        assert is_cluster_url("rediss+cluster://h:1") and not is_cluster_url("redis://h:1/0")
    finally:
        asyncio.run(client.aclose())
    plain = connect("redis://u:pw@127.0.0.1:6390/2")  # one Redis: as before
    assert type(plain) is aioredis.Redis
    assert plain.connection_pool.connection_kwargs["db"] == 2
    for bad in ("redis://h:1", "redis+cluster://", "redis+cluster://u:p@"):
        with pytest.raises(ValueError):
            connect_cluster(bad)


# -- on the cluster ------------------------------------------------------------------------------------


@pytest.fixture
async def cluster(redis_cluster: RedisCluster) -> AsyncIterator[Client]:
    """A client of the session's cluster, once it is whole (a test before may have restarted a node)."""
    await asyncio.to_thread(redis_cluster.wait_ok)
    client = connect(redis_cluster.url)
    yield client
    await client.aclose()


@pytest.fixture
def shard_name():
    """``shard_name("faces", 3)``: this test's own key ``faces`` of shard 3, ``emotune:{s3}:test-<id>:faces``."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    return lambda name, shard: shard_key(f"{prefix}:{name}", shard)


def session_crops(sessions: int, each: int) -> list[messages_pb2.FaceCrop]:
    """``each`` crops of each of ``sessions`` sessions (ids as the gateway makes them)."""
    headers = [make_header(uuid.uuid4().hex, "user-1") for _ in range(sessions)]
    return [
        messages_pb2.FaceCrop(header=make_header(h.session_id, h.user_id), pixels=bytes([i]) * 2304, frame_number=i)
        for h in headers
        for i in range(each)
    ]


async def settled(redis: Client, stream: str, group: str = "inference", entries: int = 1) -> bool:
    """Whether ``group`` has read at least ``entries`` of ``stream`` and acknowledged all it read."""
    groups = await redis.xinfo_groups(stream)
    return (bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0
            and int(groups[0]["entries-read"] or 0) >= entries)  # fmt: skip


Until = Callable[[Callable[[], Awaitable[bool]], str], Awaitable[None]]


@contextlib.asynccontextmanager
async def running(*consumers: StreamConsumer) -> AsyncIterator[Until]:
    """Run the consumers until the block ends (then stop them and wait); yields ``until(predicate, what)``,
    which waits for a condition and fails at once, with the consumer's error, if one stopped by itself."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]

    async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
        async def holds() -> bool:
            for task in tasks:
                if task.done():
                    raise AssertionError(f"a consumer stopped before {what}") from task.exception()
            return await predicate()

        await wait_for(holds, PATIENCE_S, what)

    try:
        yield until
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE_S)


async def test_every_session_of_every_shard_is_handled_once(cluster, redis_cluster, shard_name):
    """Sessions routed to their shards; one consumer of the group per shard, each writing to the same shard's
    output stream in the transaction of its XACK. A message sent twice is handled once."""
    faces = [shard_name("faces", s) for s in range(SHARDS)]
    emotions = [shard_name("emotions", s) for s in range(SHARDS)]
    masters = await asyncio.to_thread(lambda: {redis_cluster.master_of(f).port for f in faces})
    assert len(masters) == 3  # the shards are spread over every master
    sent = session_crops(40, 5)
    by_shard: dict[int, list[messages_pb2.FaceCrop]] = {s: [] for s in range(SHARDS)}
    for crop in sent:
        by_shard[shard_of(crop.header.session_id, SHARDS)].append(crop)
    assert all(by_shard.values())
    twice = by_shard[1][0]
    for s, batch in by_shard.items():
        await StreamProducer(cluster, faces[s], maxlen=10_000).publish_many([*batch, twice] if s == 1 else batch)

    def consumer(s: int) -> StreamConsumer:
        handler = echo_handler(StreamProducer(cluster, emotions[s], 10_000))
        return StreamConsumer(cluster, faces[s], "inference", handler, consumer=f"c{s}", settings=FAST,
                              message_type=messages_pb2.FaceCrop)  # fmt: skip

    async with running(*(consumer(s) for s in range(SHARDS))) as until:
        for s in range(SHARDS):
            count = len(by_shard[s]) + (s == 1)
            await until(lambda s=s, n=count: settled(cluster, faces[s], entries=n), f"shard {s} handled")
    for s in range(SHARDS):
        ids = await crop_ids_in(cluster, emotions[s])
        assert sorted(ids) == sorted(c.header.id for c in by_shard[s])  # each once: the repeat was skipped
        events = [decode(f, messages_pb2.EmotionEvent) for _, f in await cluster.xrange(emotions[s])]
        assert {shard_of(e.header.session_id, SHARDS) for e in events} == {s}


@pytest.mark.slow
async def test_a_consumer_killed_mid_batch_has_its_entries_claimed_by_another(cluster, redis_cluster, shard_name):
    src, dst = shard_name("faces", 2), shard_name("emotions", 2)
    sent = crops(200)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    doomed = start_worker(redis_cluster.url, src, dst, "doomed", "--delay", "5", "--claim-idle-ms", "500")
    await asyncio.to_thread(wait_line, doomed, "handling")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    stranded = await cluster.xpending_range(src, "inference", "-", "+", 100, "doomed")
    assert len(stranded) == 10  # the batch in hand died with the worker

    rescuer = start_worker(redis_cluster.url, src, dst, "rescuer", "--claim-idle-ms", "500")
    try:
        await wait_for(lambda: settled(cluster, src, entries=200), PATIENCE_S, "every entry acknowledged")
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(30) == 0
    ids = await crop_ids_in(cluster, dst)
    assert set(ids) == {c.header.id for c in sent}  # none lost
    assert len(ids) == len(set(ids))  # and the doomed batch was never written, so no duplicate either


async def test_poison_entries_go_to_the_dead_letter_stream_of_their_shard(cluster, redis_cluster, shard_name):
    src, dst = shard_name("faces", 3), shard_name("emotions", 3)
    good = crops(20)
    producer = StreamProducer(cluster, src, maxlen=10_000)
    await producer.publish_many(good[:10])
    await cluster.xadd(src, {"type": "emotune.v1.FaceCrop", "pb": os.urandom(300)})
    await cluster.xadd(src, {"type": "emotune.v1.EmotionEvent", "pb": good[0].SerializeToString()})
    await cluster.xadd(src, {"something": "else"})
    await producer.publish_many(good[10:])
    consumer = StreamConsumer(cluster, src, "inference", echo_handler(StreamProducer(cluster, dst, 10_000)),
                              settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
    dlq = dead_letter_stream(src)
    assert await cluster.cluster_keyslot(dlq) == await cluster.cluster_keyslot(src)
    async with running(consumer) as until:
        await until(lambda: _length_at_least(cluster, dlq, 3), "3 dead letters")
        await until(lambda: settled(cluster, src, entries=23), "every entry handled")
    assert sorted(await crop_ids_in(cluster, dst)) == sorted(c.header.id for c in good)
    letters = [f for _, f in await cluster.xrange(dlq)]
    reasons = [f[b"dlq_reason"].decode() for f in letters]
    assert len(letters) == 3 and all(f[b"dlq_stream"] == src.encode() for f in letters)
    assert any("does not parse" in r for r in reasons), reasons
    assert any("wrong message type" in r for r in reasons), reasons
    assert any("lacks field" in r for r in reasons), reasons


async def _length_at_least(redis: Client, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def test_a_shard_stream_stays_bounded_and_its_drops_are_counted(cluster, shard_name):
    """The trim script (the stream and its counters, one slot) on a shard's stream."""
    stream = shard_name("faces", 0)
    await cluster.xgroup_create(stream, "inference", id="$", mkstream=True)  # a consumer that never reads
    producer = StreamProducer(cluster, stream, maxlen=500, slack=50)
    for _ in range(40):
        await producer.publish_many(crops(50))
        assert await cluster.xlen(stream) <= 500 + 50
    stats = await stream_stats(cluster, stream)
    assert stats == {"length": 500, "trimmed": 1500, "dropped": 1500}
    assert (await producer.expire()) == (0, 0)


async def test_an_output_to_another_slot_is_written_before_the_acknowledgement(cluster, shard_name):
    """A cluster transaction cannot span slots (CROSSSLOT): an output to another shard is written first, as
    an output to another Redis is, and said so once in the log; every entry still has its output."""
    src, other = shard_name("faces", 0), shard_name("emotions", 2)
    assert await cluster.cluster_keyslot(src) != await cluster.cluster_keyslot(other)
    sent = crops(30)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    consumer = StreamConsumer(cluster, src, "inference", echo_handler(StreamProducer(cluster, other, 10_000)),
                              settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
    with capture_logs() as logs:
        async with running(consumer) as until:
            await until(lambda: settled(cluster, src, entries=30), "every entry acknowledged")
    assert sorted(await crop_ids_in(cluster, other)) == sorted(c.header.id for c in sent)
    warned = [e for e in logs if e["event"] == "output_outside_slot"]
    assert len(warned) == 1 and warned[0]["output"] == other, warned


async def _consume_while(cluster: Client, src: str, dst: str, fault: Callable[[], Awaitable[None]],
                         mend: Callable[[], Awaitable[None]], sent: list, more: list) -> list[str]:  # fmt: skip
    """Run a consumer of ``src`` (a slow one: a batch takes 50 ms of the ``sent`` already there); once 50
    entries are handled ``fault()``, then publish ``more`` (retrying) until ``mend()`` has made it possible;
    returns the crop ids in ``dst`` once every entry is acknowledged."""
    slow_echo = slowed(echo_handler(StreamProducer(cluster, dst, 10_000)))
    consumer = StreamConsumer(cluster, src, "inference", slow_echo, settings=FAST)
    async with running(consumer) as until:
        await until(lambda: _length_at_least(cluster, dst, 50), "50 events before the fault")
        await fault()
        published = asyncio.create_task(StreamProducer(cluster, src, 10_000).publish_retrying(more, asyncio.Event()))
        await mend()
        await until(lambda: settled(cluster, src, entries=len(sent) + len(more)), "every entry acknowledged")
        assert await asyncio.wait_for(published, PATIENCE_S)
    return await crop_ids_in(cluster, dst)


@pytest.mark.slow
async def test_a_master_killed_mid_run_is_replaced_by_its_replica_and_nothing_is_lost(
    cluster, redis_cluster, shard_name
):
    """SIGKILL the master of the shard while its consumer works: its replica takes over, redis-py finds the
    new map, the consumer carries on there; the old master comes back as a replica and resyncs. Replication
    is asynchronous, so the test waits for the replica to have the published entries before the kill: a
    write the master took but never passed on would be lost with it (see the module's report)."""
    src, dst = shard_name("faces", 1), shard_name("emotions", 1)
    sent, more = crops(300), crops(50)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    master = await asyncio.to_thread(redis_cluster.master_of, src)
    replica = await asyncio.to_thread(redis_cluster.replica_of, master)
    await asyncio.to_thread(redis_cluster.wait_replicated)
    before = metrics.RECONNECTS.labels(src)._value.get()

    async def kill_the_master() -> None:
        await asyncio.to_thread(redis_cluster.kill, master)

    async def fail_over() -> None:
        await asyncio.to_thread(redis_cluster.wait_failed_over, master, replica)

    try:
        ids = await _consume_while(cluster, src, dst, kill_the_master, fail_over, sent, more)
        assert (await asyncio.to_thread(redis_cluster.master_of, src)) is replica
    finally:
        if master.process is None:
            await asyncio.to_thread(redis_cluster.restart, master)
        await asyncio.to_thread(redis_cluster.wait_ok)
    assert await asyncio.to_thread(lambda: redis_cluster.info(master, "replication")["role"]) == "slave"
    assert set(ids) == {c.header.id for c in sent + more}  # none lost
    assert metrics.RECONNECTS.labels(src)._value.get() > before


@pytest.mark.slow
async def test_a_master_restarted_without_a_failover_has_its_data_and_the_cluster_comes_back(
    cluster, redis_cluster, shard_name
):
    """The replica is told not to take over: with one master gone the whole cluster is down (CLUSTERDOWN for
    every slot). The consumer and a producer retry, saying so; the master restarts with its AOF and
    everything written before, during and after is there once."""
    src, dst = shard_name("faces", 3), shard_name("emotions", 3)
    sent, more = crops(300), crops(50)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    master = await asyncio.to_thread(redis_cluster.master_of, src)
    replica = await asyncio.to_thread(redis_cluster.replica_of, master)
    await asyncio.to_thread(redis_cluster.ask, replica, "CONFIG", "SET", "cluster-replica-no-failover", "yes")

    async def take_the_cluster_down() -> None:
        await asyncio.to_thread(redis_cluster.kill, master)
        await asyncio.to_thread(redis_cluster.wait_down)

    async def restart_the_master() -> None:
        await asyncio.sleep(2)  # the consumer and the producer meet the cluster down
        await asyncio.to_thread(redis_cluster.restart, master)
        await asyncio.to_thread(redis_cluster.wait_ok)

    try:
        with capture_logs() as logs:
            ids = await _consume_while(cluster, src, dst, take_the_cluster_down, restart_the_master, sent, more)
    finally:
        if master.process is None:
            await asyncio.to_thread(redis_cluster.restart, master)
        await asyncio.to_thread(redis_cluster.ask, replica, "CONFIG", "SET", "cluster-replica-no-failover", "no")
        await asyncio.to_thread(redis_cluster.wait_ok)
    assert (await asyncio.to_thread(redis_cluster.master_of, src)) is master
    assert set(ids) == {c.header.id for c in sent + more}
    retried = [e for e in logs if e["event"] in ("redis_unavailable", "publish_failed")]
    assert retried and all(e.get("error") for e in retried), logs[-5:]


@pytest.mark.slow
async def test_a_slot_moved_to_another_master_mid_run_loses_nothing(cluster, redis_cluster, shard_name):
    """A resharding moves the shard's slot, key by key, while its consumer and a producer work: commands meet
    ASK for the keys already moved (a transaction across both halves cannot run: it is retried), then MOVED
    once the slot is the other master's, and redis-py follows; the slot is moved back afterwards."""
    src, dst = shard_name("faces", 2), shard_name("emotions", 2)
    slot = await cluster.cluster_keyslot(src)
    sent, more = crops(300), crops(50)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    source = await asyncio.to_thread(redis_cluster.master_of, src)
    target = next(m for m in await asyncio.to_thread(redis_cluster.masters_now) if m is not source)
    moving: list[asyncio.Task] = []

    async def start_moving() -> None:
        moving.append(asyncio.create_task(asyncio.to_thread(redis_cluster.move_slot, slot, target, 0.5)))

    async def moved() -> None:
        await asyncio.wait_for(moving[0], PATIENCE_S)

    try:
        with capture_logs() as logs:
            ids = await _consume_while(cluster, src, dst, start_moving, moved, sent, more)
        assert (await asyncio.to_thread(redis_cluster.master_of, src)) is target
    finally:
        if moving:
            await asyncio.wait_for(moving[0], PATIENCE_S)
        await asyncio.to_thread(redis_cluster.move_slot, slot, source)
        await asyncio.to_thread(redis_cluster.wait_ok)
    assert set(ids) == {c.header.id for c in sent + more}
    assert not await cluster.exists(dead_letter_stream(src))  # held and retried, not read again until dead
    assert not [e for e in logs if e.get("log_level") == "error"], logs


async def test_sixteen_readers_starting_together_on_a_fresh_client_meet_no_error(redis_cluster, shard_name):
    """A service's consumers, one a shard, all send their first commands at once: the client fetches the
    cluster's map once before any goes out (redis-py alone closed connections under them, see
    emotune_common.redis_client._Cluster)."""
    await asyncio.to_thread(redis_cluster.wait_ok)
    client = connect(redis_cluster.url)
    names = [shard_name("faces", shard) for shard in range(16)]

    async def reader(name: str) -> None:
        await client.xgroup_create(name, "inference", id="0", mkstream=True)
        for _ in range(10):
            await client.xautoclaim(name, "inference", "c", 1000, "0-0", count=10)
            await client.xreadgroup("inference", "c", {name: ">"}, count=10, block=50)

    try:
        await asyncio.gather(*(reader(name) for name in names))
    finally:
        await client.aclose()


async def test_a_client_starts_while_some_seeds_are_down_and_waits_while_all_are(cluster, redis_cluster, shard_name):
    """Seeds that do not answer are skipped; with none answering the consumer says so and retries (until stopped)."""
    src, dst = shard_name("faces", 1), shard_name("emotions", 1)
    sent = crops(10)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    down = f"127.0.0.1:{free_port()}"
    some = connect(redis_cluster.url.replace("redis+cluster://", f"redis+cluster://{down},"))
    none = connect(f"redis+cluster://{down}")
    try:
        consumer = StreamConsumer(some, src, "inference", echo_handler(StreamProducer(some, dst, 10_000)),
                                  settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
        async with running(consumer) as until:
            await until(lambda: settled(cluster, src, entries=10), "every entry acknowledged")
        stranded = StreamConsumer(none, src, "inference", echo_handler(StreamProducer(none, dst, 10_000)),
                                  settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
        with capture_logs() as logs:
            async with running(stranded):
                await wait_for(lambda: _logged(logs, "redis_unavailable", 3), PATIENCE_S, "3 retries logged")
        retries = [e for e in logs if e["event"] == "redis_unavailable"]
        assert all("Redis Cluster cannot be connected" in e["error"] for e in retries), retries
    finally:
        await some.aclose()
        await none.aclose()
    assert sorted(await crop_ids_in(cluster, dst)) == sorted(c.header.id for c in sent)


async def _logged(logs: list[dict], event: str, times: int) -> bool:
    return sum(e["event"] == event for e in logs) >= times


async def test_a_service_user_works_on_every_node(cluster, redis_cluster, shard_name):
    """The inference user of deploy/redis/users.acl.template with its keys as shard patterns, on every node
    (ACLs are per node), plus what redis-py's cluster client asks when it starts: the slots map and the
    command table. User and password come from the cluster URL."""
    src, dst = shard_name("faces", 0), shard_name("emotions", 0)
    prefix = src.removesuffix(":faces").split(":", 2)[2]  # test-<id>
    keys = [f"~emotune:{{s*}}:{prefix}:{k}" for k in ("faces", "emotions")]
    keys += [f"~emotune:{kind}:emotune:{{s*}}:{prefix}:*" for kind in ("dlq", "stats", "stats:emotune:dlq")]
    keys += [f"~emotune:seen:inference:emotune:{{s*}}:{prefix}:faces:*"]
    await asyncio.to_thread(
        redis_cluster.add_user, "inference", "inference-pw", "resetchannels", "-@all",
        "+ping", "+multi", "+exec", "+discard",
        "+xadd", "+xlen", "+xrange", "+xtrim", "+xinfo|groups", "+hincrby", "+time", "+evalsha", "+script|load",
        "+xgroup|create", "+xreadgroup", "+xautoclaim", "+xclaim", "+xpending", "+xack", "+sadd", "+smismember",
        "+expire", "+cluster|slots", "+command", *keys,
    )  # fmt: skip
    sent = crops(25)
    await StreamProducer(cluster, src, maxlen=10_000).publish_many(sent)
    user = connect(redis_cluster.url_for("inference", "inference-pw"))
    try:
        consumer = StreamConsumer(user, src, "inference", echo_handler(StreamProducer(user, dst, 10_000)),
                                  settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
        async with running(consumer) as until:
            await until(lambda: settled(cluster, src, entries=25), "every entry acknowledged")
        assert await consumer.expire() == 0  # the trim script, as the user
        with pytest.raises(NoPermissionError):
            await user.set(shard_name("other", 0), "x")
    finally:
        await user.aclose()
    assert sorted(await crop_ids_in(cluster, dst)) == sorted(c.header.id for c in sent)
