"""Inference workers against a real Redis and the real model server, the crops of several sessions over the shards."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from emotune.v1 import messages_pb2
from emotune_common.codec import decode
from emotune_common.ids import make_header
from emotune_common.redis_client import connect
from emotune_common.sharded import ShardedProducer
from emotune_common.shards import session_stream, shard_streams
from emotune_common.streams import EMOTIONS, FACES, dead_letter_stream
from emotune_inference.__main__ import serve
from emotune_inference.settings import InferenceSettings
from emotune_inference.worker import event_id

from ..common.helpers import read_all, shard_length, wait_for
from ..conftest import free_port
from ..modelserver.helpers import predict_request, probabilities
from ..processes import PATIENCE_S, start_model_server

#: Shards of the streams in these tests; the crops' 4 sessions lie on 2 of them (0 and 2).
SHARDS = 4
SESSIONS = ("s1", "s2", "s3", "s4")


def fer_crops(val_faces, n: int) -> list[messages_pb2.FaceCrop]:
    images, _ = val_faces
    pixels = (images[:n, :, :, 0] * 255).round().astype(np.uint8)
    return [messages_pb2.FaceCrop(header=make_header(SESSIONS[i % len(SESSIONS)], "alice"), pixels=p.tobytes(),
                                  width=48, height=48, frame_number=i) for i, p in enumerate(pixels)]  # fmt: skip


def faces(redis) -> ShardedProducer:
    return ShardedProducer(redis, FACES, SHARDS, 10_000)


async def dead_faces(redis) -> list[tuple[str, dict]]:
    """The dead letters of every shard of emotune:faces."""
    return [
        letter for name in shard_streams(FACES, SHARDS) for letter in await read_all(redis, dead_letter_stream(name))
    ]


def settings_for(redis_url: str, model_server: str) -> InferenceSettings:
    return InferenceSettings.model_validate(
        {
            "REDIS_URL": redis_url,
            "MODEL_SERVER": model_server,
            "inference_batch_size": 8,
            "breaker_reset_s": 0.5,
            "stream": {"shards": SHARDS, "block_ms": 50, "claim_idle_ms": 1000, "max_deliveries": 3},
        }
    )


async def run_worker(settings: InferenceSettings):
    stop = asyncio.Event()
    return stop, asyncio.create_task(serve(settings, stop))


async def events(redis) -> list[messages_pb2.EmotionEvent]:
    """Every shard's events, each checked to be on the shard of its crop (and session)."""
    found = []
    for name in shard_streams(EMOTIONS, SHARDS):
        for _, f in await redis.xrange(name):
            event = decode(f, messages_pb2.EmotionEvent)
            assert name == session_stream(EMOTIONS, event.header.session_id, SHARDS)
            found.append(event)
    return found


async def test_one_event_per_crop_with_the_models_probabilities(redis_server, model_server, val_faces):
    redis = connect(redis_server.url)
    crops = fer_crops(val_faces, 40)
    await faces(redis).publish_many(crops)
    stop, task = await run_worker(settings_for(redis_server.url, model_server.target))
    try:
        await wait_for(lambda: _length(redis, EMOTIONS, 40), PATIENCE_S, "40 emotion events")
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    got = {e.crop_id: e for e in await events(redis)}
    assert set(got) == {c.header.id for c in crops}
    with model_server.channel() as channel:
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        expected = probabilities(stub.Predict(predict_request(val_faces[0][:40]), timeout=30))
    for crop, want in zip(crops, expected, strict=True):
        event = got[crop.header.id]
        np.testing.assert_allclose(event.probabilities, want, atol=2e-3)  # pixels went through uint8
        assert event.label == int(np.argmax(event.probabilities)) + 1
        assert event.header.id == event_id(crop.header.id)
        assert (event.header.user_id, event.header.captured_at_us) == ("alice", crop.header.captured_at_us)
        assert event.model_name == "emotion_cnn" and event.model_version >= 1
    for name in shard_streams(FACES, SHARDS):
        assert (await redis.xpending(name, "inference"))["pending"] == 0
    await redis.aclose()


@pytest.mark.slow
async def test_a_model_server_outage_loses_nothing(redis_server, tmp_path, val_faces):
    redis = connect(redis_server.url)
    port = free_port()
    crops = fer_crops(val_faces, 24)
    await faces(redis).publish_many(crops)
    stop, task = await run_worker(settings_for(redis_server.url, f"127.0.0.1:{port}"))
    server = None
    try:
        await asyncio.sleep(3)  # the model server is not there yet
        assert await shard_length(redis, EMOTIONS, SHARDS) == 0
        assert not await dead_faces(redis)
        server = await asyncio.to_thread(start_model_server, tmp_path, port=port)
        await wait_for(lambda: _length(redis, EMOTIONS, 24), PATIENCE_S, "every crop scored after the outage")
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
        if server:
            server.stop()
    assert {e.crop_id for e in await events(redis)} == {c.header.id for c in crops}
    assert not await dead_faces(redis)
    await redis.aclose()


async def test_a_malformed_crop_goes_to_the_dead_letters_and_the_rest_flow(redis_server, model_server, val_faces):
    redis = connect(redis_server.url)
    crops = fer_crops(val_faces, 10)
    crops[3].pixels = b"tiny"
    await faces(redis).publish_many(crops)
    stop, task = await run_worker(settings_for(redis_server.url, model_server.target))
    try:
        await wait_for(lambda: _some(dead_faces(redis)), PATIENCE_S, "a dead letter")
        await wait_for(lambda: _length(redis, EMOTIONS, 9), PATIENCE_S, "9 events")
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    [(_, letter)] = await dead_faces(redis)
    assert b"expected 48x48" in letter[b"dlq_reason"]
    assert crops[3].header.id not in {e.crop_id for e in await events(redis)}
    await redis.aclose()


async def _some(entries) -> bool:
    return bool(await entries)


async def _length(redis, stream, n):
    return await shard_length(redis, stream, SHARDS) >= n


def test_the_workers_messages_are_tensorflow_servings_on_the_wire():
    import sys

    from tensorflow_serving.apis import predict_pb2

    from emotune_inference.model_client import images_tensor, probabilities_of

    ours = __import__("emotune.v1.tfserving_pb2", fromlist=["x"]).PredictRequest()
    ours.model_spec.name = "emotion_cnn"
    ours.model_spec.signature_name = "serving_default"
    ours.model_spec.version.value = 7
    images = np.random.default_rng(0).random((3, 48, 48, 1), dtype=np.float32)
    ours.inputs["images"].CopyFrom(images_tensor(images))
    theirs = predict_pb2.PredictRequest.FromString(ours.SerializeToString())
    assert (theirs.model_spec.name, theirs.model_spec.version.value) == ("emotion_cnn", 7)
    import tensorflow as tf

    np.testing.assert_array_equal(tf.make_ndarray(theirs.inputs["images"]), images)
    response = predict_pb2.PredictResponse()
    response.outputs["probabilities"].CopyFrom(tf.make_tensor_proto(np.eye(7, dtype=np.float32)[:2]))
    response.model_spec.version.value = 3
    back = __import__("emotune.v1.tfserving_pb2", fromlist=["x"]).PredictResponse.FromString(
        response.SerializeToString()
    )
    np.testing.assert_array_equal(probabilities_of(back.outputs["probabilities"]), np.eye(7, dtype=np.float32)[:2])
    assert back.model_spec.version.value == 3
    assert "tensorflow" in sys.modules  # this test imports it; the worker itself does not (below)


def test_a_worker_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, emotune_inference.__main__; print('tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def _served(server) -> dict[int, str]:
    """The model server's states of emotion_cnn's versions."""
    from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc

    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "emotion_cnn"
    with server.channel() as channel:
        reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)
    return {v.version: get_model_status_pb2.ModelVersionStatus.State.Name(v.state) for v in reply.model_version_status}


@pytest.mark.slow
async def test_a_running_system_moves_to_a_new_version_and_back_without_a_restart(redis_server, tmp_path, val_faces):
    """A version published beside version 1 is served at the next poll; the version policy in
    models.config (one setting) rolls back to version 1; each event names the version that scored it."""
    import shutil

    redis = connect(redis_server.url)
    server = await asyncio.to_thread(start_model_server, tmp_path)
    producer = faces(redis)
    stop, task = await run_worker(settings_for(redis_server.url, server.target))
    seen: set[str] = set()  # the events so far (by id: the shards' events are not in one order)

    async def versions_of_new_events() -> set[int]:
        await producer.publish_many(fer_crops(val_faces, 8))
        await wait_for(lambda: _length(redis, EMOTIONS, len(seen) + 8), PATIENCE_S, f"{len(seen) + 8} events")
        fresh = [e for e in await events(redis) if e.header.id not in seen]
        seen.update(e.header.id for e in fresh)
        return {e.model_version for e in fresh}

    async def until_served(states: dict[int, str]) -> None:
        async def served() -> bool:
            return await asyncio.to_thread(_served, server) == states

        await wait_for(served, PATIENCE_S, f"the model server to hold {states}")

    try:
        first = max(_served(server))
        assert await versions_of_new_events() == {first}
        staging = server.base / "emotion_cnn" / f".{first + 1}.staging"
        shutil.copytree(server.base / "emotion_cnn" / str(first), staging)
        staging.rename(server.base / "emotion_cnn" / str(first + 1))  # how export_savedmodel publishes
        await until_served({first + 1: "AVAILABLE", first: "END"})
        assert await versions_of_new_events() == {first + 1}

        config = server.base / "models.config"
        latest = "model_version_policy { latest { num_versions: 1 } }"
        assert latest in config.read_text()
        config.write_text(
            config.read_text().replace(latest, f"model_version_policy {{ specific {{ versions: {first} }} }}")
        )
        await until_served({first: "AVAILABLE", first + 1: "END"})
        assert await versions_of_new_events() == {first}  # rolled back, and the worker never restarted
        assert not task.done()
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
        server.stop()
        await redis.aclose()
