"""SavedModel warmup: the requests a model server replays on a version before it serves it.

TensorFlow initialises parts of its runtime lazily: on this model the first Predict after a load took
120 ms instead of 4, the first of a new batch size up to 30 ms more. Live video makes batches of 1 to a
few crops, so every version, including one rolled out to a running system, would open with a burst of
slow events. TensorFlow Serving's remedy is a file of sample requests in the version,
``assets.extra/tf_serving_warmup_requests`` (a TFRecord of PredictionLog), replayed at load, before the
version is AVAILABLE. The tensorflow/serving container and services/modelserver both read it.

    python -m models.emotion_cnn.warmup models/emotion_cnn/2 [more version folders]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from models.emotion_cnn import IMAGE_SIZE, INPUT_KEY, SIGNATURE

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
#: The batch sizes of live video (a crop or a few from each shard's read), and the larger ones of a burst.
BATCH_SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 16, 32)


def warmup_requests(
    model: str = "emotion_cnn", sizes: Sequence[int] = BATCH_SIZES
) -> list[prediction_log_pb2.PredictionLog]:
    """A Predict of grey faces (0.5) for each batch size, as PredictionLogs."""
    logs = []
    for size in sizes:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = SIGNATURE
        images = np.full((size, IMAGE_SIZE, IMAGE_SIZE, 1), 0.5, np.float32)
        request.inputs[INPUT_KEY].CopyFrom(tf.make_tensor_proto(images))
        logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup(version_dir: Path, model: str = "emotion_cnn", sizes: Sequence[int] = BATCH_SIZES) -> Path:
    """Write (or replace) the warmup requests of a SavedModel version folder; returns the file."""
    path = Path(version_dir) / WARMUP_FILE
    path.parent.mkdir(exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(model, sizes):
            writer.write(log.SerializeToString())
    return path


def main(folders: Sequence[str]) -> None:
    if not folders:
        sys.exit("usage: python -m models.emotion_cnn.warmup VERSION_FOLDER [...]")
    for folder in map(Path, folders):
        if not (folder / "saved_model.pb").is_file():
            sys.exit(f"{folder} is not a SavedModel version folder (no saved_model.pb)")
        path = write_warmup(folder)
        print(f"{path}: {len(BATCH_SIZES)} requests, batch sizes {', '.join(map(str, BATCH_SIZES))}")


if __name__ == "__main__":
    main(sys.argv[1:])
