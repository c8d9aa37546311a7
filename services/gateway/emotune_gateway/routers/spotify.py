"""A user's Spotify: connect (OAuth), status, disconnect, a playlist for the session's mood, playback.

Errors: 501 when the gateway has no Spotify app credentials; 409 when the user has not connected
Spotify, has no active Spotify device, or Spotify refuses for a reason on their side (no Premium);
502 when Spotify fails or does not answer; 400 for a callback with an unknown state or a refused code.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import grpc
from fastapi import APIRouter, Body, HTTPException, Query, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from emotune.v1 import recommender_pb2
from emotune_common.labels import EMOTIONS
from emotune_gateway import sessions
from emotune_gateway.deps import ClientsDep, Owner
from emotune_gateway.routers.listening import current_mood
from emotune_gateway.spotify import (
    SpotifyBadState,
    SpotifyError,
    SpotifyNotConfigured,
    SpotifyNotConnected,
    SpotifyRefused,
    SpotifyUnavailable,
    state_key,
)

router = APIRouter(prefix="/v1", tags=["spotify"])

#: HTTP status of each Spotify error (the first class in an error's MRO that is here wins).
STATUS = {
    SpotifyNotConfigured: status.HTTP_501_NOT_IMPLEMENTED,
    SpotifyNotConnected: status.HTTP_409_CONFLICT,
    SpotifyRefused: status.HTTP_409_CONFLICT,  # SpotifyNoActiveDevice too
    SpotifyBadState: status.HTTP_400_BAD_REQUEST,
    SpotifyUnavailable: status.HTTP_502_BAD_GATEWAY,
}
ERRORS = {
    409: {"description": "Spotify not connected, no active device, or refused by Spotify"},
    501: {"description": "Spotify is not set up on this server"},
    502: {"description": "Spotify failed or did not answer"},
}
TRACK_ID = Field(pattern=r"^[0-9A-Za-z]{1,64}$", description="A Spotify track id")


def http_status(error: SpotifyError) -> int:
    return next((STATUS[c] for c in type(error).__mro__ if c in STATUS), status.HTTP_502_BAD_GATEWAY)


@contextmanager
def spotify_errors() -> Iterator[None]:
    try:
        yield
    except SpotifyError as e:
        raise HTTPException(http_status(e), str(e)) from None


class PlaylistRef(BaseModel):
    playlist_id: str
    url: str


class SpotifyStatus(BaseModel):
    configured: bool = Field(description="The server has Spotify app credentials")
    connected: bool = Field(description="The user has connected a Spotify account")
    spotify_user_id: str = ""
    display_name: str = ""
    playlists: dict[str, PlaylistRef] = Field(default_factory=dict, description="The user's playlist per mood")


class AuthorizeUrl(BaseModel):
    url: str = Field(description="Send the browser here; Spotify sends it back to /v1/spotify/callback")


class PlaylistIn(BaseModel):
    session_id: str = Field(max_length=64)
    k: int = Field(20, ge=1, le=100, description="Recommended artists to take tracks from")


class Playlist(BaseModel):
    playlist_id: str
    url: str
    mood: str
    tracks: list[str] = Field(description="Spotify ids of the playlist's tracks, in order")
    created: bool = Field(description="True when the playlist was made now, false when refreshed")


class PlayIn(BaseModel):
    track_id: Annotated[str, TRACK_ID] | None = Field(None, description="None: resume playback")


class PlayerCommand(BaseModel):
    action: str
    track_id: str | None = None


@router.get("/users/{user_id}/spotify", response_model=SpotifyStatus, summary="Is my Spotify connected?")
async def spotify_status(user_id: Owner, clients: ClientsDep) -> SpotifyStatus:
    return SpotifyStatus(**await clients.spotify.status(user_id))


@router.get("/users/{user_id}/spotify/authorize", response_model=AuthorizeUrl, responses=ERRORS,
            summary="Start connecting my Spotify account (the URL is good for 10 minutes, once)")  # fmt: skip
async def authorize(user_id: Owner, clients: ClientsDep) -> AuthorizeUrl:
    with spotify_errors():
        return AuthorizeUrl(url=await clients.spotify.authorize_url(user_id))


def _page(title: str, text: str, code: int) -> HTMLResponse:
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>emotune: {html.escape(title)}</title>'
            f'</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>'
            f'<p><a href="/">Back to emotune</a></p></body></html>')  # fmt: skip
    return HTMLResponse(body, status_code=code, headers={"Cache-Control": "no-store"})


@router.get("/spotify/callback", response_class=HTMLResponse, summary="Where Spotify sends the browser back",
            responses={400: {"description": "Unknown or expired state, or Spotify refused"}})  # fmt: skip
async def callback(
    clients: ClientsDep,
    code: Annotated[str, Query(max_length=2048)] = "",
    state: Annotated[str, Query(max_length=128)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    """The one route without an API key: the one-time ``state`` from /authorize names the user."""
    if error:  # the user said no (access_denied): the state is used up all the same
        if state:
            await clients.redis.delete(state_key(state))
        return _page("Spotify not connected", f"Spotify said: {error}. You can close this tab.", 400)
    try:
        await clients.spotify.callback(code, state)
    except SpotifyBadState as e:
        return _page("Spotify not connected", str(e), 400)
    except SpotifyError as e:
        return _page("Spotify not connected", str(e), http_status(e))
    return _page("Spotify connected", "Spotify connected, you can close this tab.", 200)


@router.delete("/users/{user_id}/spotify", response_model=SpotifyStatus, summary="Disconnect my Spotify account")
async def disconnect(user_id: Owner, clients: ClientsDep) -> SpotifyStatus:
    """Forgets the tokens and playlist ids (the playlists stay in Spotify)."""
    await clients.spotify.disconnect(user_id)
    return SpotifyStatus(**await clients.spotify.status(user_id))


@router.post("/users/{user_id}/spotify/playlist", response_model=Playlist, summary="My playlist for the session's mood",
             responses={**ERRORS, 404: {"description": "No such session"},
                        503: {"description": "The recommender is unavailable"}})  # fmt: skip
async def playlist(user_id: Owner, body: PlaylistIn, clients: ClientsDep) -> Playlist:
    """Fills the user's playlist ``emotune: <mood>`` (made the first time, refreshed after) with the
    tracks recommended now for the session's mood (neutral before any face is seen)."""
    if await sessions.get(clients.redis, user_id, body.session_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {body.session_id!r}")
    mood = (await current_mood(clients, user_id, body.session_id)).get("mood", "neutral")
    mood = mood if mood in EMOTIONS else "neutral"
    with spotify_errors():
        if not await clients.spotify.connected(user_id):  # before asking the recommender for nothing
            raise SpotifyNotConnected()
    request = recommender_pb2.RecommendRequest(user_id=user_id, session_id=body.session_id,
                                               mood=EMOTIONS.index(mood) + 1, k=body.k)  # fmt: skip
    try:
        result = await clients.recommender.Recommend(request, timeout=clients.settings.recommender_timeout_s)
    except grpc.aio.AioRpcError as e:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the recommender is unavailable: {e.code().name}",
                            headers={"Retry-After": "2"}) from None  # fmt: skip
    track_ids = [t.spotify_id for r in result.items for t in r.tracks if t.spotify_id]
    if not track_ids:
        raise HTTPException(status.HTTP_409_CONFLICT, "no Spotify tracks among the recommendations yet")
    with spotify_errors():
        return Playlist(**await clients.spotify.mood_playlist(user_id, mood, track_ids))


@router.post("/users/{user_id}/spotify/play", response_model=PlayerCommand, responses=ERRORS,
             summary="Play a track (or resume) on my active Spotify device")  # fmt: skip
async def play(user_id: Owner, clients: ClientsDep, body: Annotated[PlayIn | None, Body()] = None) -> PlayerCommand:
    track_id = body.track_id if body else None
    with spotify_errors():
        await clients.spotify.play(user_id, track_id)
    return PlayerCommand(action="play", track_id=track_id)


@router.post("/users/{user_id}/spotify/next", response_model=PlayerCommand, responses=ERRORS,
             summary="Skip to the next track on my active Spotify device")  # fmt: skip
async def next_track(user_id: Owner, clients: ClientsDep) -> PlayerCommand:
    with spotify_errors():
        await clients.spotify.next(user_id)
    return PlayerCommand(action="next")
