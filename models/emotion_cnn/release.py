"""Make a served version out of trained networks: choose the networks and test-time views on
validation within a cost budget, fit the calibration, export.

    python -m models.emotion_cnn.release --weights models/emotion_cnn/checkpoints/long/best.weights.h5 \\
        --member models/emotion_cnn/1 --budget 2 --version 2

Every network and view costs one forward pass per face, so the candidates are every combination of
the networks given (trained weights and exported versions) with one or both views, and only those of
at most ``--budget`` passes compete (version 1 serves 2: one network, both views). The one most
accurate on validation as it would be served (calibrated, cross-fitted: :func:`score_candidates`) is
exported, with a temperature and a bias per class fitted on validation inside it
(calibration.py; one shared temperature is fitted and reported beside it). What each candidate and
each calibration scored is written to ``release.json`` in the new version, for REPORT.md. When
``--weights`` are given and the members alone win, nothing is exported.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import asdict
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


def score_candidates(probabilities: dict[str, dict[str, np.ndarray]], labels: np.ndarray, budget: int) -> list[dict]:
    """Every candidate of at most ``budget`` passes on the validation faces: its networks' own accuracy and
    NLL, and the accuracy it would serve, calibrated as served by a fit on other faces (cross-fitted).

    The served figure is what the release chooses by: a bias per class moves top labels, and by more for
    some candidates than others (the two long networks one view each: 67.68% their own, 67.94% served;
    the second with its mirror: 67.96% and 67.64%)."""
    from models.emotion_cnn.calibration import crossfit_accuracy, fit_classwise, nll

    scored = []
    for members, views in candidates(probabilities, budget):
        p = np.mean([probabilities[m][v] for m in members for v in views], axis=0)
        scored.append({"networks": list(members), "views": list(views), "passes": len(members) * len(views),
                       "val_accuracy": round(float((p.argmax(axis=1) == labels).mean()), 4),
                       "val_accuracy_served_crossfit": round(crossfit_accuracy(p, labels, fit_classwise), 4),
                       "val_nll": round(nll(p, labels), 4), "_p": p})  # fmt: skip
    return scored


def choose(scored: list[dict]) -> dict:
    """The candidate that serves the most accurately, the cheaper of two that serve alike."""
    return max(scored, key=lambda s: (s["val_accuracy_served_crossfit"], -s["passes"]))


@app.command()
def main(
    weights: list[Path] = typer.Option([], help="Trained weights (.weights.h5 of models.emotion_cnn.train)"),
    member: list[Path] = typer.Option([], help="An exported version folder to consider as a network too"),
    budget: int = typer.Option(2, min=1, help="Forward passes per face, at most"),
    data_dir: Path = typer.Option(None, help="Folder holding fer2013/ (default: EMOTUNE_DATA_DIR or ../shared/data)"),
    export_dir: Path = typer.Option(HERE, help="Where the new version is written"),
    version: int = typer.Option(None, help="Version number (default: the next one)"),
) -> None:
    from models.emotion_cnn.calibration import (
        Calibration,
        crossfit_ece,
        fit_classwise,
        fit_temperature,
        reliability,
    )
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
            try:
                load_weights_from_savedmodel(model, path)
            except ValueError as e:  # a version of several networks (version 4) is no one network
                raise typer.BadParameter(f"{e}; give the versions or weights of its networks instead") from e
        else:
            model.load_weights(str(path))
        networks[str(path)] = model
        typer.echo(f"scoring {path} on {len(y_val)} validation faces, both views")
        probabilities[str(path)] = _views_probabilities(model, x_val)

    scored = score_candidates(probabilities, y_val, budget)
    for s in scored:
        typer.echo(f"  {len(s['networks'])} network(s) x {'+'.join(s['views'])}: {s['val_accuracy']:.4f}, "
                   f"served {s['val_accuracy_served_crossfit']:.4f} (cross-fitted)")  # fmt: skip
    best = choose(scored)
    if weights and not set(best["networks"]) & {str(w) for w in weights}:
        # the new weights lost to the committed versions alone: exporting would only remake one of them
        typer.echo(f"chosen: {best['networks']} x {best['views']}, none of the --weights given: nothing exported",
                   err=True)  # fmt: skip
        raise typer.Exit(1)
    p = best.pop("_p")
    fits = {"temperature": lambda q, y: Calibration.temperature(fit_temperature(q, y)), "classwise": fit_classwise}
    calibrations = {name: fit(p, y_val) for name, fit in fits.items()}
    ece = {"none": round(reliability(p, y_val)["ece"], 4)}
    for name, calibration in calibrations.items():
        ece[name] = round(reliability(calibration.apply(p), y_val)["ece"], 4)
        ece[f"{name}_crossfit"] = round(crossfit_ece(p, y_val, fits[name]), 4)
    calibration = calibrations["classwise"]
    typer.echo(f"chosen: {best['networks']} x {best['views']}; validation ECE {ece}")
    path = export_savedmodel([networks[m] for m in best["networks"]], export_dir, version, best["views"], calibration)
    for s in scored:
        s.pop("_p", None)
    calibrated_accuracy = float((calibration.apply(p).argmax(axis=1) == y_val).mean())
    release = {"chosen": best, "val_accuracy_calibrated": round(calibrated_accuracy, 4),
               "temperature": round(1 / calibrations["temperature"].scales[0], 4),
               "classwise": {k: [round(v, 4) for v in vs] for k, vs in asdict(calibration).items()},
               "val_ece": ece, "budget_passes": budget, "candidates": scored}  # fmt: skip
    (path / "release.json").write_text(json.dumps(release, indent=2) + "\n")
    typer.echo(f"exported {path}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app()
