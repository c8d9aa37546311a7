"""Recommender versions on disk."""

from __future__ import annotations

import numpy as np

from emotune_recommender.data import load_music
from emotune_recommender.model import Hyper, Recommender
from emotune_recommender.store import load_latest, save, versions

from ..conftest import DATA_DIR


def test_versions_are_saved_atomically_and_the_latest_comes_back(tmp_path):
    assert load_latest(tmp_path) is None
    music = load_music(DATA_DIR)
    small = Recommender.train(music, music.plays.head(5_000), Hyper(epochs=2))
    assert save(small, tmp_path)[0] == 1
    version, path = save(small, tmp_path)
    assert (version, path.name) == (2, "v2.pkl") and versions(tmp_path) == [1, 2]
    assert not list(tmp_path.glob(".v*.tmp"))
    loaded_version, loaded = load_latest(tmp_path)
    assert loaded_version == 2
    user = next(iter(small.seen))
    np.testing.assert_allclose(loaded.taste(user), small.taste(user))
