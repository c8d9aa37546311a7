"""The REST API through the app's real client: auth, ownership, sessions, frames, recommendations,
feedback and deletion, over a private Redis and a real recommender."""

from __future__ import annotations

import io

import numpy as np
import pytest
import redis
from PIL import Image

from emotune.v1 import messages_pb2
from emotune_common.codec import decode
from emotune_common.keys import CAPTURE_SESSIONS
from emotune_common.settings import StreamSettings
from emotune_common.shards import session_stream
from emotune_common.streams import FEEDBACK, FRAMES

from ..conftest import DATA_DIR

SHARDS = StreamSettings().shards  # the gateway's, by default
PHOTO = (DATA_DIR / "images" / "obama.jpg").read_bytes()


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height)).save(out, "PNG")
    return out.getvalue()


def start(client, user, source: str = "upload") -> dict:
    r = client.post(f"/v1/users/{user.id}/sessions", json={"source": source}, headers=user.headers)
    assert r.status_code == 201, r.text
    return r.json()


def frames_of(stack, session_id: str) -> list[messages_pb2.Frame]:
    r = redis.Redis.from_url(stack.redis_url)
    found = [decode(f, messages_pb2.Frame) for _, f in r.xrange(session_stream(FRAMES, session_id, SHARDS))]
    return [f for f in found if f.header.session_id == session_id]


def test_health_needs_no_key_and_everything_else_does(client, users):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready"}
    assert "emotune_gateway_frames_total" in client.get("/metrics/").text
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers={"Authorization": "Bearer et_nope"}).status_code == 401
    assert client.get("/v1/me", headers={"X-API-Key": "garbage"}).status_code == 401
    alice = users("alice")
    assert client.get("/v1/me", headers=alice.headers).json()["user_id"] == alice.id
    assert client.get("/v1/me", headers={"X-API-Key": alice.key}).json()["user_id"] == alice.id


OWNED_ROUTES = [
    ("post", "/v1/users/{other}/sessions", {"json": {"source": "upload"}}),
    ("get", "/v1/users/{other}/sessions", {}),
    ("get", "/v1/users/{other}/sessions/{sid}", {}),
    ("delete", "/v1/users/{other}/sessions/{sid}", {}),
    ("post", "/v1/users/{other}/sessions/{sid}/frames", {"content": PHOTO, "headers": {"Content-Type": "image/jpeg"}}),
    ("get", "/v1/users/{other}/sessions/{sid}/mood", {}),
    ("get", "/v1/users/{other}/sessions/{sid}/mood/history", {}),
    ("get", "/v1/users/{other}/sessions/{sid}/recommendations", {}),
    ("post", "/v1/users/{other}/sessions/{sid}/feedback", {"json": {"action": "skip", "artist_id": "89"}}),
    ("put", "/v1/users/{other}/taste", {"json": {"genres": ["rock"]}}),
    ("get", "/v1/users/{other}/events", {}),
    ("delete", "/v1/users/{other}/data", {}),
    ("delete", "/v1/users/{other}", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), OWNED_ROUTES, ids=[f"{m} {p}" for m, p, _ in OWNED_ROUTES])
def test_a_user_reaches_only_their_own_data(client, users, method, path, kwargs):
    alice, mallory = users("alice"), users("mallory")
    session = start(client, alice)
    url = path.format(other=alice.id, sid=session["id"])
    headers = {**mallory.headers, **kwargs.pop("headers", {})}
    assert client.request(method, url, headers=headers, **kwargs).status_code == 403
    assert client.request(method, url, **kwargs).status_code == 401
    # and alice's data is still there
    assert client.get(f"/v1/users/{alice.id}/sessions/{session['id']}", headers=alice.headers).status_code == 200


def test_another_users_events_are_refused_on_websocket(client, users):
    alice, mallory = users("alice"), users("mallory")
    from starlette.websockets import WebSocketDisconnect

    for url, code in [
        (f"/v1/users/{alice.id}/events/ws?key={mallory.key}", 4403),
        (f"/v1/users/{alice.id}/events/ws", 4401),
        (f"/v1/users/{alice.id}/events/ws?key={alice.key}&last_event_id=nonsense", 4422),
    ]:
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(url) as ws:
            ws.receive_text()
        assert closed.value.code == code


def test_sessions_start_list_stop(client, users, stack):
    alice = users("alice", sources=("video",))
    upload = start(client, alice)
    assert upload["state"] == "active" and upload["source"] == "upload"
    video = start(client, alice, "video:short_hamilton_clip.mp4?fps=5")
    assert video["source"].startswith("video:/") and video["source"].endswith("short_hamilton_clip.mp4?fps=5")
    registry = redis.Redis.from_url(stack.redis_url).hgetall(CAPTURE_SESSIONS)
    assert video["id"].encode() in registry and upload["id"].encode() not in registry
    listed = client.get(f"/v1/users/{alice.id}/sessions", headers=alice.headers).json()
    assert [s["id"] for s in listed] == [video["id"], upload["id"]]
    stopped = client.delete(f"/v1/users/{alice.id}/sessions/{video['id']}", headers=alice.headers).json()
    assert stopped["state"] == "stopped" and stopped["stopped_at_us"] >= stopped["created_at_us"]
    assert video["id"].encode() not in redis.Redis.from_url(stack.redis_url).hgetall(CAPTURE_SESSIONS)
    r = client.get(f"/v1/users/{alice.id}/sessions/nosuchsession", headers=alice.headers)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ("video:../../etc/passwd", "inside the media folder"),
        ("video:/etc/hostname", "inside the media folder"),
        ("video:missing.mp4", "no such file"),
        ("ftp://host/x", "unknown source"),
        ("webcam:front", "webcam is an index"),
        ("", "empty source"),
    ],
)
def test_bad_sources_are_refused_clearly(client, users, source, why):
    alice = users("alice", sources=("video", "webcam"))
    r = client.post(f"/v1/users/{alice.id}/sessions", json={"source": source}, headers=alice.headers)
    assert r.status_code == 422 and why in r.json()["detail"], r.text


def test_frames_are_checked_then_published(client, users, stack):
    alice = users("alice")
    session = start(client, alice)
    url = f"/v1/users/{alice.id}/sessions/{session['id']}/frames"
    ok = client.post(url, content=PHOTO, headers={**alice.headers, "Content-Type": "image/jpeg"})
    assert ok.status_code == 202, ok.text
    assert ok.json()["frame_number"] == 1 and ok.json()["width"] > 0
    grey = client.post(url, content=png(64, 48, "L"), headers={**alice.headers, "Content-Type": "image/png"})
    alpha = client.post(url, content=png(64, 48, "RGBA"), headers={**alice.headers, "Content-Type": "image/png"})
    assert grey.status_code == alpha.status_code == 202
    published = frames_of(stack, session["id"])
    assert [f.frame_number for f in published] == [1, 2, 3]
    assert published[0].image == PHOTO and published[0].header.user_id == alice.id
    assert published[0].content_type == "image/jpeg" and published[1].content_type == "image/png"

    bad = {
        "truncated JPEG": (PHOTO[: len(PHOTO) // 2], "image/jpeg", 422),
        "zero bytes": (b"", "image/jpeg", 422),
        "not an image": (b"hello, I am text" * 10, "image/jpeg", 422),
        "PNG sent as JPEG": (png(8, 8), "image/jpeg", 422),
        "wrong type": (PHOTO, "image/gif", 415),
        "no type": (PHOTO, "", 415),
        "10000x10000": (png(10_000, 10_000, "L"), "image/png", 413),
        "over the byte cap": (np.random.default_rng(0).bytes(2_000_001), "image/jpeg", 413),
    }
    for name, (body, content_type, status) in bad.items():
        headers = {**alice.headers, **({"Content-Type": content_type} if content_type else {})}
        r = client.post(url, content=body, headers=headers)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text}"
        assert r.json()["detail"], name
    assert len(frames_of(stack, session["id"])) == 3, "a refused frame was published"
    # the session still takes good frames, and a stopped one none
    assert client.post(url, content=PHOTO, headers={**alice.headers, "Content-Type": "image/jpeg"}).status_code == 202
    client.delete(f"/v1/users/{alice.id}/sessions/{session['id']}", headers=alice.headers)
    r = client.post(url, content=PHOTO, headers={**alice.headers, "Content-Type": "image/jpeg"})
    assert r.status_code == 409


def test_frames_go_to_the_frames_redis_and_its_outage_is_a_503(stack, users, tmp_path):
    """With EMOTUNE_FRAMES_REDIS_URL set, uploads go only there (the main Redis persists; that one must
    not); while it is away an upload is a 503 with Retry-After, and afterwards uploads go through again;
    deleting the user's data deletes their frames there."""
    from fastapi.testclient import TestClient

    from emotune_gateway.app import create_app

    from ..conftest import RedisServer, free_port
    from .conftest import settings_for

    frames_server = RedisServer(free_port(), tmp_path, appendonly=False)
    frames_server.start()
    frames, main = redis.Redis.from_url(frames_server.url), redis.Redis.from_url(stack.redis_url)
    alice = users("alice")
    try:
        with TestClient(create_app(settings_for(stack, frames_redis_url=frames_server.url))) as client:
            session = start(client, alice)
            url = f"/v1/users/{alice.id}/sessions/{session['id']}/frames"
            headers = {**alice.headers, "Content-Type": "image/jpeg"}
            shard = session_stream(FRAMES, session["id"], SHARDS)
            before = main.xlen(shard)
            assert client.post(url, content=PHOTO, headers=headers).status_code == 202
            assert frames.xlen(shard) == 1 and main.xlen(shard) == before
            frames_server.stop()
            away = client.post(url, content=PHOTO, headers=headers)
            assert away.status_code == 503 and away.headers["Retry-After"] == "1", away.text
            assert "Redis is unavailable" in away.json()["detail"]
            assert client.get("/readyz").status_code == 503
            assert client.get(f"/v1/users/{alice.id}/sessions", headers=alice.headers).status_code == 200
            frames_server.start()  # empty: it kept nothing
            assert client.post(url, content=PHOTO, headers=headers).status_code == 202
            assert frames.xlen(shard) == 1
            deleted = client.delete(f"/v1/users/{alice.id}/data", headers=alice.headers)
            assert deleted.status_code == 200 and frames.xlen(shard) == 0
    finally:
        frames_server.stop()
        frames.close()
        main.close()
    assert list(tmp_path.iterdir()) == []  # the frames Redis wrote nothing to its folder


def test_frame_rate_limit(stack, users):
    from fastapi.testclient import TestClient

    from emotune_gateway.app import create_app

    from .conftest import settings_for

    alice = users("alice")
    with TestClient(create_app(settings_for(stack, frame_rate_limit="3/minute"))) as client:
        session = start(client, alice)
        url = f"/v1/users/{alice.id}/sessions/{session['id']}/frames"
        codes = [client.post(url, content=PHOTO, headers={**alice.headers, "Content-Type": "image/jpeg"}).status_code
                 for _ in range(5)]  # fmt: skip
        assert codes == [202, 202, 202, 429, 429]
        assert client.get("/v1/me", headers=alice.headers).status_code == 200  # other routes are not limited by it


def test_recommendations_feedback_and_genre(client, users, stack):
    alice = users("alice")
    session = start(client, alice)
    base = f"/v1/users/{alice.id}/sessions/{session['id']}"
    first = client.get(f"{base}/recommendations?k=8&policy=uplift", headers=alice.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["items"]) == 8 and body["mood"] == "neutral" and body["policy"] == "uplift"
    for item in body["items"]:  # tracks that play with no credentials
        assert item["spotify_url"] == f"https://open.spotify.com/track/{item['track_id']}"
        assert item["embed_url"] == f"https://open.spotify.com/embed/track/{item['track_id']}"
        assert item["title"] and item["artist_name"] and item["mood_tag"] and "taste" in item["reason"]
        assert item["tracks"][0]["spotify_id"] == item["track_id"]
    skipped = body["items"][0]["track_id"]
    r = client.post(f"{base}/feedback", json={"action": "skip", "track_id": skipped}, headers=alice.headers)
    assert r.status_code == 202 and r.json()["applied"] is True
    again = client.get(f"{base}/recommendations?k=8&policy=uplift", headers=alice.headers).json()
    assert skipped not in {i["track_id"] for i in again["items"]}
    played = again["items"][0]["track_id"]
    r = client.post(f"{base}/feedback", json={"action": "play", "track_id": played, "started_at_us": 1},
                    headers=alice.headers)  # fmt: skip
    assert r.status_code == 202

    rock = client.get(f"{base}/recommendations?k=5&genre=rock", headers=alice.headers).json()
    assert rock["items"] and all(any("rock" in g for g in i["genres"]) for i in rock["items"])
    happy = client.get(f"{base}/recommendations?k=5&mood=happy", headers=alice.headers).json()
    assert happy["mood"] == "happy"

    for query, status in [("k=0", 422), ("k=101", 422), ("policy=loud", 422), ("mood=bored", 422)]:
        assert client.get(f"{base}/recommendations?{query}", headers=alice.headers).status_code == status, query
    for payload, status in [
        ({"action": "like", "track_id": "0" * 22}, 404),
        ({"action": "like", "artist_id": "999999999"}, 404),
        ({"action": "like"}, 422),
        ({"action": "play", "track_id": played, "started_at_us": -1}, 422),
        ({"action": "genre_change"}, 422),
        ({"action": "shout", "artist_id": "89"}, 422),
    ]:
        r = client.post(f"{base}/feedback", json=payload, headers=alice.headers)
        assert r.status_code == status, (payload, r.text)
    r = client.post(f"{base}/feedback", json={"action": "genre_change", "genre": "jazz"}, headers=alice.headers)
    assert r.status_code == 202
    jazz = client.get(f"{base}/recommendations?k=5", headers=alice.headers).json()
    assert sum(any("jazz" in g for g in i["genres"]) for i in jazz["items"]) >= 3, jazz["items"]


def test_feedback_is_queued_when_the_recommender_is_away(stack, users):
    from fastapi.testclient import TestClient

    from emotune_gateway.app import create_app

    from .conftest import settings_for

    alice = users("alice")
    with TestClient(create_app(settings_for(stack, recommender_addr="127.0.0.1:1", recommender_timeout_s=1))) as c:
        session = start(c, alice)
        base = f"/v1/users/{alice.id}/sessions/{session['id']}"
        r = c.post(f"{base}/feedback", json={"action": "like", "artist_id": "89"}, headers=alice.headers)
        assert r.status_code == 202 and r.json()["applied"] is False
        queue = redis.Redis.from_url(stack.redis_url).xrange(session_stream(FEEDBACK, session["id"], SHARDS))
        queued = [decode(f, messages_pb2.Feedback) for _, f in queue]
        assert r.json()["feedback_id"] in {f.header.id for f in queued}
        r = c.get(f"{base}/recommendations", headers=alice.headers)
        assert r.status_code == 503 and "unavailable" in r.json()["detail"]


def test_deleting_a_user_removes_every_key_and_entry(client, users, stack):
    alice, bob = users("alice", sources=("video",)), users("bob", sources=("video",))
    store = redis.Redis.from_url(stack.redis_url)
    for user in (alice, bob):
        session = start(client, user)
        base = f"/v1/users/{user.id}/sessions/{session['id']}"
        client.post(f"{base}/frames", content=PHOTO, headers={**user.headers, "Content-Type": "image/jpeg"})
        client.post(f"{base}/feedback", json={"action": "like", "artist_id": "89"}, headers=user.headers)
        start(client, user, "video:short_hamilton_clip.mp4")

    def holdings(user) -> tuple[list[bytes], int]:
        keys = [k for k in store.scan_iter(count=1000) if user.id.encode() in k or (store.type(k) == b"string"
                and store.get(k) == user.id.encode())]  # fmt: skip
        entries = sum(user.id.encode() in v for s in store.scan_iter(match="emotune:*", _type="stream")
                      for _, f in store.xrange(s) for v in f.values())  # fmt: skip
        registry = [v for v in store.hvals(CAPTURE_SESSIONS) if user.id.encode() in v]
        return keys, entries + len(registry)

    keys, entries = holdings(alice)
    assert keys and entries
    report = client.delete(f"/v1/users/{alice.id}/data", headers=alice.headers).json()
    assert report["deleted_keys"] > 0 and report["deleted_stream_entries"] > 0
    keys, entries = holdings(alice)
    assert entries == 0 and sorted(k.decode().rsplit(":", 1)[-1] for k in keys if b"apikey:" not in k) == [
        "account", "apikeys"]  # fmt: skip
    assert client.get("/v1/me", headers=alice.headers).status_code == 200  # the account stays

    assert client.delete(f"/v1/users/{alice.id}", headers=alice.headers).status_code == 200
    assert holdings(alice) == ([], 0)
    assert client.get("/v1/me", headers=alice.headers).status_code == 401
    bob_keys, bob_entries = holdings(bob)  # nothing of bob's went
    assert len(bob_keys) >= 5 and bob_entries >= 2  # a frame and the video session in the registry


def test_openapi_documents_every_route(client):
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    for path in ("/v1/me", "/v1/users/{user_id}/sessions", "/v1/users/{user_id}/sessions/{session_id}/frames",
                 "/v1/users/{user_id}/sessions/{session_id}/recommendations", "/v1/users/{user_id}/events",
                 "/v1/users/{user_id}/data", "/healthz"):  # fmt: skip
        assert path in paths, path
    assert {"HTTPBearer", "APIKeyHeader"} <= set(schema["components"]["securitySchemes"])


def test_feedback_is_followed_by_a_fresh_set_on_the_event_stream(client, users):
    import json

    alice = users("alice")
    session = start(client, alice)
    base = f"/v1/users/{alice.id}/sessions/{session['id']}"
    first = client.get(f"{base}/recommendations", headers=alice.headers).json()["items"]
    with client.websocket_connect(f"/v1/users/{alice.id}/events/ws?key={alice.key}&types=recommendations") as ws:
        skipped = first[0]["track_id"]
        r = client.post(f"{base}/feedback", json={"action": "skip", "track_id": skipped}, headers=alice.headers)
        assert r.json()["applied"]
        fresh = json.loads(ws.receive_text())
    assert fresh["session_id"] == session["id"] and len(fresh["data"]["items"]) == 10
    assert skipped not in {i["track_id"] for i in fresh["data"]["items"]}


def test_a_new_listener_searches_the_catalogue_and_picks_a_first_taste(client, users):
    alice = users("alice")
    found = client.get("/v1/catalogue/search?q=radiohead&limit=3", headers=alice.headers)
    assert found.status_code == 200, found.text
    radiohead = found.json()["artists"][0]
    assert radiohead["name"] == "Radiohead" and radiohead["tracks"] >= 1
    genres = client.get("/v1/catalogue/search?q=jazz", headers=alice.headers).json()["genres"]
    assert genres and all("jazz" in g["name"] and g["tracks"] > 0 for g in genres)
    picks = {"genres": ["alternative rock"], "artist_ids": [radiohead["artist_id"]]}
    r = client.put(f"/v1/users/{alice.id}/taste", json=picks, headers=alice.headers)
    assert r.status_code == 200 and r.json() == picks
    session = start(client, alice)
    first = client.get(f"/v1/users/{alice.id}/sessions/{session['id']}/recommendations", headers=alice.headers)
    items = first.json()["items"]
    assert sum("alternative rock" in i["genres"] for i in items) >= 6, [i["genres"] for i in items]
    for path, body, code in [
        (f"/v1/users/{alice.id}/taste", {"genres": ["no such genre"]}, 404),
        (f"/v1/users/{alice.id}/taste", {"artist_ids": ["x:nobody"]}, 404),
        (f"/v1/users/{alice.id}/taste", {"genres": ["g"] * 21}, 422),
    ]:
        assert client.put(path, json=body, headers=alice.headers).status_code == code, (path, body)
    assert client.get("/v1/catalogue/search?q=", headers=alice.headers).status_code == 422
    assert client.get("/v1/catalogue/search?q=x").status_code == 401


def test_cors_follows_the_setting(stack):
    from fastapi.testclient import TestClient

    from emotune_gateway.app import create_app

    from .conftest import settings_for

    preflight = {"Origin": "https://music.example", "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip
    with TestClient(create_app(settings_for(stack, cors_origins="https://music.example"))) as client:
        r = client.options("/v1/me", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://music.example"
        r = client.options("/v1/me", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    with TestClient(create_app(settings_for(stack))) as client:  # none by default
        assert "access-control-allow-origin" not in client.options("/v1/me", headers=preflight).headers


def test_admin_commands_create_revoke_and_delete(client, stack):
    import os
    import subprocess
    import sys
    import uuid

    env = {**os.environ, "REDIS_URL": stack.redis_url}
    user = f"cli-{uuid.uuid4().hex[:6]}"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "emotune_gateway", *args], env=env, capture_output=True,
                              text=True, timeout=60)  # fmt: skip

    first = cli("users", "create", user).stdout.strip()
    assert first.startswith("et_") and client.get("/v1/me", headers={"X-API-Key": first}).json()["user_id"] == user
    again = cli("users", "create", user)
    assert again.returncode == 2 and "exists" in again.stderr
    second = cli("keys", "create", user).stdout.strip()
    assert cli("keys", "revoke", first).returncode == 0
    assert client.get("/v1/me", headers={"X-API-Key": first}).status_code == 401
    assert client.get("/v1/me", headers={"X-API-Key": second}).status_code == 200
    assert user in cli("users", "list").stdout.split()
    bad = cli("users", "create", "no spaces allowed")
    assert bad.returncode == 2 and "bad user id" in bad.stderr
    assert "deleted" in cli("users", "delete", user).stdout
    assert client.get("/v1/me", headers={"X-API-Key": second}).status_code == 401
