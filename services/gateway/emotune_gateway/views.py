"""Messages as the JSON the API and the subscriptions send (one shape for both)."""

from __future__ import annotations

from typing import Any

from emotune.v1 import messages_pb2
from emotune_common.labels import EMOTIONS
from emotune_common.spotify_links import embed_url


def label(value: int) -> str | None:
    """The lower-case name of an Emotion enum value (None when unspecified)."""
    return EMOTIONS[value - 1] if 1 <= value <= len(EMOTIONS) else None


def policy(value: int) -> str | None:
    """The lower-case name of a Policy enum value: None when unspecified, or of a value newer than this
    gateway (a recommender that knows more policies: its sets still reach the listener)."""
    if value not in messages_pb2.Policy.values() or not value:
        return None
    return messages_pb2.Policy.Name(value).lower()


def by_label(values) -> dict[str, float]:
    return {name: round(float(v), 4) for name, v in zip(EMOTIONS, values, strict=False)}


def emotion(event: messages_pb2.EmotionEvent) -> dict[str, Any]:
    b = event.box
    return {
        "label": label(event.label),
        "confidence": round(event.confidence, 4),
        "probabilities": by_label(event.probabilities),
        "captured_at_us": event.header.captured_at_us,
        "frame_number": event.frame_number,
        "box": {"x": b.x, "y": b.y, "width": b.width, "height": b.height},
        "model_version": event.model_version,
    }


def mood(change: messages_pb2.MoodChange) -> dict[str, Any]:
    return {
        "mood": label(change.mood),
        "previous_mood": label(change.previous_mood),
        "confidence": round(change.confidence, 4),
        "smoothed": by_label(change.smoothed),
        "valence": round(change.valence, 3),
        "arousal": round(change.arousal, 3),
        "captured_at_us": change.header.captured_at_us,
    }


def track(t: messages_pb2.Track) -> dict[str, Any]:
    return {
        "spotify_id": t.spotify_id,
        "name": t.name,
        "spotify_url": t.spotify_url,
        "embed_url": embed_url(t.spotify_id) if t.spotify_id else "",
        "preview_url": t.preview_url,
        "album_art_url": t.album_art_url,
    }


def recommendations(rs: messages_pb2.RecommendationSet) -> dict[str, Any]:
    return {
        "session_id": rs.header.session_id,
        "mood": label(rs.mood),
        "policy": policy(rs.policy),
        "model_version": rs.model_version,
        "created_at_us": rs.header.created_at_us,
        "items": [recommendation(r) for r in rs.items],
    }


def recommendation(r: messages_pb2.Recommendation) -> dict[str, Any]:
    """One recommended track, with its artist. ``tracks`` repeats the track in the shape that
    artist-level clients read (one entry)."""
    return {
        "track_id": r.track_id,
        "title": r.title,
        "artist_id": r.artist_id,
        "artist_name": r.artist_name,
        "mood_tag": r.mood_tag,
        "valence": round(r.valence, 3),
        "energy": round(r.energy, 3),
        "genres": list(r.genres),
        "popularity": r.popularity,
        "duration_ms": r.duration_ms,
        "score": round(r.score, 4),
        "taste_score": round(r.taste_score, 4),
        "mood_fit": round(r.mood_fit, 4),
        "reason": r.reason,
        "lift": round(r.lift, 4),
        "lift_plays": r.lift_plays,
        "lifted": r.lifted,
        "spotify_url": r.spotify_url,
        "embed_url": r.embed_url or (embed_url(r.track_id) if r.track_id else ""),
        "artist_spotify_url": r.artist_spotify_url,
        "tracks": [track(t) for t in r.tracks],
    }
