"""Tracks ranked by taste and mood, diversified, through an exact candidate index.

A track's score at list position j is ``(1 - w) * taste + w * fit_j + lift``: taste is its
artist's taste (0..1) times its own popularity prior, plus what feedback added; fit_j is how well
its own valence-arousal point meets position j's mood target (mood.targets); lift is what
listeners' faces showed it does to this mood (only under ``uplift``, and 0 without evidence).
Positions are filled greedily: the best remaining track that is not the
previous pick's artist and whose artist has fewer than ``per_artist`` picks.

The index groups tracks by artist. An artist's tracks cannot score more than its bound,
``(1 - w) * (artist taste * its best prior + its largest feedback + the profile's weight) + w +
its largest lift``. Ranking takes the
artists with the highest bounds, ranks their tracks, and is done when every pick scores more than
the best bound left outside: no outside track could have beaten (or tied, and won on its row) any
pick, so the list is the one a pass over every track gives (``brute_force``, the reference in
tests and in ``make bench``).
Otherwise it takes four times as many artists and ranks again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotune_recommender.mood import fit

FIRST_ARTISTS = 16


@dataclass
class Pick:
    track: int
    score: float
    taste: float
    mood_fit: float
    artist: int


@dataclass
class Adjustments:
    """What a listener's feedback adds to a few tracks' taste, and measured lifts to their score
    (uplift only). Feedback on artists is already in the artist taste the ranker is given.

    ``profile``: the sound a listener asked for in this mood, a direction in the standardised
    audio-feature space (listener.py); every track's taste moves by ``profile_weight * tanh(its
    features . profile)``, so one like reaches every track that sounds alike, not only neighbours.
    """

    tracks: dict[int, float]
    lift: dict[int, float]
    profile: np.ndarray | None = None
    profile_weight: float = 0.0

    @classmethod
    def none(cls) -> Adjustments:
        return cls({}, {})


class TrackIndex:
    """The catalogue's tracks as arrays, grouped by artist (an artist is 0..artists-1)."""

    def __init__(self, artist: np.ndarray, points: np.ndarray, popularity: np.ndarray, artists: int,
                 features: np.ndarray | None = None) -> None:  # fmt: skip
        """``features``: [tracks, n] standardised audio features, for feedback profiles."""
        self.artist = np.asarray(artist, np.int64)
        self.features = features
        self.points = np.asarray(points, np.float32)
        self.prior = (0.9 + 0.1 * np.clip(np.asarray(popularity, np.float32), 0, 100) / 100).astype(np.float32)
        self.artists = artists
        self.order = np.lexsort((-self.prior, self.artist))
        counts = np.bincount(self.artist, minlength=artists)
        self.starts = np.concatenate([[0], np.cumsum(counts)])
        self.best_prior = np.zeros(artists, np.float32)
        np.maximum.at(self.best_prior, self.artist, self.prior)

    def __len__(self) -> int:
        return len(self.artist)

    def tracks_of(self, artists: np.ndarray) -> np.ndarray:
        if not len(artists):
            return np.empty(0, np.int64)
        return np.concatenate([self.order[self.starts[a] : self.starts[a + 1]] for a in artists])

    def taste(self, artist_taste: np.ndarray, tracks: np.ndarray, adjust: Adjustments) -> np.ndarray:
        taste = artist_taste[self.artist[tracks]] * self.prior[tracks]
        if adjust.tracks:
            taste = taste + np.array([adjust.tracks.get(int(t), 0.0) for t in tracks], np.float32)
        if adjust.profile is not None and self.features is not None:
            taste = taste + adjust.profile_weight * np.tanh(self.features[tracks] @ adjust.profile)
        return taste

    def rank(self, artist_taste: np.ndarray, targets: np.ndarray, mood_weight: float, k: int,
             adjust: Adjustments | None = None, allowed: np.ndarray | None = None,
             exclude: set[int] = frozenset(), per_artist: int = 2) -> list[Pick]:  # fmt: skip
        """The list of up to k tracks; ``allowed``: a [tracks] mask (a genre filter), ``exclude``: track rows."""
        adjust = adjust or Adjustments.none()
        bounds = artist_taste * self.best_prior
        for track, extra in adjust.tracks.items():
            bounds[self.artist[track]] += max(extra, 0.0)
        if adjust.profile is not None:
            bounds += adjust.profile_weight  # tanh is at most 1
        bounds = (1 - mood_weight) * bounds + mood_weight
        for track, lift in adjust.lift.items():
            bounds[self.artist[track]] += max(lift, 0.0)
        count = FIRST_ARTISTS
        while True:
            if count >= self.artists:
                chosen, outside = np.arange(self.artists), -np.inf
            else:
                part = np.argpartition(-bounds, count)
                chosen, outside = part[:count], float(bounds[part[count:]].max())
            picks = self._greedy(self.tracks_of(chosen), artist_taste, targets, mood_weight, k, adjust, allowed,
                                 exclude, per_artist)  # fmt: skip
            if (len(picks) == k and min(p.score for p in picks) > outside) or not np.isfinite(outside):
                return picks
            count *= 4

    def brute_force(self, artist_taste: np.ndarray, targets: np.ndarray, mood_weight: float, k: int,
                    adjust: Adjustments | None = None, allowed: np.ndarray | None = None,
                    exclude: set[int] = frozenset(), per_artist: int = 2) -> list[Pick]:  # fmt: skip
        """The same list from a pass over every track."""
        return self._greedy(np.arange(len(self)), artist_taste, targets, mood_weight, k,
                            adjust or Adjustments.none(), allowed, exclude, per_artist)  # fmt: skip

    def _greedy(self, tracks: np.ndarray, artist_taste: np.ndarray, targets: np.ndarray, mood_weight: float,
                k: int, adjust: Adjustments, allowed: np.ndarray | None, exclude: set[int],
                per_artist: int) -> list[Pick]:  # fmt: skip
        if allowed is not None:
            tracks = tracks[allowed[tracks]]
        if exclude:
            tracks = tracks[~np.isin(tracks, np.fromiter(exclude, np.int64, len(exclude)))]
        if not len(tracks):
            return []
        taste = self.taste(artist_taste, tracks, adjust)
        lift = np.array([adjust.lift.get(int(t), 0.0) for t in tracks], np.float32) if adjust.lift else 0.0
        points, artists = self.points[tracks], self.artist[tracks]
        distinct, position_of = np.unique(targets[:k], axis=0, return_inverse=True)  # match: one target
        fits_of = fit(points[None], distinct[:, None])  # [distinct targets, tracks]
        base = (1 - mood_weight) * taste + lift
        available = np.ones(len(tracks), bool)
        per: dict[int, int] = {}
        picks: list[Pick] = []
        for position in np.ravel(position_of):
            fits = fits_of[position]
            scores = np.where(available, base + mood_weight * fits, -np.inf)
            if picks:  # never the previous pick's artist
                scores[artists == picks[-1].artist] = -np.inf
            best = scores.max()
            if not np.isfinite(best):
                break
            tied = np.flatnonzero(scores == best)  # ties go to the lowest track row, in any candidate order
            j = int(tied[np.argmin(tracks[tied])]) if len(tied) > 1 else int(tied[0])
            artist = int(artists[j])
            available[j] = False
            per[artist] = per.get(artist, 0) + 1
            if per[artist] >= per_artist:
                available[artists == artist] = False
            picks.append(Pick(int(tracks[j]), float(scores[j]), float(taste[j]), float(fits[j]), artist))
        return picks
