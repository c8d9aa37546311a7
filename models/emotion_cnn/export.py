"""Export trained networks as a TensorFlow Serving SavedModel version."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import keras
import tensorflow as tf

from models.emotion_cnn import IMAGE_SIZE, INPUT_KEY, OUTPUT_KEY, SIGNATURE
from models.emotion_cnn.calibration import Calibration
from models.emotion_cnn.warmup import write_warmup

#: The test-time views a served model may average: the face as it is, and its mirror image.
VIEWS = {"identity": lambda images: images, "mirror": tf.image.flip_left_right}


def next_version(base_dir: Path) -> int:
    """One more than the highest numbered version folder in ``base_dir`` (1 for an empty folder)."""
    versions = [int(p.name) for p in Path(base_dir).iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def calibrated(probabilities, calibration: Calibration | None):
    """What :meth:`Calibration.apply` computes, in the served graph (``None``: as they are)."""
    if calibration is None:
        return probabilities
    logits = tf.math.log(tf.maximum(probabilities, 1e-12)) * tf.constant(calibration.scales, tf.float32)
    return tf.nn.softmax(logits + tf.constant(calibration.biases, tf.float32), axis=-1)


def export_savedmodel(
    models: keras.Model | Sequence[keras.Model],
    base_dir: Path,
    version: int | None = None,
    views: Sequence[str] = ("identity", "mirror"),
    calibration: Calibration | None = None,
) -> Path:
    """Write ``base_dir/<version>/`` with signature ``serving_default``: images -> probabilities.

    The served function averages the probabilities of every network over every view (test-time
    augmentation; an ensemble when there are several networks), then applies ``calibration`` (fitted
    on validation), so that what mood smoothing averages is calibrated. Each network and view costs
    one forward pass. The version carries its warmup requests (warmup.py). It appears atomically
    (written beside, then renamed), so a server that polls the folder never loads a half-written model.
    """
    members = [models] if isinstance(models, keras.Model) else list(models)
    unknown = sorted(set(views) - set(VIEWS))
    if not members or not views or unknown:
        raise ValueError(f"need at least one network and one view of {sorted(VIEWS)}; unknown views {unknown}")
    base_dir = Path(base_dir)
    base_dir.mkdir(parents=True, exist_ok=True)
    version = version or next_version(base_dir)
    final = base_dir / str(version)
    if final.exists():
        raise FileExistsError(f"{final} exists; choose another version")
    staging = base_dir / f".{version}.staging"
    shutil.rmtree(staging, ignore_errors=True)

    def serve(images):
        passes = [member(VIEWS[view](images), training=False) for member in members for view in views]
        return {OUTPUT_KEY: calibrated(tf.add_n(passes) / len(passes), calibration)}

    # The endpoint tracks the variables it uses; tracking the networks as well would store each weight
    # twice (Keras's ExportArchive does not deduplicate the two), doubling the version's size.
    archive = keras.export.ExportArchive()
    archive.add_endpoint(
        name=SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 1], tf.float32, name=INPUT_KEY)],
    )
    archive.write_out(str(staging), verbose=False)
    write_warmup(staging)
    staging.rename(final)
    return final
