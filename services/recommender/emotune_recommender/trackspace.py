"""The catalogue as the ranker sees it: tracks on an artist axis, taste per artist, similar tracks.

The artist axis is every Last.fm artist, in the taste model's order, then every catalogue artist
the listening data lacks. Taste for the first part is the blend (taste.py). The others nobody
played: the LightFM hybrid scores them from their features alone (genres, audio-feature quintiles,
mood quadrant, the same tokens as the artists it was trained on), standardised like the listener's
other LightFM scores and weighted as LightFM is in the blend.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from emotune_recommender.catalogue import Catalogue
from emotune_recommender.data import AUDIO_FEATURES
from emotune_recommender.features import BUCKETS
from emotune_recommender.mood import quadrant, track_points
from emotune_recommender.ranking import TrackIndex
from emotune_recommender.taste import TasteModel, blend

#: audio features that place a track among similar ones (standardised, tempo included)
SIMILARITY_FEATURES = ("valence", "energy", "danceability", "acousticness", "tempo")


def _feature_rows(catalogue: Catalogue, novel: pd.Index, taste: TasteModel, artists: pd.DataFrame) -> sp.csr_matrix:
    """LightFM item-feature rows for artists the model never saw: their tracks' genres and mean
    audio features as the model's own tokens, each weighted 1/n (as build_item_features normalises)."""
    columns = taste.lightfm.inputs.dataset.mapping()[3]
    matched = artists[artists["matched"]]
    edges = {f: np.quantile(matched[f].to_numpy(float), np.linspace(0, 1, BUCKETS + 1)[1:-1]) for f in AUDIO_FEATURES}
    tracks = catalogue.tracks[catalogue.tracks["artist_id"].isin(novel)]
    means = tracks.groupby("artist_id")[list(AUDIO_FEATURES)].mean()
    genres = tracks.groupby("artist_id")["genres"].agg(lambda gs: sorted({g for gl in gs for g in gl}))
    rows, cols, values = [], [], []
    for i, artist in enumerate(novel):
        tokens = [f"genre:{g}" for g in genres.get(artist, [])]
        row = means.loc[artist]
        for f in AUDIO_FEATURES:
            if np.isfinite(row[f]):
                tokens.append(f"{f}:{int(np.searchsorted(edges[f], row[f], side='right'))}")
        tokens.append(f"quadrant:{quadrant(row['valence'], row['energy'])}")
        ids = [columns[t] for t in tokens if t in columns]
        rows += [i] * len(ids)
        cols += ids
        values += [1.0 / max(len(ids), 1)] * len(ids)
    return sp.csr_matrix((values, (rows, cols)), shape=(len(novel), len(columns)), dtype=np.float32)


@dataclass
class TrackSpace:
    catalogue: Catalogue
    index: TrackIndex
    lastfm_artists: int  # the first part of the axis
    novel_biases: np.ndarray  # LightFM bias and vector of each artist in the second part
    novel_vectors: np.ndarray
    axis_ids: np.ndarray  # artist id (text) of each axis position
    similarity: np.ndarray  # [tracks, features] standardised audio features
    genre_rows: dict[str, np.ndarray]  # genre -> rows of its tracks
    axis_by_id: dict[str, int]
    lastfm_points: np.ndarray  # [Last.fm artists, 2] their mean valence-arousal point, NaN where unknown

    @classmethod
    def build(cls, catalogue: Catalogue, taste: TasteModel, artists: pd.DataFrame) -> TrackSpace:
        """``artists``: the Last.fm artists with their Spotify features (MusicData.artists)."""
        tracks = catalogue.tracks
        lastfm_ids = taste.lightfm.inputs.item_ids  # inner -> Last.fm id
        inner = pd.Series(np.arange(len(lastfm_ids)), index=lastfm_ids)
        novel = pd.Index(sorted(set(tracks.loc[tracks["lastfm_id"] < 0, "artist_id"])))
        axis = np.where(
            tracks["lastfm_id"].to_numpy() >= 0,
            tracks["lastfm_id"].map(inner).fillna(-1).to_numpy(np.int64),
            len(lastfm_ids) + novel.get_indexer(tracks["artist_id"]),
        )
        features = _feature_rows(catalogue, novel, taste, artists)
        model = taste.lightfm.model
        novel_biases = np.asarray(features @ model.item_biases, np.float32)
        novel_vectors = np.asarray(features @ model.item_embeddings, np.float32)
        values = tracks[list(SIMILARITY_FEATURES)].astype(float)
        values = (values - values.mean()) / values.std().replace(0, 1)
        axis_ids = np.concatenate([lastfm_ids.astype(str), novel.to_numpy(str)])
        means = artists.loc[lastfm_ids]
        genres: dict[str, list[int]] = {}
        for row, names in enumerate(tracks["genres"]):
            for name in names:
                genres.setdefault(name, []).append(row)
        similarity = values.fillna(0).to_numpy(np.float32)
        index = TrackIndex(axis, catalogue.points, tracks["popularity"].to_numpy(), len(axis_ids), similarity)
        return cls(catalogue, index, len(lastfm_ids), novel_biases, novel_vectors, axis_ids, similarity,
                   {g: np.array(rows) for g, rows in genres.items()}, {a: i for i, a in enumerate(axis_ids)},
                   track_points(means["valence"].to_numpy(), means["energy"].to_numpy()))  # fmt: skip

    @cached_property
    def artists_table(self) -> pd.DataFrame:
        """The catalogue's artists (index: artist id): name, genres, tracks, popularity."""
        return self.catalogue.artists()

    @cached_property
    def genre_counts(self) -> pd.Series:
        return self.catalogue.genre_counts()

    @property
    def artists(self) -> int:
        return len(self.axis_ids)

    def artist_taste(self, taste: TasteModel, row: sp.csr_matrix, user: int) -> np.ndarray:
        """[axis] taste 0..1 for one listener: ``row``, their plays over the Last.fm artists (their
        history and likes); ``user``, their inner id in the model (-1 for a new listener)."""
        users = np.array([user])
        if row.nnz == 0 and user < 0:  # a listener we know nothing of: what most people play
            z = taste.components.scores(row, users, models=("popularity",))["popularity"][0]
            novel = np.full(self.artists - self.lastfm_artists, float(z.min()), np.float32)
        else:
            raw = taste.components.lightfm_rows(users, row)
            z = blend(taste.components.scores(row, users, models=taste.used, lightfm_raw=raw), taste.weights)[0]
            vector = taste.components.lightfm_vector(user, row)
            novel = np.zeros(self.artists - self.lastfm_artists, np.float32)
            raw = raw[0]
            if vector is not None and raw.std() > 1e-9:
                scores = self.novel_vectors @ vector + self.novel_biases
                novel = taste.weights.get("lightfm", 0.0) * (scores - raw.mean()) / raw.std()
        full = np.concatenate([z, novel]).astype(np.float32)
        low, high = float(full.min()), float(full.max())
        return (full - low) / (high - low) if high > low else np.zeros_like(full)

    @cached_property
    def lacking(self) -> np.ndarray:
        """Axis positions of the Last.fm artists the catalogue has no track of."""
        counts = np.diff(self.index.starts)[: self.lastfm_artists]
        return np.flatnonzero(counts == 0)

    def similar_tracks(self, track: int, n: int = 8) -> np.ndarray:
        """The ``n`` tracks nearest to ``track`` by their audio features (itself excluded)."""
        distance = np.linalg.norm(self.similarity - self.similarity[track], axis=1)
        distance[track] = np.inf
        near = np.argpartition(distance, n)[:n]
        return near[np.argsort(distance[near])]

    def genre_mask(self, genres: set[str]) -> np.ndarray:
        """[tracks] True where a track has one of ``genres``."""
        mask = np.zeros(len(self.index), bool)
        for genre in genres:
            if genre in self.genre_rows:
                mask[self.genre_rows[genre]] = True
        return mask

    def axis_of(self, artist_id: str) -> int | None:
        return self.axis_by_id.get(artist_id)
