"""Stream sources against real servers on loopback: ffmpeg's HTTP server and GStreamer's RTSP server, each serving
the sample video looped (live_servers.py). Through capture's own code (the session watcher over a private Redis,
and the capture process itself), each test shows that the stream is read and its faces published, that a server
going away mid-stream is a clear capture state, and that capture opens the stream again, through the egress guard
again, once the server is back, or gives up and says why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import urllib.request
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest
import redis as sync_redis
import redis.asyncio as aioredis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from emotune.v1 import messages_pb2
from emotune_capture import proxy
from emotune_capture.__main__ import tracker
from emotune_capture.sessions import SessionWatcher
from emotune_capture.settings import CaptureSettings
from emotune_common.codec import decode
from emotune_common.egress import StreamAllow
from emotune_common.ids import now_us
from emotune_common.keys import CAPTURE_SESSIONS, capture_lease, session_key
from emotune_common.sharded import ShardedProducer
from emotune_common.shards import session_stream
from emotune_common.streams import FACES

from ..common.helpers import wait_for
from ..conftest import DATA_DIR
from ..processes import PATIENCE_S, Service, free_port, python_module, spawn, stop, wait_http, wait_until
from .live_servers import HttpStreamServer, RtspStreamServer

pytestmark = pytest.mark.slow

VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"
SERVERS = {"http": HttpStreamServer, "rtsp": RtspStreamServer}
LOOPBACK = "127.0.0.1/32"
#: The shard of emotune:faces that session s1's crops go to.
S1_FACES = session_stream(FACES, "s1", CaptureSettings().stream.shards)
STREAM_EVENTS = {"stream_lost", "stream_reconnected", "stream_refused"}
S = TypeVar("S", HttpStreamServer, RtspStreamServer)


@pytest.fixture
def guarded() -> Iterator[proxy.StreamGuard]:
    """The process's egress guard with a list that names loopback, where the servers are."""
    yield proxy.install(StreamAllow.parse(LOOPBACK))
    proxy.uninstall()


def serving(server: S) -> Iterator[S]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HttpStreamServer | RtspStreamServer]:
    yield from serving(SERVERS[request.param](VIDEO, tmp_path / f"{request.param}-server.log"))


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[HttpStreamServer]:
    yield from serving(HttpStreamServer(VIDEO, tmp_path / "http-server.log"))


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspStreamServer]:
    yield from serving(RtspStreamServer(VIDEO, tmp_path / "rtsp-server.log"))


@contextlib.asynccontextmanager
async def watching(client: aioredis.Redis, url: str, reconnect_s: float) -> AsyncIterator[None]:
    """Session s1 of alice on ``url``, run by a session watcher (short polls; a failed source not retried)."""
    await client.hset(session_key("alice", "s1"), mapping={"id": "s1", "user_id": "alice", "source": url,
                                                           "state": "active"})  # fmt: skip
    await client.hset(CAPTURE_SESSIONS, "s1", json.dumps({"user_id": "alice", "source": url}))
    settings = CaptureSettings(capture_poll_s=0.2, capture_lease_ms=2000, capture_retry_s=3600,
                               capture_reconnect_s=reconnect_s)  # fmt: skip
    watcher = SessionWatcher(
        client,
        settings,
        ShardedProducer(client, FACES, settings.stream.shards, 100_000),
        partial(tracker, settings),
        "w1",
    )
    halt = asyncio.Event()
    task = asyncio.create_task(watcher.run(halt))
    try:
        yield
    finally:
        halt.set()
        await asyncio.wait_for(task, PATIENCE_S)


async def crops(client: aioredis.Redis, since_us: int = 0) -> list[messages_pb2.FaceCrop]:
    """Session s1's crops of frames captured after ``since_us``."""
    found = (decode(f, messages_pb2.FaceCrop) for _, f in await client.xrange(S1_FACES))
    return [c for c in found if c.header.session_id == "s1" and c.header.captured_at_us > since_us]


async def record(client: aioredis.Redis) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (await client.hgetall(session_key("alice", "s1"))).items()}


async def in_state(client: aioredis.Redis, state: str, detail: str = "") -> bool:
    now = await record(client)
    return now.get("capture_state") == state and detail in now.get("capture_detail", "")


def counted(metric: str, source: str) -> float:
    return REGISTRY.get_sample_value(metric, {"source": source}) or 0.0


async def test_a_stream_is_read_survives_its_server_going_away_and_flows_again_when_it_is_back(guarded, server, redis):
    source = f"stream:{server.url}"
    lost, reconnects = (counted(m, source) for m in ("emotune_capture_streams_lost_total",
                                                     "emotune_capture_stream_reconnects_total"))  # fmt: skip
    with capture_logs() as logs:
        async with watching(redis, server.url, reconnect_s=PATIENCE_S):
            await wait_for(lambda: _has(redis, 3), PATIENCE_S, "faces of the stream")
            assert {(c.header.user_id, c.source, c.width) for c in await crops(redis)} == {("alice", source, 48)}
            assert (await record(redis))["capture_state"] == "running"

            server.stop()  # mid-stream
            cannot_open = f"stream lost: {server.url}: OpenCV cannot open it; reconnecting (failed attempts so far: "
            await wait_for(lambda: in_state(redis, "reconnecting", cannot_open), PATIENCE_S,
                           "the session to say it is reconnecting, and why")  # fmt: skip
            detail = (await record(redis))["capture_detail"]
            assert detail.startswith(cannot_open) and int(re.search(r"so far: (\d+);", detail)[1]) >= 1
            assert f"gives up {PATIENCE_S:g} s after it was lost" in detail
            assert await redis.get(capture_lease("s1")) == b"w1"  # still this instance's session

            back_at = now_us()
            server.start()
            await wait_for(lambda: _has(redis, 3, back_at), PATIENCE_S, "faces again once the server is back")
            await wait_for(lambda: in_state(redis, "running", "frames processed"), PATIENCE_S, "running again")
    events = [e for e in logs if e["event"] in ("stream_lost", "stream_reconnected")]
    assert [(e["event"], e["source"], e["session"]) for e in events] == [
        ("stream_lost", source, "s1"), ("stream_reconnected", source, "s1")]  # fmt: skip
    assert events[0]["reason"] == f"{server.url} stopped giving frames" and events[1]["attempts"] >= 1
    assert counted("emotune_capture_streams_lost_total", source) == lost + 1
    assert counted("emotune_capture_stream_reconnects_total", source) == reconnects + 1


async def test_a_stream_not_back_in_time_fails_and_says_why(guarded, http_server, redis):
    with capture_logs() as logs:
        async with watching(redis, http_server.url, reconnect_s=2):
            await wait_for(lambda: _has(redis, 1), PATIENCE_S, "faces of the stream")
            http_server.stop()  # for good
            await wait_for(lambda: in_state(redis, "failed"), PATIENCE_S, "the session to fail")
    detail = (await record(redis))["capture_detail"]
    assert detail.startswith(f"stream lost: {http_server.url}: OpenCV cannot open it; not back after ")
    assert detail.endswith(" attempts in 2 s") and " after 0 attempts" not in detail
    assert await redis.get(capture_lease("s1")) is None  # handed back, for another instance to try
    assert "session_failed" in {e["event"] for e in logs}


async def test_every_reconnect_is_checked_by_the_egress_guard_again(guarded, http_server, redis):
    """The list changes while the stream plays (or the name would resolve elsewhere now): the server goes away and
    comes back at once, and the attempt to open it again is refused before it connects."""
    with capture_logs() as logs:
        async with watching(redis, http_server.url, reconnect_s=PATIENCE_S):
            await wait_for(lambda: _has(redis, 1), PATIENCE_S, "faces of the stream")
            guarded.allow = StreamAllow.parse("public")
            http_server.stop()
            clients = http_server.clients
            http_server.start()
            await wait_for(lambda: in_state(redis, "failed"), PATIENCE_S, "the session to fail")
    assert (await record(redis))["capture_detail"] == (
        f"{http_server.url}: 127.0.0.1 is a loopback address, not named in EMOTUNE_STREAM_ALLOW"
    )
    assert http_server.clients == clients  # nothing reached the server after the refusal
    assert [e["event"] for e in logs if e["event"] in STREAM_EVENTS] == ["stream_lost", "stream_refused"]


def test_the_capture_process_reconnects_a_stream_of_its_settings(rtsp_server, redis_server, tmp_path):
    """``python -m emotune_capture serve`` with an RTSP source in EMOTUNE_CAPTURE_SOURCES: its settings
    (EMOTUNE_STREAM_ALLOW, EMOTUNE_CAPTURE_RECONNECT_S) reach the runner, and /metrics counts the loss and
    the reconnect."""
    camera = rtsp_server
    ops = free_port()
    capture = spawn("capture", python_module("emotune_capture", "serve"), {
        "REDIS_URL": redis_server.url, "EMOTUNE_METRICS_PORT": str(ops), "EMOTUNE_LOG_LEVEL": "INFO",
        "EMOTUNE_CAPTURE_SOURCES": f"{camera.url}?session=s1&user=alice", "EMOTUNE_CAPTURE_UPLOADS": "false",
        "EMOTUNE_CAPTURE_SESSIONS": "false", "EMOTUNE_STREAM_ALLOW": LOOPBACK,
        "EMOTUNE_CAPTURE_RECONNECT_S": str(PATIENCE_S),
    }, log=tmp_path / "capture.log")  # fmt: skip
    client = sync_redis.Redis.from_url(redis_server.url)
    try:
        wait_http(f"http://127.0.0.1:{ops}/readyz", PATIENCE_S, capture)

        def faces(since_us: int = 0) -> list[messages_pb2.FaceCrop]:
            found = (decode(f, messages_pb2.FaceCrop) for _, f in client.xrange(S1_FACES))
            return [c for c in found if c.header.captured_at_us > since_us]

        wait_until(lambda: len(faces()) >= 3, PATIENCE_S, "faces of the stream", detail=capture.tail)
        assert {(c.header.session_id, c.header.user_id) for c in faces()} == {("s1", "alice")}

        camera.stop()
        wait_until(lambda: _scraped(capture, ops, "streams_lost") == 1, PATIENCE_S, "the loss counted",
                   detail=capture.tail)  # fmt: skip
        back_at = now_us()
        camera.start()
        wait_until(lambda: len(faces(back_at)) >= 3, PATIENCE_S, "faces again", detail=capture.tail)
        assert _scraped(capture, ops, "stream_reconnects") == 1
        capture.check()  # the stream's loss did not end the service
        log = capture.tail(100_000)
        assert '"event": "stream_lost"' in log and '"event": "stream_reconnected"' in log
    finally:
        client.close()
        stop(capture)


async def _has(client: aioredis.Redis, n: int, since_us: int = 0) -> bool:
    return len(await crops(client, since_us)) >= n


def _scraped(capture: Service, ops: int, counter: str) -> float:
    """The value of ``emotune_capture_<counter>_total`` on the capture process's /metrics."""
    capture.check()
    with urllib.request.urlopen(f"http://127.0.0.1:{ops}/metrics", timeout=10) as reply:
        lines = reply.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(f"emotune_capture_{counter}_total{{"))
