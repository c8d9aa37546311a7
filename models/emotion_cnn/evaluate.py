"""Evaluate a SavedModel version on a FER-style file and write REPORT.md with plots.

    python -m models.emotion_cnn.evaluate --data ../shared/data/fer2013/val.npz

Any .npz with ``x`` uint8 [N,48,48] and ``y`` uint8 [N] works. The report holds accuracy,
per-class precision, recall and F1, a confusion matrix and the training curves of the version.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import typer

from models.emotion_cnn import LABELS

HERE = Path(__file__).resolve().parent
app = typer.Typer(add_completion=False)


def latest_version_dir(base: Path = HERE) -> Path:
    versions = sorted((int(p.name), p) for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists())
    if not versions:
        raise typer.BadParameter(f"no SavedModel version under {base}")
    return versions[-1][1]


def predict(model_dir: Path, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Probabilities [N,7] from the model's serving signature, with a progress bar."""
    import tensorflow as tf
    from tqdm import tqdm

    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    out = [
        serve(images=tf.constant(images[i : i + batch_size]))["probabilities"].numpy()
        for i in tqdm(range(0, len(images), batch_size), desc="evaluating", unit="batch")
    ]
    return np.concatenate(out)


def confusion(labels: np.ndarray, predicted: np.ndarray, classes: int = len(LABELS)) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class(matrix: np.ndarray) -> list[dict[str, float]]:
    """Precision, recall, F1 and support per class (rows: true label, columns: predicted)."""
    rows = []
    for k in range(len(matrix)):
        tp = matrix[k, k]
        precision = tp / matrix[:, k].sum() if matrix[:, k].sum() else 0.0
        recall = tp / matrix[k].sum() if matrix[k].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"precision": precision, "recall": recall, "f1": f1, "support": int(matrix[k].sum())})
    return rows


def plot_confusion(matrix: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(LABELS)):
        for j in range(len(LABELS)):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            ax.text(j, i, f"{normalised[i, j]:.2f}\n{matrix[i, j]}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true label")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_history(path: Path) -> dict[str, list[float]]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {key: [float(r[key]) for r in rows] for key in rows[0]} if rows else {}


def plot_history(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e + 1 for e in history["epoch"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(epochs, history["loss"], label="train")
    left.plot(epochs, history["val_loss"], label="validation")
    left.set_title("loss")
    right.plot(epochs, history["accuracy"], label="train (augmented)")
    right.plot(epochs, history["val_accuracy"], label="validation")
    right.set_title("accuracy")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


@app.command()
def main(
    data: Path = typer.Option(..., help="An .npz with x uint8 [N,48,48] and y uint8 [N]"),
    model_dir: Path = typer.Option(None, help="A SavedModel version folder (default: the latest one)"),
    out: Path = typer.Option(HERE, help="Folder for REPORT.md and its PNG files"),
) -> None:
    """Evaluate and write REPORT.md, confusion_matrix.png and training_curves.png."""
    from models.emotion_cnn.data import DataError, load_npz

    try:
        images, labels = load_npz(data)
    except DataError as e:
        raise typer.BadParameter(str(e), param_hint="--data") from None
    model_dir = model_dir or latest_version_dir()
    probabilities = predict(model_dir, images)
    predicted = probabilities.argmax(axis=1)
    matrix = confusion(labels, predicted)
    classes = per_class(matrix)
    accuracy = float((predicted == labels).mean())
    out.mkdir(parents=True, exist_ok=True)
    plot_confusion(matrix, out / "confusion_matrix.png", f"{data.name}: accuracy {accuracy:.1%}")
    history_file = HERE / "training_history.csv"
    curves = history_file.exists()
    if curves:
        plot_history(read_history(history_file), out / "training_curves.png")
    training = model_dir / "training.json"
    info = json.loads(training.read_text()) if training.exists() else {}

    lines = [
        "# Emotion CNN: evaluation",
        "",
        f"Model `{model_dir.relative_to(HERE.parents[1]) if model_dir.is_relative_to(HERE.parents[1]) else model_dir}`"
        f" on `{data.name}` ({len(labels):,} faces). Written by `make eval DATA={data}`.",
        "",
        f"**Accuracy: {accuracy:.2%}** (served model: the mean of each face and its mirror image).",
        "",
        "| label | precision | recall | F1 | support |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {name} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
            for name, c in zip(LABELS, classes, strict=True)
        ],
        f"| macro average | {np.mean([c['precision'] for c in classes]):.3f} | "
        f"{np.mean([c['recall'] for c in classes]):.3f} | {np.mean([c['f1'] for c in classes]):.3f} | {len(labels)} |",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
    ]
    if curves:
        lines += ["## Training", "", "![training curves](training_curves.png)", ""]
    if info:
        lines += ["Training run: " + ", ".join(f"{k} {v}" for k, v in info.items()), ""]
    (out / "REPORT.md").write_text("\n".join(lines))
    typer.echo(f"accuracy {accuracy:.4f}; wrote {out / 'REPORT.md'}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app()
