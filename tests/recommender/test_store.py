"""Recommender versions on disk."""

from __future__ import annotations

import numpy as np

from emotune_recommender.store import load_latest, save, versions


def test_versions_are_saved_atomically_and_the_latest_comes_back(tmp_path, taste):
    assert load_latest(tmp_path) is None
    assert save(taste, tmp_path)[0] == 1
    version, path = save(taste, tmp_path)
    assert (version, path.name) == (2, "v2.pkl") and versions(tmp_path) == [1, 2]
    assert not list(tmp_path.glob(".v*.tmp"))
    loaded_version, loaded = load_latest(tmp_path)
    assert loaded_version == 2 and loaded.weights == taste.weights
    users = np.array([0, 5])
    np.testing.assert_allclose(loaded.artist_scores(taste.matrix[users], users, known_rows=True),
                               taste.artist_scores(taste.matrix[users], users, known_rows=True))  # fmt: skip
