"""The recommenders a user of older systems expects, as baselines and as features of the service."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def popularity_scores(train: sp.csr_matrix) -> np.ndarray:
    """[items]: how many users played each artist."""
    return np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()


def item_knn_scores(train: sp.csr_matrix, users: np.ndarray) -> np.ndarray:
    """[len(users), items]: classic item-based CF, sum of cosine similarities to the user's artists.

    x_u S with S = Xn^T Xn (Xn: columns normalised to unit length) is computed as (x_u Xn^T) Xn,
    which never forms the items x items matrix.
    """
    norms = np.sqrt(np.asarray(train.multiply(train).sum(axis=0)).ravel())
    normalised = train @ sp.diags(1.0 / np.maximum(norms, 1e-9))
    rows = train[users]
    return ((rows @ normalised.T) @ normalised).toarray().astype(np.float32)
