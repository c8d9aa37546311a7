"""The running emotune system as real processes, for the browser tests.

capture (uploads on) -> inference (over a model server) -> recommender (LightFM, tracks from a fake
Spotify that knows every artist of the catalogue) -> gateway (REST, WebSocket, the page), on free
ports, over the tests' own Redis servers (tests/processes.py's :class:`System`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from ..fakes.spotify import FakeSpotify
from ..processes import PATIENCE_S, Service, System

TITLE_WORDS = (
    ("Golden", "Paper", "Midnight", "Electric", "Quiet", "Silver", "Wild", "Neon", "Broken", "Summer"),
    ("Hearts", "Rain", "Highway", "Echoes", "Morning", "Lights", "River", "Dreams", "Fire", "Waves"),
)


def track_titles(artist: str, n: int = 3) -> list[str]:
    """``n`` made-up but stable song titles for an artist."""
    seed = hashlib.sha1(artist.encode()).digest()
    return [f"{TITLE_WORDS[0][seed[2 * i] % 10]} {TITLE_WORDS[1][seed[2 * i + 1] % 10]}" for i in range(n)]


def catalogue_spotify() -> FakeSpotify:
    """A fake Spotify with three tracks for every artist the recommender can recommend."""
    from emotune_recommender.data import load_music

    names = load_music().artists["name"].astype(str)
    return FakeSpotify({name: track_titles(name) for name in names})


@dataclass
class EmotuneSystem(System):
    """Start with :meth:`start`, stop with :meth:`stop`; ``gateway_url`` is the gateway (and the page)."""

    spotify: FakeSpotify = field(kw_only=True)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{
            "EMOTUNE_STREAM_BLOCK_MS": "50",
            "SPOTIPY_CLIENT_ID": "emotune-test",
            "SPOTIPY_CLIENT_SECRET": "emotune-test-secret",
            "EMOTUNE_SPOTIFY_API_URL": self.spotify.api_url,
            "EMOTUNE_SPOTIFY_ACCOUNTS_URL": self.spotify.accounts_url,
            **extra,
        })  # fmt: skip

    def start_gateway(self, **env: str) -> Service:
        return super().start_gateway(EMOTUNE_SPOTIFY_AUTHORIZE_URL=self.spotify.authorize_url, **env)

    def start(self, within: float = PATIENCE_S) -> EmotuneSystem:
        """Start every service at once, then wait until each answers."""
        self.start_redis()
        self.start_recommender()
        self.start_capture(EMOTUNE_CAPTURE_UPLOADS="true", EMOTUNE_CAPTURE_SOURCES="")
        self.start_worker("inference")
        self.start_gateway()
        deadline = time.monotonic() + within
        for name in ("capture", "inference", "gateway"):
            self.wait_http(name, "/readyz", deadline - time.monotonic())
        self.wait_grpc(self.recommender_port, deadline - time.monotonic(), "recommender")
        return self

    def restart_gateway(self, within: float = PATIENCE_S) -> None:
        """Stop the gateway (its clients lose their connections) and start it again on the same port."""
        self.services["gateway"].stop()
        self.start_gateway()
        self.wait_http("gateway", "/readyz", within)
