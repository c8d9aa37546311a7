"""What a listener did, kept in Redis, and what it adds to their next list.

Per listener (``emotune:user:<id>:<kind>``, so deleting a user deletes it all):
- ``liked:<mood>``: track ids liked or played to the end in that mood (their artists join the
  listener's row of plays for lists in that mood); ``disliked``: track ids, never again;
  ``skipped``, ``played``: track id -> when (recent ones stay out of the lists for a while);
  ``genres``, ``artists``: what they picked to start with;
- ``adjust:<mood>``: a hash of taste adjustments learnt from feedback given in that mood, ``t:<track
  id>`` and ``a:<artist id>`` -> a sum of steps, capped at +-1; ``f:<i>`` -> the sum of steps times
  the tracks' standardised audio features and ``f:w`` -> the sum of the steps' sizes: their ratio is
  the sound the listener wants in that mood (the profile);
- ``lift:<mood>``: this listener's implicit feedback, ``<track id>:n`` (plays measured) and
  ``<track id>:sum`` (the change of their mood over those plays).
Across listeners, ``emotune:lift:<mood>`` holds the same figures for everyone.

Keeping this in Redis and applying it at ranking time, rather than in an in-memory model, means
the next request shows feedback at once, any recommender replica serves it, and a restart keeps it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np
import redis.asyncio as aioredis

from emotune_common.keys import session_key, user_key
from emotune_common.labels import EMOTIONS
from emotune_recommender.mood import EMOTION_POINTS, UPLIFT_GOAL

#: taste steps per action: the track itself, its artist, tracks like it
STEPS = {"play": 1.0, "like": 2.0, "skip": -1.0, "dislike": -2.0}
TRACK_STEP, ARTIST_STEP, SIMILAR_STEP = 0.25, 0.05, 0.15
CAP = 1.0
#: steps of feedback after which a profile counts fully (a like is 2, a play 1)
PROFILE_EVIDENCE = 4.0
#: how sharply a profile tells tracks apart: taste moves by tanh(gain x the feature distance along it)
PROFILE_GAIN = 0.5
#: the mood before a track: this long before it began
BEFORE_S = 30.0


def lift_key(mood: str) -> str:
    return f"emotune:lift:{mood}"


@dataclass
class ListenerState:
    liked: set[str] = field(default_factory=set)  # in the mood asked for
    disliked: set[str] = field(default_factory=set)
    skipped: set[str] = field(default_factory=set)  # recently
    played: set[str] = field(default_factory=set)  # recently
    genres: set[str] = field(default_factory=set)
    artists: set[str] = field(default_factory=set)
    adjust: dict[str, float] = field(default_factory=dict)  # in the mood asked for
    lift: dict[str, tuple[int, float]] = field(default_factory=dict)  # track id -> (plays, mean lift)
    lift_everyone: dict[str, tuple[int, float]] = field(default_factory=dict)


def _lifts(raw: dict[bytes, bytes]) -> dict[str, tuple[int, float]]:
    counts = {k[:-2].decode(): int(float(v)) for k, v in raw.items() if k.endswith(b":n")}
    sums = {k[:-4].decode(): float(v) for k, v in raw.items() if k.endswith(b":sum")}
    return {t: (n, sums.get(t, 0.0) / n) for t, n in counts.items() if n > 0}


async def read_state(redis: aioredis.Redis, user: str, mood: str, skip_memory_s: float,
                     replay_after_s: float) -> ListenerState:  # fmt: skip
    now = time.time()
    async with redis.pipeline(transaction=False) as pipe:
        pipe.smembers(user_key(user, "liked", mood))
        pipe.smembers(user_key(user, "disliked"))
        pipe.zrangebyscore(user_key(user, "skipped"), now - skip_memory_s, "+inf")
        pipe.zrangebyscore(user_key(user, "played"), now - replay_after_s, "+inf")
        pipe.smembers(user_key(user, "genres"))
        pipe.smembers(user_key(user, "artists"))
        pipe.hgetall(user_key(user, "adjust", mood))
        pipe.hgetall(user_key(user, "lift", mood))
        pipe.hgetall(lift_key(mood))
        liked, disliked, skipped, played, genres, artists, adjust, lift, everyone = await pipe.execute()
    decode = lambda values: {v.decode() for v in values}  # noqa: E731
    return ListenerState(decode(liked), decode(disliked), decode(skipped), decode(played), decode(genres),
                         decode(artists), {k.decode(): float(v) for k, v in adjust.items()}, _lifts(lift),
                         _lifts(everyone))  # fmt: skip


def record(pipe, user: str, mood: str, action: str, track_id: str, artist_id: str, similar: list[str],
           now: float, features: np.ndarray | None = None) -> None:  # fmt: skip
    """Queue on ``pipe`` what one play, like, skip or dislike of a track changes (``features``: the
    track's standardised audio features, for the profile)."""
    step = STEPS[action]
    key = user_key(user, "adjust", mood)
    if features is not None:
        for i, value in enumerate(features):
            pipe.hincrbyfloat(key, f"f:{i}", float(step * value))
        pipe.hincrbyfloat(key, "f:w", abs(step))
    pipe.hincrbyfloat(key, f"t:{track_id}", TRACK_STEP * step)
    if artist_id:
        pipe.hincrbyfloat(key, f"a:{artist_id}", ARTIST_STEP * step)
    for other in similar:
        pipe.hincrbyfloat(key, f"t:{other}", SIMILAR_STEP * step)
    if action in ("play", "like"):
        pipe.zadd(user_key(user, "played"), {track_id: now})
        pipe.srem(user_key(user, "disliked"), track_id)
        pipe.sadd(user_key(user, "liked", mood), track_id)
    elif action == "skip":
        pipe.zadd(user_key(user, "skipped"), {track_id: now})
    else:
        pipe.sadd(user_key(user, "disliked"), track_id)
        pipe.srem(user_key(user, "liked", mood), track_id)


def profile(adjust: dict[str, float], size: int) -> tuple[np.ndarray | None, float]:
    """(the listener's profile in a mood, the evidence behind it: the sum of the steps' sizes).

    The profile is the direction of the step-weighted sum of the tracks' standardised features, at
    PROFILE_GAIN per unit: likes and skips of tracks that differ in one feature only (dance and
    almost-dance songs) still give a clear direction, where their mean would nearly cancel."""
    evidence = adjust.get("f:w", 0.0)
    total = np.array([adjust.get(f"f:{i}", 0.0) for i in range(size)], np.float32)
    length = float(np.linalg.norm(total))
    if evidence <= 0 or length < 1e-6:
        return None, 0.0
    return PROFILE_GAIN * total / length, evidence


def capped(value: float) -> float:
    return float(np.clip(value, -CAP, CAP))


def point_of(probabilities: list[float]) -> np.ndarray:
    """The valence-arousal point of a distribution over the emotions."""
    p = np.asarray(probabilities, float)
    return p @ np.array([EMOTION_POINTS[e] for e in EMOTIONS])


def lift_of(trace: list[dict], started_us: int, ended_us: int) -> tuple[str, float] | None:
    """(the mood before the track, how much closer to UPLIFT_GOAL it moved while it played), from a
    session's trace (points ``{"t", "p"}``: time, smoothed probabilities); None without points on
    both sides. Positive: the track lifted a sad listener, or calmed a tense one."""
    before = [p["p"] for p in trace if started_us - BEFORE_S * 1e6 <= p["t"] < started_us]
    during = [p["p"] for p in trace if started_us <= p["t"] <= ended_us]
    if not before or not during:
        return None
    mean_before = np.mean(before, axis=0)
    goal = np.array(UPLIFT_GOAL)
    moved = np.linalg.norm(point_of(mean_before) - goal) - np.linalg.norm(point_of(np.mean(during, axis=0)) - goal)
    return EMOTIONS[int(np.argmax(mean_before))], float(moved)


async def record_lift(redis: aioredis.Redis, user: str, session: str, track_id: str, started_us: int,
                      ended_us: int) -> tuple[str, float] | None:  # fmt: skip
    """Measure and keep the implicit feedback of one play (per listener and across listeners)."""
    raw = await redis.lrange(session_key(user, session, "trace"), 0, -1)
    found = lift_of([json.loads(p) for p in raw], started_us, ended_us)
    if found is None:
        return None
    mood, moved = found
    async with redis.pipeline(transaction=False) as pipe:
        for key in (user_key(user, "lift", mood), lift_key(mood)):
            pipe.hincrby(key, f"{track_id}:n", 1)
            pipe.hincrbyfloat(key, f"{track_id}:sum", moved)
        await pipe.execute()
    return found
