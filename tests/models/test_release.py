"""How the release weighs its candidates: by the accuracy each would serve once calibrated."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from scipy.special import softmax

from models.emotion_cnn.release import choose, score_candidates

from ..conftest import ROOT


def _drawn(rng: np.random.Generator, faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits z of ``faces`` faces, and labels drawn from softmax(z)."""
    z = rng.normal(0, 1.5, (faces, 7))
    return z, np.array([rng.choice(7, p=p) for p in softmax(z, axis=1)])


def test_a_network_whose_calibration_fixes_a_class_bias_beats_one_that_only_scores_better_raw():
    """Labels drawn from softmax(z). One network says softmax(z) pushed away from class 3: its own top
    labels miss that class, and a bias per class (what the served calibration holds) gives them back. The
    other says softmax(z + noise): better top labels of its own, and nothing a calibration can fix."""
    rng = np.random.default_rng(3)
    z, labels = _drawn(rng, 6_000)
    noise = rng.normal(0, 0.4, z.shape)
    biased, noisy = softmax(z - 3.0 * np.eye(7)[3], axis=1), softmax(z + noise, axis=1)
    probabilities = {"biased": {"identity": biased, "mirror": biased}, "noisy": {"identity": noisy, "mirror": noisy}}

    scored = {s["networks"][0]: s for s in score_candidates(probabilities, labels, budget=1)}

    assert set(scored) == {"biased", "noisy"}  # within 1 pass: one network, one view each
    assert scored["noisy"]["val_accuracy"] > scored["biased"]["val_accuracy"] + 0.01
    assert scored["biased"]["val_accuracy_served_crossfit"] > scored["noisy"]["val_accuracy_served_crossfit"] + 0.01
    assert scored["noisy"]["val_accuracy_served_crossfit"] < scored["noisy"]["val_accuracy"] + 0.005  # noise stays
    assert choose(list(scored.values()))["networks"] == ["biased"]


def test_of_two_that_serve_alike_the_cheaper_is_chosen():
    z, labels = _drawn(np.random.default_rng(5), 2_000)
    same = softmax(z, axis=1)
    scored = score_candidates({"a": {"identity": same, "mirror": same}}, labels, budget=2)
    assert {s["passes"] for s in scored} == {1, 2}
    assert scored[0]["val_accuracy_served_crossfit"] == scored[1]["val_accuracy_served_crossfit"]
    assert choose(scored)["passes"] == 1


def test_a_version_of_two_networks_is_refused_as_a_member_with_the_reason(tmp_path):
    ensemble = ROOT / "models" / "emotion_cnn" / "4"  # the two long networks, one view each
    release = [sys.executable, "-m", "models.emotion_cnn.release"]
    command = [*release, "--member", str(ensemble), "--export-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "not the same" in done.stderr and "give the versions or weights of its networks" in done.stderr
    assert not any(tmp_path.iterdir())  # nothing exported


def test_new_weights_that_lose_to_the_members_are_not_exported(tmp_path):
    """An untrained network beside version 3: the release says the members alone won, and exports nothing
    (it would only have remade a committed version)."""
    from models.emotion_cnn.network import build_model

    untrained = tmp_path / "untrained.weights.h5"
    build_model().save_weights(str(untrained))
    out = tmp_path / "out"
    out.mkdir()
    release = [sys.executable, "-m", "models.emotion_cnn.release", "--budget", "1"]
    command = [*release, "--weights", str(untrained), "--member", "models/emotion_cnn/3", "--export-dir", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "none of the --weights given: nothing exported" in done.stderr
    assert "models/emotion_cnn/3" in done.stderr.split("chosen:")[1]
    assert not any(out.iterdir())
