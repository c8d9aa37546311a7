"""The model server against checks written outside the project, and against the model in-process."""

from __future__ import annotations

import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import classification_pb2, get_model_metadata_pb2, get_model_status_pb2

from ..conftest import ROOT
from ..processes import latest_model_dir
from .helpers import predict_request, probabilities

CONTRACT = ROOT.parent / "shared" / "tools" / "tfserving_contract.py"


def test_passes_the_tensorflow_serving_contract(model_server):
    done = subprocess.run([sys.executable, str(CONTRACT), "--target", model_server.target, "--model", "emotion_cnn"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "9 passed, 0 failed" in done.stdout


def test_grpc_predictions_equal_in_process_predictions(stubs, val_faces):
    predict, _ = stubs
    images, _ = val_faces
    served = probabilities(predict.Predict(predict_request(images[:64]), timeout=30))
    model = tf.saved_model.load(str(latest_model_dir()))
    local = model.signatures["serving_default"](images=tf.constant(images[:64]))["probabilities"].numpy()
    np.testing.assert_allclose(served, local, atol=1e-5)
    assert served.shape == (64, 7)


def test_the_model_reads_real_faces_better_than_chance(stubs, val_faces):
    predict, _ = stubs
    images, labels = val_faces
    served = np.concatenate(
        [probabilities(predict.Predict(predict_request(images[i : i + 64]), timeout=30)) for i in range(0, 256, 64)]
    )
    assert (served.argmax(1) == labels).mean() > 0.4  # chance is 0.25 (always "happy")


@pytest.mark.parametrize(
    ("request_fn", "code", "message"),
    [
        (lambda x: predict_request(x, model="nope"), grpc.StatusCode.NOT_FOUND, "Servable not found"),
        (lambda x: predict_request(x, version=99), grpc.StatusCode.NOT_FOUND, "Specific(emotion_cnn, 99)"),
        (lambda x: predict_request(x, key="pixels"), grpc.StatusCode.INVALID_ARGUMENT, "alias not found"),
        (lambda x: predict_request(x.astype(np.float64)), grpc.StatusCode.INVALID_ARGUMENT, "to be float"),
        (lambda x: predict_request(x[:, :32]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        (lambda x: predict_request(x[..., 0]), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        (
            lambda x: predict_request(np.zeros((65, 48, 48, 1), np.float32)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "larger than maximum input batch size",
        ),
    ],
    ids=["unknown-model", "unknown-version", "input-name", "dtype", "shape", "rank", "batch-over-limit"],
)
def test_bad_requests_get_tensorflow_servings_status_codes(stubs, val_faces, request_fn, code, message):
    predict, _ = stubs
    with pytest.raises(grpc.RpcError) as error:
        predict.Predict(request_fn(val_faces[0][:2]), timeout=30)
    assert error.value.code() == code
    assert message in error.value.details()


def test_classify_on_a_predict_signature_is_refused_as_tf_serving_does(stubs):
    predict, _ = stubs
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "emotion_cnn"
    with pytest.raises(grpc.RpcError) as error:
        predict.Classify(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tensorflow/serving/classify" in error.value.details()


def test_metadata_and_status(stubs):
    predict, models = stubs
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "emotion_cnn"
    response = predict.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert [d.size for d in signature.inputs["images"].tensor_shape.dim] == [-1, 48, 48, 1]
    assert [d.size for d in signature.outputs["probabilities"].tensor_shape.dim] == [-1, 7]

    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "nope"
    with pytest.raises(grpc.RpcError) as error:
        models.GetModelStatus(status, timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
