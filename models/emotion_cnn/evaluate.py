"""Evaluate a SavedModel version on a FER-style file and write REPORT.md with plots.

    python -m models.emotion_cnn.evaluate --data ../shared/data/fer2013/val.npz

Any .npz with ``x`` uint8 [N,48,48] and ``y`` uint8 [N] works. Every served version is evaluated
side by side: accuracy, per-class precision, recall and F1, confusion matrices, the expected
calibration error with a reliability diagram, images per second and size; then the training curves.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from models.emotion_cnn import LABELS

HERE = Path(__file__).resolve().parent
app = typer.Typer(add_completion=False)


def latest_version_dir(base: Path = HERE) -> Path:
    versions = served_versions(base)
    if not versions:
        raise typer.BadParameter(f"no SavedModel version under {base}")
    return versions[-1]


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


def training_runs(base: Path = HERE) -> dict[str, dict[str, list[float]]]:
    """The history of every training run kept: version 1's, then runs/<name>.csv (later runs)."""
    later = sorted((base / "runs").glob("*.csv"))
    files = [("version 1", base / "training_history.csv"), *((p.stem, p) for p in later)]
    return {name: read_history(path) for name, path in files if path.exists()}


def plot_runs(runs: dict[str, dict[str, list[float]]], path: Path) -> None:
    """Loss and accuracy by epoch of every run, train dashed and validation solid, one colour a run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, (name, history) in enumerate(runs.items()):
        epochs = [e + 1 for e in history["epoch"]]
        colour = f"C{i}"
        left.plot(epochs, history["loss"], "--", color=colour, alpha=0.6)
        left.plot(epochs, history["val_loss"], color=colour, label=name)
        right.plot(epochs, history["accuracy"], "--", color=colour, alpha=0.6)
        best = max(history["val_accuracy"])
        right.plot(epochs, history["val_accuracy"], color=colour, label=f"{name} (best {best:.1%})")
    left.set_title("loss (dashed: train, augmented)")
    right.set_title("accuracy, one view (dashed: train, augmented)")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def served_versions(base: Path = HERE) -> list[Path]:
    """Every SavedModel version folder, oldest first."""
    return sorted((p for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").exists()),
                  key=lambda p: int(p.name))  # fmt: skip


def images_per_second(model_dir: Path, images: np.ndarray, batch_size: int = 64, rounds: int = 5) -> float:
    """In-process throughput at one batch size, the best of ``rounds`` (after a warm-up batch)."""
    import time

    import tensorflow as tf

    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    batch = tf.constant(images[:batch_size])
    serve(images=batch)
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        serve(images=batch)["probabilities"].numpy()
        best = max(best, batch_size / (time.perf_counter() - started))
    return best


def size_mb(model_dir: Path) -> float:
    return sum(f.stat().st_size for f in model_dir.rglob("*") if f.is_file()) / 1e6


@dataclass
class VersionScores:
    name: str
    accuracy: float
    classes: list[dict[str, float]]
    matrix: np.ndarray
    calibration: dict
    speed: float
    size: float
    training: dict
    release: dict


def score_version(model_dir: Path, images: np.ndarray, labels: np.ndarray) -> VersionScores:
    from models.emotion_cnn.calibration import reliability

    probabilities = predict(model_dir, images)
    matrix = confusion(labels, probabilities.argmax(axis=1))
    training, release = model_dir / "training.json", model_dir / "release.json"
    return VersionScores(
        f"version {model_dir.name}", float((probabilities.argmax(axis=1) == labels).mean()), per_class(matrix),
        matrix, reliability(probabilities, labels), images_per_second(model_dir, images), size_mb(model_dir),
        json.loads(training.read_text()) if training.exists() else {},
        json.loads(release.read_text()) if release.exists() else {},
    )  # fmt: skip


def _class_row(scores: list[VersionScores], k: int, label: str) -> str:
    cells = [
        f"{v.classes[k]['precision']:.3f} / {v.classes[k]['recall']:.3f} / {v.classes[k]['f1']:.3f}" for v in scores
    ]
    return f"| {label} | {scores[0].classes[k]['support']} | " + " | ".join(cells) + " |"


def report(scores: list[VersionScores], data: Path, faces: int, curves: bool) -> str:
    names = [v.name for v in scores]
    lines = [
        "# Emotion CNN: evaluation",
        "",
        f"Every served version on `{data.name}` ({faces:,} faces), side by side. Written by `make eval DATA={data}`.",
        "",
        "| | " + " | ".join(names) + " |",
        "| --- |" + " ---: |" * len(scores),
        "| accuracy | " + " | ".join(f"**{v.accuracy:.2%}**" for v in scores) + " |",
        "| macro F1 | " + " | ".join(f"{np.mean([c['f1'] for c in v.classes]):.3f}" for v in scores) + " |",
        "| ECE (15 bins) | " + " | ".join(f"{v.calibration['ece']:.3f}" for v in scores) + " |",
        "| images/s in-process, batch 64, this run | " + " | ".join(f"{v.speed:,.0f}" for v in scores) + " |",
        "| size | " + " | ".join(f"{v.size:.1f} MB" for v in scores) + " |",
        "",
        "Per class (precision / recall / F1):",
        "",
        "| label | support | " + " | ".join(names) + " |",
        "| --- | ---: |" + " ---: |" * len(scores),
        *[_class_row(scores, k, label) for k, label in enumerate(LABELS)],
        "",
        *[f"![confusion matrix, {v.name}](confusion_matrix_{v.name.split()[-1]}.png)" for v in scores],
        "",
        "![reliability](reliability.png)",
        "",
        "The capture path on real faces (`python -m models.emotion_cnn.contact_sheet`):",
        "",
        "![contact sheet](contact_sheet.png)",
        "",
    ]
    if curves:
        lines += ["## Training", "", "![training curves](training_curves.png)", ""]
    for v in scores:
        if v.training:
            lines += [f"Training run of {v.name}: " + ", ".join(f"{k} {x}" for k, x in v.training.items()), ""]
    for v in scores:
        if v.release:
            lines += _release_section(v.name, v.release)
    if (HERE / "what_helped.md").exists():
        lines += [(HERE / "what_helped.md").read_text()]
    return "\n".join(lines)


def _release_section(name: str, release: dict) -> list[str]:
    """What ``models.emotion_cnn.release`` weighed for a version, from its release.json."""

    def names(networks: list[str]) -> str:  # a run's checkpoint by its folder, an exported version by its number
        return " + ".join(Path(n).parent.name if n.endswith(".h5") else f"version {Path(n).name}" for n in networks)

    chosen, ece = release["chosen"], release["val_ece"]
    served = "val_accuracy_served_crossfit" in chosen  # the releases before it chose by the networks' own accuracy
    rows = [f"| {names(c['networks'])} | {' + '.join(c['views'])} | {c['passes']} | {c['val_accuracy']:.2%} | "
            + (f"{c['val_accuracy_served_crossfit']:.2%} | " if served else "")
            + f"{c['val_nll']:.3f} |" for c in release["candidates"]]  # fmt: skip
    return [
        f"## How {name} was chosen",
        "",
        f"Every combination of the networks and views within {release['budget_passes']} forward passes a face, "
        + (
            "on validation: their own accuracy and NLL, and the accuracy served once calibrated, cross-fitted "
            "(the calibration fitted on one random half, scored on the other, 5 splits), which chose:"
            if served
            else "on validation (before calibration):"
        ),
        "",
        "| networks | views | passes | accuracy | " + ("served, cross-fitted | " if served else "") + "NLL |",
        "| --- | --- | ---: | ---: | " + ("---: | " if served else "") + "---: |",
        *rows,
        "",
        f"Chosen: {names(chosen['networks'])} x {' + '.join(chosen['views'])}, "
        f"{release['val_accuracy_calibrated']:.2%} on validation once calibrated. Its calibration, fitted on "
        "validation (ECE in-sample, and cross-fitted: fitted on one random half, scored on the other, "
        "averaged over 5 splits):",
        "",
        "| calibration | ECE | cross-fitted ECE |",
        "| --- | ---: | ---: |",
        f"| none | {ece['none']:.4f} | |",
        f"| one temperature, {release['temperature']} | {ece['temperature']:.4f} | {ece['temperature_crossfit']:.4f} |",
        f"| a temperature and a bias per class (served) | {ece['classwise']:.4f} | {ece['classwise_crossfit']:.4f} |",
        "",
    ]


@app.command()
def main(
    data: Path = typer.Option(..., help="An .npz with x uint8 [N,48,48] and y uint8 [N]"),
    out: Path = typer.Option(HERE, help="Folder for REPORT.md and its PNG files"),
) -> None:
    """Evaluate every served version side by side and write REPORT.md with its pictures."""
    from models.emotion_cnn.calibration import plot_reliability
    from models.emotion_cnn.data import DataError, load_npz

    try:
        images, labels = load_npz(data)
    except DataError as e:
        raise typer.BadParameter(str(e), param_hint="--data") from None
    versions = served_versions()
    if not versions:
        raise typer.BadParameter(f"no SavedModel version under {HERE}")
    scores = [score_version(v, images, labels) for v in versions]
    out.mkdir(parents=True, exist_ok=True)
    for v in scores:
        plot_confusion(v.matrix, out / f"confusion_matrix_{v.name.split()[-1]}.png", f"{v.name}: {v.accuracy:.1%}")
    plot_reliability({v.name: v.calibration for v in scores}, out / "reliability.png", f"reliability on {data.name}")
    runs = training_runs()
    curves = bool(runs)
    if curves:
        plot_runs(runs, out / "training_curves.png")
    (out / "REPORT.md").write_text(report(scores, data, len(labels), curves))
    typer.echo("; ".join(f"{v.name} accuracy {v.accuracy:.4f}" for v in scores) + f"; wrote {out / 'REPORT.md'}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app()
