"""Scorers over the listening matrix: the baselines a user of older systems expects, and parts of
the service's blend. Each takes the training matrix (users x artists, confidence weights) and the
rows to score, and never forms a dense users x items product it does not need."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def popularity_scores(train: sp.csr_matrix) -> np.ndarray:
    """[items]: how many users played each artist."""
    return np.asarray((train > 0).sum(axis=0), dtype=np.float32).ravel()


def _unit_columns(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    return (matrix @ sp.diags(1.0 / np.maximum(norms, 1e-9))).tocsr()


class ItemKNN:
    """Item-based CF: a user's score for an artist is the sum of its cosine similarities to the
    artists they played. x S with S = Xn^T Xn is computed as (x Xn^T) Xn: no items x items matrix."""

    def __init__(self, train: sp.csr_matrix) -> None:
        self.normalised = _unit_columns(train)
        self.transposed = self.normalised.T.tocsr()

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        return ((rows @ self.transposed) @ self.normalised).toarray().astype(np.float32)


class UserKNN:
    """User-based CF: the plays of the ``neighbours`` users most like this one (cosine), weighted
    by their similarity."""

    def __init__(self, train: sp.csr_matrix, neighbours: int = 50) -> None:
        norms = np.sqrt(np.asarray(train.multiply(train).sum(axis=1)).ravel())
        self.users = (sp.diags(1.0 / np.maximum(norms, 1e-9)) @ train).tocsr()
        self.binary = (train > 0).astype(np.float32).tocsr()
        self.neighbours = neighbours

    def scores(self, rows: sp.csr_matrix, exclude_self: np.ndarray | None = None) -> np.ndarray:
        """``exclude_self``: for rows that are training users, their own index (a user is not their neighbour)."""
        norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
        similar = np.asarray((sp.diags(1.0 / np.maximum(norms, 1e-9)) @ rows @ self.users.T).todense())
        if exclude_self is not None:
            similar[np.arange(len(similar)), exclude_self] = 0
        k = min(self.neighbours, similar.shape[1] - 1)
        cut = -np.partition(-similar, k, axis=1)[:, k : k + 1]  # the (k+1)-th largest
        similar[similar <= cut] = 0
        return (sp.csr_matrix(similar) @ self.binary).toarray().astype(np.float32)


class EASE:
    """EASE^R (Steck 2019): the item-item weights B minimising ||X - XB||^2 + l2 ||B||^2 with a zero
    diagonal, in closed form: P = (X^T X + l2 I)^-1, B = -P / diag(P), diag(B) = 0.

    Only artists played by at least ``min_users`` users take part: the others cannot be learnt from
    co-occurrence, and leaving them out keeps the inverse small (about 6,000 artists of 17,632).
    """

    def __init__(self, train: sp.csr_matrix, l2: float = 200.0, min_users: int = 2) -> None:
        binary = (train > 0).astype(np.float32).tocsr()
        self.items = np.flatnonzero(np.asarray(binary.sum(axis=0)).ravel() >= min_users)
        self.width = train.shape[1]
        x = binary[:, self.items]
        gram = np.asarray((x.T @ x).todense(), dtype=np.float64)
        gram[np.diag_indices_from(gram)] += l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)
        b[np.diag_indices_from(b)] = 0
        self.weights = b.astype(np.float32)

    def scores(self, rows: sp.csr_matrix) -> np.ndarray:
        binary = (rows[:, self.items] > 0).astype(np.float32)
        out = np.zeros((rows.shape[0], self.width), np.float32)
        out[:, self.items] = binary @ self.weights
        return out
