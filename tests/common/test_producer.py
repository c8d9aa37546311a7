"""Bounded streams: a fast producer never lets a stream grow past its bound, and drops are counted."""

from emotune_common import metrics
from emotune_common.codec import decode
from emotune_common.producer import StreamProducer, stream_stats

from .helpers import crops


async def test_publish_many_keeps_order(aredis, names):
    stream = names("faces")
    producer = StreamProducer(aredis, stream, maxlen=1000)
    sent = crops(20)
    ids = await producer.publish_many(sent)
    entries = await aredis.xrange(stream)
    assert [i.decode() for i, _ in entries] == ids
    assert [decode(f) for _, f in entries] == sent


async def test_stream_stays_bounded_and_drops_are_counted(aredis, names):
    stream = names("faces")
    await aredis.xgroup_create(stream, "inference", id="$", mkstream=True)  # a consumer that never reads
    producer = StreamProducer(aredis, stream, maxlen=500, slack=50)
    before = metrics.DROPPED.labels(stream)._value.get()
    for _ in range(100):
        await producer.publish_many(crops(50))
        assert await aredis.xlen(stream) <= 500 + 50
    stats = await stream_stats(aredis, stream)
    assert stats["length"] == 500
    # nothing was ever read, so everything evicted was dropped
    assert stats["dropped"] == stats["trimmed"] == 5000 - 500
    assert metrics.DROPPED.labels(stream)._value.get() - before == 4500


async def test_entries_already_delivered_are_trimmed_but_not_dropped(aredis, names):
    stream = names("faces")
    await aredis.xgroup_create(stream, "inference", id="$", mkstream=True)
    producer = StreamProducer(aredis, stream, maxlen=100, slack=10)
    await producer.publish_many(crops(300))
    delivered = await aredis.xreadgroup("inference", "c1", {stream: ">"}, count=1000)
    assert len(delivered[0][1]) == 100  # the bound held before the read
    await producer.publish_many(crops(250))
    stats = await stream_stats(aredis, stream)
    assert stats["length"] == 100
    # of the 450 evicted in all, the 100 delivered ones are not drops
    assert stats["trimmed"] == 450
    assert stats["dropped"] == 350


async def test_a_stream_nobody_reads_is_trimmed_without_drops(aredis, names):
    stream = names("recommendations")
    producer = StreamProducer(aredis, stream, maxlen=10, slack=1)
    await producer.publish_many(crops(30))
    stats = await stream_stats(aredis, stream)
    assert stats["length"] == 10 and stats["trimmed"] == 20 and stats.get("dropped", 0) == 0


async def test_on_one_redis_a_publish_waits_for_no_replica_unless_told_and_then_not_for_one_that_is_not_there(
    aredis, names
):
    stream = names("faces")
    assert StreamProducer(aredis, stream, maxlen=100).wait_replicas == 0  # the default (-1) on one Redis
    producer = StreamProducer(aredis, stream, maxlen=100, wait_replicas=1, wait_timeout_ms=50)
    unreplicated = metrics.UNREPLICATED.labels(stream)
    before = unreplicated._value.get()
    first = await producer.publish_many(crops(3))  # WAIT times out: no replica confirms
    assert unreplicated._value.get() - before == 3
    assert producer._no_replica_until > 0  # ROLE said there is none: not waited for again for a while
    second = await producer.publish_many(crops(2))
    assert unreplicated._value.get() - before == 5  # still counted: nothing confirmed them
    assert [i.decode() for i, _ in await aredis.xrange(stream)] == first + second  # and all kept
