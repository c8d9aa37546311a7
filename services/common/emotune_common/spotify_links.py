"""Links to Spotify that need no credentials: a track's page, its embed player, an artist's page,
a search. Every service builds them here, so that they agree."""

from __future__ import annotations

from urllib.parse import quote


def track_url(track_id: str) -> str:
    return f"https://open.spotify.com/track/{track_id}"


def embed_url(track_id: str) -> str:
    """The embed player of a track: it plays (a preview, or the whole track for a listener signed in
    to Spotify in the browser) with no credentials of ours."""
    return f"https://open.spotify.com/embed/track/{track_id}"


def artist_url(artist_id: str) -> str:
    return f"https://open.spotify.com/artist/{artist_id}"


def search_url(text: str) -> str:
    return f"https://open.spotify.com/search/{quote(text)}"
