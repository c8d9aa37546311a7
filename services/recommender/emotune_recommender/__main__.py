"""The recommender service, and the full retrain.

python -m emotune_recommender serve     # gRPC on 50052, consumers on emotions and feedback
python -m emotune_recommender train     # rebuild the model from the data: a new version
"""

from __future__ import annotations

import asyncio
import time

import grpc
import typer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from emotune.v1 import messages_pb2, recommender_pb2_grpc
from emotune_common.lifecycle import run_service, serve_ops
from emotune_common.logs import configure_logging, get_logger
from emotune_common.redis_client import connect
from emotune_common.sharded import ShardedProducer, shard_consumers
from emotune_common.streams import EMOTIONS, FEEDBACK, RECOMMENDATIONS
from emotune_recommender import metrics, store
from emotune_recommender.catalogue import load_catalogue
from emotune_recommender.core import RecommenderCore
from emotune_recommender.data import DataError, MusicData, load_music
from emotune_recommender.events import SessionMoods, emotions_handler, feedback_handler
from emotune_recommender.grpc_api import RecommenderService
from emotune_recommender.settings import RecommenderSettings
from emotune_recommender.smoothing import Smoothing
from emotune_recommender.taste import TasteModel
from emotune_recommender.tracks import TrackLookup
from emotune_recommender.trackspace import TrackSpace

app = typer.Typer(add_completion=False, help="emotune recommender")
log = get_logger("emotune.recommender")
GROUP = "recommender"


def train_and_save(settings: RecommenderSettings, music: MusicData) -> tuple[int, TasteModel]:
    started = time.perf_counter()
    taste = TasteModel.train(music, music.plays, progress=lambda step: log.info("training", step=step))
    version, path = store.save(taste, settings.recommender_model_dir)
    log.info("model_trained", version=version, path=str(path), seconds=round(time.perf_counter() - started, 1),
             weights=taste.weights)  # fmt: skip
    return version, taste


async def _serve(settings: RecommenderSettings, stop: asyncio.Event) -> None:
    # run_service listens for signals before the model loads: a stop during a first training is
    # honoured after it
    music = load_music(settings.data_dir)
    catalogue = load_catalogue(music, settings.data_dir)
    log.info("catalogue", **catalogue.report.summary())
    loaded = store.load_latest(settings.recommender_model_dir)
    if loaded and not isinstance(loaded[1], TasteModel):
        log.warning("model_outdated", version=loaded[0], note="an artist-level model from before track ranking")
        loaded = None
    version, taste = loaded if loaded else await asyncio.to_thread(train_and_save, settings, music)
    if stop.is_set():
        return
    space = TrackSpace.build(catalogue, taste, music.artists)
    metrics.MODEL_VERSION.set(version)
    redis = connect(settings.redis_url)
    core = RecommenderCore(taste, space, version, redis, TrackLookup(redis, settings.spotify()),
                           music.artists["name"].to_dict(), settings.tuning())  # fmt: skip
    out = ShardedProducer(redis, RECOMMENDATIONS, settings.stream.shards, settings.recommendations_maxlen)
    moods = SessionMoods(Smoothing(settings.mood_time_constant_s, settings.mood_margin, settings.mood_hold), redis,
                         settings.session_ttl_s, settings.session_history)  # fmt: skip
    # A consumer per shard of each stream; a shard's mood changes and sets go to that shard of the output.
    consumers = [
        *shard_consumers(redis, EMOTIONS, GROUP,
                         lambda shard: emotions_handler(core, moods, out.shard(shard), settings.default_k),
                         settings.stream, consumer=settings.consumer_name or None,
                         message_type=messages_pb2.EmotionEvent),
        *shard_consumers(redis, FEEDBACK, GROUP,
                         lambda shard: feedback_handler(core, moods, out.shard(shard), settings.default_k),
                         settings.stream, consumer=settings.consumer_name or None, message_type=messages_pb2.Feedback),
    ]  # fmt: skip
    server = grpc.aio.server()
    recommender_pb2_grpc.add_RecommenderServicer_to_server(
        RecommenderService(core, settings.default_k, moods, out), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"0.0.0.0:{settings.recommender_port}")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info("serving", port=settings.recommender_port, model_version=version, spotify=core.tracks.enabled)

    async def ready() -> bool:
        return bool(await redis.ping())

    ops = asyncio.create_task(serve_ops(settings.metrics_port, ready, stop))
    await asyncio.gather(*(c.run(stop) for c in consumers))
    await server.stop(grace=5)
    await ops
    await redis.aclose()


@app.command()
def serve() -> None:
    """Run the recommender: load the latest model (training one first if there is none)."""
    try:
        run_service(_serve, RecommenderSettings(), "recommender")
    except DataError as e:
        raise typer.BadParameter(f"the music data is needed: {e}") from None


@app.command()
def train() -> None:
    """Rebuild the model from the data and save it as a new version (the service loads it on restart)."""
    settings = RecommenderSettings()
    configure_logging(settings.log_level, json=False, service="recommender")
    try:
        version, _ = train_and_save(settings, load_music(settings.data_dir))
    except DataError as e:
        raise typer.BadParameter(f"the music data is needed: {e}") from None
    typer.echo(f"saved version {version} in {settings.recommender_model_dir}")


if __name__ == "__main__":
    app()
