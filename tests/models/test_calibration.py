"""Temperature scaling and its class-wise form, the calibration error and an ensemble served as one
SavedModel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from scipy.special import softmax

from models.emotion_cnn.calibration import (
    Calibration,
    crossfit_ece,
    fit_classwise,
    fit_temperature,
    nll,
    reliability,
    tempered,
)
from models.emotion_cnn.data import load_npz
from models.emotion_cnn.export import export_savedmodel
from models.emotion_cnn.network import build_model
from models.emotion_cnn.warmstart import load_weights_from_savedmodel

from ..conftest import DATA_DIR, ROOT


@pytest.fixture(scope="module")
def overconfident():
    """Labels drawn from softmax(z), and a model that says softmax(2 z): twice too sure of itself."""
    rng = np.random.default_rng(7)
    z = rng.normal(0, 1.5, (20_000, 7))
    truth = softmax(z, axis=1)
    labels = np.array([rng.choice(7, p=p) for p in truth])
    return truth, softmax(2 * z, axis=1), labels


def test_the_fitted_temperature_undoes_overconfidence(overconfident):
    _, said, labels = overconfident
    temperature = fit_temperature(said, labels)
    assert temperature == pytest.approx(2.0, rel=0.08)
    np.testing.assert_allclose(tempered(said, temperature).argmax(1), said.argmax(1))  # same top labels
    assert nll(tempered(said, temperature), labels) < nll(said, labels)


def test_the_calibration_error_is_small_when_calibrated_and_large_when_not(overconfident):
    truth, said, labels = overconfident
    calibrated, too_sure = reliability(truth, labels), reliability(said, labels)
    assert calibrated["ece"] < 0.02 < 0.08 < too_sure["ece"]
    assert sum(b["count"] for b in too_sure["bins"]) == len(labels)
    assert reliability(tempered(said, fit_temperature(said, labels)), labels)["ece"] < 0.02


def test_a_temperature_and_bias_per_class_undo_what_one_temperature_cannot(overconfident):
    """A model twice too sure of some classes, half too sure of the others and biased towards one:
    one temperature leaves it off; a scale and a bias per class come close to the truth (not exactly:
    they scale log-probabilities, not the logits), also on faces they were not fitted on."""
    truth, _, labels = overconfident
    log_truth = np.log(truth)
    said = softmax(log_truth * np.array([2.0, 2.0, 2.0, 0.6, 0.6, 0.6, 1.0]) + np.eye(7)[3], axis=1)
    classwise, one = fit_classwise(said, labels), Calibration.temperature(fit_temperature(said, labels))
    assert np.abs(classwise.apply(said) - truth).mean() < 0.02 < np.abs(one.apply(said) - truth).mean()
    assert nll(classwise.apply(said), labels) == pytest.approx(nll(truth, labels), rel=0.01)
    assert reliability(classwise.apply(said), labels)["ece"] < 0.02 < reliability(one.apply(said), labels)["ece"]
    assert nll(classwise.apply(said), labels) < nll(one.apply(said), labels)
    assert crossfit_ece(said, labels, fit_classwise, splits=2) < 0.025


def test_an_ensemble_with_views_and_a_calibration_serves_what_its_parts_compute(tmp_path):
    small = dict(widths=(8, 16), dense=16)
    members = [build_model(**small), build_model(**small)]
    calibration = Calibration(scales=(0.6, 0.5, 0.7, 0.4, 0.6, 0.5, 0.8), biases=(0.1, -0.3, 0.0, 0.2, 0.0, 0.1, -0.1))
    path = export_savedmodel(members, tmp_path, views=("identity", "mirror"), calibration=calibration)
    x, _ = load_npz(DATA_DIR / "fer2013" / "val.npz")
    faces = x[:6]
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(faces))["probabilities"]
    passes = [m.predict(v, verbose=0) for m in members for v in (faces, faces[:, :, ::-1])]
    np.testing.assert_allclose(served.numpy(), calibration.apply(np.mean(passes, axis=0)), atol=1e-5)


def _calibration_of(version: Path) -> Calibration | None:
    """What the version's release.json says it serves (version 1 has none: it was exported uncalibrated)."""
    release = version / "release.json"
    return Calibration(**json.loads(release.read_text())["classwise"]) if release.exists() else None


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_network_starts_from_an_exported_version_even_when_built_second(version):
    """Version 1 was exported with its network tracked, version 2 by export.py, which exposes the weights
    only through the serving function: both give their network back, the one that serves what they do."""
    path = ROOT / "models" / "emotion_cnn" / version
    build_model()  # the network to load is then numbered on from this one's layers
    model = build_model()
    assert load_weights_from_savedmodel(model, path) == len(model.weights)
    x, _ = load_npz(DATA_DIR / "fer2013" / "val.npz")
    loaded = tf.saved_model.load(str(path))
    expected = loaded.signatures["serving_default"](images=tf.constant(x[:8]))
    got = (model.predict(x[:8], verbose=0) + model.predict(x[:8, :, ::-1], verbose=0)) / 2  # both views
    if (calibration := _calibration_of(path)) is not None:
        got = calibration.apply(got)
    np.testing.assert_allclose(got, expected["probabilities"].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="not the same"):
        load_weights_from_savedmodel(build_model(widths=(8, 16), dense=16), path)
