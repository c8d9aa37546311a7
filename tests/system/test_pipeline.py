"""capture -> emotune:faces -> 2 inference workers -> emotune:emotions, on the real video, as processes.

Each stream is read over all of its shards (the session's entries are all on its own shard)."""

from __future__ import annotations

import signal

import pytest
import redis

from emotune.v1 import messages_pb2
from emotune_common.codec import decode
from emotune_common.shards import session_stream, shard_streams
from emotune_common.streams import EMOTIONS, FACES, dead_letter_stream

from ..conftest import DATA_DIR
from ..processes import (
    PATIENCE_S,
    group_totals,
    python_module,
    shard_entries,
    shard_length,
    spawn,
    stop,
    stream_shards,
    wait_until,
)

VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"


@pytest.mark.slow
def test_every_crop_gets_exactly_one_event_even_when_a_worker_is_killed(redis_server, model_server):
    client = redis.Redis.from_url(redis_server.url)
    common = {"REDIS_URL": redis_server.url, "EMOTUNE_LOG_LEVEL": "WARNING"}
    worker_env = {**common, "MODEL_SERVER": model_server.target, "EMOTUNE_INFERENCE_BATCH_SIZE": "8",
                  "EMOTUNE_STREAM_CLAIM_IDLE_MS": "1500"}  # fmt: skip
    workers = {
        name: spawn(name, python_module("emotune_inference"), {**worker_env, "EMOTUNE_CONSUMER_NAME": name})
        for name in ("w1", "w2")
    }
    capture_env = {
        **common,
        "EMOTUNE_CAPTURE_UPLOADS": "false",
        "EMOTUNE_CAPTURE_SESSIONS": "false",  # only the video: capture ends with it
        "EMOTUNE_CAPTURE_SOURCES": f"video:{VIDEO}?every_frame=1&session=s1&user=u1",
        "EMOTUNE_CAPTURE_FPS": "0",
        "EMOTUNE_DETECT_EVERY": "1",  # a full detection of every frame: the 204 faces the video's README counts
    }
    capture = spawn("capture", python_module("emotune_capture", "serve"), capture_env)
    try:
        wait_until(lambda: shard_length(client, EMOTIONS) >= 30, PATIENCE_S, "the first events")
        workers["w1"].process.send_signal(signal.SIGKILL)  # mid-run: it dies holding whatever batch it had
        workers["w1"].process.wait(10)
        assert capture.process.wait(120) == 0, "capture failed"
        crop_ids = {decode(f, messages_pb2.FaceCrop).header.id for _, _, f in shard_entries(client, FACES)}
        assert len(crop_ids) == 204  # every face of the video, none trimmed

        def all_scored() -> bool:
            events = [decode(f, messages_pb2.EmotionEvent) for _, _, f in shard_entries(client, EMOTIONS)]
            return {e.crop_id for e in events} >= crop_ids

        wait_until(all_scored, PATIENCE_S, "an event for every crop")
        wait_until(lambda: group_totals(client, FACES, "inference")["pending"] == 0, PATIENCE_S, "nothing left pending")
    finally:
        stop(capture, *workers.values())
    entries = shard_entries(client, EMOTIONS)
    events = [decode(f, messages_pb2.EmotionEvent) for _, _, f in entries]
    by_id = {e.header.id: e for e in events}
    assert len(by_id) == 204  # exactly one event per crop once duplicates (same id) are removed
    assert {e.crop_id for e in by_id.values()} == crop_ids
    assert sum(client.xlen(dead_letter_stream(name)) for name in shard_streams(FACES, stream_shards())) == 0
    assert {name for name, _, _ in entries} == {session_stream(EMOTIONS, "s1", stream_shards())}  # its shard only
    assert all(e.header.user_id == "u1" and e.header.session_id == "s1" for e in events)
