"""The consumer in a group: at-least-once, dead letters, duplicates, graceful stop, Redis restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from emotune.v1 import messages_pb2
from emotune_common import metrics
from emotune_common.consumer import Outcome, StreamConsumer
from emotune_common.ids import derived_header
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.settings import StreamSettings
from emotune_common.streams import dead_letter_stream

from ..conftest import ROOT
from ..processes import PATIENCE_S
from .helpers import crop_ids_in, crops, slowed, wait_for

FAST = StreamSettings(batch_size=10, block_ms=50, claim_idle_ms=200, max_deliveries=3)


def echo_handler(out: StreamProducer, seen: list[str] | None = None):
    async def handle(batch):
        if seen is not None:
            seen.extend(d.message.header.id for d in batch)
        return Outcome(
            publish=[
                (out, messages_pb2.EmotionEvent(header=derived_header(d.message.header), crop_id=d.message.header.id))
                for d in batch
            ]
        )

    return handle


async def run_until(consumer: StreamConsumer, predicate, within: float = PATIENCE_S, what: str = "condition") -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await wait_for(predicate, within, what)
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)


async def pending_count(redis, stream: str, group: str) -> int:
    return int((await redis.xpending(stream, group))["pending"])


async def test_every_entry_is_handled_once_and_acknowledged(aredis, names):
    src, dst = names("faces"), names("emotions")
    sent = crops(95)
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(sent)
    consumer = StreamConsumer(
        aredis,
        src,
        "inference",
        echo_handler(StreamProducer(aredis, dst, 10_000)),
        settings=FAST,
        message_type=messages_pb2.FaceCrop,
    )
    await run_until(consumer, lambda: _count_is(aredis, dst, 95), what="95 events")
    assert sorted(await crop_ids_in(aredis, dst)) == sorted(c.header.id for c in sent)
    assert await pending_count(aredis, src, "inference") == 0
    assert (await consumer.refresh_gauges())["lag"] == 0


async def _count_is(redis, stream, n):
    return await redis.xlen(stream) >= n


async def test_poison_entries_go_to_the_dead_letter_stream_and_the_stream_keeps_flowing(aredis, names):
    src, dst = names("faces"), names("emotions")
    good = crops(20)
    producer = StreamProducer(aredis, src, maxlen=10_000)
    await producer.publish_many(good[:10])
    await aredis.xadd(src, {"type": "emotune.v1.FaceCrop", "pb": os.urandom(300)})
    await aredis.xadd(src, {"type": "emotune.v1.EmotionEvent", "pb": good[0].SerializeToString()})
    await aredis.xadd(src, {"something": "else"})
    await producer.publish_many(good[10:])
    before = metrics.DEAD_LETTERED.labels(src, "inference")._value.get()
    consumer = StreamConsumer(
        aredis,
        src,
        "inference",
        echo_handler(StreamProducer(aredis, dst, 10_000)),
        settings=FAST,
        message_type=messages_pb2.FaceCrop,
    )
    dlq = dead_letter_stream(src)
    await run_until(consumer, lambda: _count_is(aredis, dlq, 3), what="3 dead letters")
    assert sorted(await crop_ids_in(aredis, dst)) == sorted(c.header.id for c in good)
    letters = [f for _, f in await aredis.xrange(dlq)]
    reasons = [f[b"dlq_reason"].decode() for f in letters]
    assert any("does not parse" in r for r in reasons), reasons
    assert any("wrong message type" in r for r in reasons), reasons
    assert any("lacks field" in r for r in reasons), reasons
    assert all(int(f[b"dlq_deliveries"]) == FAST.max_deliveries for f in letters)
    assert letters[0][b"type"] == b"emotune.v1.FaceCrop"  # the original entry travels with the reason
    assert await pending_count(aredis, src, "inference") == 0
    assert metrics.DEAD_LETTERED.labels(src, "inference")._value.get() - before == 3


async def test_a_handler_that_keeps_failing_on_one_message_dead_letters_only_that_one(aredis, names):
    src, dst = names("faces"), names("emotions")
    sent = crops(30)
    bad_id = sent[7].header.id
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(sent)
    out = StreamProducer(aredis, dst, 10_000)
    echo = echo_handler(out)

    async def handle(batch):
        outcome = await echo([d for d in batch if d.message.header.id != bad_id])
        outcome.failed = {d.entry_id: "model rejected this crop" for d in batch if d.message.header.id == bad_id}
        return outcome

    consumer = StreamConsumer(aredis, src, "inference", handle, settings=FAST)
    await run_until(consumer, lambda: _count_is(aredis, dead_letter_stream(src), 1), what="a dead letter")
    assert sorted(await crop_ids_in(aredis, dst)) == sorted(c.header.id for c in sent if c.header.id != bad_id)
    [(_, letter)] = await aredis.xrange(dead_letter_stream(src))
    assert letter[b"dlq_reason"] == b"model rejected this crop"


async def test_an_exception_in_the_handler_is_retried_and_then_succeeds(aredis, names):
    src, dst = names("faces"), names("emotions")
    sent = crops(5)
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(sent)
    echo = echo_handler(StreamProducer(aredis, dst, 10_000))
    calls = 0

    async def flaky(batch):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model server hiccup")
        return await echo(batch)

    consumer = StreamConsumer(aredis, src, "inference", flaky, settings=FAST)
    await run_until(consumer, lambda: _count_is(aredis, dst, 5), what="5 events after a retry")
    assert calls >= 2
    assert await aredis.xlen(dead_letter_stream(src)) == 0


async def test_a_message_delivered_twice_is_handled_once(aredis, names):
    src, dst = names("faces"), names("emotions")
    [crop] = crops(1)
    producer = StreamProducer(aredis, src, maxlen=10_000)
    await producer.publish_many([crop, crop])  # same message id in two entries
    seen: list[str] = []
    consumer = StreamConsumer(
        aredis, src, "inference", echo_handler(StreamProducer(aredis, dst, 10_000), seen), settings=FAST
    )
    await run_until(consumer, lambda: _acked(aredis, src, 2), what="both entries acknowledged")
    assert seen == [crop.header.id]
    assert await crop_ids_in(aredis, dst) == [crop.header.id]


async def _acked(redis, stream, n):
    groups = await redis.xinfo_groups(stream)
    return groups and groups[0]["lag"] == 0 and groups[0]["pending"] == 0 and groups[0]["entries-read"] >= n


def start_worker(redis_url: str, src: str, dst: str, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.common.echo_worker", redis_url, src, dst, "inference", name, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_line(process: subprocess.Popen, prefix: str) -> str:
    for line in process.stdout:
        if line.startswith(prefix):
            return line
    raise AssertionError(f"worker exited ({process.poll()}) before printing {prefix!r}")


@pytest.mark.slow
async def test_sigkill_mid_batch_loses_nothing(aredis, names, redis_url):
    src, dst = names("faces"), names("emotions")
    sent = crops(200)
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(sent)
    doomed = start_worker(redis_url, src, dst, "doomed", "--delay", "5", "--claim-idle-ms", "500")
    await asyncio.to_thread(wait_line, doomed, "handling")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    stranded = await aredis.xpending_range(src, "inference", "-", "+", 100, "doomed")
    assert len(stranded) == 10  # the batch in hand died with the worker

    rescuer = start_worker(redis_url, src, dst, "rescuer", "--claim-idle-ms", "500")
    try:
        await wait_for(lambda: _count_is(aredis, dst, 200), PATIENCE_S, "200 events")
        await wait_for(lambda: _acked(aredis, src, 200), PATIENCE_S, "every entry acknowledged")
    finally:
        rescuer.send_signal(signal.SIGTERM)
        assert rescuer.wait(10) == 0
    ids = await crop_ids_in(aredis, dst)
    assert set(ids) == {c.header.id for c in sent}  # none lost
    assert len(ids) == len(set(ids))  # and the doomed batch was never written, so no duplicate either


@pytest.mark.slow
async def test_sigterm_finishes_and_acknowledges_the_batch_in_hand(aredis, names, redis_url):
    src, dst = names("faces"), names("emotions")
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(crops(50))
    worker = start_worker(redis_url, src, dst, "w1", "--delay", "1.5")
    await asyncio.to_thread(wait_line, worker, "handling")
    worker.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 10) == 0
    assert await aredis.xlen(dst) == 10  # the batch in hand was written...
    assert await pending_count(aredis, src, "inference") == 0  # ...and acknowledged, and nothing else taken


@pytest.mark.slow
async def test_redis_restart_under_a_running_consumer(redis_server, names):
    src, dst = names("faces"), names("emotions")
    redis = connect(redis_server.url)
    sent = crops(300)
    await StreamProducer(redis, src, maxlen=10_000).publish_many(sent)
    slow_echo = slowed(echo_handler(StreamProducer(redis, dst, 10_000)))
    consumer = StreamConsumer(redis, src, "inference", slow_echo, settings=FAST)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await wait_for(lambda: _count_is(redis, dst, 50), PATIENCE_S, "50 events before the restart")
        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(1.0)
        assert not task.done()
        await asyncio.to_thread(redis_server.start)
        await wait_for(lambda: _acked(redis, src, 300), PATIENCE_S, "every entry acknowledged after the restart")
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    ids = await crop_ids_in(redis, dst)
    assert set(ids) == {c.header.id for c in sent}
    assert metrics.RECONNECTS.labels(src)._value.get() >= 1
    await redis.aclose()


async def test_pending_entries_trimmed_away_are_counted_and_cleared(aredis, names):
    src, dst = names("faces"), names("emotions")
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(crops(10))
    await aredis.xgroup_create(src, "inference", id="0")
    await aredis.xreadgroup("inference", "c1", {src: ">"}, count=10)  # c1 takes them, then dies
    await aredis.xtrim(src, maxlen=0)  # the bound evicts them before anyone acknowledges them
    before = metrics.LOST_PENDING.labels(src, "inference")._value.get()
    consumer = StreamConsumer(aredis, src, "inference", echo_handler(StreamProducer(aredis, dst, 10_000)),
                              consumer="c1", settings=FAST)  # fmt: skip
    await run_until(consumer, lambda: _no_pending(aredis, src), what="the trimmed entries cleared")
    assert metrics.LOST_PENDING.labels(src, "inference")._value.get() - before == 10
    assert await aredis.xlen(dead_letter_stream(src)) == 0


async def _no_pending(redis, stream):
    return await pending_count(redis, stream, "inference") == 0


async def test_a_slow_handler_keeps_its_entries_from_idle_consumers(aredis, names):
    """A handler waiting 6 claim periods (a model server down, say) while two other consumers of the
    group look for stale entries: nothing is claimed from it, so nothing is counted as redelivered,
    and with max_deliveries 3 nothing healthy reaches the dead-letter stream."""
    src, out = names("faces"), names("emotions")
    for crop in crops(5):
        await aredis.xadd(src, {"type": "emotune.v1.FaceCrop", "pb": crop.SerializeToString()})
    producer = StreamProducer(aredis, out, maxlen=1000)
    handled: list[str] = []
    echo = echo_handler(producer, handled)

    async def slow(batch):
        await asyncio.sleep(6 * FAST.claim_idle_ms / 1000)
        return await echo(batch)

    slow_one = StreamConsumer(aredis, src, "inference", slow, consumer="slow", settings=FAST)
    await slow_one.ensure_group()
    idle = [StreamConsumer(aredis, src, "inference", echo, consumer=f"idle{i}", settings=FAST) for i in range(2)]
    stop = asyncio.Event()
    slow_task = asyncio.create_task(slow_one.run(stop))
    await wait_for(lambda: _owned_by(aredis, src, "slow"), PATIENCE_S, "the slow consumer to take the batch")
    others = [asyncio.create_task(c.run(stop)) for c in idle]
    await wait_for(lambda: _acked_all(aredis, out, 5), PATIENCE_S, "every crop scored")
    stop.set()
    await asyncio.wait_for(asyncio.gather(slow_task, *others), PATIENCE_S)
    assert sorted(handled) == sorted(set(handled)) and len(handled) == 5  # each crop handled once, by the slow one
    assert await aredis.xlen(dead_letter_stream(src)) == 0
    assert await pending_count(aredis, src, "inference") == 0


async def _owned_by(redis, stream: str, consumer: str) -> bool:
    pending = await redis.xpending(stream, "inference")
    return any(c["name"].decode() == consumer for c in pending.get("consumers", []))


async def _acked_all(redis, stream: str, n: int) -> bool:
    return await redis.exists(stream) and await redis.xlen(stream) >= n


async def test_outputs_to_another_redis_are_written_before_the_entry_is_acknowledged(aredis, names, redis_server):
    """Capture reads frames from the frames Redis and writes crops to the main one: no transaction spans
    the two, so the outputs go first. While the output's Redis is down nothing is acknowledged; once it is
    back every entry has its output, and nothing is left pending."""
    src, dst = names("frames"), names("faces")
    sent = crops(40)
    await StreamProducer(aredis, src, maxlen=10_000).publish_many(sent)
    elsewhere = connect(redis_server.url)
    consumer = StreamConsumer(aredis, src, "capture", echo_handler(StreamProducer(elsewhere, dst, 10_000)),
                              settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
    await asyncio.to_thread(redis_server.stop)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await wait_for(
            lambda: _delivered(aredis, src, "capture", 10), PATIENCE_S, "a batch delivered while dst is down"
        )
        await asyncio.sleep(3.0)  # long enough for more than max_deliveries re-reads, had the batch been dropped
        pending = await aredis.xpending(src, "capture")
        assert pending["pending"] >= 10, pending  # delivered, and not acknowledged without its output
        assert not await aredis.exists(dead_letter_stream(src))  # held, not re-read into the dead letters
        await asyncio.to_thread(redis_server.start)
        await wait_for(lambda: _acked(aredis, src, 40), PATIENCE_S, "every entry acknowledged once dst is back")
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    assert set(await crop_ids_in(elsewhere, dst)) == {c.header.id for c in sent}
    assert not await aredis.exists(dst)  # nothing went to the input's Redis
    assert not await aredis.exists(dead_letter_stream(src))
    await elsewhere.aclose()


async def _delivered(redis, stream: str, group: str, n: int) -> bool:
    groups = await redis.xinfo_groups(stream)
    return bool(groups) and int(groups[0]["entries-read"] or 0) >= n
