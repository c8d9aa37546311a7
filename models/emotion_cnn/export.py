"""Export a trained network as a TensorFlow Serving SavedModel version."""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import tensorflow as tf

from models.emotion_cnn import IMAGE_SIZE

SIGNATURE = "serving_default"
INPUT_KEY = "images"
OUTPUT_KEY = "probabilities"


def next_version(base_dir: Path) -> int:
    """One more than the highest numbered version folder in ``base_dir`` (1 for an empty folder)."""
    versions = [int(p.name) for p in Path(base_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export_savedmodel(model: keras.Model, base_dir: Path, version: int | None = None) -> Path:
    """Write ``base_dir/<version>/`` with signature ``serving_default``: images -> probabilities.

    The served function averages the prediction of each face and its mirror image (test-time
    augmentation): faces are roughly symmetric, so this is a cheap, well-known accuracy gain. The
    version appears atomically (written beside, then renamed), so a server that polls the folder
    never loads a half-written model.
    """
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(base_dir)
    final = base_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; choose another version")
    staging = base_dir / f".{version}.staging"
    shutil.rmtree(staging, ignore_errors=True)

    def serve(images):
        probs = model(images, training=False) + model(tf.image.flip_left_right(images), training=False)
        return {OUTPUT_KEY: probs / 2.0}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name=SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32, name=INPUT_KEY)],
    )
    archive.write_out(str(staging), verbose=False)
    staging.rename(final)
    return final
