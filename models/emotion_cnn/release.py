"""Make a served version out of trained networks: choose the networks and test-time views on
validation within a cost budget, fit the temperature, export.

    python -m models.emotion_cnn.release --weights models/emotion_cnn/checkpoints/finetune-v1/best.weights.h5 \\
        --member models/emotion_cnn/1 --budget 2

Every network and view costs one forward pass per face, so the candidates are every combination of
the networks given (trained weights and exported versions) with one or both views, and only those of
at most ``--budget`` passes compete (version 1 serves 2: one network, both views). The most accurate
on validation is exported, with the temperature fitted on validation inside it. What each candidate
scored is written to ``release.json`` in the new version, for REPORT.md.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import typer

HERE = Path(__file__).resolve().parent
app = typer.Typer(add_completion=False)


def _views_probabilities(model, images: np.ndarray) -> dict[str, np.ndarray]:
    from models.emotion_cnn.export import VIEWS

    return {view: model.predict(np.asarray(fn(images)), batch_size=256, verbose=0) for view, fn in VIEWS.items()}


def candidates(
    probabilities: dict[str, dict[str, np.ndarray]], budget: int
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """(networks, views) pairs of at most ``budget`` forward passes."""
    names = list(probabilities)
    views = [("identity",), ("identity", "mirror")]
    out = []
    for r in range(1, len(names) + 1):
        for members in itertools.combinations(names, r):
            out.extend((members, v) for v in views if len(members) * len(v) <= budget)
    return out


@app.command()
def main(
    weights: list[Path] = typer.Option([], help="Trained weights (.weights.h5 of models.emotion_cnn.train)"),
    member: list[Path] = typer.Option([], help="An exported version folder to consider as a network too"),
    budget: int = typer.Option(2, min=1, help="Forward passes per face, at most"),
    data_dir: Path = typer.Option(None, help="Folder holding fer2013/ (default: EMOTUNE_DATA_DIR or ../shared/data)"),
    export_dir: Path = typer.Option(HERE, help="Where the new version is written"),
    version: int = typer.Option(None, help="Version number (default: the next one)"),
) -> None:
    from models.emotion_cnn.calibration import fit_temperature, nll, reliability, tempered
    from models.emotion_cnn.data import DEFAULT_DATA_DIR, fer_path, load_npz
    from models.emotion_cnn.export import export_savedmodel
    from models.emotion_cnn.network import build_model
    from models.emotion_cnn.warmstart import load_weights_from_savedmodel

    if not weights and not member:
        raise typer.BadParameter("give at least one --weights or --member")
    x_val, y_val = load_npz(fer_path("val", data_dir or DEFAULT_DATA_DIR))
    networks, probabilities = {}, {}
    for path in [*weights, *member]:
        if not path.exists():
            raise typer.BadParameter(f"{path} does not exist")
        model = build_model()
        if path.is_dir():
            load_weights_from_savedmodel(model, path)
        else:
            model.load_weights(str(path))
        networks[str(path)] = model
        typer.echo(f"scoring {path} on {len(y_val)} validation faces, both views")
        probabilities[str(path)] = _views_probabilities(model, x_val)

    scored = []
    for members, views in candidates(probabilities, budget):
        p = np.mean([probabilities[m][v] for m in members for v in views], axis=0)
        accuracy = float((p.argmax(axis=1) == y_val).mean())
        scored.append({"networks": list(members), "views": list(views), "passes": len(members) * len(views),
                       "val_accuracy": round(accuracy, 4), "val_nll": round(nll(p, y_val), 4), "_p": p})  # fmt: skip
        typer.echo(f"  {len(members)} network(s) x {'+'.join(views)}: {accuracy:.4f}")
    best = max(scored, key=lambda s: (s["val_accuracy"], -s["passes"]))
    p = best.pop("_p")
    temperature = fit_temperature(p, y_val)
    before, after = reliability(p, y_val), reliability(tempered(p, temperature), y_val)
    typer.echo(f"chosen: {best['networks']} x {best['views']}; temperature {temperature:.3f}, "
               f"ECE {before['ece']:.4f} -> {after['ece']:.4f}")  # fmt: skip
    path = export_savedmodel([networks[m] for m in best["networks"]], export_dir, version, best["views"], temperature)
    for s in scored:
        s.pop("_p", None)
    release = {"chosen": best, "temperature": round(temperature, 4), "val_ece_before": round(before["ece"], 4),
               "val_ece_after": round(after["ece"], 4), "budget_passes": budget, "candidates": scored}  # fmt: skip
    (path / "release.json").write_text(json.dumps(release, indent=2) + "\n")
    typer.echo(f"exported {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app()
