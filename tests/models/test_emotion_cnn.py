"""The emotion CNN's data loading, export layout and evaluation report, on real FER-2013 faces."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from models.emotion_cnn import LABELS
from models.emotion_cnn.data import DataError, load_npz
from models.emotion_cnn.evaluate import confusion, per_class
from models.emotion_cnn.export import export_savedmodel, next_version
from models.emotion_cnn.network import build_model

from ..conftest import DATA_DIR, ROOT


def test_loads_the_validation_set_as_the_model_expects():
    x, y = load_npz(DATA_DIR / "fer2013" / "val.npz")
    assert x.shape == (3589, 48, 48, 1) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.bincount(y, minlength=7).tolist() == [467, 56, 496, 895, 653, 415, 607]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((2, 48, 48), np.uint8)}, "must hold arrays 'x' and 'y'"),
        ({"x": np.zeros((2, 32, 32), np.uint8), "y": np.zeros(2, np.uint8)}, "uint8 \\[N,48,48\\]"),
        ({"x": np.zeros((2, 48, 48), np.float32), "y": np.zeros(2, np.uint8)}, "uint8 \\[N,48,48\\]"),
        ({"x": np.zeros((2, 48, 48), np.uint8), "y": np.zeros(3, np.uint8)}, "'y' must be \\[N\\]"),
        ({"x": np.zeros((2, 48, 48), np.uint8), "y": np.array([0, 9], np.uint8)}, "labels must be in 0..6"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_npz(path)


def test_missing_and_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_npz(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_npz(tmp_path / "junk.npz")


def test_export_writes_a_tensorflow_serving_version_with_the_agreed_signature(tmp_path):
    model = build_model()
    (tmp_path / "3").mkdir()  # an existing version: the next one is 4
    assert next_version(tmp_path) == 4
    path = export_savedmodel(model, tmp_path)
    assert path == tmp_path / "4" and (path / "saved_model.pb").exists()
    assert not list(tmp_path.glob(".*staging"))
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    spec = serve.structured_input_signature[1]["images"]
    assert spec.shape.as_list() == [None, 48, 48, 1] and spec.dtype == tf.float32
    x, _ = load_npz(DATA_DIR / "fer2013" / "val.npz")
    probabilities = serve(images=tf.constant(x[:5]))["probabilities"].numpy()
    assert probabilities.shape == (5, len(LABELS))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    # the served function averages a face and its mirror image: mirrored input, same output
    mirrored = serve(images=tf.constant(x[:5, :, ::-1]))["probabilities"].numpy()
    np.testing.assert_allclose(mirrored, probabilities, atol=1e-5)


def test_the_committed_model_is_small_and_meets_the_accuracy_floor():
    versions = sorted(int(p.name) for p in (ROOT / "models" / "emotion_cnn").iterdir() if p.name.isdigit())
    latest = ROOT / "models" / "emotion_cnn" / str(versions[-1])
    size = sum(f.stat().st_size for f in latest.rglob("*") if f.is_file())
    assert size < 20 * 2**20
    x, y = load_npz(DATA_DIR / "fer2013" / "val.npz")
    serve = tf.saved_model.load(str(latest)).signatures["serving_default"]
    predicted = np.concatenate([serve(images=tf.constant(x[i : i + 512]))["probabilities"].numpy().argmax(1)
                                for i in range(0, len(x), 512)])  # fmt: skip
    assert (predicted == y).mean() >= 0.66


def test_metrics_from_a_confusion_matrix():
    labels = np.array([0, 0, 1, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2])
    matrix = confusion(labels, predicted, classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    rows = per_class(matrix)
    assert rows[1]["precision"] == pytest.approx(2 / 3) and rows[1]["recall"] == pytest.approx(2 / 3)
    assert rows[2]["f1"] == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_make_eval_writes_every_version_side_by_side_with_plots(tmp_path):
    with np.load(DATA_DIR / "fer2013" / "val.npz") as f:
        np.savez(tmp_path / "sample.npz", x=f["x"][:300], y=f["y"][:300])
    command = [sys.executable, "-m", "models.emotion_cnn.evaluate", "--data", str(tmp_path / "sample.npz"),
               "--out", str(tmp_path / "report")]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "report" / "REPORT.md").read_text()
    versions = sorted(int(p.name) for p in (ROOT / "models" / "emotion_cnn").iterdir()
                      if p.name.isdigit() and (p / "saved_model.pb").exists())  # fmt: skip
    header = next(line for line in report.splitlines() if line.startswith("| | version"))
    assert header == "| | " + " | ".join(f"version {v}" for v in versions) + " |"
    for row in ("| accuracy |", "| macro F1 |", "| ECE (15 bins) |", "| images/s", "| size |", "| happy |"):
        assert row in report, row
    accuracy = next(line for line in report.splitlines() if line.startswith("| accuracy |"))
    assert all(0.3 < float(cell.strip(" *%")) / 100 < 1 for cell in accuracy.split("|")[2:-1])
    for version in versions:
        assert (tmp_path / "report" / f"confusion_matrix_{version}.png").stat().st_size > 10_000
    for picture in ("reliability.png", "training_curves.png"):
        assert (tmp_path / "report" / picture).stat().st_size > 10_000


def test_make_eval_on_a_bad_file_says_why(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"nope")
    command = [sys.executable, "-m", "models.emotion_cnn.evaluate", "--data", str(tmp_path / "bad.npz")]
    env = {**os.environ, "COLUMNS": "250"}  # one line per message in typer's error box
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode != 0
    assert "not a readable .npz" in done.stderr
