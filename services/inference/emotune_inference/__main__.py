"""An inference worker: ``python -m emotune_inference``. Start as many as wanted; they share the
consumer group ``inference`` on emotune:faces."""

from __future__ import annotations

import asyncio

from emotune.v1 import messages_pb2
from emotune_common.consumer import StreamConsumer, default_consumer_name
from emotune_common.lifecycle import run_service, serve_ops
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.streams import EMOTIONS, FACES
from emotune_inference.model_client import CircuitBreaker, ModelClient
from emotune_inference.settings import InferenceSettings
from emotune_inference.worker import inference_handler

GROUP = "inference"


async def serve(settings: InferenceSettings, stop: asyncio.Event) -> None:
    redis = connect(settings.redis_url)
    client = ModelClient(settings.model_server, settings.model_name, settings.model_deadline_ms / 1000,
                         CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s))  # fmt: skip
    emotions = StreamProducer(redis, EMOTIONS, settings.emotions_maxlen)
    handler = inference_handler(client, emotions, stop)
    stream_settings = settings.stream.model_copy(update={"batch_size": settings.inference_batch_size})
    name = settings.consumer_name or default_consumer_name()
    # Several consumers per process: while one waits for the model, the next reads its batch.
    consumers = [
        StreamConsumer(
            redis,
            FACES,
            GROUP,
            handler,
            consumer=f"{name}-{i}",
            settings=stream_settings,
            message_type=messages_pb2.FaceCrop,
        )
        for i in range(settings.inference_concurrency)
    ]

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
