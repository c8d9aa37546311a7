"""The recommender as a process: gRPC API, emotions to mood changes and lists, feedback, retrain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import redis

from emotune.v1 import messages_pb2, recommender_pb2, recommender_pb2_grpc
from emotune_common.codec import decode, encode
from emotune_common.ids import make_header
from emotune_common.labels import EMOTIONS
from emotune_common.settings import StreamSettings
from emotune_common.shards import session_stream
from emotune_common.streams import EMOTIONS as EMOTIONS_STREAM
from emotune_common.streams import FEEDBACK, RECOMMENDATIONS

from ..conftest import ROOT, free_port
from ..processes import PATIENCE_S

#: The recommender process's shards (its default): a session's entries are on one of them.
SHARDS = StreamSettings().shards


def wait_until(predicate, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def service(tmp_path_factory, recommender_models):
    from ..conftest import RedisServer

    workdir = tmp_path_factory.mktemp("recommender")
    store = RedisServer(free_port(), workdir, appendonly=False)
    store.start()
    port = free_port()
    env = {**os.environ, "REDIS_URL": store.url, "EMOTUNE_RECOMMENDER_PORT": str(port),
           "EMOTUNE_RECOMMENDER_MODEL_DIR": str(recommender_models), "EMOTUNE_STREAM_BLOCK_MS": "50",
           "EMOTUNE_MOOD_HOLD": "2", "EMOTUNE_LOG_LEVEL": "WARNING"}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "emotune_recommender", "serve"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=120)
    yield recommender_pb2_grpc.RecommenderStub(channel), redis.Redis.from_url(store.url)
    channel.close()
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    store.stop()


def test_recommend_similar_and_feedback_over_grpc(service):
    stub, _ = service
    result = stub.Recommend(recommender_pb2.RecommendRequest(user_id="lastfm:2", mood=messages_pb2.SAD, k=5,
                                                             policy=messages_pb2.UPLIFT), timeout=30)  # fmt: skip
    assert len(result.items) == 5 and result.model_version == "1"
    similar = stub.Similar(recommender_pb2.SimilarRequest(artist_id=result.items[0].artist_id, k=3), timeout=30)
    assert len(similar.items) == 3
    reply = stub.Feedback(messages_pb2.Feedback(header=make_header("s", "lastfm:2"), action=messages_pb2.SKIP,
                                                track_id=result.items[0].track_id), timeout=30)  # fmt: skip
    assert reply.applied
    again = stub.Recommend(recommender_pb2.RecommendRequest(user_id="lastfm:2", mood=messages_pb2.SAD, k=5,
                                                            policy=messages_pb2.UPLIFT), timeout=30)  # fmt: skip
    assert result.items[0].track_id not in {i.track_id for i in again.items}
    found = stub.SearchCatalogue(recommender_pb2.CatalogueQuery(text="radiohead", limit=3), timeout=30)
    assert [a.name for a in found.artists][:1] == ["Radiohead"]
    pick = recommender_pb2.TasteRequest(user_id="grpc-newcomer", artist_ids=[found.artists[0].artist_id])
    picked = stub.SetTaste(pick, timeout=30)
    assert list(picked.artist_ids) == [found.artists[0].artist_id]
    for request, code in [
        (lambda: stub.Recommend(recommender_pb2.RecommendRequest(user_id="u", mood=0), timeout=30),
         grpc.StatusCode.INVALID_ARGUMENT),
        (lambda: stub.Similar(recommender_pb2.SimilarRequest(artist_id="-1"), timeout=30), grpc.StatusCode.NOT_FOUND),
        (lambda: stub.Feedback(messages_pb2.Feedback(header=make_header("s", "u"), action=messages_pb2.LIKE,
                                                     track_id="0" * 22), timeout=30), grpc.StatusCode.NOT_FOUND),
        (lambda: stub.SetTaste(recommender_pb2.TasteRequest(user_id="u", genres=["no such genre"]), timeout=30),
         grpc.StatusCode.NOT_FOUND),
        (lambda: stub.SearchCatalogue(recommender_pb2.CatalogueQuery(text=""), timeout=30),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]:  # fmt: skip
        with pytest.raises(grpc.RpcError) as error:
            request()
        assert error.value.code() == code


def emotion(session: str, label: str, at_us: int) -> messages_pb2.EmotionEvent:
    p = np.full(7, 0.02)
    p[EMOTIONS.index(label)] = 0.88
    return messages_pb2.EmotionEvent(header=make_header(session, "lastfm:5", at_us), probabilities=p.tolist(),
                                     label=EMOTIONS.index(label) + 1, confidence=0.88)  # fmt: skip


def test_a_lasting_mood_change_brings_a_mood_change_event_and_a_fresh_list(service):
    _, client = service
    start = 1_000_000_000_000
    for i in range(30):
        client.xadd(
            session_stream(EMOTIONS_STREAM, "s-mood", SHARDS),
            encode(emotion("s-mood", "happy" if i < 15 else "sad", start + i * 200_000)),
        )

    def published():
        return [decode(f) for _, f in client.xrange(session_stream(RECOMMENDATIONS, "s-mood", SHARDS))
                if decode(f).header.session_id == "s-mood"]  # fmt: skip

    wait_until(
        lambda: sum(isinstance(m, messages_pb2.MoodChange) for m in published()) >= 2, PATIENCE_S, "two mood changes"
    )
    changes = [m for m in published() if isinstance(m, messages_pb2.MoodChange)]
    assert [(c.previous_mood, c.mood) for c in changes] == [(0, messages_pb2.HAPPY), (messages_pb2.HAPPY,
                                                                                        messages_pb2.SAD)]  # fmt: skip
    lists = [m for m in published() if isinstance(m, messages_pb2.RecommendationSet)]
    assert [s.mood for s in lists] == [messages_pb2.HAPPY, messages_pb2.SAD] and all(len(s.items) == 10 for s in lists)


def test_feedback_on_the_stream_brings_a_list_without_the_skipped_track(service):
    stub, client = service
    first = stub.Recommend(recommender_pb2.RecommendRequest(user_id="lastfm:7", session_id="s-fb",
                                                            mood=messages_pb2.HAPPY), timeout=30)  # fmt: skip
    skipped = first.items[0].track_id
    skip = messages_pb2.Feedback(header=make_header("s-fb", "lastfm:7"), action=messages_pb2.SKIP, track_id=skipped)
    client.xadd(session_stream(FEEDBACK, "s-fb", SHARDS), encode(skip))  # the session's shard, as the gateway's

    def fresh():
        stream = session_stream(RECOMMENDATIONS, "s-fb", SHARDS)  # the set comes on the feedback's shard
        return [decode(f) for _, f in client.xrange(stream) if decode(f).header.session_id == "s-fb"]

    wait_until(lambda: fresh(), PATIENCE_S, "a fresh list after the skip")
    assert skipped not in {i.track_id for i in fresh()[-1].items}
