"""The recommender's operations, shared by the gRPC API and the stream loop.

Items are tracks of the catalogue. Users: ``lastfm:<id>`` is a listener of the Last.fm data, whose
history the taste model knows. Anyone else is new: their taste starts from popularity, then from
the genres and artists they pick and the tracks they like, folded in at once. Feedback is per
track and per mood (listener.py): the next list shows it, and Redis keeps it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np
import redis.asyncio as aioredis
import scipy.sparse as sp

from emotune.v1 import messages_pb2, recommender_pb2
from emotune_common.ids import make_header
from emotune_common.keys import user_key
from emotune_common.labels import EMOTIONS
from emotune_common.spotify_links import embed_url, track_url
from emotune_recommender import listener
from emotune_recommender.catalogue import artist_link, mood_tag
from emotune_recommender.mood import fit, targets
from emotune_recommender.ranking import Adjustments, Pick
from emotune_recommender.taste import TasteModel
from emotune_recommender.tracks import TrackLookup
from emotune_recommender.trackspace import TrackSpace

POLICIES = ("match", "uplift")
ACTIONS = {messages_pb2.PLAY: "play", messages_pb2.LIKE: "like", messages_pb2.SKIP: "skip",
           messages_pb2.DISLIKE: "dislike"}  # fmt: skip
#: tracks from Spotify search that joined the catalogue: track id -> artist id
JOINED = "emotune:catalogue:joined"
#: how many of a listener's best artists without catalogue tracks are looked up on Spotify per list
SPOTIFY_ARTISTS = 3
#: the popularity prior of a track whose popularity is unknown (ranking.TrackIndex: 0.9..1)
PRIOR_UNKNOWN = 0.95
#: a liked or picked artist's weight in a new listener's row (a Last.fm row holds log(1 + plays))
LIKE_WEIGHT = float(np.log1p(20))


class BadRequest(ValueError):
    """A request the recommender cannot serve as asked (INVALID_ARGUMENT)."""


class NotFound(LookupError):
    """No such track or artist (NOT_FOUND)."""


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


@dataclass(frozen=True)
class Tuning:
    mood_weight: float = 0.2
    default_policy: str = "match"
    skip_memory_s: int = 3600
    replay_after_s: int = 3600
    lift_min_plays: int = 3  # plays measured before a lift counts
    lift_weight: float = 1.0  # share of the measured lift added to a track's score under uplift
    lifted_at: float = 0.1  # mean lift at which the page says "lifted your mood"
    profile_weight: float = 0.8  # most taste a listener's profile in a mood adds to (or takes from) a track
    genre_boost: float = 1.0  # taste added to the artists of a picked genre (taste is 0..1: they lead)


class RecommenderCore:
    def __init__(self, taste: TasteModel, space: TrackSpace, version: int, redis: aioredis.Redis,
                 tracks: TrackLookup, names: dict[int, str], tuning: Tuning = Tuning()) -> None:  # fmt: skip
        """``names``: Last.fm artist id -> name (for similar artists the catalogue has no track of)."""
        self.taste = taste
        self.names = names
        self.space = space
        self.version = version
        self.redis = redis
        self.tracks = tracks
        self.tuning = tuning
        user_map = taste.lightfm.inputs.dataset.mapping()[0]
        self._users = {f"lastfm:{u}": inner for u, inner in user_map.items()}
        self._table = space.catalogue.tracks
        self._ids = self._table.index.to_numpy()

    # -- taste -----------------------------------------------------------------------------------

    def _row(self, user_id: str, state: listener.ListenerState) -> tuple[sp.csr_matrix, int]:
        """The listener's plays over the Last.fm artists (history, likes, picks) and inner id (-1: new)."""
        inner = self._users.get(user_id, -1)
        row = self.taste.matrix[inner].tolil() if inner >= 0 else sp.lil_matrix((1, self.space.lastfm_artists))
        liked_artists = set(state.artists)
        for track_id in state.liked:
            position = self.space.catalogue.position(track_id)
            if position is not None:
                liked_artists.add(self.space.axis_ids[self.space.index.artist[position]])
        for artist_id in liked_artists:
            axis = self.space.axis_of(artist_id)
            if axis is not None and axis < self.space.lastfm_artists:
                row[0, axis] = max(row[0, axis], LIKE_WEIGHT)
        return row.tocsr(), inner

    def _artist_taste(self, user_id: str, state: listener.ListenerState) -> np.ndarray:
        row, inner = self._row(user_id, state)
        taste = self.space.artist_taste(self.taste, row, inner)
        for key, value in state.adjust.items():
            if key.startswith("a:") and (axis := self.space.axis_of(key[2:])) is not None:
                taste[axis] += listener.capped(value)
        if state.genres:
            picked = self.space.genre_mask(state.genres)
            taste[np.unique(self.space.index.artist[picked])] += self.tuning.genre_boost
        return taste

    def _adjustments(self, state: listener.ListenerState, policy: str) -> Adjustments:
        rows = {}
        for key, value in state.adjust.items():
            if key.startswith("t:") and (position := self.space.catalogue.position(key[2:])) is not None:
                rows[position] = listener.capped(value)
        lift = {}
        if policy == "uplift":
            for track_id, (_, mean) in self._evidence(state).items():
                if (position := self.space.catalogue.position(track_id)) is not None:
                    lift[position] = self.tuning.lift_weight * float(np.clip(mean, -1, 1))
        direction, evidence = listener.profile(state.adjust, self.space.similarity.shape[1])
        weight = self.tuning.profile_weight * min(1.0, evidence / listener.PROFILE_EVIDENCE)
        return Adjustments(rows, lift, direction, weight)

    def _evidence(self, state: listener.ListenerState) -> dict[str, tuple[int, float]]:
        """The lifts with enough plays behind them: the listener's own where they have enough, else everyone's."""
        least = self.tuning.lift_min_plays
        found = {t: v for t, v in state.lift_everyone.items() if v[0] >= least}
        found.update({t: v for t, v in state.lift.items() if v[0] >= least})
        return found

    def _excluded(self, state: listener.ListenerState) -> set[int]:
        ids = state.disliked | state.skipped | state.played
        return {p for t in ids if (p := self.space.catalogue.position(t)) is not None}

    # -- operations ------------------------------------------------------------------------------

    async def recommend(self, user_id: str, session_id: str, mood: int, k: int, policy: int,
                        genres: list[str]) -> messages_pb2.RecommendationSet:  # fmt: skip
        if not user_id:
            raise BadRequest("user_id is required")
        if not 0 <= k <= 100:
            raise BadRequest("k must be between 1 and 100 (0: the default, 10)")
        emotion, how = emotion_name(mood), policy_name(policy, self.tuning.default_policy)
        state = await listener.read_state(self.redis, user_id, emotion, self.tuning.skip_memory_s,
                                          self.tuning.replay_after_s)  # fmt: skip

        def rank() -> tuple[list[Pick], np.ndarray]:
            taste = self._artist_taste(user_id, state)
            allowed = self.space.genre_mask(set(genres)) if genres else None
            picks = self.space.index.rank(taste, targets(emotion, how, k or 10), self.tuning.mood_weight, k or 10,
                                          self._adjustments(state, how), allowed, self._excluded(state))  # fmt: skip
            return picks, taste

        picks, taste = await asyncio.to_thread(rank)
        evidence = self._evidence(state)
        items = list(await asyncio.gather(*(self._item(p, emotion, how, evidence) for p in picks)))
        if self.tracks.enabled and picks and not genres:
            await self._from_spotify(items, taste, emotion, how, state)
        return messages_pb2.RecommendationSet(
            header=make_header(session_id, user_id), mood=mood, policy=POLICIES.index(how) + 1, items=items,
            model_version=str(self.version),
        )  # fmt: skip

    async def _item(self, pick: Pick, emotion: str, policy: str,
                    evidence: dict[str, tuple[int, float]]) -> messages_pb2.Recommendation:  # fmt: skip
        track_id = str(self._ids[pick.track])
        row = self._table.iloc[pick.track]
        artist_id = str(self.space.axis_ids[pick.artist])
        plays, lift = evidence.get(track_id, (0, 0.0))
        lifted = plays >= self.tuning.lift_min_plays and lift >= self.tuning.lifted_at
        way = "the way from " if policy == "uplift" else ""
        taste = min(max(pick.taste, 0.0), 1.0)  # feedback can take it past either end; shown within 0..1
        reason = f"taste {taste:.2f}, fit to {way}{emotion} {pick.mood_fit:.2f}"
        if lifted:
            reason += f", lifted listeners' mood in {plays} plays"
        link = track_url(track_id)
        track = messages_pb2.Track(spotify_id=track_id, name=row["title"], spotify_url=link)
        return messages_pb2.Recommendation(
            artist_id=artist_id, artist_name=row["artist"], score=pick.score, taste_score=taste,
            mood_fit=pick.mood_fit, reason=reason, genres=row["genres"], tracks=[track], spotify_url=link,
            track_id=track_id, title=row["title"], mood_tag=row["mood_tag"], valence=row["valence"],
            energy=row["energy"], embed_url=embed_url(track_id), artist_spotify_url=artist_link(row),
            lift=lift, lift_plays=plays, lifted=lifted, duration_ms=int(row["duration_ms"]),
            popularity=int(row["popularity"]),
        )  # fmt: skip

    async def _from_spotify(self, items: list[messages_pb2.Recommendation], taste: np.ndarray, emotion: str,
                            policy: str, state: listener.ListenerState) -> None:  # fmt: skip
        """With Spotify credentials: the listener's best artists that the catalogue has no track of
        bring their tracks from Spotify search (cached, TrackLookup), and each takes the place of a
        pick it outscores. Their mood comes from the artist's mean features (Spotify no longer
        serves audio features for tracks). They join the catalogue through a cache, so that
        feedback on them is accepted (emotune:catalogue:joined, track id -> artist id)."""
        goal = targets(emotion, policy, len(items))
        w = self.tuning.mood_weight
        lacking = self.space.lacking
        for axis in lacking[np.argsort(-taste[lacking])[:SPOTIFY_ARTISTS]]:
            weakest = min(range(len(items)), key=lambda i: items[i].score)
            point = self.space.lastfm_points[axis]
            fits = float(fit(point[None], goal[weakest])[0])
            score = (1 - w) * float(taste[axis]) * PRIOR_UNKNOWN + w * fits
            if score <= items[weakest].score:
                continue
            artist_id = str(self.space.axis_ids[axis])
            name = self.names.get(int(artist_id), "")
            link, found = await self.tracks.tracks(name) if name else ("", [])
            found = [t for t in found if t.spotify_id not in state.disliked | state.skipped | state.played]
            if not found:
                continue
            track = found[0]
            await self.redis.hset(JOINED, track.spotify_id, artist_id)
            valence, energy = (float(v) for v in (point + 1) / 2) if np.isfinite(point).all() else (0.5, 0.5)
            items[weakest] = messages_pb2.Recommendation(
                artist_id=artist_id, artist_name=name, score=score, taste_score=float(taste[axis]), mood_fit=fits,
                reason=f"taste {taste[axis]:.2f}, fit to {emotion} {fits:.2f} (the artist's; from Spotify)",
                genres=[], tracks=[track.message()], spotify_url=track.spotify_url, track_id=track.spotify_id,
                title=track.name, mood_tag=mood_tag(valence, energy) if np.isfinite(point).all() else "",
                valence=valence, energy=energy, embed_url=embed_url(track.spotify_id), artist_spotify_url=link,
            )  # fmt: skip

    async def similar(self, artist_id: str, k: int) -> list[messages_pb2.Recommendation]:
        """Artists near one Last.fm artist in LightFM's embedding space, each with its best track."""
        try:
            inner = self.taste.lightfm.inputs.dataset.mapping()[2][int(artist_id)]
        except (KeyError, ValueError):
            raise NotFound(f"no artist {artist_id!r}") from None
        near = self.taste.lightfm.similar_items(inner, k or 10)
        out = []
        for item, cosine in near:
            tracks = self.space.index.tracks_of(np.array([item]))
            row = self._table.iloc[int(tracks[0])] if len(tracks) else None
            track_id = str(self._ids[tracks[0]]) if len(tracks) else ""
            out.append(messages_pb2.Recommendation(
                artist_id=str(self.space.axis_ids[item]), score=cosine, taste_score=cosine,
                artist_name=self.names.get(int(self.space.axis_ids[item]), ""), reason=f"similar: cosine {cosine:.2f}",
                track_id=track_id, title=row["title"] if row is not None else "",
                spotify_url=track_url(track_id) if track_id else "", embed_url=embed_url(track_id) if track_id else "",
                artist_spotify_url=artist_link(row) if row is not None else "",
            ))  # fmt: skip
        return out

    def search(self, text: str, limit: int) -> recommender_pb2.CatalogueMatches:
        """Artists and genres of the catalogue whose names contain ``text`` (case-insensitive), most tracks first."""
        needle = text.strip().lower()
        if not needle:
            raise BadRequest("search needs some text")
        limit = limit or 10
        artists = self.space.artists_table
        hits = artists[artists["name"].str.lower().str.contains(needle, regex=False)]
        hits = hits.sort_values(["popularity", "tracks"], ascending=False).head(limit)
        genres = self.space.genre_counts
        genre_hits = genres[genres.index.str.contains(needle, regex=False)].head(limit)
        return recommender_pb2.CatalogueMatches(
            artists=[recommender_pb2.CatalogueArtist(artist_id=a, name=r["name"], genres=r["genres"][:5],
                                                     tracks=int(r["tracks"])) for a, r in hits.iterrows()],
            genres=[recommender_pb2.CatalogueGenre(name=g, tracks=int(n)) for g, n in genre_hits.items()],
        )  # fmt: skip

    async def set_taste(self, user_id: str, genres: list[str], artist_ids: list[str]) -> recommender_pb2.TasteReply:
        """A listener's picks replace their earlier ones; unknown genres or artists are refused."""
        if not user_id:
            raise BadRequest("user_id is required")
        unknown = [g for g in genres if g not in self.space.genre_rows]
        if unknown:
            raise NotFound(f"no genre {unknown[0]!r} in the catalogue")
        missing = [a for a in artist_ids if self.space.axis_of(a) is None]
        if missing:
            raise NotFound(f"no artist {missing[0]!r} in the catalogue")
        await self._replace_set(user_key(user_id, "genres"), genres)
        await self._replace_set(user_key(user_id, "artists"), artist_ids)
        return recommender_pb2.TasteReply(genres=genres, artist_ids=artist_ids)

    async def _replace_set(self, key: str, members: list[str]) -> None:
        """``key`` holds exactly ``members`` (none: deleted), in one transaction on that one key.

        One transaction a key, not one for a listener's genres and artists together: a user's keys carry
        no hash tag, so on a cluster they lie in different slots, where one transaction cannot reach. A
        reader between the two sees new genres with old artists for a moment, never a half-written set.
        """
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            if members:
                pipe.sadd(key, *members)
            await pipe.execute()

    async def feedback(self, batch: list[messages_pb2.Feedback]) -> dict[int, str]:
        """Apply feedback (listener.py). Returns {index: reason} for the entries of ``batch`` that
        could not be applied; the others are."""
        unknown = [f.track_id for f in batch if f.track_id and self.space.catalogue.position(f.track_id) is None]
        joined: dict[str, str] = {}
        if unknown:  # tracks that came from Spotify
            found = await self.redis.hmget(JOINED, unknown)
            joined = {t: a.decode() for t, a in zip(unknown, found, strict=True) if a is not None}
        refused: dict[int, str] = {}
        plays: list[tuple[str, str, str, int, int]] = []
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
                    if f.action not in ACTIONS:
                        raise BadRequest("action must be PLAY, SKIP, LIKE, DISLIKE or GENRE_CHANGE")
                    mood = EMOTIONS[f.mood - 1] if 1 <= f.mood <= len(EMOTIONS) else "neutral"
                    self._record(pipe, f, user, mood, now, joined)
                except (BadRequest, NotFound) as e:
                    refused[index] = str(e)
                    continue
                if f.action == messages_pb2.PLAY and f.track_id and f.started_at_us and f.header.session_id:
                    ended = f.header.created_at_us or int(now * 1e6)
                    plays.append((user, f.header.session_id, f.track_id, f.started_at_us, ended))
            await pipe.execute()
        for user, session, track_id, started, ended in plays:
            await listener.record_lift(self.redis, user, session, track_id, started, ended)
        return refused

    def _record(self, pipe, f: messages_pb2.Feedback, user: str, mood: str, now: float,
                joined: dict[str, str]) -> None:  # fmt: skip
        action = ACTIONS[f.action]
        if f.track_id:
            position = self.space.catalogue.position(f.track_id)
            if position is not None:
                artist_id = str(self.space.axis_ids[self.space.index.artist[position]])
                similar = [str(self._ids[p]) for p in self.space.similar_tracks(position)]
            elif f.track_id in joined:
                artist_id, similar = joined[f.track_id], []
            else:
                raise NotFound(f"no track {f.track_id!r} in the catalogue")
            features = self.space.similarity[position] if position is not None else None
            listener.record(pipe, user, mood, action, f.track_id, artist_id, similar, now, features)
        elif f.artist_id:  # artist-level feedback, as clients before track ids sent it
            if self.space.axis_of(f.artist_id) is None:
                raise NotFound(f"no artist {f.artist_id!r}")
            pipe.hincrbyfloat(user_key(user, "adjust", mood), f"a:{f.artist_id}",
                              listener.ARTIST_STEP * listener.STEPS[action])  # fmt: skip
        else:
            raise BadRequest(f"{action} needs a track_id")
