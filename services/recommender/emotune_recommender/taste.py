"""Taste: how much a listener likes each artist, as a blend of several models fitted on validation.

The models are the LightFM hybrid (artist features: genres, audio features, mood quadrant; it also
scores artists and tracks nobody played), item-kNN, user-kNN, EASE^R and popularity. Each one's
scores for a listener are standardised (z-scores over the artists), and the blend is their
weighted sum. The weights, and EASE's regularisation, are chosen on a validation split of the
training plays (a fifth of each user's artists) by coordinate ascent on NDCG@10, then every model
is refitted on all the training plays. No weight is set by hand.

A listener is a row of plays over the artists. For a Last.fm listener it is their history; for a
new one, the artists they liked or picked. Either way their likes fold in at once, with no retrain:
item-kNN, user-kNN and EASE read the row directly, and LightFM places a new listener at the mean of
the artists they liked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from emotune_common.logs import get_logger
from emotune_recommender.baselines import EASE, ItemKNN, UserKNN, popularity_scores
from emotune_recommender.data import MusicData, split_per_user
from emotune_recommender.features import Inputs, build_inputs
from emotune_recommender.model import Hyper, Recommender

log = get_logger("emotune.recommender.taste")

MODELS = ("lightfm", "item-kNN", "user-kNN", "EASE", "popularity")
WEIGHT_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
EASE_L2_GRID = (100.0, 300.0)
K = 10
DEFAULT_HYPER = Hyper()


def standardise(scores: np.ndarray) -> np.ndarray:
    """Row-wise z-scores; a row with no spread (a model that knows nothing of the user) is all 0."""
    mean = scores.mean(axis=1, keepdims=True)
    std = scores.std(axis=1, keepdims=True)
    return np.where(std > 1e-9, (scores - mean) / np.maximum(std, 1e-9), 0.0).astype(np.float32)


def ndcg_at_k(scores: np.ndarray, seen: sp.csr_matrix, held: sp.csr_matrix, k: int = K) -> float:
    """Mean NDCG@k of score rows against held-out artists, each row's seen artists excluded."""
    scores = scores.copy()
    rows, cols = seen.nonzero()
    scores[rows, cols] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    gains = 1 / np.log2(np.arange(2, k + 2))
    total = []
    for i in range(len(top)):
        truth = held[i].indices
        if not len(truth):
            continue
        hits = np.isin(top[i], truth)
        total.append((hits * gains).sum() / gains[: min(len(truth), k)].sum())
    return float(np.mean(total)) if total else 0.0


@dataclass
class Components:
    """The fitted models over one training matrix; ``scores`` gives each one's standardised rows."""

    lightfm: Recommender
    item_knn: ItemKNN
    user_knn: UserKNN
    ease: EASE
    popularity: np.ndarray

    @classmethod
    def fit(cls, music: MusicData, plays: pd.DataFrame, inputs: Inputs, matrix: sp.csr_matrix, hyper: Hyper,
            ease_l2: float, progress: Callable[[str], None] = lambda _: None) -> Components:  # fmt: skip
        progress("LightFM hybrid")
        # one thread: with two, LightFM's lock-free updates race, and no two trainings would agree
        lightfm = Recommender.train(music, plays, hyper, inputs=inputs, threads=1)
        progress("item-kNN, user-kNN")
        item_knn, user_knn = ItemKNN(matrix), UserKNN(matrix)
        progress(f"EASE (l2 {ease_l2:g})")
        return cls(lightfm, item_knn, user_knn, EASE(matrix, ease_l2), popularity_scores(matrix))

    def lightfm_vector(self, user: int, row: sp.csr_matrix) -> np.ndarray | None:
        """A listener's place in LightFM's space: a known user's (inner id >= 0) own vector; a new
        one's (-1), the mean of the artists in their row; None without any."""
        if user >= 0:
            return self.lightfm.user_vector(user)
        if row.nnz:
            return self.lightfm.item_representations()[1][row.indices].mean(axis=0)
        return None

    def lightfm_rows(self, users: np.ndarray, rows: sp.csr_matrix) -> np.ndarray:
        """[len(users), artists] LightFM scores (0 for a listener it cannot place)."""
        biases, vectors = self.lightfm.item_representations()
        out = np.zeros((len(users), len(biases)), np.float32)
        for i, user in enumerate(users):
            vector = self.lightfm_vector(int(user), rows[i])
            if vector is not None:
                out[i] = vectors @ vector + biases
        return out

    def scores(self, rows: sp.csr_matrix, users: np.ndarray, known_rows: bool = False, models: tuple[str, ...] = MODELS,
               lightfm_raw: np.ndarray | None = None) -> dict[str, np.ndarray]:  # fmt: skip
        """Standardised scores of ``models``. ``known_rows``: the rows are the users' own training
        rows, so user-kNN must not count a user as their own neighbour. ``lightfm_raw``: LightFM's
        scores of these rows, where the caller has them already."""
        cold = np.diff(rows.indptr) == 0
        scorers = {
            "lightfm": lambda: lightfm_raw if lightfm_raw is not None else self.lightfm_rows(users, rows),
            "item-kNN": lambda: self.item_knn.scores(rows),
            "user-kNN": lambda: self.user_knn.scores(rows, users if known_rows else None),
            "EASE": lambda: self.ease.scores(rows),
            "popularity": lambda: np.tile(self.popularity, (rows.shape[0], 1)),
        }
        out = {name: standardise(scorers[name]()) for name in models}
        for name in ("item-kNN", "user-kNN", "EASE"):  # with no row they know nothing
            if name in out:
                out[name][cold] = 0
        return out


def blend(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    return sum(weights[name] * parts[name] for name in MODELS if weights.get(name))


def fit_weights(parts: dict[str, np.ndarray], seen: sp.csr_matrix, held: sp.csr_matrix,
                passes: int = 2) -> tuple[dict[str, float], float]:  # fmt: skip
    """Coordinate ascent on NDCG@10 over WEIGHT_GRID, from the best single model. Returns (weights, NDCG)."""
    singles = {name: ndcg_at_k(parts[name], seen, held) for name in MODELS}
    best_name = max(singles, key=singles.get)
    weights = {name: 1.0 if name == best_name else 0.0 for name in MODELS}
    best = singles[best_name]
    for _ in range(passes):
        for name in MODELS:
            if name == best_name:
                continue
            for value in WEIGHT_GRID:
                trial = {**weights, name: value}
                score = ndcg_at_k(blend(parts, trial), seen, held)
                if score > best + 1e-6:
                    best, weights = score, trial
    return weights, best


@dataclass
class TasteModel:
    """The blend, refitted on all its training plays, with what serving needs to build a row."""

    components: Components
    weights: dict[str, float]
    matrix: sp.csr_matrix  # [users, artists] training confidence, in LightFM's inner order
    validation: dict[str, float] = field(default_factory=dict)  # NDCG@10 of each model and the blend
    ease_l2: float = 100.0

    @property
    def lightfm(self) -> Recommender:
        return self.components.lightfm

    @classmethod
    def train(cls, music: MusicData, plays: pd.DataFrame, hyper: Hyper = DEFAULT_HYPER, validation_users: int = 1000,
              seed: int = 42, progress: Callable[[str], None] = lambda _: None) -> TasteModel:  # fmt: skip
        inputs = build_inputs(music)
        fit_plays, held_plays = split_per_user(plays, seed=seed + 1)
        fit_matrix = inputs.interactions(fit_plays)[1].tocsr()
        held_matrix = inputs.interactions(held_plays)[1].tocsr()
        rng = np.random.default_rng(seed)
        users = np.flatnonzero(np.diff(held_matrix.indptr))
        users = np.sort(rng.choice(users, size=min(validation_users, len(users)), replace=False))
        seen, held = fit_matrix[users], held_matrix[users]

        ease_scores = {}
        for l2 in EASE_L2_GRID:
            progress(f"validation: EASE l2 {l2:g}")
            ease_scores[l2] = ndcg_at_k(EASE(fit_matrix, l2).scores(seen), seen, held)
        ease_l2 = max(ease_scores, key=ease_scores.get)
        parts = Components.fit(music, fit_plays, inputs, fit_matrix, hyper, ease_l2, progress).scores(
            seen, users, known_rows=True
        )
        progress("validation: blend weights")
        weights, score = fit_weights(parts, seen, held)
        validation = {name: ndcg_at_k(parts[name], seen, held) for name in MODELS} | {"blend": score}
        log.info("blend_fitted", weights=weights, ndcg_at_10=validation, ease_l2=ease_l2)

        progress("refit on all plays")
        matrix = inputs.interactions(plays)[1].tocsr()
        components = Components.fit(music, plays, inputs, matrix, hyper, ease_l2, progress)
        return cls(components, weights, matrix, validation, ease_l2)

    @property
    def used(self) -> tuple[str, ...]:
        """The models with a weight in the blend: the only ones serving computes."""
        return tuple(name for name in MODELS if self.weights.get(name))

    def artist_scores(self, rows: sp.csr_matrix, users: np.ndarray, known_rows: bool = False) -> np.ndarray:
        """[len(users), artists] blended taste (z units) for rows of plays over the artists."""
        return blend(self.components.scores(rows, users, known_rows, self.used), self.weights)
