"""The gateway's Spotify against a local fake of the Spotify Web API: track details (batched and
cached), connecting an account (OAuth code flow, token refresh), mood playlists and playback; then
the routes, through the app with a real recommender that finds its tracks in the fake."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs, urlparse

import pytest
from fastapi.testclient import TestClient

from emotune_common.keys import session_key, user_key
from emotune_common.redis_client import connect
from emotune_gateway import sessions
from emotune_gateway.app import create_app
from emotune_gateway.settings import GatewaySettings
from emotune_gateway.spotify import (
    SCOPES,
    Spotify,
    SpotifyBadState,
    SpotifyNoActiveDevice,
    SpotifyNotConfigured,
    SpotifyNotConnected,
    SpotifyRefused,
    SpotifyUnavailable,
    meta_key,
    state_key,
)

from ..conftest import RedisServer, free_port
from ..fakes.spotify import FakeSpotify
from .conftest import Stack, User, new_user, recommender_process, settings_for


def spotify_settings(fake: FakeSpotify, **overrides) -> dict:
    return {"SPOTIPY_CLIENT_ID": "id", "SPOTIPY_CLIENT_SECRET": "secret", "spotify_api_url": fake.api_url,
            "spotify_accounts_url": fake.accounts_url, "spotify_authorize_url": fake.authorize_url,
            "public_url": "http://gateway.test", **overrides}  # fmt: skip


def gateway(fake: FakeSpotify, redis, **overrides) -> Spotify:
    return Spotify(GatewaySettings.model_validate(spotify_settings(fake, **overrides)), redis)


def track_id() -> str:
    return "t" + uuid.uuid4().hex[:21]  # 22 base62 characters, like Spotify's, unique to this run


@pytest.fixture
async def uid(aredis) -> AsyncIterator[str]:
    """A fresh user id on the shared Redis; its Spotify key is deleted afterwards."""
    user_id = f"sp-{uuid.uuid4().hex[:10]}"
    yield user_id
    await aredis.delete(user_key(user_id, "spotify"))


@pytest.fixture
def fake() -> Iterator[FakeSpotify]:
    with FakeSpotify() as f:
        yield f


async def connect_account(spotify: Spotify, fake: FakeSpotify, uid: str, spotify_user: str = "") -> str:
    """Go through the OAuth code flow as a browser would; returns the Spotify user id."""
    url = urlparse(await spotify.authorize_url(uid))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    spotify_user = spotify_user or f"spotify-{uid}"
    assert await spotify.callback(fake.issue_code(spotify_user, "Alice"), query["state"]) == uid
    return spotify_user


# track details


async def test_enrich_adds_embed_links_and_fills_art_with_one_batched_cached_lookup(aredis, fake):
    known, art, unknown = track_id(), track_id(), track_id()
    fake.add_track(known, "Known", preview_url="https://p.scdn.co/known", album_art_url="https://i.scdn.co/known")
    fake.add_track(art, "Has art", album_art_url="https://i.scdn.co/art")
    complete = {"spotify_id": track_id(), "name": "Complete", "spotify_url": "", "preview_url": "https://p/x",
                "album_art_url": "https://i/x"}  # fmt: skip

    def items() -> list[dict]:
        return [
            {"artist_id": "1", "tracks": [dict(complete), {"spotify_id": known, "name": "Known", "preview_url": "",
                                                          "album_art_url": ""}]},
            {"artist_id": "2", "tracks": [{"spotify_id": art, "name": "Has art", "preview_url": "",
                                           "album_art_url": "https://i.scdn.co/art"},
                                          {"spotify_id": unknown, "name": "?", "preview_url": "", "album_art_url": ""},
                                          {"spotify_id": "", "name": "no id", "preview_url": "", "album_art_url": ""}]},
        ]  # fmt: skip

    spotify = gateway(fake, aredis)
    try:
        first = items()
        await spotify.enrich(first)
        tracks = [t for item in first for t in item["tracks"]]
        assert [t["embed_url"] for t in tracks] == [
            f"https://open.spotify.com/embed/track/{t['spotify_id']}" if t["spotify_id"] else "" for t in tracks
        ]
        assert tracks[0] == {**complete, "embed_url": spotify.embed_url(complete["spotify_id"])}  # left alone
        assert (tracks[1]["preview_url"], tracks[1]["album_art_url"]) == ("https://p.scdn.co/known",
                                                                          "https://i.scdn.co/known")  # fmt: skip
        assert tracks[2]["album_art_url"] == "https://i.scdn.co/art" and tracks[2]["preview_url"] == ""
        assert tracks[3]["album_art_url"] == "" and tracks[4]["album_art_url"] == ""
        assert fake.calls["tracks"] == 1 and fake.calls["tracks:ids"] == 3  # the three incomplete ids, once
        assert 86_000 < await aredis.ttl(meta_key(known)) <= 86_400
        again = items()
        await spotify.enrich(again)
        assert again == first and fake.calls["tracks"] == 1  # all from the cache, the unknown one too

        many = [track_id() for _ in range(60)]
        await spotify.enrich([{"tracks": [{"spotify_id": i, "preview_url": "", "album_art_url": ""} for i in many]}])
        assert fake.calls["tracks"] == 3 and fake.calls["tracks:ids"] == 63  # 50 ids a request at most
    finally:
        await aredis.delete(*[meta_key(i) for i in (known, art, unknown, complete["spotify_id"], *many)])


async def test_enrich_degrades_when_spotify_fails_or_is_not_set_up(aredis, fake):
    tid = track_id()
    fake.add_track(tid, "Song", album_art_url="https://i.scdn.co/song")
    fake.down = True
    items = [{"tracks": [{"spotify_id": tid, "preview_url": "", "album_art_url": ""}]}]
    await gateway(fake, aredis).enrich(items)  # no exception
    assert items[0]["tracks"][0] == {"spotify_id": tid, "preview_url": "", "album_art_url": "",
                                     "embed_url": f"https://open.spotify.com/embed/track/{tid}"}  # fmt: skip
    assert fake.calls["tracks"] >= 1 and not await aredis.exists(meta_key(tid))  # a failure is not cached
    fake.down = False
    calls = fake.calls["tracks"]
    items = [{"tracks": [{"spotify_id": tid, "preview_url": "", "album_art_url": ""}]}]
    await gateway(fake, aredis, SPOTIPY_CLIENT_ID="", SPOTIPY_CLIENT_SECRET="").enrich(items)
    assert items[0]["tracks"][0]["embed_url"] and items[0]["tracks"][0]["album_art_url"] == ""
    assert fake.calls["tracks"] == calls  # without credentials Spotify is not asked


# connecting an account


async def test_oauth_code_flow_keeps_the_token_in_redis_and_the_state_is_one_time(aredis, fake, uid):
    spotify = gateway(fake, aredis)
    assert not await spotify.connected(uid)
    url = urlparse(await spotify.authorize_url(uid))
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert f"{url.scheme}://{url.netloc}{url.path}" == fake.authorize_url
    assert query["client_id"] == "id" and query["response_type"] == "code"
    assert query["redirect_uri"] == "http://gateway.test/v1/spotify/callback"
    assert set(query["scope"].split()) == set(SCOPES.split())
    state = query["state"]
    assert await aredis.get(state_key(state)) == uid.encode() and 0 < await aredis.ttl(state_key(state)) <= 600

    with pytest.raises(SpotifyBadState):
        await spotify.callback(fake.issue_code(), "no-such-state")
    code = fake.issue_code(f"spotify-{uid}", "Alice")
    assert await spotify.callback(code, state) == uid
    assert not await aredis.exists(state_key(state))
    with pytest.raises(SpotifyBadState):  # a state works once
        await spotify.callback(fake.issue_code(), state)
    assert fake.token_requests[-1]["redirect_uri"] == "http://gateway.test/v1/spotify/callback"

    assert await spotify.connected(uid)
    token = json.loads(await aredis.hget(user_key(uid, "spotify"), "token"))
    assert token["access_token"].startswith(f"user-spotify-{uid}") and token["refresh_token"]
    assert await spotify.status(uid) == {"configured": True, "connected": True, "spotify_user_id": f"spotify-{uid}",
                                         "display_name": "Alice", "playlists": {}}  # fmt: skip

    url = urlparse(await spotify.authorize_url(uid))
    with pytest.raises(SpotifyBadState, match="refused"):  # a code Spotify does not know
        await spotify.callback("code-made-up", parse_qs(url.query)["state"][0])

    await spotify.disconnect(uid)
    assert not await spotify.connected(uid) and not await aredis.exists(user_key(uid, "spotify"))


async def test_an_expired_token_is_refreshed_and_a_revoked_one_means_connect_again(aredis, uid):
    with FakeSpotify(expires_in=61) as fake:  # spotipy refreshes a token with less than a minute left
        spotify = gateway(fake, aredis)
        spotify_user = await connect_account(spotify, fake, uid)
        first = json.loads(await aredis.hget(user_key(uid, "spotify"), "token"))
        assert fake.calls["token:refresh_token"] == 0
        await asyncio.sleep(2.1)
        fake.expire_tokens()  # the old access token no longer works at the fake either
        await spotify.play(uid, track_id())
        assert fake.calls["token:refresh_token"] == 1
        refreshed = json.loads(await aredis.hget(user_key(uid, "spotify"), "token"))
        assert refreshed["access_token"] != first["access_token"]
        assert refreshed["refresh_token"] == first["refresh_token"]  # kept: the fake does not send a new one
        assert fake.player[-1]["user"] == spotify_user

        fake.expire_tokens()  # refused before we think it expired: refreshed and tried again, once
        await spotify.next(uid)
        assert fake.calls["token:refresh_token"] == 2 and fake.calls["next"] == 2
        assert fake.player[-1] == {"user": spotify_user, "action": "next", "uris": None}

        fake.revoke(spotify_user)
        with pytest.raises(SpotifyNotConnected, match="connect Spotify again"):
            await spotify.next(uid)
        assert not await spotify.connected(uid)


# playlists and playback


async def test_a_mood_playlist_is_made_once_then_refreshed(aredis, fake, uid):
    spotify = gateway(fake, aredis)
    spotify_user = await connect_account(spotify, fake, uid)
    first, second = [track_id() for _ in range(3)], [track_id() for _ in range(2)]

    made = await spotify.mood_playlist(uid, "Happy", [*first, first[0], "not/an id"])
    assert made == {"playlist_id": made["playlist_id"], "url": f"https://open.spotify.com/playlist/{made['playlist_id']}",
                    "tracks": first, "mood": "happy", "created": True}  # fmt: skip
    [playlist] = fake.playlists_of(spotify_user)
    assert (playlist.id, playlist.name, playlist.public) == (made["playlist_id"], "emotune: happy", False)
    assert playlist.uris == [f"spotify:track:{i}" for i in first]

    again = await spotify.mood_playlist(uid, "happy", second)
    assert (again["playlist_id"], again["created"], again["tracks"]) == (made["playlist_id"], False, second)
    assert playlist.uris == [f"spotify:track:{i}" for i in second] and len(fake.playlists_of(spotify_user)) == 1

    sad = await spotify.mood_playlist(uid, "sad", first)
    assert sad["created"] and sad["playlist_id"] != made["playlist_id"]
    status = await spotify.status(uid)
    assert {m: p["playlist_id"] for m, p in status["playlists"].items()} == {"happy": made["playlist_id"],
                                                                             "sad": sad["playlist_id"]}  # fmt: skip

    del fake.playlists[made["playlist_id"]]  # gone from Spotify: a new one is made
    remade = await spotify.mood_playlist(uid, "happy", first)
    assert remade["created"] and remade["playlist_id"] not in (made["playlist_id"], sad["playlist_id"])
    with pytest.raises(ValueError):
        await spotify.mood_playlist(uid, "bored", first)


async def test_play_and_next_on_the_active_device(aredis, fake, uid):
    spotify = gateway(fake, aredis)
    spotify_user = await connect_account(spotify, fake, uid)
    tid = track_id()
    await spotify.play(uid, tid)
    await spotify.play(uid)
    await spotify.next(uid)
    assert fake.player == [{"user": spotify_user, "action": "play", "uris": [f"spotify:track:{tid}"]},
                           {"user": spotify_user, "action": "play", "uris": None},
                           {"user": spotify_user, "action": "next", "uris": None}]  # fmt: skip

    fake.active_device = False
    with pytest.raises(SpotifyNoActiveDevice, match="no active Spotify device"):
        await spotify.play(uid, tid)
    with pytest.raises(SpotifyNoActiveDevice):
        await spotify.next(uid)
    fake.active_device, fake.premium = True, False
    with pytest.raises(SpotifyRefused, match="Premium required") as refused:
        await spotify.play(uid, tid)
    assert not isinstance(refused.value, SpotifyNoActiveDevice)
    fake.premium, fake.down = True, True
    with pytest.raises(SpotifyUnavailable):
        await spotify.next(uid)
    assert len(fake.player) == 3


async def test_without_a_connection_or_without_credentials(aredis, fake, uid):
    spotify = gateway(fake, aredis)
    for call in (spotify.play(uid, track_id()), spotify.next(uid), spotify.mood_playlist(uid, "sad", [track_id()])):
        with pytest.raises(SpotifyNotConnected, match="connect Spotify first"):
            await call
    assert fake.calls["play"] == fake.calls["next"] == fake.calls["create_playlist"] == 0

    bare = gateway(fake, aredis, SPOTIPY_CLIENT_ID="", SPOTIPY_CLIENT_SECRET="")
    assert (await bare.status(uid))["configured"] is False
    for call in (bare.authorize_url(uid), bare.play(uid, None)):
        with pytest.raises(SpotifyNotConfigured):
            await call


# the routes, through the app


@pytest.fixture(scope="module")
def spotify_stack(tmp_path_factory, recommender_models) -> Iterator[tuple[Stack, FakeSpotify]]:
    """A private Redis, a fake Spotify that knows every artist, and a recommender that uses it."""
    with FakeSpotify(generate=True) as fake:
        store = RedisServer(free_port(), tmp_path_factory.mktemp("spotify-gateway"), appendonly=False)
        store.start()
        env = {"SPOTIPY_CLIENT_ID": "id", "SPOTIPY_CLIENT_SECRET": "secret",
               "EMOTUNE_SPOTIFY_API_URL": fake.api_url, "EMOTUNE_SPOTIFY_ACCOUNTS_URL": fake.accounts_url}  # fmt: skip
        try:
            with recommender_process(store.url, recommender_models, **env) as address:
                yield Stack(store.url, address), fake
        finally:
            store.stop()


@pytest.fixture
def app_client(spotify_stack) -> Iterator[TestClient]:
    stack, fake = spotify_stack
    with TestClient(create_app(settings_for(stack, **spotify_settings(fake)))) as c:
        yield c


def make_user(stack: Stack) -> User:
    user_id = f"sp-{uuid.uuid4().hex[:8]}"
    return User(user_id, new_user(stack.redis_url, user_id))


def start_session(stack: Stack, user: User, mood: str | None) -> str:
    async def go() -> str:
        redis = connect(stack.redis_url)
        try:
            record = await sessions.create(redis, user.id, "upload")
            if mood:
                await redis.hset(session_key(user.id, record["id"], "mood"), mapping={"mood": mood})
            return record["id"]
        finally:
            await redis.aclose()

    return asyncio.run(go())


def test_routes_connect_make_a_playlist_and_play(spotify_stack, app_client):
    stack, fake = spotify_stack
    user, other = make_user(stack), make_user(stack)
    base = f"/v1/users/{user.id}/spotify"
    assert app_client.get(base, headers=user.headers).json() == {"configured": True, "connected": False,
                                                                 "spotify_user_id": "", "display_name": "",
                                                                 "playlists": {}}  # fmt: skip
    assert app_client.get(base, headers=other.headers).status_code == 403
    assert app_client.get(base).status_code == 401
    assert app_client.post(f"{base}/play", headers=user.headers, json={}).json()["detail"] == "connect Spotify first"

    url = app_client.get(f"{base}/authorize", headers=user.headers).json()["url"]
    state = parse_qs(urlparse(url).query)["state"][0]
    bad = app_client.get("/v1/spotify/callback", params={"code": fake.issue_code(), "state": "forged"})
    assert bad.status_code == 400 and "unknown or expired state" in bad.text
    page = app_client.get("/v1/spotify/callback", params={"code": fake.issue_code(f"s-{user.id}"), "state": state})
    assert page.status_code == 200 and "Spotify connected, you can close this tab" in page.text
    assert page.headers["content-type"].startswith("text/html") and 'href="/"' in page.text
    status = app_client.get(base, headers=user.headers).json()
    assert status["connected"] and status["spotify_user_id"] == f"s-{user.id}"

    missing = app_client.post(f"{base}/playlist", headers=user.headers, json={"session_id": "nope"})
    assert missing.status_code == 404
    session_id = start_session(stack, user, "sad")
    made = app_client.post(f"{base}/playlist", headers=user.headers, json={"session_id": session_id, "k": 5})
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["mood"] == "sad" and body["created"] and len(body["tracks"]) >= 5
    [playlist] = fake.playlists_of(f"s-{user.id}")
    assert playlist.name == "emotune: sad" and playlist.uris == [f"spotify:track:{t}" for t in body["tracks"]]
    again = app_client.post(f"{base}/playlist", headers=user.headers, json={"session_id": session_id, "k": 3})
    assert again.json()["playlist_id"] == body["playlist_id"] and not again.json()["created"]
    assert len(playlist.uris) == len(again.json()["tracks"]) < len(body["tracks"])

    played = app_client.post(f"{base}/play", headers=user.headers, json={"track_id": body["tracks"][0]})
    assert played.json() == {"action": "play", "track_id": body["tracks"][0]}
    assert fake.player[-1]["uris"] == [f"spotify:track:{body['tracks'][0]}"]
    assert app_client.post(f"{base}/next", headers=user.headers).json() == {"action": "next", "track_id": None}
    assert app_client.post(f"{base}/play", headers=user.headers, json={"track_id": "../me"}).status_code == 422
    fake.active_device = False
    try:
        refused = app_client.post(f"{base}/next", headers=user.headers)
        assert refused.status_code == 409 and "no active Spotify device" in refused.json()["detail"]
    finally:
        fake.active_device = True

    recs = app_client.get(f"/v1/users/{user.id}/sessions/{session_id}/recommendations", headers=user.headers,
                          params={"k": 2}).json()  # fmt: skip
    track = recs["items"][0]["tracks"][0]
    assert track["embed_url"] == f"https://open.spotify.com/embed/track/{track['spotify_id']}"

    gone = app_client.delete(base, headers=user.headers)
    assert gone.status_code == 200 and gone.json()["connected"] is False
    assert app_client.post(f"{base}/next", headers=user.headers).status_code == 409


def test_routes_without_spotify_credentials_answer_501(spotify_stack):
    stack, _ = spotify_stack
    user = make_user(stack)
    with TestClient(create_app(settings_for(stack, SPOTIPY_CLIENT_ID="", SPOTIPY_CLIENT_SECRET=""))) as client:
        assert client.get(f"/v1/users/{user.id}/spotify", headers=user.headers).json()["configured"] is False
        refused = client.get(f"/v1/users/{user.id}/spotify/authorize", headers=user.headers)
        assert refused.status_code == 501 and "not set up" in refused.json()["detail"]
        assert client.post(f"/v1/users/{user.id}/spotify/play", headers=user.headers).status_code == 501
        assert "/v1/spotify/callback" in client.get("/openapi.json").json()["paths"]
