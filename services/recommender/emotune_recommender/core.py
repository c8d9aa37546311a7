"""The recommender's operations, shared by the gRPC API and the stream loop.

Users: ``lastfm:<id>`` is a listener of the Last.fm data, known to the model. Anyone else is new:
their taste comes from popularity, the genres they pick and the artists they like, until a retrain
(``python -m emotune_recommender train``) takes their feedback into the model. What a user did is
kept in Redis under ``emotune:user:<id>:*`` (liked, disliked, skipped, genres: emotune_common.keys), so
deleting a user deletes those keys.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import redis.asyncio as aioredis

from emotune.v1 import messages_pb2
from emotune_common.ids import make_header
from emotune_common.keys import user_key
from emotune_common.labels import EMOTIONS
from emotune_recommender.model import Recommender
from emotune_recommender.tracks import TrackLookup

POLICIES = ("match", "uplift")
POSITIVE = {messages_pb2.PLAY: 1.0, messages_pb2.LIKE: 2.0}


class BadRequest(ValueError):
    """A request the recommender cannot serve as asked (INVALID_ARGUMENT)."""


class UnknownArtist(LookupError):
    """No such artist (NOT_FOUND)."""


def emotion_name(value: int) -> str:
    if not 1 <= value <= len(EMOTIONS):
        raise BadRequest(f"mood must be one of {', '.join(e.upper() for e in EMOTIONS)}")
    return EMOTIONS[value - 1]


def policy_name(value: int, default: str) -> str:
    if value == messages_pb2.POLICY_UNSPECIFIED:
        return default
    if value not in (messages_pb2.MATCH, messages_pb2.UPLIFT):
        raise BadRequest("policy must be MATCH or UPLIFT")
    return POLICIES[value - 1]


class RecommenderCore:
    def __init__(self, recommender: Recommender, version: int, artists, redis: aioredis.Redis, tracks: TrackLookup,
                 mood_weight: float = 0.2, default_policy: str = "match", skip_memory_s: int = 3600,
                 feedback_epochs: int = 5) -> None:  # fmt: skip
        self.recommender = recommender
        self.version = version
        self.names = artists["name"].to_dict()  # Last.fm artist id -> name
        self.redis = redis
        self.tracks = tracks
        self.mood_weight = mood_weight
        self.default_policy = default_policy
        self.skip_memory_s = skip_memory_s
        self.feedback_epochs = feedback_epochs
        self._lock = threading.Lock()  # learning and ranking do not interleave
        user_map, _, item_map, _ = recommender.inputs.dataset.mapping()
        self._users = {f"lastfm:{u}": inner for u, inner in user_map.items()}
        self._items = item_map  # Last.fm artist id -> inner index

    def inner_item(self, artist_id: str) -> int:
        try:
            return self._items[int(artist_id)]
        except (KeyError, ValueError):
            raise UnknownArtist(f"no artist {artist_id!r}") from None

    async def _state(self, user_id: str) -> dict[str, set[str]]:
        since = time.time() - self.skip_memory_s
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.smembers(user_key(user_id, "liked"))
            pipe.smembers(user_key(user_id, "disliked"))
            pipe.zrangebyscore(user_key(user_id, "skipped"), since, "+inf")
            pipe.smembers(user_key(user_id, "genres"))
            liked, disliked, skipped, genres = await pipe.execute()
        decode = lambda values: {v.decode() for v in values}  # noqa: E731
        return {"liked": decode(liked), "disliked": decode(disliked), "skipped": decode(skipped),
                "genres": decode(genres)}  # fmt: skip

    def _taste(self, user_id: str, emotion: str, state: dict[str, set[str]]) -> tuple[np.ndarray, set[int]]:
        model = self.recommender
        excluded = {self._items[int(a)] for a in state["disliked"] | state["skipped"] if int(a) in self._items}
        inner = self._users.get(user_id)
        if inner is not None:
            return model.taste(inner, emotion), excluded | model.seen.get(inner, set())
        taste = model.cold_start_taste(state["genres"])
        liked = [self._items[int(a)] for a in state["liked"] if int(a) in self._items]
        if liked:  # a new listener's likes: artists near them in the embedding space
            vectors = model.item_embeddings()
            centre = vectors[liked].mean(axis=0)
            taste = 0.5 * taste + 0.5 * (vectors @ centre + 1) / 2
        return taste, excluded | set(liked)

    async def recommend(self, user_id: str, session_id: str, mood: int, k: int, policy: int,
                        genres: list[str]) -> messages_pb2.RecommendationSet:  # fmt: skip
        if not user_id:
            raise BadRequest("user_id is required")
        if not 0 <= k <= 100:
            raise BadRequest("k must be between 1 and 100 (0: the default, 10)")
        emotion, how = emotion_name(mood), policy_name(policy, self.default_policy)
        state = await self._state(user_id)

        def rank():
            with self._lock:
                taste, excluded = self._taste(user_id, emotion, state)
                return self.recommender.rank(taste, emotion, how, k or 10, self.mood_weight, excluded,
                                             set(genres) or None)  # fmt: skip

        ranked = await asyncio.to_thread(rank)
        items = await asyncio.gather(*(self._item(r.item, r.score, r.taste, r.mood_fit, emotion, how) for r in ranked))
        return messages_pb2.RecommendationSet(
            header=make_header(session_id, user_id), mood=mood, policy=POLICIES.index(how) + 1, items=items,
            model_version=str(self.version),
        )  # fmt: skip

    async def similar(self, artist_id: str, k: int) -> list[messages_pb2.Recommendation]:
        item = self.inner_item(artist_id)
        with self._lock:
            near = self.recommender.similar_items(item, k or 10)
        return list(await asyncio.gather(*(self._item(i, c, c, 0.0, None, None) for i, c in near)))

    async def _item(self, item: int, score: float, taste: float, fit: float, emotion: str | None,
                    policy: str | None) -> messages_pb2.Recommendation:  # fmt: skip
        artist_id = int(self.recommender.inputs.item_ids[item])
        name = self.names.get(artist_id, str(artist_id))
        link, tracks = await self.tracks.tracks(name)
        reason = (f"taste {taste:.2f}, fit to {'the way from ' if policy == 'uplift' else ''}{emotion} {fit:.2f}"
                  if emotion else f"similar: cosine {score:.2f}")  # fmt: skip
        return messages_pb2.Recommendation(
            artist_id=str(artist_id), artist_name=name, score=score, taste_score=taste, mood_fit=fit, reason=reason,
            genres=self.recommender.genres[item], tracks=[t.message() for t in tracks], spotify_url=link,
        )  # fmt: skip

    async def feedback(self, batch: list[messages_pb2.Feedback]) -> dict[int, str]:
        """Apply feedback: likes and plays teach the model (known users) or the user's likes (new
        ones); skips and dislikes keep artists out of the user's lists. Returns {index: reason} for
        the entries of ``batch`` that could not be applied; the others are."""
        learn: list[tuple[int, int, float, str | None]] = []
        refused: dict[int, str] = {}
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for index, f in enumerate(batch):
                user = f.header.user_id
                try:
                    if not user:
                        raise BadRequest("feedback needs a user")
                    if f.action == messages_pb2.GENRE_CHANGE:
                        if not f.genre:
                            raise BadRequest("GENRE_CHANGE needs a genre")
                        pipe.delete(user_key(user, "genres"))
                        pipe.sadd(user_key(user, "genres"), f.genre)
                        continue
                    if f.action not in (messages_pb2.SKIP, messages_pb2.DISLIKE, *POSITIVE):
                        raise BadRequest("action must be PLAY, SKIP, LIKE, DISLIKE or GENRE_CHANGE")
                    item = self.inner_item(f.artist_id)
                except (BadRequest, UnknownArtist) as e:
                    refused[index] = str(e)
                    continue
                if f.action == messages_pb2.SKIP:
                    pipe.zadd(user_key(user, "skipped"), {f.artist_id: now})
                elif f.action == messages_pb2.DISLIKE:
                    pipe.sadd(user_key(user, "disliked"), f.artist_id)
                else:
                    pipe.sadd(user_key(user, "liked"), f.artist_id)
                    pipe.srem(user_key(user, "disliked"), f.artist_id)
                    if user in self._users:
                        emotion = EMOTIONS[f.mood - 1] if 1 <= f.mood <= len(EMOTIONS) else None
                        learn.append((self._users[user], item, POSITIVE[f.action], emotion))
            await pipe.execute()
        if learn:

            def apply() -> None:
                with self._lock:
                    self.recommender.learn(learn, epochs=self.feedback_epochs)

            await asyncio.to_thread(apply)
        return refused
