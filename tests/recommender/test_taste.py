"""The taste blend: its models, and weights fitted on validation rather than set by hand."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from emotune_recommender.baselines import EASE, ItemKNN, UserKNN, popularity_scores
from emotune_recommender.taste import MODELS, fit_weights, ndcg_at_k, standardise

# artists 0 and 1 are always played together; 2 and 3 by other people
PLAYS = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 1], [0, 0, 1, 1], [1, 0, 0, 0]], np.float32))


def test_the_neighbourhood_models_score_what_goes_with_a_users_plays():
    last = PLAYS[[4]]
    for scores in (ItemKNN(PLAYS).scores(last)[0], EASE(PLAYS, l2=0.5, min_users=1).scores(last)[0]):
        assert scores[1] > max(scores[2], scores[3])
    assert popularity_scores(PLAYS).tolist() == [4, 3, 1, 2]
    # user-kNN: user 4's neighbours are the 0-1 listeners; a user is never their own neighbour
    near = UserKNN(PLAYS, neighbours=2).scores(PLAYS[[0]], exclude_self=np.array([0]))[0]
    assert near[1] > near[3] > near[2] == 0


def test_ease_is_the_closed_form_with_a_zero_diagonal():
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((60, 12)) < 0.3).astype(np.float32))
    model = EASE(x, l2=5.0, min_users=1)
    b = model.weights.astype(np.float64)
    assert np.allclose(np.diag(b), 0)
    gram = (x.T @ x).toarray() + 5.0 * np.eye(12)
    # the stationarity condition of the constrained least squares: (G B - G)_ij = 0 off the diagonal
    residual = gram @ b - (x.T @ x).toarray()
    assert np.allclose(residual - np.diag(np.diag(residual)), 0, atol=1e-3)


def test_weights_follow_the_evidence_of_the_validation_split():
    rng = np.random.default_rng(1)
    held = sp.csr_matrix((rng.random((200, 300)) < 0.02).astype(np.float32))
    seen = sp.csr_matrix((200, 300), dtype=np.float32)
    truth = held.toarray()
    parts = {name: standardise(rng.standard_normal((200, 300)).astype(np.float32)) for name in MODELS}
    parts["EASE"] = standardise(truth + 0.8 * rng.standard_normal((200, 300)).astype(np.float32))
    parts["item-kNN"] = standardise(truth + 1.6 * rng.standard_normal((200, 300)).astype(np.float32))
    weights, score = fit_weights(parts, seen, held)
    assert weights["EASE"] > 0 and weights["EASE"] >= weights["item-kNN"]
    assert all(weights[n] <= 0.1 * weights["EASE"] for n in ("lightfm", "user-kNN", "popularity"))
    assert score >= ndcg_at_k(parts["EASE"], seen, held) > ndcg_at_k(parts["lightfm"], seen, held)


def test_the_served_model_was_fitted_on_validation(taste):
    assert set(taste.validation) == {*MODELS, "blend"}
    assert taste.validation["blend"] >= max(taste.validation[n] for n in MODELS)
    assert taste.validation["blend"] > 1.5 * taste.validation["popularity"]
    assert taste.used == tuple(n for n in MODELS if taste.weights[n])
