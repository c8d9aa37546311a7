"""An inference worker: ``python -m emotune_inference``. Start as many as wanted; they share the
consumer group ``inference`` on every shard of emotune:faces (one consumer per shard, each its own task),
and each writes a shard's events to the same shard of emotune:emotions."""

from __future__ import annotations

import asyncio

from emotune.v1 import messages_pb2
from emotune_common.consumer import default_consumer_name
from emotune_common.lifecycle import run_service, serve_ops
from emotune_common.redis_client import connect
from emotune_common.sharded import ShardedProducer, shard_consumers
from emotune_common.streams import EMOTIONS, FACES
from emotune_inference.batcher import PredictionBatcher
from emotune_inference.model_client import CircuitBreaker, ModelClient
from emotune_inference.settings import InferenceSettings
from emotune_inference.worker import inference_handler

GROUP = "inference"


async def serve(settings: InferenceSettings, stop: asyncio.Event) -> None:
    redis = connect(settings.redis_url)
    client = ModelClient(settings.model_server, settings.model_name, settings.model_deadline_ms / 1000,
                         CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s))  # fmt: skip
    emotions = ShardedProducer(redis, EMOTIONS, settings.stream.shards, settings.emotions_maxlen)
    # The shards' consumers read at once, and their crops share the worker's model calls: at most
    # inference_concurrency at a time, each carrying every crop waiting when it goes out.
    batcher = PredictionBatcher(client, stop, settings.inference_concurrency, settings.inference_batch_size)
    stream_settings = settings.stream.model_copy(update={"batch_size": settings.inference_batch_size})
    consumers = shard_consumers(
        redis, FACES, GROUP, lambda shard: inference_handler(batcher, emotions.shard(shard)),
        stream_settings, consumer=settings.consumer_name or default_consumer_name(),
        message_type=messages_pb2.FaceCrop,
    )  # fmt: skip

    async def ready() -> bool:
        return bool(await redis.ping()) and not client.breaker.open

    ops = asyncio.create_task(serve_ops(settings.metrics_port, ready, stop))
    await asyncio.gather(*(c.run(stop) for c in consumers))
    await ops
    await client.close()
    await redis.aclose()


def main() -> None:
    run_service(serve, InferenceSettings(), "inference")


if __name__ == "__main__":
    main()
