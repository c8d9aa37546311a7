"""SavedModel warmup, as TensorFlow Serving does it: a version's ``assets.extra/tf_serving_warmup_requests``
(a TFRecord of PredictionLog, at most 1000) is replayed once when the version loads, before it is
AVAILABLE, so that its first real requests do not pay for TensorFlow's lazy start (the first Predict
of the emotion CNN took 120 ms instead of 4). A record that fails fails the load, as in TF Serving.
Only Predict records are replayed: this server has no Classify or Regress signature to warm.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from emotune_modelserver.tensors import check_inputs, to_numpy

if TYPE_CHECKING:
    from emotune_modelserver.servables import Servable

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000


class WarmupError(ValueError):
    """A warmup file this server cannot replay."""


def replay_warmup(servable: Servable) -> int:
    """Run the version's warmup requests; returns how many (0 without a warmup file)."""
    path = servable.path / WARMUP_FILE
    if not path.is_file():
        return 0
    replayed = 0
    for record in tf.data.TFRecordDataset(str(path)):
        if replayed == MAX_RECORDS:
            raise WarmupError(f"{path}: more than {MAX_RECORDS} warmup records")
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        kind = log.WhichOneof("log_type")
        if kind != "predict_log":
            raise WarmupError(f"{path}: record {replayed + 1} is a {kind}; only predict_log is supported")
        request = log.predict_log.request
        signature = request.model_spec.signature_name
        check_inputs(servable.signature(signature), request.inputs)
        servable.run(signature, {key: to_numpy(tensor) for key, tensor in request.inputs.items()})
        replayed += 1
    return replayed
