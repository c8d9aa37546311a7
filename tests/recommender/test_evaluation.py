"""The recommender's offline floors, measured as `make eval-recommender` measures them."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from emotune_recommender.baselines import item_knn_scores, popularity_scores
from emotune_recommender.data import load_music, split_per_user
from emotune_recommender.evaluate import cold_start_auc, evaluate_scorer, lightfm_scorer
from emotune_recommender.model import Recommender

from ..conftest import DATA_DIR


@pytest.fixture(scope="module")
def split():
    music = load_music(DATA_DIR)
    return (music, *split_per_user(music.plays))


def test_item_knn_scores_artists_by_their_similarity_to_what_a_user_played():
    # artists 0 and 1 are always played together; artist 2 by someone else
    train = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float32))
    scores = item_knn_scores(train, np.array([3]))[0]
    assert scores[1] > scores[2] == 0
    assert popularity_scores(train).tolist() == [3, 2, 1]


@pytest.mark.slow
def test_hybrid_precision_is_well_above_popularity(split):
    music, train_plays, test_plays = split
    hybrid = Recommender.train(music, train_plays)
    train, _ = hybrid.inputs.interactions(train_plays)
    test, _ = hybrid.inputs.interactions(test_plays)
    train, test = train.tocsr(), test.tocsr()
    keep = np.zeros(test.shape[0], bool)
    keep[np.flatnonzero(np.diff(test.indptr))[:500]] = True
    test = sp.diags(keep.astype(np.float32)) @ test  # the first 500 users with held-out artists
    popularity = popularity_scores(train)
    ours = evaluate_scorer(lightfm_scorer(hybrid), train, test, "hybrid")
    baseline = evaluate_scorer(lambda users: np.tile(popularity, (len(users), 1)), train, test, "popularity")
    assert ours.precision >= 1.5 * baseline.precision
    assert ours.auc > baseline.auc and ours.coverage > baseline.coverage


@pytest.mark.slow
def test_artists_without_plays_are_still_recommendable_through_their_features(split):
    music, train_plays, test_plays = split
    auc = cold_start_auc(music, train_plays, test_plays)
    assert auc["hybrid"] >= 0.70
    assert auc["collaborative"] < 0.6  # identity alone knows nothing of an artist never played
