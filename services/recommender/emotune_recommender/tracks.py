"""Tracks for recommended artists, from Spotify (spotipy), cached in Redis.

With client credentials (``SPOTIPY_CLIENT_ID``, ``SPOTIPY_CLIENT_SECRET``) each artist is looked up
once (a track search by artist, most popular first) and cached for ``ttl_s``. Without them, or when Spotify fails,
an artist gets one entry: an open.spotify.com search link for its name, so every recommendation
can still be opened in Spotify.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass

import redis.asyncio as aioredis
import spotipy
from spotipy.cache_handler import MemoryCacheHandler
from spotipy.oauth2 import SpotifyClientCredentials, SpotifyOauthError

from emotune.v1 import messages_pb2
from emotune_common.logs import get_logger
from emotune_common.spotify_links import search_url
from emotune_recommender.data import normalise_name

log = get_logger("emotune.recommender.tracks")


@dataclass(frozen=True)
class SpotifyConfig:
    client_id: str = ""
    client_secret: str = ""
    api_url: str = "https://api.spotify.com/v1/"
    accounts_url: str = "https://accounts.spotify.com/api/token"
    market: str = "US"
    timeout_s: float = 5.0


def _client(config: SpotifyConfig) -> spotipy.Spotify | None:
    if not (config.client_id and config.client_secret):
        return None

    class Credentials(SpotifyClientCredentials):
        OAUTH_TOKEN_URL = config.accounts_url

    auth = Credentials(config.client_id, config.client_secret, cache_handler=MemoryCacheHandler())
    client = spotipy.Spotify(auth_manager=auth, requests_timeout=config.timeout_s, retries=1)
    client.prefix = config.api_url
    return client


@dataclass(frozen=True)
class TrackInfo:
    spotify_id: str
    name: str
    spotify_url: str
    preview_url: str = ""
    album_art_url: str = ""

    def message(self) -> messages_pb2.Track:
        return messages_pb2.Track(**asdict(self))


class TrackLookup:
    def __init__(self, redis: aioredis.Redis, config: SpotifyConfig, ttl_s: int = 86_400, per_artist: int = 3):
        self.redis = redis
        self.config = config
        self.ttl_s = ttl_s
        self.per_artist = per_artist
        self._spotify = _client(config)

    @property
    def enabled(self) -> bool:
        return self._spotify is not None

    async def tracks(self, artist: str) -> tuple[str, list[TrackInfo]]:
        """(the artist's Spotify link, its top tracks); a search link and no tracks without Spotify."""
        if self._spotify is None:
            return search_url(artist), []
        key = f"emotune:tracks:{normalise_name(artist)}"
        cached = await self.redis.get(key)
        if cached is not None:
            link, items = json.loads(cached)
            return link, [TrackInfo(**t) for t in items]
        try:
            link, found = await asyncio.to_thread(self._lookup, artist)
        except (spotipy.SpotifyException, SpotifyOauthError, OSError, ValueError) as e:  # degrade, do not fail
            log.warning("spotify_failed", artist=artist, error=str(e))
            return search_url(artist), []
        await self.redis.set(key, json.dumps([link, [asdict(t) for t in found]]), ex=self.ttl_s)
        return link, found

    def _lookup(self, artist: str) -> tuple[str, list[TrackInfo]]:
        """One track search for the artist (Spotify deprecated artist_top_tracks in 2024)."""
        result = self._spotify.search(q=f'artist:"{artist}"', type="track", limit=10, market=self.config.market)
        wanted = normalise_name(artist)
        items = [t for t in result.get("tracks", {}).get("items", [])
                 if any(normalise_name(a.get("name", "")) == wanted for a in t.get("artists", []))]  # fmt: skip
        if not items:
            return search_url(artist), []
        tracks = [
            TrackInfo(
                spotify_id=t["id"],
                name=t["name"],
                spotify_url=t.get("external_urls", {}).get("spotify", f"https://open.spotify.com/track/{t['id']}"),
                preview_url=t.get("preview_url") or "",
                album_art_url=(t.get("album", {}).get("images") or [{}])[0].get("url", ""),
            )
            for t in items[: self.per_artist]
        ]
        first = next(a for a in items[0]["artists"] if normalise_name(a.get("name", "")) == wanted)
        link = first.get("external_urls", {}).get("spotify", f"https://open.spotify.com/artist/{first.get('id', '')}")
        return link, tracks
