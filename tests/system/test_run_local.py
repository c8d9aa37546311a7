"""The embedded run: `make run`'s launcher starts Redis and the Procfile's services; one Ctrl-C stops all."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
import redis

from emotune.v1 import messages_pb2
from emotune_common.codec import decode
from emotune_common.shards import session_stream, shard_streams
from emotune_common.streams import EMOTIONS, FRAMES

from ..common.helpers import crops
from ..conftest import DATA_DIR, ROOT, free_port
from ..processes import PATIENCE_S, shard_entries, stream_shards, wait_until


def answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.mark.slow
def test_run_starts_redis_and_services_and_one_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    procfile = tmp_path / "Procfile"
    procfile.write_text(f"worker: {sys.executable} -m tests.common.echo_worker {url} faces emotions inference w1\n")
    env = {**os.environ, "REDIS_URL": url, "EMOTUNE_FRAMES_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
           "EMOTUNE_PROCFILE": str(procfile), "PYTHONUNBUFFERED": "1"}  # fmt: skip
    run = subprocess.Popen(
        [sys.executable, "scripts/run_local.py"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: answers(client), PATIENCE_S, "Redis to answer")
        for crop in crops(5):
            client.xadd("faces", {"type": "emotune.v1.FaceCrop", "pb": crop.SerializeToString()})
        wait_until(lambda: client.xlen("emotions") == 5, PATIENCE_S, "the worker to handle 5 crops")
        assert {decode(f, messages_pb2.EmotionEvent).crop_id for _, f in client.xrange("emotions")}
    finally:
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        output, _ = run.communicate(timeout=30)
    assert run.returncode is not None
    wait_until(lambda: not answers(client), PATIENCE_S, "Redis to stop after Ctrl-C")
    assert "redis" in output and "worker" in output
    leftover = subprocess.run(["pgrep", "-f", f"echo_worker {url}"], capture_output=True, text=True).stdout
    assert leftover == "", f"worker still running: {leftover}"


def test_run_uses_a_redis_that_already_answers(redis_url, tmp_path):
    env = {**os.environ, "REDIS_URL": redis_url, "EMOTUNE_PROCFILE": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "scripts/run_local.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    assert f"using the Redis at {redis_url}" in done.stdout


@pytest.mark.slow
def test_make_run_turns_an_uploaded_frame_into_emotion_events_and_stops_cleanly(recommender_models):
    """The real Procfile: model server, capture (uploads) and inference, wired as `make run` wires them; the
    recommender loads the session's model (without one it would train into the checkout's models/recommender)."""
    from emotune_common.ids import make_header

    redis_port, grpc_port = free_port(), free_port()
    url, frames_url = f"redis://127.0.0.1:{redis_port}/0", f"redis://127.0.0.1:{free_port()}/0"
    env = {**os.environ, "REDIS_URL": url, "EMOTUNE_FRAMES_REDIS_URL": frames_url,
           "EMOTUNE_MODELSERVER_PORT": str(grpc_port), "EMOTUNE_RECOMMENDER_PORT": str(free_port()),
           "EMOTUNE_GATEWAY_PORT": str(free_port()),
           "EMOTUNE_RECOMMENDER_MODEL_DIR": str(recommender_models)}  # fmt: skip
    env.pop("EMOTUNE_PROCFILE", None)
    env.pop("MODEL_SERVER", None)
    run = subprocess.Popen([sys.executable, "scripts/run_local.py"], cwd=ROOT, env=env, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    client, frames = redis.Redis.from_url(url), redis.Redis.from_url(frames_url)
    try:
        wait_until(lambda: answers(client) and answers(frames), PATIENCE_S, "both Redis servers to answer")
        assert frames.config_get("appendonly") == {"appendonly": "no"} and frames.config_get("save") == {"save": ""}
        photo = (DATA_DIR / "images" / "two_people.jpg").read_bytes()
        frame = messages_pb2.Frame(header=make_header("s1", "alice"), image=photo, content_type="image/jpeg")
        shards = stream_shards()  # make run's services get this environment
        frames.xadd(session_stream(FRAMES, "s1", shards), {"type": "emotune.v1.Frame", "pb": frame.SerializeToString()})

        def alices() -> list[messages_pb2.EmotionEvent]:  # .run/redis may hold earlier runs' events
            events = [decode(f, messages_pb2.EmotionEvent) for _, _, f in shard_entries(client, EMOTIONS, shards)]
            return [e for e in events if e.header.user_id == "alice" and e.header.session_id == "s1"]

        wait_until(lambda: len(alices()) >= 2, PATIENCE_S, "two emotion events from the uploaded photo")
        assert not client.exists(*shard_streams(FRAMES, shards)), "a frame reached the Redis that keeps data on disk"
    finally:
        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=60)
    for name in ("redis", "redis-frames", "modelserver", "capture", "inference"):
        assert name in output
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", grpc_port)) != 0, "the model server still listens after Ctrl-C"
    wait_until(lambda: not (answers(client) or answers(frames)), PATIENCE_S, "both Redis servers to stop after Ctrl-C")
    assert list((ROOT / ".run" / "redis-frames").iterdir()) == [], "the frames Redis wrote to disk"
