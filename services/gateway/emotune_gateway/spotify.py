"""Spotify for the gateway, through spotipy: embed links and album art for recommended tracks, a
user's Spotify account (OAuth authorization code flow), mood playlists and playback.

Keys in Redis:

- ``emotune:tracks:meta:<track id>``: JSON ``{"preview_url", "album_art_url"}`` of a track, for a day
  (looked up with the app's client credentials, 50 ids a request).
- ``emotune:oauth:state:<state>`` -> user id, for 10 minutes: the one-time ``state`` of an authorization
  that a user started; the callback consumes it (GETDEL), and it is all that authenticates the callback.
- ``user_key(uid, "spotify")``: a hash, deleted with the user's data. Fields: ``token`` (spotipy's token
  JSON: access and refresh token, expiry, scope), ``spotify_user_id``, ``display_name``, and
  ``playlist:<mood>`` -> the id of that mood's playlist.

Playlists: one per mood, named ``emotune: <mood>`` and private. Asking again for a mood replaces the
items of the same playlist (a new one is made when the user has deleted it), so a user ends with at
most seven emotune playlists, each holding the latest music for its mood.

spotipy is blocking: every call runs in a worker thread (``asyncio.to_thread``). spotipy reads and
writes a user's token through a cache handler (it refreshes an expired token itself); ours runs its
Redis commands back on the event loop, so the one asyncio Redis client serves both sides.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
import requests
import spotipy
from redis.exceptions import RedisError
from spotipy.cache_handler import CacheHandler, MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOAuth, SpotifyOauthError

from emotune_common.keys import user_key
from emotune_common.labels import EMOTIONS
from emotune_common.logs import get_logger
from emotune_common.spotify_links import embed_url
from emotune_gateway.settings import GatewaySettings

log = get_logger("emotune.gateway.spotify")

T = TypeVar("T")

SCOPES = "playlist-modify-private playlist-modify-public user-modify-playback-state user-read-playback-state"
CALLBACK_PATH = "/v1/spotify/callback"
STATE_TTL_S = 600
META_TTL_S = 86_400
TRACKS_PER_REQUEST = 50  # GET /tracks takes at most 50 ids
PLAYLIST_MAX = 100  # PUT /playlists/{id}/items takes at most 100 URIs
TIMEOUT_S = 5.0
TRACK_ID = re.compile(r"^[0-9A-Za-z]{1,64}$")  # Spotify ids are base62


class SpotifyError(Exception):
    """Something Spotify could not do for the caller; the text says what, for the user to read."""


class SpotifyNotConfigured(SpotifyError):
    """The gateway has no Spotify app credentials (SPOTIPY_CLIENT_ID, SPOTIPY_CLIENT_SECRET)."""

    def __init__(self, message: str = "Spotify is not set up on this server (no SPOTIPY_CLIENT_ID/SECRET)"):
        super().__init__(message)


class SpotifyNotConnected(SpotifyError):
    """The user has not connected a Spotify account, or Spotify no longer accepts their token."""

    def __init__(self, message: str = "connect Spotify first"):
        super().__init__(message)


class SpotifyBadState(SpotifyError):
    """An OAuth callback whose state is unknown, used or expired, or whose code Spotify refused."""


class SpotifyRefused(SpotifyError):
    """Spotify refused the request for a reason on the user's side (no Premium, a bad id...)."""


class SpotifyNoActiveDevice(SpotifyRefused):
    """Playback needs a Spotify app playing (or paused) on some device of the user."""

    def __init__(self, message: str = "no active Spotify device: open Spotify on a device, then try again"):
        super().__init__(message)


class SpotifyUnavailable(SpotifyError):
    """Spotify did not answer, failed (5xx), or kept limiting our rate."""


def state_key(state: str) -> str:
    return f"emotune:oauth:state:{state}"


def meta_key(track_id: str) -> str:
    return f"emotune:tracks:meta:{track_id}"


def playlist_url(playlist_id: str) -> str:
    return f"https://open.spotify.com/playlist/{playlist_id}"


class RedisTokenCache(CacheHandler):
    """spotipy's token cache for one user: the field ``token`` of the user's Spotify hash.

    spotipy calls it from a worker thread; the commands run on the event loop that owns ``redis``.
    """

    def __init__(self, redis: aioredis.Redis, loop: asyncio.AbstractEventLoop, user_id: str) -> None:
        self.redis, self.loop, self.key = redis, loop, user_key(user_id, "spotify")

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(TIMEOUT_S)

    def get_cached_token(self) -> dict | None:
        raw = self._run(self.redis.hget(self.key, "token"))
        return json.loads(raw) if raw else None

    def save_token_to_cache(self, token_info: dict) -> None:
        self._run(self.redis.hset(self.key, "token", json.dumps(token_info)))


class _OAuth(SpotifyOAuth):
    """SpotifyOAuth that never asks anyone for a code: without a good cached token it raises."""

    def get_auth_response(self, open_browser=None):
        raise SpotifyNotConnected()


def _message(e: spotipy.SpotifyException) -> str:
    """Spotify's own words from a SpotifyException (its text starts with the URL)."""
    return str(e.msg).split(":\n", 1)[-1].strip() or f"HTTP {e.http_status}"


class Spotify:
    """The gateway's Spotify: made once per app (``deps.Clients.spotify``)."""

    def __init__(self, settings: GatewaySettings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._app_client: spotipy.Spotify | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.spotipy_client_id and self.settings.spotipy_client_secret)

    @property
    def redirect_uri(self) -> str:
        return self.settings.public_url.rstrip("/") + CALLBACK_PATH

    @staticmethod
    def embed_url(track_id: str) -> str:
        return embed_url(track_id)

    # tracks

    async def enrich(self, items: list[dict[str, Any]]) -> None:
        """Give every track of these recommendations its embed link and, with the app's credentials,
        the album art and preview it lacks. Spotify failing costs only those fields, never the call."""
        tracks = [t for item in items for t in item.get("tracks", ())]
        for t in tracks:
            t["embed_url"] = self.embed_url(t["spotify_id"]) if t.get("spotify_id") else ""
        wanted = sorted({t["spotify_id"] for t in tracks
                         if TRACK_ID.match(t.get("spotify_id") or "")
                         and not (t.get("album_art_url") and t.get("preview_url"))})  # fmt: skip
        if not wanted or not self.configured:
            return
        meta = await self._track_meta(wanted)
        for t in tracks:
            found = meta.get(t.get("spotify_id") or "")
            if found:
                t["album_art_url"] = t.get("album_art_url") or found["album_art_url"]
                t["preview_url"] = t.get("preview_url") or found["preview_url"]

    async def _track_meta(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """Preview and album art of tracks: from the cache, the rest from Spotify (then cached)."""
        meta: dict[str, dict[str, str]] = {}
        try:
            cached = await self.redis.mget([meta_key(i) for i in ids])
        except RedisError as e:
            log.warning("spotify_meta_cache_failed", error=str(e))
            cached = [None] * len(ids)
        for track_id, raw in zip(ids, cached, strict=True):
            if raw is not None:
                meta[track_id] = json.loads(raw)
        missing = [i for i in ids if i not in meta]
        if not missing:
            return meta
        try:
            found = await asyncio.to_thread(self._lookup_tracks, missing)
        except (spotipy.SpotifyException, SpotifyOauthError, requests.RequestException, OSError, ValueError) as e:
            log.warning("spotify_tracks_failed", tracks=len(missing), error=str(e))  # not cached: tried again
            return meta
        meta.update(found)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for track_id, m in found.items():
                    pipe.set(meta_key(track_id), json.dumps(m), ex=META_TTL_S)
                await pipe.execute()
        except RedisError as e:
            log.warning("spotify_meta_cache_failed", error=str(e))
        return meta

    def _lookup_tracks(self, ids: list[str]) -> dict[str, dict[str, str]]:
        """GET /tracks?ids=..., 50 ids a request. A track Spotify does not know gets empty fields, so
        that it is not asked for again until the cache entry expires."""
        client = self._app()
        meta = {}
        for start in range(0, len(ids), TRACKS_PER_REQUEST):
            chunk = ids[start : start + TRACKS_PER_REQUEST]
            result = client.tracks(chunk, market=self.settings.spotify_market) or {}
            by_id = {t["id"]: t for t in result.get("tracks", []) if t}
            for track_id in chunk:
                t = by_id.get(track_id, {})
                images = (t.get("album") or {}).get("images") or [{}]
                meta[track_id] = {"preview_url": t.get("preview_url") or "", "album_art_url": images[0].get("url", "")}
        return meta

    def _app(self) -> spotipy.Spotify:
        """The client that acts as the app (client credentials), for catalogue look-ups."""
        if self._app_client is None:
            auth = SpotifyClientCredentials(self.settings.spotipy_client_id, self.settings.spotipy_client_secret,
                                            cache_handler=MemoryCacheHandler(), requests_timeout=TIMEOUT_S)  # fmt: skip
            auth.OAUTH_TOKEN_URL = self.settings.spotify_accounts_url
            self._app_client = self._client(auth)
        return self._app_client

    def _client(self, auth) -> spotipy.Spotify:
        client = spotipy.Spotify(auth_manager=auth, requests_timeout=TIMEOUT_S, retries=1, status_retries=1)
        client.prefix = self.settings.spotify_api_url
        return client

    # a user's account

    def _oauth(self, cache: CacheHandler) -> _OAuth:
        if not self.configured:
            raise SpotifyNotConfigured()
        s = self.settings
        auth = _OAuth(s.spotipy_client_id, s.spotipy_client_secret, self.redirect_uri, scope=SCOPES.split(),
                      cache_handler=cache, requests_timeout=TIMEOUT_S, open_browser=False)  # fmt: skip
        auth.OAUTH_TOKEN_URL = s.spotify_accounts_url
        auth.OAUTH_AUTHORIZE_URL = s.spotify_authorize_url
        return auth

    async def authorize_url(self, user_id: str) -> str:
        """Where to send the user's browser to connect their Spotify account; it comes back to the
        callback with a one-time state that stands for ``user_id`` for 10 minutes."""
        auth = self._oauth(MemoryCacheHandler())
        state = secrets.token_urlsafe(24)
        await self.redis.set(state_key(state), user_id, ex=STATE_TTL_S)
        return auth.get_authorize_url(state)

    async def callback(self, code: str, state: str) -> str:
        """Finish a connection: consume the state, trade the code for tokens (kept in Redis), and
        return the user it was for. SpotifyBadState for an unknown state or a refused code."""
        raw = await self.redis.getdel(state_key(state)) if state else None
        if raw is None:
            raise SpotifyBadState("unknown or expired state: start connecting Spotify again")
        user_id = raw.decode() if isinstance(raw, bytes) else raw
        if not code:
            raise SpotifyBadState("Spotify sent no authorization code")
        key = user_key(user_id, "spotify")
        before = await self.redis.hget(key, "spotify_user_id")
        auth = self._oauth(RedisTokenCache(self.redis, asyncio.get_running_loop(), user_id))

        def exchange() -> dict:
            auth.get_access_token(code, as_dict=False, check_cache=False)  # saves the token in Redis
            try:
                return self._client(auth).me() or {}
            except (spotipy.SpotifyException, requests.RequestException) as e:  # connected all the same
                log.warning("spotify_profile_failed", user_id=user_id, error=str(e))
                return {}

        try:
            profile = await asyncio.to_thread(exchange)
        except SpotifyOauthError as e:
            raise SpotifyBadState(f"Spotify refused the authorization: {e.error_description or e.error}") from None
        except (requests.RequestException, OSError) as e:
            raise SpotifyUnavailable(f"Spotify did not answer: {e}") from None
        spotify_user = profile.get("id", "")
        if before is not None and spotify_user and before.decode() != spotify_user:
            await self._forget_playlists(user_id)  # another Spotify account: its playlists are not these
        if spotify_user:
            name = profile.get("display_name") or spotify_user
            await self.redis.hset(key, mapping={"spotify_user_id": spotify_user, "display_name": name})
        log.info("spotify_connected", user_id=user_id, spotify_user=spotify_user)
        return user_id

    async def _forget_playlists(self, user_id: str) -> None:
        key = user_key(user_id, "spotify")
        fields = [f for f in await self.redis.hkeys(key) if f.startswith(b"playlist:")]
        if fields:
            await self.redis.hdel(key, *fields)

    async def connected(self, user_id: str) -> bool:
        return bool(await self.redis.hexists(user_key(user_id, "spotify"), "token"))

    async def status(self, user_id: str) -> dict[str, Any]:
        """{"configured", "connected", "spotify_user_id", "display_name", "playlists": {mood: {...}}}."""
        raw = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(user_key(user_id, "spotify"))).items()}
        playlists = {f.removeprefix("playlist:"): {"playlist_id": v, "url": playlist_url(v)}
                     for f, v in raw.items() if f.startswith("playlist:")}  # fmt: skip
        return {"configured": self.configured, "connected": "token" in raw,
                "spotify_user_id": raw.get("spotify_user_id", ""), "display_name": raw.get("display_name", ""),
                "playlists": playlists}  # fmt: skip

    async def disconnect(self, user_id: str) -> None:
        """Forget the user's tokens and playlists. (Spotify has no way to revoke a token: the user
        removes the app at https://www.spotify.com/account/apps/ to cut it off there too.)"""
        await self.redis.delete(user_key(user_id, "spotify"))

    async def _as_user(self, user_id: str, work: Callable[[spotipy.Spotify], T], player: bool = False) -> T:
        """Run ``work`` with a client acting as the user (in a thread); Spotify's errors as ours."""
        if not self.configured:
            raise SpotifyNotConfigured()
        if not await self.connected(user_id):
            raise SpotifyNotConnected()
        cache = RedisTokenCache(self.redis, asyncio.get_running_loop(), user_id)
        client = self._client(self._oauth(cache))

        def attempt() -> T:
            try:
                return work(client)
            except spotipy.SpotifyException as e:
                token = cache.get_cached_token()
                if e.http_status != 401 or not token:
                    raise
            # Spotify refused an access token we thought good (revoked, clocks apart): refresh, once
            cache.save_token_to_cache({**token, "expires_at": 0})
            return work(client)

        try:
            return await asyncio.to_thread(attempt)
        except SpotifyOauthError as e:
            if e.error == "invalid_grant":  # the refresh token is revoked: the user must connect again
                await self.redis.hdel(user_key(user_id, "spotify"), "token")
                raise SpotifyNotConnected("Spotify no longer accepts this connection: connect Spotify again") from None
            raise SpotifyUnavailable(f"Spotify's accounts service failed: {e.error_description or e.error}") from None
        except spotipy.SpotifyException as e:
            raise self._translate(e, player) from None
        except (requests.RequestException, OSError) as e:
            raise SpotifyUnavailable(f"Spotify did not answer: {e}") from None

    @staticmethod
    def _translate(e: spotipy.SpotifyException, player: bool) -> SpotifyError:
        text = _message(e)
        if e.http_status == 401:
            return SpotifyNotConnected(f"Spotify refused the user's token ({text}): connect Spotify again")
        if e.http_status == 404 and (player or e.reason == "NO_ACTIVE_DEVICE"):
            return SpotifyNoActiveDevice()
        if e.http_status == 429 or e.http_status >= 500:
            return SpotifyUnavailable(f"Spotify failed: {text}")
        return SpotifyRefused(f"Spotify refused: {text}")

    # playlists and playback

    async def mood_playlist(self, user_id: str, mood: str, track_ids: list[str]) -> dict[str, Any]:
        """Put ``track_ids`` (the first 100) in the user's playlist for ``mood``, made the first time.

        Returns {"playlist_id", "url", "tracks", "mood", "created"}.
        """
        mood = mood.lower()
        if mood not in EMOTIONS:
            raise ValueError(f"unknown mood {mood!r}")
        ids = [i for i in dict.fromkeys(track_ids) if TRACK_ID.match(i)][:PLAYLIST_MAX]
        key, field = user_key(user_id, "spotify"), f"playlist:{mood}"
        known = await self.redis.hget(key, field)

        def work(client: spotipy.Spotify) -> tuple[str, bool]:
            uris = [f"spotify:track:{i}" for i in ids]
            if known is not None:
                try:
                    client.playlist_replace_items(known.decode(), uris)
                    return known.decode(), False
                except spotipy.SpotifyException as e:
                    if e.http_status != 404:  # 404: the user deleted it; make a new one
                        raise
            made = client.current_user_playlist_create(
                f"emotune: {mood}", public=False, description=f"Music for a {mood} mood, picked by emotune"
            )
            client.playlist_replace_items(made["id"], uris)
            return made["id"], True

        playlist_id, created = await self._as_user(user_id, work)
        await self.redis.hset(key, field, playlist_id)
        log.info("spotify_playlist", user_id=user_id, mood=mood, playlist_id=playlist_id, tracks=len(ids),
                 created=created)  # fmt: skip
        return {"playlist_id": playlist_id, "url": playlist_url(playlist_id), "tracks": ids, "mood": mood,
                "created": created}  # fmt: skip

    async def play(self, user_id: str, track_id: str | None = None) -> None:
        """Play ``track_id`` on the user's active device (resume playback when None)."""
        if track_id is not None and not TRACK_ID.match(track_id):
            raise SpotifyRefused(f"not a Spotify track id: {track_id!r}")
        uris = [f"spotify:track:{track_id}"] if track_id else None
        await self._as_user(user_id, lambda client: client.start_playback(uris=uris), player=True)

    async def next(self, user_id: str) -> None:
        """Skip to the next track on the user's active device."""
        await self._as_user(user_id, lambda client: client.next_track(), player=True)
