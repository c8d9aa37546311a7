"""Capture refuses a stream that leads where EMOTUNE_STREAM_ALLOW does not allow, right before it opens it and
for every connection FFmpeg makes for it: the real OpenCV and FFmpeg, real HTTP servers on loopback (one on
127.0.0.1 that the list names, one on 127.0.0.2 that it does not and that must see nothing), and the session
watcher over a real Redis writing the refusal into the session's state."""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Iterator
from functools import partial

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from emotune_capture import proxy
from emotune_capture.__main__ import tracker
from emotune_capture.sessions import SessionWatcher
from emotune_capture.settings import CaptureSettings
from emotune_capture.sources import open_frames
from emotune_common.egress import StreamAllow, StreamRefused
from emotune_common.keys import CAPTURE_SESSIONS, session_key
from emotune_common.sharded import ShardedProducer
from emotune_common.sources import parse_source
from emotune_common.streams import FACES

from ..common.helpers import wait_for
from ..fakes.streams import StreamServer


@pytest.fixture
def guarded() -> Iterator[proxy.StreamGuard]:
    """The process's guard with a list that names 127.0.0.1 only; the environment's proxy settings back after."""
    yield proxy.install(StreamAllow.parse("127.0.0.1/32"))
    proxy.uninstall()


@pytest.fixture
def camera() -> Iterator[StreamServer]:
    with StreamServer("127.0.0.1") as server:
        yield server


@pytest.fixture
def trap() -> Iterator[StreamServer]:
    """Stands for a refused address (127.0.0.2: loopback, not named): nothing may connect to it."""
    with StreamServer("127.0.0.2") as server:
        yield server


def test_an_allowed_stream_is_read_through_the_proxy(guarded, camera):
    frames = open_frames(parse_source(f"{camera.base}/stream.mjpg"))
    assert next(frames).shape == (96, 128, 3)
    frames.close()
    agents = [agent for path, agent in camera.requests if path == "/stream.mjpg"]
    assert agents[0] == "emotune" and agents[1].startswith("Lavf")  # the check, then FFmpeg (through the proxy)


NAMES_THE_CAMERA = "127.0.0.1/32"
ROUTES = [  # (route, allow-list, URL, what the refusal says); the refused server must see no connection
    ("IP literal", NAMES_THE_CAMERA, "{trap}/stream.mjpg", "127.0.0.2 is a loopback address"),
    ("DNS name", "public", "http://localhost:{camera_port}/stream.mjpg", "localhost resolves to 127.0.0.1"),
    ("decimal IPv4", NAMES_THE_CAMERA, "http://2130706434:{trap_port}/stream.mjpg", "2130706434 resolves to 127.0.0.2"),
    ("octal IPv4", NAMES_THE_CAMERA, "http://0177.0.0.2:{trap_port}/stream.mjpg", "0177.0.0.2 resolves to 127.0.0.2"),
    ("IPv6", NAMES_THE_CAMERA, "http://[::1]:{trap_port}/stream.mjpg", "::1 is a loopback address"),
    ("IPv4-mapped IPv6", NAMES_THE_CAMERA, "http://[::ffff:127.0.0.2]:{trap_port}/stream.mjpg", "carries 127.0.0.2"),
    ("RTSP", NAMES_THE_CAMERA, "rtsp://127.0.0.2:{trap_port}/live", "127.0.0.2 is a loopback address"),
    ("redirect", NAMES_THE_CAMERA, "{camera_to_trap}", "redirects to {trap}/stream.mjpg: 127.0.0.2 is a loopback"),
]


@pytest.mark.parametrize(("route", "allow", "url", "why"), ROUTES, ids=[r[0] for r in ROUTES])
def test_capture_refuses_each_route_before_it_connects(guarded, camera, trap, route, allow, url, why):
    guarded.allow = StreamAllow.parse(allow)
    values = {"trap": trap.base, "trap_port": trap.server_address[1], "camera_port": camera.server_address[1],
              "camera_to_trap": camera.redirect(f"{trap.base}/stream.mjpg")}  # fmt: skip
    with capture_logs() as logs, pytest.raises(StreamRefused) as refused:
        next(open_frames(parse_source(url.format(**values))))
    assert why.format(**values) in str(refused.value)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["stream_refused"]
    assert trap.connections == 0
    assert camera.connections == (1 if route == "redirect" else 0)  # the check asking where it redirects


def test_a_redirect_hidden_from_the_check_is_refused_by_the_proxy(guarded, camera, trap):
    """The server answers the check with a 200 and FFmpeg with a redirect to the trap: FFmpeg follows it, through
    the proxy, which refuses it."""
    url = camera.redirect(f"{trap.base}/stream.mjpg", kind="lying")
    with capture_logs() as logs, pytest.raises(StreamRefused, match="a connection FFmpeg made for it"):
        next(open_frames(parse_source(url)))
    [refusal] = [e for e in logs if e["event"] == "stream_refused"]
    assert refusal["via"] == "proxy" and refusal["url"] == f"{trap.base}/stream.mjpg"
    assert "127.0.0.2 is a loopback address" in refusal["reason"]
    assert [agent[:4] for _, agent in camera.requests] == ["emot", "Lavf"]  # the check saw no redirect
    assert trap.connections == 0


def test_an_rtsp_stream_is_opened_at_the_address_just_checked(guarded):
    """FFmpeg has no proxy for plain RTSP: it gets the checked address itself, so no second lookup can differ."""
    guarded.allow = StreamAllow.parse("127.0.0.1/32 ::1/128")
    assert guarded.open_url("rtsp://cam:pw@localhost:8554/live") == "rtsp://cam:pw@127.0.0.1:8554/live"
    assert guarded.open_url("rtsp://[::1]/live") == "rtsp://[::1]/live"
    assert guarded.open_url("http://localhost:8554/live") == "http://localhost:8554/live"  # the proxy checks it


def proxied(guard: proxy.StreamGuard, request: bytes) -> bytes:
    """What the guard's proxy answers to ``request``, as FFmpeg would send it."""
    host, port = guard._server.server_address[:2]
    with socket.create_connection((host, port), 10) as s:
        s.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer and (data := s.recv(4096)):
            answer += data
        if request.startswith(b"CONNECT") and answer.startswith(b"HTTP/1.1 200"):  # a tunnel: speak through it
            s.sendall(b"GET /stream.mjpg HTTP/1.0\r\n\r\n")
            answer += s.recv(4096)
        return answer


def test_the_proxy_checks_every_request_and_tunnel(guarded, camera, trap):
    """FFmpeg tunnels TLS (https, rtsps) with CONNECT and sends plain HTTP as absolute URLs: both are checked."""
    allowed, refused = camera.server_address[1], trap.server_address[1]
    assert proxied(guarded, f"CONNECT 127.0.0.2:{refused} HTTP/1.1\r\n\r\n".encode()).startswith(b"HTTP/1.1 403")
    assert proxied(guarded, f"GET http://127.0.0.2:{refused}/x HTTP/1.1\r\n\r\n".encode()).startswith(b"HTTP/1.1 403")
    assert proxied(guarded, f"GET http://[::1]:{refused}/x HTTP/1.1\r\n\r\n".encode()).startswith(b"HTTP/1.1 403")
    tunnel = proxied(guarded, f"CONNECT 127.0.0.1:{allowed} HTTP/1.1\r\n\r\n".encode())
    assert tunnel.startswith(b"HTTP/1.1 200 Connection established") and b"multipart/x-mixed-replace" in tunnel
    plain = proxied(guarded, f"GET http://127.0.0.1:{allowed}/stream.mjpg HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n"
                    .encode())  # fmt: skip
    assert plain.startswith(b"HTTP/1.0 200") and b"multipart/x-mixed-replace" in plain
    assert trap.connections == 0


def test_uninstalling_gives_the_environment_its_proxy_settings_back(monkeypatch):
    monkeypatch.setenv("no_proxy", "example.com")
    monkeypatch.delenv("http_proxy", raising=False)
    guard = proxy.install(StreamAllow())
    host, port = guard._server.server_address[:2]
    assert os.environ["http_proxy"] == f"http://{host}:{port}" and "no_proxy" not in os.environ
    proxy.uninstall()
    assert "http_proxy" not in os.environ and os.environ["no_proxy"] == "example.com"


async def test_a_session_on_a_refused_stream_fails_and_says_why(guarded, camera, trap, redis):
    """The gateway let the session in (the list differed then, or the name resolved elsewhere): capture checks again
    right before it connects, and writes the refusal into the session's state."""
    url = camera.redirect(f"{trap.base}/stream.mjpg")
    record = session_key("alice", "s1")
    await redis.hset(record, mapping={"id": "s1", "user_id": "alice", "source": url, "state": "active"})
    await redis.hset(CAPTURE_SESSIONS, "s1", json.dumps({"user_id": "alice", "source": url}))
    settings = CaptureSettings(capture_poll_s=0.2, capture_lease_ms=1000)
    watcher = SessionWatcher(
        redis, settings, ShardedProducer(redis, FACES, settings.stream.shards, 1000), partial(tracker, settings), "w1"
    )
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(watcher.run(stop))
        try:
            await wait_for(lambda: _state(redis, record, "failed"), 60, "the session to fail")
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
    detail = (await redis.hget(record, "capture_detail")).decode()
    assert detail == f"{url}: redirects to {trap.base}/stream.mjpg: 127.0.0.2 is a loopback address, not named in " \
                     "EMOTUNE_STREAM_ALLOW"  # fmt: skip
    assert {"stream_refused", "session_failed"} <= {e["event"] for e in logs}
    assert trap.connections == 0


async def _state(redis: aioredis.Redis, record: str, state: str) -> bool:
    return await redis.hget(record, "capture_state") == state.encode()
