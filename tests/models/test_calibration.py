"""Temperature scaling, the calibration error and an ensemble served as one SavedModel."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from models.emotion_cnn.calibration import fit_temperature, nll, reliability, tempered
from models.emotion_cnn.data import load_npz
from models.emotion_cnn.export import export_savedmodel
from models.emotion_cnn.network import build_model
from models.emotion_cnn.warmstart import load_weights_from_savedmodel

from ..conftest import DATA_DIR, ROOT


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def overconfident():
    """Labels drawn from softmax(z), and a model that says softmax(2 z): twice too sure of itself."""
    rng = np.random.default_rng(7)
    z = rng.normal(0, 1.5, (20_000, 7))
    truth = _softmax(z)
    labels = np.array([rng.choice(7, p=p) for p in truth])
    return truth, _softmax(2 * z), labels


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


def test_an_ensemble_with_views_and_a_temperature_serves_what_its_parts_compute(tmp_path):
    small = dict(widths=(8, 16), dense=16)
    members = [build_model(**small), build_model(**small)]
    path = export_savedmodel(members, tmp_path, views=("identity", "mirror"), temperature=1.7)
    x, _ = load_npz(DATA_DIR / "fer2013" / "val.npz")
    faces = x[:6]
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.constant(faces))["probabilities"]
    passes = [m.predict(v, verbose=0) for m in members for v in (faces, faces[:, :, ::-1])]
    np.testing.assert_allclose(served.numpy(), tempered(np.mean(passes, axis=0), 1.7), atol=1e-5)


def test_a_network_starts_from_an_exported_version_even_when_built_second():
    build_model()  # the network to load is then numbered on from this one's layers
    model = build_model()
    assert load_weights_from_savedmodel(model, ROOT / "models" / "emotion_cnn" / "1") == len(model.weights)
    x, _ = load_npz(DATA_DIR / "fer2013" / "val.npz")
    served = tf.saved_model.load(str(ROOT / "models" / "emotion_cnn" / "1")).signatures["serving_default"]
    expected = served(images=tf.constant(x[:8]))["probabilities"].numpy()  # version 1: both views
    got = (model.predict(x[:8], verbose=0) + model.predict(x[:8, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(got, expected, atol=1e-4)
    with pytest.raises(ValueError, match="not the same"):
        load_weights_from_savedmodel(build_model(widths=(8, 16), dense=16), ROOT / "models" / "emotion_cnn" / "1")
