"""The LightFM hybrid: fit, score, and turn taste and mood into a ranked, diversified list."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from lightfm import LightFM

from emotune_recommender.data import MusicData
from emotune_recommender.features import Inputs, build_inputs
from emotune_recommender.mood import artist_points, fit, targets

#: weight of the emotion token beside a user's identity in the user features
CONTEXT_WEIGHT = 0.5


@dataclass(frozen=True)
class Hyper:
    components: int = 48
    loss: str = "warp"
    learning_rate: float = 0.05
    epochs: int = 20
    item_alpha: float = 0.0
    seed: int = 42


@dataclass
class Ranked:
    item: int  # inner index of the artist (inputs.item_ids[item] is its Last.fm id)
    score: float
    taste: float
    mood_fit: float


@dataclass
class Recommender:
    """A trained model with what ranking needs: artist positions on the mood plane, popularity."""

    model: LightFM
    inputs: Inputs
    points: np.ndarray  # [items, 2] valence-arousal, NaN where unknown
    popularity: np.ndarray  # [items] training plays per artist, log-scaled 0..1
    genres: list[list[str]]
    seen: dict[int, set[int]] = field(default_factory=dict)  # user inner id -> inner item ids
    _items: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _genre_index: dict[str, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def train(cls, music: MusicData, plays: pd.DataFrame, hyper: Hyper = Hyper(), *, use_item_features: bool = True,
              use_friends: bool = False, threads: int = 2) -> Recommender:  # fmt: skip
        inputs = build_inputs(music, use_item_features=use_item_features, use_friends=use_friends)
        interactions, weights = inputs.interactions(plays)
        model = LightFM(no_components=hyper.components, loss=hyper.loss, learning_rate=hyper.learning_rate,
                        item_alpha=hyper.item_alpha, random_state=hyper.seed)  # fmt: skip
        model.fit(interactions, item_features=inputs.item_features, user_features=inputs.user_features,
                  sample_weight=weights, epochs=hyper.epochs, num_threads=threads)  # fmt: skip
        artists = music.artists.loc[inputs.item_ids]
        counts = np.asarray(interactions.sum(axis=0)).ravel()
        csr = interactions.tocsr()
        return cls(
            model=model,
            inputs=inputs,
            points=artist_points(artists["valence"].to_numpy(), artists["energy"].to_numpy()),
            popularity=np.log1p(counts) / max(np.log1p(counts).max(), 1e-9),
            genres=list(artists["genres"]),
            seen={u: set(csr[u].indices) for u in range(csr.shape[0]) if csr[u].nnz},
        )

    def user_features(self, context: dict[int, str] | None = None) -> sp.csr_matrix:
        """The user feature matrix, with the token ``emotion:<label>`` added for the users in ``context``."""
        if not context:
            return self.inputs.user_features
        columns = self.inputs.dataset.mapping()[1]
        users = np.fromiter(context, dtype=np.int64)
        tokens = np.array([columns[f"emotion:{e}"] for e in context.values()])
        extra = sp.csr_matrix((np.full(len(users), CONTEXT_WEIGHT), (users, tokens)),
                              shape=self.inputs.user_features.shape)  # fmt: skip
        return (self.inputs.user_features + extra).tocsr()

    def item_representations(self) -> tuple[np.ndarray, np.ndarray]:
        """(biases [items], vectors [items, components]) of every artist, features folded in.

        Computed once per model state (learning resets it): scoring a user is then one
        matrix-vector product, as LightFM's predict would compute, without its per-call work.
        """
        if self._items is None:
            biases, vectors = self.model.get_item_representations(self.inputs.item_features)
            self._items = (biases.astype(np.float32), vectors.astype(np.float32))
        return self._items

    def raw_scores(self, user_vector: np.ndarray, user_bias: float) -> np.ndarray:
        biases, vectors = self.item_representations()
        return vectors @ user_vector + biases + user_bias

    def taste(self, user: int, emotion: str | None = None) -> np.ndarray:
        """LightFM scores of every artist for a user (inner id) in a mood, rescaled to 0..1."""
        row = self.user_features({user: emotion} if emotion else None)[user]
        vector = np.asarray(row @ self.model.user_embeddings, dtype=np.float32).ravel()
        bias = float((row @ self.model.user_biases)[0])
        return _unit_range(self.raw_scores(vector, bias))

    def rank(self, taste: np.ndarray, emotion: str, policy: str = "match", k: int = 10, mood_weight: float = 0.3,
             exclude: set[int] = frozenset(), genres: set[str] | None = None) -> list[Ranked]:  # fmt: skip
        """Blend taste with mood fit, position by position, then keep the list diverse.

        Each position of the list has its own mood target (``uplift`` walks toward pleasant valence),
        so the list is filled greedily: at each position the best remaining artist by
        ``(1 - mood_weight) * taste + mood_weight * fit(target)``, skipping artists excluded (seen,
        skipped recently) or outside ``genres``, and any whose genres equal the previous pick's
        (no two near-duplicates in a row).
        """
        masked = np.array(taste, dtype=np.float32)  # a copy, never the caller's
        if exclude:
            masked[list(exclude)] = -np.inf
        if genres:
            masked[~self.genre_mask(genres)] = -np.inf
        head = min(len(masked), max(200, 20 * k))  # the taste head: mood re-ranks within it
        pool = np.argpartition(-masked, head - 1)[:head] if len(masked) > head else np.arange(len(masked))
        pool = pool[np.isfinite(masked[pool])]
        picked: list[Ranked] = []
        used: set[int] = set()
        for target in targets(emotion, policy, k):
            fits = fit(self.points[pool], target)
            scores = (1 - mood_weight) * taste[pool] + mood_weight * fits
            for j in np.argsort(-scores):
                item = int(pool[j])
                if item in used:
                    continue
                if picked and self.genres[item] and self.genres[item] == self.genres[picked[-1].item]:
                    continue
                used.add(item)
                picked.append(Ranked(item, float(scores[j]), float(taste[item]), float(fits[j])))
                break
        return picked

    def genre_mask(self, genres: set[str]) -> np.ndarray:
        """[items] True where an artist has one of ``genres`` (from an index built once)."""
        if self._genre_index is None:
            index: dict[str, list[int]] = {}
            for item, names in enumerate(self.genres):
                for name in names:
                    index.setdefault(name, []).append(item)
            self._genre_index = {g: np.array(items) for g, items in index.items()}
        mask = np.zeros(len(self.genres), bool)
        for genre in genres:
            if genre in self._genre_index:
                mask[self._genre_index[genre]] = True
        return mask

    def learn(self, feedback: list[tuple[int, int, float, str | None]], epochs: int = 5, threads: int = 2) -> int:
        """Fit on positive feedback (user, item, weight, emotion at the time) with fit_partial.

        The emotion rides along as a user feature, so what a listener plays when sad teaches the
        model what suits them when sad. Negative feedback (skip, dislike) is not a positive example
        to learn; the service keeps it as exclusions. Returns the number of examples applied.
        """
        if not feedback:
            return 0
        users, items, weights, emotions = zip(*feedback, strict=True)
        shape = (self.inputs.user_features.shape[0], len(self.points))
        interactions = sp.coo_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
        sample_weight = sp.coo_matrix((np.asarray(weights, np.float32), (users, items)), shape=shape)
        context = {u: e for u, e in zip(users, emotions, strict=True) if e}
        self.model.fit_partial(interactions, user_features=self.user_features(context),
                               item_features=self.inputs.item_features, sample_weight=sample_weight,
                               epochs=epochs, num_threads=threads)  # fmt: skip
        for user, item in zip(users, items, strict=True):
            self.seen.setdefault(user, set()).add(item)
        self._items = None
        return len(feedback)

    def item_embeddings(self) -> np.ndarray:
        """[items, components] item representations (features included), unit length."""
        _, vectors = self.item_representations()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)

    def similar_items(self, item: int, k: int = 10) -> list[tuple[int, float]]:
        """ "More like this": the k artists nearest to ``item`` in the embedding space, with cosines."""
        vectors = self.item_embeddings()
        cosines = vectors @ vectors[item]
        cosines[item] = -np.inf
        top = np.argpartition(-cosines, k)[:k]
        return [(int(i), float(cosines[i])) for i in top[np.argsort(-cosines[top])]]

    def similar_users(self, user: int, k: int = 10) -> list[tuple[int, float]]:
        """User-based neighbours: the k users nearest to ``user`` in the embedding space."""
        _, vectors = self.model.get_user_representations(self.inputs.user_features)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
        cosines = vectors @ vectors[user]
        cosines[user] = -np.inf
        top = np.argpartition(-cosines, k)[:k]
        return [(int(u), float(cosines[u])) for u in top[np.argsort(-cosines[top])]]

    def cold_start_taste(self, genres: set[str] | None = None) -> np.ndarray:
        """Taste for a listener with no history: popularity, and the genres they picked when they did."""
        if not genres:
            return self.popularity.copy()
        return 0.5 * self.popularity + 0.5 * self.genre_mask(genres)


def _unit_range(raw: np.ndarray) -> np.ndarray:
    low, high = raw.min(), raw.max()
    return (raw - low) / (high - low) if high > low else np.zeros_like(raw)
