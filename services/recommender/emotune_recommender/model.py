"""The LightFM hybrid over the Last.fm artists: fit, and score artists for a user."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from lightfm import LightFM

from emotune_recommender.data import MusicData
from emotune_recommender.features import Inputs, build_inputs


@dataclass(frozen=True)
class Hyper:
    components: int = 48
    loss: str = "warp"
    learning_rate: float = 0.05
    epochs: int = 20
    item_alpha: float = 0.0
    seed: int = 42


@dataclass
class Recommender:
    """A trained LightFM hybrid over the Last.fm artists, one of the models of the taste blend."""

    model: LightFM
    inputs: Inputs
    _items: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def train(cls, music: MusicData, plays: pd.DataFrame, hyper: Hyper = Hyper(), *, use_item_features: bool = True,
              use_friends: bool = False, threads: int = 2, inputs: Inputs | None = None) -> Recommender:  # fmt: skip
        """``inputs``: built once by the caller (build_inputs) when it trains several models on one data set."""
        inputs = inputs or build_inputs(music, use_item_features=use_item_features, use_friends=use_friends)
        interactions, weights = inputs.interactions(plays)
        model = LightFM(no_components=hyper.components, loss=hyper.loss, learning_rate=hyper.learning_rate,
                        item_alpha=hyper.item_alpha, random_state=hyper.seed)  # fmt: skip
        model.fit(interactions, item_features=inputs.item_features, user_features=inputs.user_features,
                  sample_weight=weights, epochs=hyper.epochs, num_threads=threads)  # fmt: skip
        return cls(model=model, inputs=inputs)

    def item_representations(self) -> tuple[np.ndarray, np.ndarray]:
        """(biases [items], vectors [items, components]) of every artist, features folded in.

        Computed once: scoring a user is then one matrix-vector product, as LightFM's predict would
        compute, without its per-call work.
        """
        if self._items is None:
            biases, vectors = self.model.get_item_representations(self.inputs.item_features)
            self._items = (biases.astype(np.float32), vectors.astype(np.float32))
        return self._items

    def user_vector(self, user: int) -> np.ndarray:
        """A user's (inner id) LightFM vector, from their own row of the user features."""
        return np.asarray(self.inputs.user_features[user] @ self.model.user_embeddings, dtype=np.float32).ravel()

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
