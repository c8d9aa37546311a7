from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2


def predict_request(images: np.ndarray, model: str = "emotion_cnn", key: str = "images",
                    version: int | None = None) -> predict_pb2.PredictRequest:  # fmt: skip
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    request.inputs[key].CopyFrom(tf.make_tensor_proto(images))
    return request


def probabilities(response) -> np.ndarray:
    return tf.make_ndarray(response.outputs["probabilities"])
