"""A session's mood, its history, its recommendations, and feedback on them."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Literal

import grpc
from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel, Field

from emotune.v1 import messages_pb2, recommender_pb2
from emotune_common.ids import make_header
from emotune_common.keys import session_key
from emotune_common.labels import EMOTIONS
from emotune_gateway import metrics, views
from emotune_gateway.deps import ClientsDep
from emotune_gateway.routers.sessions import OwnedSession

router = APIRouter(prefix="/v1/users/{user_id}/sessions/{session_id}", tags=["listening"])

Label = Literal["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


class LastEmotion(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]


class Mood(BaseModel):
    mood: str
    confidence: float
    smoothed: dict[str, float]
    valence: float
    arousal: float
    updated_at_us: int
    last: LastEmotion | None = None


class MoodPoint(BaseModel):
    t: int = Field(description="Capture time, microseconds since the epoch")
    label: str
    confidence: float
    probabilities: list[float]
    mood: str | None = None
    smoothed: list[float] | None = None


class MoodHistory(BaseModel):
    points: list[MoodPoint]


class Track(BaseModel):
    spotify_id: str
    name: str
    spotify_url: str
    embed_url: str
    preview_url: str
    album_art_url: str


class Recommendation(BaseModel):
    """A recommended track, with its artist."""

    track_id: str = Field(description="Spotify track id")
    title: str
    artist_id: str = Field(description='The Last.fm artist id, or "x:<name>" for an artist only the catalogue has')
    artist_name: str
    mood_tag: str = Field(description="From the track's own valence and energy: happy/energetic, calm/content, ...")
    valence: float
    energy: float
    genres: list[str]
    popularity: int
    duration_ms: int = Field(description="0 where unknown")
    score: float
    taste_score: float = Field(description="0..1: how much the listener's taste favours it")
    mood_fit: float = Field(description="0..1: how well it meets the mood (and, under uplift, lifts it)")
    reason: str
    lift: float = Field(description="Mean change of listeners' mood toward content while it played, in this mood")
    lift_plays: int
    lifted: bool = Field(description="Enough plays show it lifts this mood")
    spotify_url: str = Field(description="The track on open.spotify.com")
    embed_url: str = Field(description="Spotify's embed player of the track: plays with no credentials")
    artist_spotify_url: str
    tracks: list[Track] = Field(description="The track again, in the shape of artist-level clients")


class RecommendationSet(BaseModel):
    session_id: str
    mood: str | None
    policy: str | None
    model_version: str
    created_at_us: int
    items: list[Recommendation]


class FeedbackIn(BaseModel):
    action: Literal["play", "skip", "like", "dislike", "genre_change"] = Field(
        description="play: played to the end; skip, like, dislike; genre_change: only this genre from now on"
    )
    track_id: str = Field("", max_length=64, description="The track (every action but genre_change)")
    artist_id: str = Field("", max_length=64, description="Artist-level feedback, for clients without track ids")
    genre: str = Field("", max_length=100, description="For genre_change: the genre wanted")
    started_at_us: int = Field(0, ge=0, description="For play: when the track began, microseconds since the epoch "
                               "(the mood before and during it is implicit feedback)")  # fmt: skip


class FeedbackAccepted(BaseModel):
    feedback_id: str
    applied: bool = Field(description="Applied now; false: queued on emotune:feedback while the recommender is away")


async def current_mood(clients, user_id: str, session_id: str) -> dict[str, str]:
    raw = await clients.redis.hgetall(session_key(user_id, session_id, "mood"))
    return {k.decode(): v.decode() for k, v in raw.items()}


@router.get("/mood", response_model=Mood, summary="The session's current (smoothed) mood",
            responses={404: {"description": "No face seen in this session yet"}})  # fmt: skip
async def mood(session: OwnedSession, clients: ClientsDep) -> Mood:
    state = await current_mood(clients, session["user_id"], session["id"])
    if not state:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no mood yet: no face has been read in this session")
    last = None
    if state.get("last_label"):
        last = LastEmotion(label=state["last_label"], confidence=float(state["last_confidence"]),
                           probabilities=views.by_label(json.loads(state["last_probabilities"])))  # fmt: skip
    return Mood(
        mood=state["mood"], confidence=float(state["confidence"]),
        smoothed=views.by_label(json.loads(state["smoothed"])), valence=float(state["valence"]),
        arousal=float(state["arousal"]), updated_at_us=int(state["updated_at_us"]), last=last,
    )  # fmt: skip


@router.get("/mood/history", response_model=MoodHistory, summary="The session's recent emotions and mood, oldest first")
async def history(
    session: OwnedSession, clients: ClientsDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
) -> MoodHistory:
    raw = await clients.redis.lrange(session_key(session["user_id"], session["id"], "timeline"), -limit, -1)
    return MoodHistory(points=[MoodPoint(**json.loads(p)) for p in raw])


@router.get("/recommendations", response_model=RecommendationSet, summary="Music for the session's mood and taste")
async def recommendations(
    session: OwnedSession,
    clients: ClientsDep,
    k: Annotated[int, Query(ge=1, le=100)] = 10,
    policy: Annotated[Literal["match", "uplift"] | None, Query(description="Default: the recommender's")] = None,
    genre: Annotated[list[Annotated[str, Field(max_length=100)]] | None, Query(max_length=20)] = None,
    mood: Annotated[Label | None, Query(description="Ask for this mood instead of the session's")] = None,
) -> dict[str, Any]:
    if mood is None:
        mood = (await current_mood(clients, session["user_id"], session["id"])).get("mood", "neutral")
    request = recommender_pb2.RecommendRequest(
        user_id=session["user_id"], session_id=session["id"], mood=EMOTIONS.index(mood) + 1, k=k,
        policy=messages_pb2.Policy.Value(policy.upper()) if policy else 0, genres=genre or [],
    )  # fmt: skip
    started = time.perf_counter()
    try:
        result = await clients.recommender.Recommend(request, timeout=clients.settings.recommender_timeout_s)
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, e.details()) from None
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the recommender is unavailable: {e.code().name}",
                            headers={"Retry-After": "2"}) from None  # fmt: skip
    finally:
        metrics.RECOMMEND_SECONDS.observe(time.perf_counter() - started)
    body = views.recommendations(result)
    await clients.spotify.enrich(body["items"])
    return body


@router.post("/feedback", status_code=status.HTTP_202_ACCEPTED, response_model=FeedbackAccepted,
             summary="Play, skip, like, dislike, or change genre: a fresh set follows on the event stream",
             responses={404: {"description": "No such track (or artist)"}})  # fmt: skip
async def feedback(body: FeedbackIn, session: OwnedSession, clients: ClientsDep) -> FeedbackAccepted:
    if body.action == "genre_change" and not body.genre.strip():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "genre_change needs a genre")
    if body.action != "genre_change" and not (body.track_id or body.artist_id):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{body.action} needs a track_id")
    state = await current_mood(clients, session["user_id"], session["id"])
    message = messages_pb2.Feedback(
        header=make_header(session["id"], session["user_id"]),
        action=messages_pb2.FeedbackAction.Value(body.action.upper()), artist_id=body.artist_id,
        track_id=body.track_id, genre=body.genre.strip(), started_at_us=body.started_at_us,
        mood=EMOTIONS.index(state["mood"]) + 1 if state.get("mood") in EMOTIONS else 0,
    )  # fmt: skip
    try:  # applied now, so that a bad track is a clear error here and not a dead letter later
        await clients.recommender.Feedback(message, timeout=clients.settings.recommender_timeout_s)
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, e.details()) from None
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, e.details()) from None
        await clients.feedback.publish(message)  # the recommender applies it when it is back
        return FeedbackAccepted(feedback_id=message.header.id, applied=False)
    return FeedbackAccepted(feedback_id=message.header.id, applied=True)
