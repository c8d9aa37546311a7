"""A local fake of the parts of the Spotify Web API emotune uses: client-credentials tokens and
track search by artist. Tests never talk to the real Spotify."""

from __future__ import annotations

import threading
import time
from collections import Counter
from urllib.parse import parse_qs

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ..conftest import free_port


class FakeSpotify:
    """Artists are looked up by exact name (case-insensitive); ``calls`` counts requests by path."""

    def __init__(self, artists: dict[str, list[str]]) -> None:
        self.artists = {name.lower(): (f"artist{i}", name, tracks) for i, (name, tracks) in enumerate(artists.items())}
        self.calls: Counter[str] = Counter()
        self.down = False
        self.port = free_port()
        app = Starlette(routes=[
            Route("/api/token", self.token, methods=["POST"]),
            Route("/v1/search", self.search),
        ])  # fmt: skip
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/"

    @property
    def accounts_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/token"

    def __enter__(self) -> FakeSpotify:
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *_) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def _unavailable(self) -> JSONResponse | None:
        return JSONResponse({"error": {"status": 503, "message": "down"}}, status_code=503) if self.down else None

    async def token(self, request: Request) -> JSONResponse:
        self.calls["token"] += 1
        form = parse_qs((await request.body()).decode())
        if form.get("grant_type") != ["client_credentials"] or "authorization" not in request.headers:
            return JSONResponse({"error": "invalid_client"}, status_code=400)
        return JSONResponse({"access_token": "fake-token", "token_type": "Bearer", "expires_in": 3600})

    async def search(self, request: Request) -> JSONResponse:
        """Track search by artist name (``artist:"Name"``), the artist's tracks in popularity order."""
        self.calls["search"] += 1
        if (down := self._unavailable()) is not None:
            return down
        name = request.query_params.get("q", "").removeprefix("artist:").strip('"').lower()
        found = self.artists.get(name)
        items = []
        if found is not None:
            artist_id, artist_name, tracks = found
            artist = {"id": artist_id, "name": artist_name,
                      "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"}}  # fmt: skip
            items = [{"id": f"{artist_id}t{i}", "name": t, "preview_url": None, "artists": [artist],
                      "external_urls": {"spotify": f"https://open.spotify.com/track/{artist_id}t{i}"},
                      "album": {"images": [{"url": f"https://i.scdn.co/image/{artist_id}{i}"}]}}
                     for i, t in enumerate(tracks)]  # fmt: skip
        return JSONResponse({"tracks": {"items": items, "total": len(items)}})
