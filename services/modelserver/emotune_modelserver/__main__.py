"""Run the model server: ``python -m emotune_modelserver`` (settings: see settings.py / README)."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from emotune_common.lifecycle import run_service, serve_ops
from emotune_common.logs import get_logger
from emotune_modelserver.config import load_batching_config, load_model_config
from emotune_modelserver.servables import ModelRegistry
from emotune_modelserver.service import ModelService, PredictionService
from emotune_modelserver.settings import ModelServerSettings

log = get_logger("emotune.modelserver")


def set_threads(settings: ModelServerSettings) -> None:
    """TensorFlow's thread pools; they are made on its first op, so a server started after that (in a test's
    process) keeps the ones it has."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(settings.tensorflow_intra_op_parallelism)
        tf.config.threading.set_inter_op_parallelism_threads(settings.tensorflow_inter_op_parallelism)
    except RuntimeError as e:
        log.warning("tensorflow_threads_already_set", error=str(e))


async def serve(settings: ModelServerSettings, stop: asyncio.Event) -> None:
    set_threads(settings)
    models = load_model_config(settings.model_config_file)
    batching = load_batching_config(settings.batching_parameters_file) if settings.enable_batching else None
    registry = ModelRegistry(models, batching, settings.poll_seconds, settings.model_config_file)
    await asyncio.to_thread(registry.start)

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(registry, batching is not None), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    address = f"{settings.host}:{settings.port}"
    server.add_insecure_port(address)
    await server.start()
    serving = health_pb2.HealthCheckResponse.SERVING if registry.ready() else health_pb2.HealthCheckResponse.NOT_SERVING
    await health_servicer.set("", serving)
    log.info("serving", address=address, models=[m.name for m in models], batching=batching is not None)

    async def ready() -> bool:
        return registry.ready()

    ops = asyncio.create_task(serve_ops(settings.metrics_port, ready, stop))
    await stop.wait()
    log.info("stopping")
    await server.stop(grace=5)
    await asyncio.to_thread(registry.stop)
    await ops


def main() -> None:
    run_service(serve, ModelServerSettings(), "modelserver")


if __name__ == "__main__":
    main()
