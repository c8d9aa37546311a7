"""Face crops and events leave the streams after EMOTUNE_STREAM_RETENTION_S: on the producers' trims,
and through the consumers' periodic expiry when nobody publishes any more. Evicted entries that no
group had read count as dropped, as for the length bound."""

from __future__ import annotations

import asyncio

from emotune.v1 import messages_pb2
from emotune_common import producer as producer_module
from emotune_common.consumer import Outcome, StreamConsumer
from emotune_common.ids import derived_header
from emotune_common.producer import StreamProducer, stream_stats
from emotune_common.settings import StreamSettings
from emotune_common.streams import dead_letter_stream

from ..common.helpers import crops, wait_for
from ..processes import PATIENCE_S


def test_the_retention_is_a_setting_every_producer_reads(monkeypatch, aredis):
    assert StreamSettings().retention_s == 86_400
    monkeypatch.setenv("EMOTUNE_STREAM_RETENTION_S", "120")
    assert StreamSettings().retention_s == 120
    assert StreamProducer(aredis, "any", 10).retention_s == 120  # read where the service makes its producers
    assert StreamProducer(aredis, "any", 10, retention_s=0).retention_s == 0


async def test_a_trim_evicts_entries_older_than_the_retention_and_counts_the_unread_as_dropped(aredis, names):
    stream = names("faces")
    producer = StreamProducer(aredis, stream, maxlen=10_000, retention_s=1)
    old = await producer.publish_many(crops(5))
    await aredis.xgroup_create(stream, "inference", id="0")
    await aredis.xreadgroup("inference", "c1", {stream: ">"}, count=2)  # two of the old ones were read
    await asyncio.sleep(1.1)
    new = await producer.publish_many(crops(3))
    assert await producer.trim() == (5, 3)  # the five old entries go; three of them nobody had read
    assert [i.decode() for i, _ in await aredis.xrange(stream)] == new
    assert not set(old) & {i.decode() for i, _ in await aredis.xrange(stream)}
    assert await stream_stats(aredis, stream) == {"length": 3, "trimmed": 5, "dropped": 3}
    assert await producer.trim() == (0, 0)  # the new ones stay
    # and without a retention nothing is evicted for age
    keep = StreamProducer(aredis, names("kept"), maxlen=10_000, retention_s=0)
    await keep.publish_many(crops(2))
    await asyncio.sleep(1.1)
    assert await keep.trim() == (0, 0)


async def test_the_length_bound_and_the_age_bound_work_together(aredis, names):
    stream = names("faces")
    producer = StreamProducer(aredis, stream, maxlen=4, slack=1000, retention_s=1)
    await producer.publish_many(crops(3))
    await asyncio.sleep(1.1)
    await producer.publish_many(crops(6))
    assert (await producer.trim())[0] == 5  # 3 for age, 2 more for length: the newest 4 stay
    assert await aredis.xlen(stream) == 4


async def test_a_slow_stream_is_expired_while_publishing_without_reaching_the_slack(aredis, names):
    stream = names("emotions")
    producer = StreamProducer(aredis, stream, maxlen=10_000, slack=1000, retention_s=1, expire_every_s=0.5)
    await producer.publish_many(crops(3))
    await asyncio.sleep(1.1)
    await producer.publish(crops(1)[0])  # 4 entries, far below the slack, but the expiry is due
    assert await aredis.xlen(stream) == 1


async def test_a_large_backlog_is_expired_in_bounded_steps(aredis, names, monkeypatch):
    monkeypatch.setattr(producer_module, "EXPIRE_BATCH", 100)
    stream = names("faces")
    producer = StreamProducer(aredis, stream, maxlen=10_000, slack=10_000, retention_s=1)
    await producer.publish_many(crops(250))
    await asyncio.sleep(1.1)
    assert await producer.trim() == (100, 0)  # one call evicts at most a batch
    assert await producer.expire() == (150, 0)  # expire goes on until nothing is left over
    assert await aredis.xlen(stream) == 0


async def test_an_idle_stream_its_dead_letters_and_its_outputs_age_out_through_the_consumer(aredis, names):
    src, dst = names("faces"), names("emotions")
    settings = StreamSettings(batch_size=10, block_ms=50, claim_idle_ms=200, max_deliveries=1, retention_s=1)
    out = StreamProducer(aredis, dst, 10_000, retention_s=1)

    async def handle(batch):
        events = [messages_pb2.EmotionEvent(header=derived_header(d.message.header), crop_id=d.message.header.id)
                  for d in batch]  # fmt: skip
        return Outcome(publish=[(out, e) for e in events])

    # a producer that keeps entries forever wrote these, then went away
    await StreamProducer(aredis, src, 10_000, retention_s=0).publish_many(crops(10))
    await aredis.xadd(src, {"type": "emotune.v1.FaceCrop", "pb": b"\x08"})  # a dead letter to be
    consumer = StreamConsumer(aredis, src, "inference", handle, settings=settings,
                              message_type=messages_pb2.FaceCrop, expire_every_s=0.2)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    dlq = dead_letter_stream(src)
    try:
        await wait_for(lambda: _length(aredis, dst, 10), PATIENCE_S, "the crops handled")
        assert await aredis.xlen(dlq) == 1
        # nobody publishes any more: within the retention and the expiry period, all of it is gone
        await wait_for(lambda: _all_empty(aredis, src, dlq, dst), PATIENCE_S, "the idle streams aged out")
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    stats = await stream_stats(aredis, src)
    assert stats["trimmed"] == 11 and stats.get("dropped", 0) == 0  # all had been read before they went


async def test_expire_on_missing_streams_is_harmless(aredis, names):
    consumer = StreamConsumer(aredis, names("nothing"), "g", lambda batch: None, settings=StreamSettings(retention_s=1))
    assert await consumer.expire() == 0


async def _length(redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


async def _all_empty(redis, *streams: str) -> bool:
    return all([await redis.xlen(s) == 0 for s in streams])
