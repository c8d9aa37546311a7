"""Calibration of predicted probabilities: temperature scaling (Guo et al. 2017) and the expected
calibration error, with its reliability diagram.

Mood smoothing averages the probabilities of many frames, so a model that says 0.9 where it is right
six times in ten moves the mood too fast. One temperature ``T`` fitted on validation (minimising the
negative log-likelihood of ``softmax(log p / T)``) fixes most of that without changing any top label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tempered(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row (what the served model computes)."""
    logits = np.log(np.maximum(probabilities, 1e-12)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


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
