"""Soft targets for distillation: the served probabilities of one or more committed versions, averaged.

A version's served function already holds its views (the mirror) and its calibration, so versions 2 and
3 together stand for an ensemble of 4 forward passes a face (68.5% on validation, against 67.7% for
version 3 alone) that costs too much to serve; a student trained towards it serves at 2. The targets are
computed once on the un-augmented training faces and kept beside the run's checkpoint, so that a resumed
run reads them instead of computing them again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class TeacherError(ValueError):
    """A teacher that cannot be used: a folder that is no served version (a cache of other faces or versions
    is not an error: the targets are computed again)."""


def soft_targets(versions: list[Path], images: np.ndarray, cache: Path) -> np.ndarray:
    """[N,7] probabilities, the mean of every version's on ``images``; read from ``cache`` when it was
    written for the same versions and faces, else computed and written there."""
    from models.emotion_cnn.evaluate import predict

    key = {"versions": [str(v.resolve()) for v in versions], "faces": len(images),
           "checksum": float(images[:: max(1, len(images) // 997)].sum())}  # fmt: skip
    meta = cache.with_suffix(".json")
    if cache.exists() and meta.exists() and json.loads(meta.read_text()) == key:
        return np.load(cache)
    for version in versions:
        if not (version / "saved_model.pb").exists():
            raise TeacherError(f"{version} is not a served version (no saved_model.pb in it)")
    print(f"teacher: {len(versions)} version(s) on {len(images)} training faces (once; kept in {cache})")
    probabilities = np.mean([predict(version, images) for version in versions], axis=0).astype(np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, probabilities)
    meta.write_text(json.dumps(key))
    return probabilities


def mixed(one_hot, teacher, weight: float):
    """The training target: ``weight`` of the teacher's probabilities, the rest the label."""
    return (1.0 - weight) * one_hot + weight * teacher
