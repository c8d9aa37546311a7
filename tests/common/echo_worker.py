"""A consumer process for the stream library's tests: reads FaceCrops, writes one EmotionEvent each.

    python -m tests.common.echo_worker REDIS_URL IN_STREAM OUT_STREAM GROUP NAME [--delay S]

``--delay`` sleeps inside each batch before the output is written, so a test can kill it mid-batch.
It prints "handling N" before each batch and exits 0 after a graceful stop.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from emotune.v1 import messages_pb2
from emotune_common.consumer import Outcome, StreamConsumer
from emotune_common.ids import derived_header
from emotune_common.lifecycle import stop_on_signals
from emotune_common.logs import configure_logging
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.settings import StreamSettings


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    redis = connect(args.redis_url)
    out = StreamProducer(redis, args.out_stream, maxlen=1_000_000)
    settings = StreamSettings(
        batch_size=args.batch_size, block_ms=100, claim_idle_ms=args.claim_idle_ms, max_deliveries=5
    )

    async def handle(batch):
        print(f"handling {len(batch)}", flush=True)
        await asyncio.sleep(args.delay)
        events = [
            messages_pb2.EmotionEvent(header=derived_header(d.message.header), crop_id=d.message.header.id)
            for d in batch
        ]
        return Outcome(publish=[(out, e) for e in events])

    stop = asyncio.Event()
    stop_on_signals(stop)
    consumer = StreamConsumer(
        redis,
        args.in_stream,
        args.group,
        handle,
        consumer=args.name,
        settings=settings,
        message_type=messages_pb2.FaceCrop,
    )
    await consumer.run(stop)
    await redis.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    for name in ("redis_url", "in_stream", "out_stream", "group", "name"):
        p.add_argument(name)
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--claim-idle-ms", type=int, default=1000)
    asyncio.run(main(p.parse_args()))
    sys.exit(0)
