"""Training with a teacher (distillation), on a few real training faces: the teacher's probabilities are the
served ones, computed once and read again by a resumed run; a teacher that is no version is refused."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from models.emotion_cnn.data import fer_path, load_npz
from models.emotion_cnn.evaluate import predict

from ..conftest import DATA_DIR, ROOT

VERSION = ROOT / "models" / "emotion_cnn" / "3"
FACES = 128


def train(checkpoints, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "models.emotion_cnn.train", "--data-dir", str(DATA_DIR), "--limit", str(FACES),
               "--batch-size", "64", "--checkpoint-dir", str(checkpoints), "--no-export", *args]  # fmt: skip
    env = {**os.environ, "COLUMNS": "400"}  # an error's panel unwrapped
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_a_distilled_run_trains_towards_the_served_probabilities_and_a_resume_reuses_them(tmp_path):
    checkpoints = tmp_path / "run"
    first = train(checkpoints, "--epochs", "1", "--teacher", str(VERSION), "--teacher-weight", "0.7")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    assert "teacher: 1 version(s) on 128 training faces" in first.stdout
    assert "agrees with the labels on" in first.stdout

    soft = np.load(checkpoints / "teacher.npy")
    x, _ = load_npz(fer_path("train", DATA_DIR))
    np.testing.assert_allclose(soft, predict(VERSION, x[:FACES]), atol=1e-5)  # what the version serves
    assert soft.shape == (FACES, 7) and np.allclose(soft.sum(axis=1), 1, atol=1e-4)

    with open(checkpoints / "history.csv") as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["0"]
    (checkpoints / "resume").mkdir(exist_ok=True)  # a finished run leaves no resume state; run it again
    again = train(checkpoints, "--epochs", "1", "--teacher", str(VERSION), "--teacher-weight", "0.7")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "training faces (once" not in again.stdout and "agrees with the labels on" in again.stdout  # kept


def test_a_teacher_that_is_no_served_version_is_refused(tmp_path):
    done = train(tmp_path / "run", "--epochs", "1", "--teacher", str(tmp_path))
    assert done.returncode != 0
    assert "is not a served version" in done.stdout + done.stderr
    assert not (tmp_path / "run" / "history.csv").exists()
