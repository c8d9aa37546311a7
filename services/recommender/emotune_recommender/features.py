"""LightFM inputs: the interaction matrices and the user and item features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from lightfm.data import Dataset

from emotune_recommender.data import AUDIO_FEATURES, MusicData, confidence
from emotune_recommender.mood import quadrant

BUCKETS = 5


def item_tokens(artists: pd.DataFrame) -> dict[int, list[str]]:
    """Feature tokens per artist: genres, quintiles of each audio feature, the mood quadrant.

    Unmatched artists (no Spotify features) get none: they are known by their identity alone.
    """
    matched = artists[artists["matched"]]
    buckets = {f: pd.qcut(matched[f].rank(method="first"), BUCKETS, labels=False) for f in AUDIO_FEATURES}
    tokens: dict[int, list[str]] = {}
    for artist_id, row in matched.iterrows():
        tokens[artist_id] = [
            *(f"genre:{g}" for g in row["genres"]),
            *(f"{f}:{int(buckets[f][artist_id])}" for f in AUDIO_FEATURES),
            f"quadrant:{quadrant(row['valence'], row['energy'])}",
        ]
    return tokens


def user_tokens(friends: pd.DataFrame | None) -> dict[int, list[str]]:
    """Friends as user features: a user looks a little like the people they follow."""
    if friends is None:
        return {}
    return {int(u): [f"friend:{f}" for f in group] for u, group in friends.groupby("user_id")["friend_id"]}


@dataclass
class Inputs:
    dataset: Dataset
    item_features: sp.csr_matrix
    user_features: sp.csr_matrix
    item_ids: np.ndarray  # inner index -> artist id

    def interactions(self, plays: pd.DataFrame) -> tuple[sp.coo_matrix, sp.coo_matrix]:
        """(interactions, confidence weights) of a set of plays."""
        rows = zip(plays["user_id"], plays["artist_id"], confidence(plays["plays"]), strict=True)
        return self.dataset.build_interactions(rows)


def build_inputs(music: MusicData, *, use_item_features: bool = True, use_friends: bool = False) -> Inputs:
    """Every user and artist of the data. (Mood is not a LightFM feature: what a listener wants in
    a mood is learnt from their feedback at ranking time, listener.py.)"""
    tokens = item_tokens(music.artists) if use_item_features else {}
    friend_tokens = user_tokens(music.friends if use_friends else None)
    dataset = Dataset()
    users = sorted(set(music.plays["user_id"]) | set(music.friends["user_id"]))
    dataset.fit(
        users=users,
        items=music.artists.index,
        user_features=sorted({t for ts in friend_tokens.values() for t in ts}),
        item_features=sorted({t for ts in tokens.values() for t in ts}),
    )
    item_features = dataset.build_item_features(((a, ts) for a, ts in tokens.items()), normalize=True)
    user_features = dataset.build_user_features(((u, ts) for u, ts in friend_tokens.items()), normalize=True)
    _, _, item_map, _ = dataset.mapping()
    item_ids = np.empty(len(item_map), dtype=np.int64)
    for artist_id, inner in item_map.items():
        item_ids[inner] = artist_id
    return Inputs(dataset, item_features, user_features, item_ids)
