"""Calibration of predicted probabilities: temperature scaling and its class-wise form (Guo et al.
2017), and the expected calibration error, with its reliability diagram.

Mood smoothing averages the probabilities of many frames, so a model that says 0.9 where it is right
six times in ten moves the mood too fast. One temperature ``T`` fitted on validation (minimising the
negative log-likelihood of ``softmax(log p / T)``) fixes most of that without changing any top label.
A label-smoothed network is off in a way one number cannot fix (too sure of some classes, not sure
enough of others), so the release fits a temperature and a bias per class
(``softmax(scale * log p + bias)``, :class:`Calibration`) and reports both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize


@dataclass(frozen=True)
class Calibration:
    """``softmax(scales * log(p) + biases)``: a temperature ``1 / scale`` and a bias per class."""

    scales: tuple[float, ...]
    biases: tuple[float, ...]

    @classmethod
    def temperature(cls, temperature: float, classes: int = 7) -> Calibration:
        return cls((1.0 / temperature,) * classes, (0.0,) * classes)

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        logits = np.log(np.maximum(probabilities, 1e-12)) * np.asarray(self.scales) + np.asarray(self.biases)
        return _softmax(logits)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row."""
    return Calibration.temperature(temperature, probabilities.shape[1]).apply(probabilities)


def nll(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-12)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, low: float = 0.25, high: float = 4.0) -> float:
    """The ``T`` in [low, high] that minimises the NLL (golden-section search on log T; the NLL of
    temperature scaling is convex in 1/T, so the search finds the minimum)."""
    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(60):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(tempered(probabilities, np.exp(c)), labels) < nll(tempered(probabilities, np.exp(d)), labels):
            b = d
        else:
            a = c
    return float(np.exp((a + b) / 2))


def fit_classwise(probabilities: np.ndarray, labels: np.ndarray) -> Calibration:
    """The per-class scales and biases that minimise the NLL (L-BFGS from the fitted temperature; the
    NLL is convex in them, as in multinomial logistic regression on the log-probabilities)."""
    log_p = np.log(np.maximum(probabilities, 1e-12))
    classes = log_p.shape[1]
    onehot = np.eye(classes)[labels]

    def loss_and_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        q = _softmax(log_p * w[:classes] + w[classes:])
        loss = -np.log(np.maximum((q * onehot).sum(axis=1), 1e-12)).mean()
        error = (q - onehot) / len(labels)
        return loss, np.concatenate([(error * log_p).sum(axis=0), error.sum(axis=0)])

    start = 1.0 / fit_temperature(probabilities, labels)
    w0 = np.concatenate([np.full(classes, start), np.zeros(classes)])
    w = minimize(loss_and_gradient, w0, jac=True, method="L-BFGS-B").x
    return Calibration(tuple(float(v) for v in w[:classes]), tuple(float(v) for v in w[classes:]))


def crossfit_ece(probabilities: np.ndarray, labels: np.ndarray, fit, splits: int = 5, seed: int = 0) -> float:
    """The ECE of ``fit`` (probabilities, labels -> :class:`Calibration`) on faces it was not fitted
    on: each random half fits, the other half is scored, averaged over ``splits`` splits. The in-sample
    ECE flatters a calibrator with more parameters; this does not (it is a little pessimistic instead:
    half as many faces per bin)."""
    return _crossfit(probabilities, labels, fit, lambda q, y: reliability(q, y)["ece"], splits, seed)


def crossfit_accuracy(probabilities: np.ndarray, labels: np.ndarray, fit, splits: int = 5, seed: int = 0) -> float:
    """The accuracy of the probabilities once calibrated by ``fit``, on faces it was not fitted on (the
    halves of :func:`crossfit_ece`). A bias per class moves top labels, so the accuracy a version serves
    is not its networks' own; fitted and scored on the same faces, it would flatter the calibration."""
    return _crossfit(probabilities, labels, fit, lambda q, y: float((q.argmax(axis=1) == y).mean()), splits, seed)


def _crossfit(probabilities: np.ndarray, labels: np.ndarray, fit, score, splits: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(splits):
        order = rng.permutation(len(labels))
        halves = order[: len(order) // 2], order[len(order) // 2 :]
        for fit_on, score_on in (halves, halves[::-1]):
            calibration = fit(probabilities[fit_on], labels[fit_on])
            scores.append(score(calibration.apply(probabilities[score_on]), labels[score_on]))
    return float(np.mean(scores))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict:
    """Confidence and accuracy per equal-width confidence bin, and the expected calibration error
    (the gap between the two, weighted by each bin's share of the faces)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    rows, ece = [], 0.0
    for k in range(bins):
        inside = index == k
        if inside.any():
            conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += inside.mean() * abs(conf - acc)
            rows.append({"low": float(edges[k]), "high": float(edges[k + 1]), "count": int(inside.sum()),
                         "confidence": conf, "accuracy": acc})  # fmt: skip
    return {"ece": float(ece), "bins": rows}


def plot_reliability(curves: dict[str, dict], path: Path, title: str) -> None:
    """One reliability diagram with a line per model (name -> :func:`reliability`'s result)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfectly calibrated")
    for name, r in curves.items():
        xs = [b["confidence"] for b in r["bins"]]
        ys = [b["accuracy"] for b in r["bins"]]
        ax.plot(xs, ys, marker="o", label=f"{name} (ECE {r['ece']:.3f})")
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
