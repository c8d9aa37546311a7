"""A local fake of the parts of the Spotify Web API emotune uses. Tests never talk to the real Spotify.

Accounts: ``POST /api/token`` with the grants ``client_credentials`` (the app's token, always
``fake-token``), ``authorization_code`` (a code from :meth:`FakeSpotify.issue_code`, or from
``GET /authorize``, which redirects at once as if the user had agreed) and ``refresh_token``.
User tokens expire after :attr:`FakeSpotify.expires_in` seconds, and an expired one is refused (401).

Web API (under ``/v1``): track search by artist, ``GET /tracks?ids=``, ``GET /me``, playlists
(``POST /me/playlists`` and ``/users/{id}/playlists``, ``GET /playlists/{id}``, ``GET``/``PUT``
``/playlists/{id}/items`` and ``/tracks``), and the player (``PUT /me/player/play``,
``POST /me/player/next``: 404 ``NO_ACTIVE_DEVICE`` while :attr:`FakeSpotify.active_device` is false).
What happened is kept for tests to assert: :attr:`calls` counts requests by name, :attr:`playlists`
and :attr:`player` hold the playlists and the player commands.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from ..conftest import free_port

CLIENT_TOKEN = "fake-token"


@dataclass
class UserToken:
    user_id: str
    expires_at: float


@dataclass
class FakePlaylist:
    id: str
    owner: str
    name: str
    public: bool
    description: str
    uris: list[str] = field(default_factory=list)

    def json(self, port: int) -> dict:
        return {"id": self.id, "name": self.name, "public": self.public, "description": self.description,
                "owner": {"id": self.owner}, "uri": f"spotify:playlist:{self.id}",
                "href": f"http://127.0.0.1:{port}/v1/playlists/{self.id}",
                "external_urls": {"spotify": f"https://open.spotify.com/playlist/{self.id}"},
                "tracks": {"total": len(self.uris)}}  # fmt: skip


def _error(status: int, message: str, reason: str | None = None) -> JSONResponse:
    body: dict = {"status": status, "message": message}
    if reason:
        body["reason"] = reason
    return JSONResponse({"error": body}, status_code=status)


class FakeSpotify:
    """Artists are looked up by exact name (case-insensitive); ``calls`` counts requests by name."""

    def __init__(
        self, artists: dict[str, list[str]] | None = None, *, expires_in: int = 3600, generate: bool = False
    ) -> None:
        """``generate``: a search for an artist not in ``artists`` finds three made-up tracks (for tests
        where a recommender looks up whatever artists it ranks first)."""
        artists = artists or {}
        self.generate = generate
        self.artists = {name.lower(): (f"artist{i}", name, tracks) for i, (name, tracks) in enumerate(artists.items())}
        #: track id -> {"name", "preview_url", "album_art_url"}; the artists' tracks are in it too.
        self.tracks: dict[str, dict] = {}
        for artist_id, _name, tracks in self.artists.values():
            for i, t in enumerate(tracks):
                self.add_track(f"{artist_id}t{i}", t, album_art_url=f"https://i.scdn.co/image/{artist_id}{i}")
        self.calls: Counter[str] = Counter()
        self.down = False
        self.expires_in = expires_in
        self.active_device = True
        self.premium = True
        self.users: dict[str, str] = {}  # Spotify user id -> display name
        self.codes: dict[str, str] = {}  # authorization code -> user id (one use)
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> user id
        self.user_tokens: dict[str, UserToken] = {}
        self.playlists: dict[str, FakePlaylist] = {}
        #: player commands, in order: {"user", "action": "play"|"next", "uris": [...] | None}
        self.player: list[dict] = []
        self.token_requests: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self.port = free_port()
        app = Starlette(routes=[
            Route("/authorize", self.authorize),
            Route("/api/token", self.token, methods=["POST"]),
            Route("/v1/search", self.search),
            Route("/v1/tracks", self.get_tracks),
            Route("/v1/tracks/", self.get_tracks),  # spotipy asks for "tracks/?ids=..."
            Route("/v1/me", self.me),
            Route("/v1/me/playlists", self.create_playlist, methods=["POST"]),
            Route("/v1/users/{user_id}/playlists", self.create_playlist, methods=["POST"]),
            Route("/v1/playlists/{playlist_id}", self.get_playlist),
            Route("/v1/playlists/{playlist_id}/items", self.playlist_items, methods=["GET", "PUT"]),
            Route("/v1/playlists/{playlist_id}/tracks", self.playlist_items, methods=["GET", "PUT"]),
            Route("/v1/me/player/play", self.play, methods=["PUT"]),
            Route("/v1/me/player/next", self.next, methods=["POST"]),
        ])  # fmt: skip
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/"

    @property
    def accounts_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/token"

    @property
    def authorize_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/authorize"

    def __enter__(self) -> FakeSpotify:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    # what tests set up and look at

    def add_track(self, track_id: str, name: str, preview_url: str | None = None, album_art_url: str = "") -> None:
        self.tracks[track_id] = {"name": name, "preview_url": preview_url, "album_art_url": album_art_url}

    def issue_code(self, user_id: str = "fakeuser", display_name: str = "") -> str:
        """An authorization code for ``user_id``, as Spotify's /authorize would give the browser."""
        self.users.setdefault(user_id, display_name or user_id.title())
        code = f"code-{next(self._ids)}"
        self.codes[code] = user_id
        return code

    def expire_tokens(self) -> None:
        """Every user access token expires now (their refresh tokens stay good)."""
        for token in self.user_tokens.values():
            token.expires_at = 0

    def revoke(self, user_id: str) -> None:
        """The user removed the app: their access and refresh tokens stop working."""
        self.user_tokens = {k: v for k, v in self.user_tokens.items() if v.user_id != user_id}
        self.refresh_tokens = {k: v for k, v in self.refresh_tokens.items() if v != user_id}

    def playlists_of(self, user_id: str) -> list[FakePlaylist]:
        return [p for p in self.playlists.values() if p.owner == user_id]

    # accounts

    async def authorize(self, request: Request) -> Response:
        """The user agrees at once (as ``fakeuser``): back to the redirect URI with a code and the state."""
        q = request.query_params
        if not q.get("client_id") or q.get("response_type") != "code" or not q.get("redirect_uri"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        params = {"code": self.issue_code(q.get("user", "fakeuser"))}
        if "state" in q:
            params["state"] = q["state"]
        return RedirectResponse(f"{q['redirect_uri']}?{urlencode(params)}", status_code=303)

    async def token(self, request: Request) -> JSONResponse:
        self.calls["token"] += 1
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_requests.append(form)
        if "authorization" not in request.headers:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        grant = form.get("grant_type")
        if grant == "client_credentials":
            return JSONResponse({"access_token": CLIENT_TOKEN, "token_type": "Bearer", "expires_in": 3600})
        if grant == "authorization_code":
            self.calls["token:authorization_code"] += 1
            user_id = self.codes.pop(form.get("code", ""), None)
            if user_id is None or not form.get("redirect_uri"):
                return JSONResponse({"error": "invalid_grant", "error_description": "Invalid authorization code"},
                                    status_code=400)  # fmt: skip
            refresh = f"refresh-{next(self._ids)}"
            self.refresh_tokens[refresh] = user_id
            return JSONResponse(self._user_token(user_id, form.get("scope", "")) | {"refresh_token": refresh})
        if grant == "refresh_token":
            self.calls["token:refresh_token"] += 1
            user_id = self.refresh_tokens.get(form.get("refresh_token", ""))
            if user_id is None:
                return JSONResponse({"error": "invalid_grant", "error_description": "Refresh token revoked"},
                                    status_code=400)  # fmt: skip
            return JSONResponse(self._user_token(user_id, ""))  # Spotify may leave the refresh token out
        return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)

    def _user_token(self, user_id: str, scope: str) -> dict:
        access = f"user-{user_id}-{next(self._ids)}"
        self.user_tokens[access] = UserToken(user_id, time.time() + self.expires_in)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in, "scope": scope}

    # the Web API

    def _bearer(self, request: Request) -> str:
        return request.headers.get("authorization", "").removeprefix("Bearer ").strip()

    def _app_or_user(self, request: Request) -> JSONResponse | None:
        """None when the request carries a good token of the app or of a user; else the error."""
        if (down := self._unavailable()) is not None:
            return down
        token = self._bearer(request)
        if token == CLIENT_TOKEN:
            return None
        found = self.user_tokens.get(token)
        if found is None:
            return _error(401, "Invalid access token")
        if found.expires_at < time.time():
            return _error(401, "The access token expired")
        return None

    def _user(self, request: Request) -> str | JSONResponse:
        """The user of a request that needs a user's token, or the error to answer."""
        if (error := self._app_or_user(request)) is not None:
            return error
        found = self.user_tokens.get(self._bearer(request))
        if found is None:  # the app's token cannot act for a user
            return _error(401, "This endpoint needs a user's token")
        return found.user_id

    def _unavailable(self) -> JSONResponse | None:
        return _error(503, "down") if self.down else None

    async def search(self, request: Request) -> JSONResponse:
        """Track search by artist name (``artist:"Name"``), the artist's tracks in popularity order."""
        self.calls["search"] += 1
        if (error := self._app_or_user(request)) is not None:
            return error
        query = request.query_params.get("q", "").removeprefix("artist:").strip('"')
        found = self.artists.get(query.lower())
        if found is None and self.generate and query:
            artist_id = "g" + hashlib.sha1(query.lower().encode()).hexdigest()[:16]
            found = self.artists[query.lower()] = (artist_id, query, [f"{query} song {i}" for i in range(3)])
            for i, t in enumerate(found[2]):
                self.add_track(f"{artist_id}t{i}", t, album_art_url=f"https://i.scdn.co/image/{artist_id}{i}")
        items = []
        if found is not None:
            artist_id, artist_name, tracks = found
            artist = {"id": artist_id, "name": artist_name,
                      "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"}}  # fmt: skip
            items = [self._track(f"{artist_id}t{i}") | {"artists": [artist]} for i in range(len(tracks))]
        return JSONResponse({"tracks": {"items": items, "total": len(items)}})

    def _track(self, track_id: str) -> dict | None:
        t = self.tracks.get(track_id)
        if t is None:
            return None
        images = [{"url": t["album_art_url"], "width": 640, "height": 640}] if t["album_art_url"] else []
        return {"id": track_id, "name": t["name"], "uri": f"spotify:track:{track_id}", "preview_url": t["preview_url"],
                "external_urls": {"spotify": f"https://open.spotify.com/track/{track_id}"},
                "album": {"images": images}}  # fmt: skip

    async def get_tracks(self, request: Request) -> JSONResponse:
        """Several tracks by id (at most 50); an unknown id gives null in its place, as Spotify does."""
        self.calls["tracks"] += 1
        if (error := self._app_or_user(request)) is not None:
            return error
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids or len(ids) > 50:
            return _error(400, "ids: 1 to 50 ids")
        self.calls["tracks:ids"] += len(ids)
        return JSONResponse({"tracks": [self._track(i) for i in ids]})

    async def me(self, request: Request) -> JSONResponse:
        self.calls["me"] += 1
        user = self._user(request)
        if isinstance(user, JSONResponse):
            return user
        return JSONResponse({"id": user, "display_name": self.users.get(user, user), "type": "user",
                             "uri": f"spotify:user:{user}"})  # fmt: skip

    async def create_playlist(self, request: Request) -> JSONResponse:
        self.calls["create_playlist"] += 1
        user = self._user(request)
        if isinstance(user, JSONResponse):
            return user
        if request.path_params.get("user_id", user) != user:
            return _error(403, "You cannot create a playlist for another user")
        body = json.loads(await request.body() or b"{}")
        if not body.get("name"):
            return _error(400, "Missing required field: name")
        playlist = FakePlaylist(f"pl{next(self._ids)}", user, body["name"], bool(body.get("public", True)),
                                body.get("description", ""))  # fmt: skip
        self.playlists[playlist.id] = playlist
        return JSONResponse(playlist.json(self.port), status_code=201)

    def _playlist(self, request: Request, write: bool) -> FakePlaylist | JSONResponse:
        user = self._user(request)
        if isinstance(user, JSONResponse):
            return user
        playlist = self.playlists.get(request.path_params["playlist_id"])
        if playlist is None:
            return _error(404, "Not found.")
        if write and playlist.owner != user:
            return _error(403, "You cannot modify another user's playlist")
        return playlist

    async def get_playlist(self, request: Request) -> JSONResponse:
        self.calls["get_playlist"] += 1
        playlist = self._playlist(request, write=False)
        return playlist if isinstance(playlist, JSONResponse) else JSONResponse(playlist.json(self.port))

    async def playlist_items(self, request: Request) -> JSONResponse:
        """GET the items, or PUT ``{"uris": [...]}`` to replace them all (at most 100)."""
        write = request.method == "PUT"
        self.calls["replace_items" if write else "get_items"] += 1
        playlist = self._playlist(request, write=write)
        if isinstance(playlist, JSONResponse):
            return playlist
        if write:
            uris = json.loads(await request.body() or b"{}").get("uris", [])
            if len(uris) > 100 or not all(re.fullmatch(r"spotify:(track|episode):[0-9A-Za-z]+", u) for u in uris):
                return _error(400, "uris: at most 100 spotify:track: URIs")
            playlist.uris = list(uris)
            return JSONResponse({"snapshot_id": f"snap{next(self._ids)}"}, status_code=200)
        items = [{"track": self._track(u.rsplit(":", 1)[1]) or {"uri": u}} for u in playlist.uris]
        return JSONResponse({"items": items, "total": len(items), "next": None})

    def _player(self, request: Request) -> str | JSONResponse:
        user = self._user(request)
        if isinstance(user, JSONResponse):
            return user
        if not self.premium:
            return _error(403, "Player command failed: Premium required", "PREMIUM_REQUIRED")
        if not self.active_device:
            return _error(404, "Player command failed: No active device found", "NO_ACTIVE_DEVICE")
        return user

    async def play(self, request: Request) -> Response:
        self.calls["play"] += 1
        user = self._player(request)
        if isinstance(user, JSONResponse):
            return user
        body = json.loads(await request.body() or b"{}")
        self.player.append({"user": user, "action": "play", "uris": body.get("uris")})
        return Response(status_code=204)

    async def next(self, request: Request) -> Response:
        self.calls["next"] += 1
        user = self._player(request)
        if isinstance(user, JSONResponse):
            return user
        self.player.append({"user": user, "action": "next", "uris": None})
        return Response(status_code=204)
