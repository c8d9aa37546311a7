"""Opening a source is a privilege: through the app's real client over a real Redis, an ordinary user may only
upload; an operator grants the other kinds (the admin command, run as a process); a stream is refused (403,
saying which address and why) when it leads where EMOTUNE_STREAM_ALLOW does not allow, by every route around
the check: an IP literal, a DNS name, a redirect (a real HTTP server on loopback), IPv6, decimal, octal and hex
IPv4. Loopback servers stand for the refused addresses and prove that nothing reached them."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys

import pytest
import redis
from fastapi.testclient import TestClient

from emotune_common.keys import CAPTURE_SESSIONS
from emotune_gateway.app import create_app

from ..conftest import ROOT
from ..fakes.streams import StreamServer
from .conftest import User, settings_for

OTHER_KINDS = ["webcam:0", "video:short_hamilton_clip.mp4", "rtsp://8.8.8.8/live", "http://8.8.8.8/x"]


def start(client: TestClient, user: User, source: str):
    return client.post(f"/v1/users/{user.id}/sessions", json={"source": source}, headers=user.headers)


def registry(stack) -> dict[bytes, bytes]:
    return redis.Redis.from_url(stack.redis_url).hgetall(CAPTURE_SESSIONS)


def admin(stack, *args: str) -> subprocess.CompletedProcess:
    """The operator's command line, as a process of its own."""
    return subprocess.run([sys.executable, "-m", "emotune_gateway", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "REDIS_URL": stack.redis_url}, timeout=60)  # fmt: skip


@pytest.mark.parametrize("source", OTHER_KINDS)
def test_an_ordinary_user_may_only_upload(client, users, stack, source):
    alice = users("alice")
    assert client.get("/v1/me", headers=alice.headers).json()["sources"] == ["upload"]
    r = start(client, alice, source)
    kind = "stream" if "://" in source else source.partition(":")[0]
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith(f"{kind} sources are not granted to {alice.id} (granted: upload)")
    assert not [v for v in registry(stack).values() if alice.id.encode() in v]
    assert start(client, alice, "upload").status_code == 201


def test_an_operator_grants_sources_and_takes_them_away(client, stack):
    created = admin(stack, "users", "create", "bob-grants", "--sources", "webcam video")
    assert created.returncode == 0, created.stderr
    bob = User("bob-grants", created.stdout.strip())
    assert client.get("/v1/me", headers=bob.headers).json()["sources"] == ["upload", "video", "webcam"]
    webcam = start(client, bob, "webcam:0")
    assert webcam.status_code == 201, webcam.text
    assert webcam.json()["id"].encode() in registry(stack)
    assert start(client, bob, "rtsp://8.8.8.8/live").status_code == 403  # stream: not granted

    changed = admin(stack, "users", "sources", "bob-grants", "video", "stream")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.splitlines() == [
        "bob-grants: stream upload video",
        f"stopped session {webcam.json()['id']}: its source is no longer granted",
    ]
    assert webcam.json()["id"].encode() not in registry(stack)  # the camera is off at once
    stopped = client.get(f"/v1/users/{bob.id}/sessions/{webcam.json()['id']}", headers=bob.headers).json()
    assert stopped["state"] == "stopped"
    assert start(client, bob, "webcam:0").status_code == 403
    assert start(client, bob, "rtsp://8.8.8.8/live").status_code == 201
    assert admin(stack, "users", "sources", "bob-grants").stdout == "bob-grants: stream upload video\n"

    rtsp = [s["id"] for s in client.get(f"/v1/users/{bob.id}/sessions", headers=bob.headers).json()
            if s["source"].startswith("rtsp:")]  # fmt: skip
    assert admin(stack, "users", "sources", "bob-grants", "upload").stdout.splitlines() == [
        "bob-grants: upload", f"stopped session {rtsp[0]}: its source is no longer granted"]  # fmt: skip
    assert start(client, bob, "video:short_hamilton_clip.mp4").status_code == 403
    wrong = admin(stack, "users", "sources", "bob-grants", "microphone")
    assert wrong.returncode == 2 and "unknown source kind microphone" in wrong.stderr
    assert admin(stack, "users", "sources", "nobody").returncode == 2


def test_the_local_user_of_make_run_may_open_every_source(client, stack):
    loaded = importlib.util.spec_from_file_location("run_local", ROOT / "scripts" / "run_local.py")
    run_local = importlib.util.module_from_spec(loaded)
    sys.modules["run_local"] = run_local  # dataclasses look their module up there
    loaded.loader.exec_module(run_local)
    local = User("local", asyncio.run(run_local.local_key(stack.redis_url, "")))
    assert client.get("/v1/me", headers=local.headers).json()["sources"] == [
        "images", "stream", "upload", "video", "webcam"]  # fmt: skip
    assert start(client, local, "webcam:0").status_code == 201
    assert asyncio.run(run_local.local_key(stack.redis_url, local.key)) == local.key  # the same key next time


def test_a_kind_turned_off_on_the_gateway_is_refused_even_when_granted(stack, users):
    alice = users("alice", sources=("webcam",))
    with TestClient(create_app(settings_for(stack, session_sources="upload video"))) as client:
        r = start(client, alice, "webcam:0")
    assert r.status_code == 403
    assert r.json()["detail"] == "webcam sources are turned off on this gateway (EMOTUNE_SESSION_SOURCES: upload video)"


@pytest.fixture
def listener():
    """A server on 127.0.0.1 that the refused URLs name: it must see no connection at all."""
    with StreamServer("127.0.0.1") as server:
        yield server


ROUTES = [  # (route, URL with {port}: the listener's, what the refusal says)
    ("IP literal", "http://127.0.0.1:{port}/", "127.0.0.1 is a loopback address"),
    ("RTSP", "rtsp://127.0.0.1:{port}/live", "127.0.0.1 is a loopback address"),
    ("private network", "rtsp://10.1.2.3/live", "10.1.2.3 is a private address"),
    ("metadata", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is the cloud metadata address"),
    ("link-local", "rtsp://169.254.10.10/live", "169.254.10.10 is a link-local address"),
    ("unspecified", "http://0.0.0.0:{port}/", "0.0.0.0 is the unspecified address"),
    ("DNS name", "http://localhost:{port}/", "localhost resolves to 127.0.0.1; 127.0.0.1 is a loopback address"),
    ("DNS name, upper case", "http://LOCALHOST:{port}/", "localhost resolves to 127.0.0.1"),
    ("decimal IPv4", "http://2130706433:{port}/", "2130706433 resolves to 127.0.0.1; 127.0.0.1 is a loopback"),
    ("octal IPv4", "http://0177.0.0.1:{port}/", "0177.0.0.1 resolves to 127.0.0.1; 127.0.0.1 is a loopback"),
    ("hex IPv4", "http://0x7f000001:{port}/", "0x7f000001 resolves to 127.0.0.1; 127.0.0.1 is a loopback"),
    ("short IPv4", "http://127.1:{port}/", "127.1 resolves to 127.0.0.1"),
    ("IPv6 loopback", "http://[::1]:{port}/", "::1 is a loopback address"),
    ("IPv4-mapped IPv6", "http://[::ffff:127.0.0.1]:{port}/", "carries 127.0.0.1, a loopback address"),
    ("IPv6 metadata", "http://[fd00:ec2::254]/", "fd00:ec2::254 is the cloud metadata address"),
    ("IPv6 private", "rtsp://[fd12:3456::1]/live", "fd12:3456::1 is a private address"),
    ("6to4 of loopback", "http://[2002:7f00:1::]/", "carries 127.0.0.1, a loopback address"),
    ("user and password", "rtsp://admin:secret@127.0.0.1:{port}/live", "127.0.0.1 is a loopback address"),
]


@pytest.mark.parametrize(("route", "url", "why"), ROUTES, ids=[r[0] for r in ROUTES])
def test_a_stream_to_an_internal_address_is_refused_by_every_route(client, users, stack, listener, route, url, why):
    alice = users("alice", sources=("stream",))
    url = url.format(port=listener.server_address[1])
    r = start(client, alice, url)
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert why in detail and detail.endswith("not named in EMOTUNE_STREAM_ALLOW"), detail
    assert "secret" not in detail  # the URL is shown without its password
    assert listener.connections == 0, "the check connected to the refused address"
    assert not [v for v in registry(stack).values() if alice.id.encode() in v]


def test_the_allow_list_names_what_may_be_reached(stack, users):
    alice = users("alice", sources=("stream",))
    allowing = settings_for(stack, stream_allow="public 10.0.0.0/8 cam.internal fd12:3456::/32")
    with TestClient(create_app(allowing)) as client:
        assert start(client, alice, "rtsp://10.1.2.3/live").status_code == 201
        assert start(client, alice, "rtsp://[fd12:3456::1]/live").status_code == 201
        assert start(client, alice, "rtsp://8.8.8.8/live").status_code == 201  # public
        refused = start(client, alice, "rtsp://192.168.1.5/live")
        assert refused.status_code == 403 and "192.168.1.5 is a private address" in refused.json()["detail"]
    with TestClient(create_app(settings_for(stack, stream_allow="10.0.0.0/8"))) as client:  # no public
        refused = start(client, alice, "rtsp://8.8.8.8/live")
        assert refused.status_code == 403
        assert "8.8.8.8 is not named in EMOTUNE_STREAM_ALLOW (which allows no public address)" in refused.text


def test_a_redirect_to_a_refused_address_is_refused(stack, users):
    """The camera's server is on 127.0.0.1, which the list names; it redirects to 127.0.0.2 (loopback, not named),
    or to the metadata address. The gateway asks where the stream leads, each hop checked before it is asked."""
    alice = users("alice", sources=("stream",))
    with StreamServer("127.0.0.1") as camera, StreamServer("127.0.0.2") as trap:
        with TestClient(create_app(settings_for(stack, stream_allow="127.0.0.1/32"))) as client:
            plain = start(client, alice, f"{camera.base}/stream.mjpg")
            assert plain.status_code == 201, plain.text
            to_trap = camera.redirect(f"{trap.base}/stream.mjpg")
            r = start(client, alice, to_trap)
            assert r.status_code == 403, r.text
            assert r.json()["detail"] == (f"{to_trap}: redirects to {trap.base}/stream.mjpg: 127.0.0.2 is a loopback "
                                          "address, not named in EMOTUNE_STREAM_ALLOW")  # fmt: skip
            chain = camera.redirect(camera.redirect("http://169.254.169.254/latest/meta-data/"))
            r = start(client, alice, chain)
            assert r.status_code == 403 and "169.254.169.254 is the cloud metadata address" in r.json()["detail"]
            r = start(client, alice, camera.redirect("file:///etc/passwd"))
            assert r.status_code == 403 and "may redirect only to http:// or https://" in r.json()["detail"]
        assert trap.connections == 0, "something connected to the address the redirect named"
        assert [path for path, _ in camera.requests].count("/stream.mjpg") == 1  # asked once, by the check
    assert [v for v in registry(stack).values() if alice.id.encode() in v] == [
        f'{{"user_id": "{alice.id}", "source": "{camera.base}/stream.mjpg"}}'.encode()]  # fmt: skip
