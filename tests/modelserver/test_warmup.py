"""SavedModel warmup: every committed version carries TF Serving's warmup requests, and the model server
replays them before it serves a version."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_service_pb2_grpc,
    prediction_log_pb2,
    prediction_service_pb2_grpc,
)

from models.emotion_cnn.warmup import WARMUP_FILE

from ..processes import MODEL, MODELS, PATIENCE_S, committed_versions, start_model_server
from .helpers import predict_request


def records(path) -> list[prediction_log_pb2.PredictionLog]:
    return [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]


@pytest.mark.parametrize("version", committed_versions())
def test_every_committed_version_carries_warmup_requests_of_the_live_batch_sizes(version):
    logs = records(MODELS / MODEL / str(version) / WARMUP_FILE)
    sizes = []
    for log in logs:
        request = log.predict_log.request
        assert (request.model_spec.name, request.model_spec.signature_name) == (MODEL, "serving_default")
        images = tf.make_ndarray(request.inputs["images"])
        assert images.dtype == np.float32 and images.shape[1:] == (48, 48, 1)
        sizes.append(images.shape[0])
    assert set(range(1, 9)) <= set(sizes) and len(logs) <= 1000  # TF Serving reads at most 1000


def test_a_version_is_warmed_up_before_it_is_available(tmp_path):
    server = start_model_server(tmp_path)
    try:
        lines = [json.loads(line) for line in (tmp_path / "modelserver.log").read_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        events = [(line["event"], line.get("requests")) for line in lines if line.get("version") == 1]
        assert events.index(("warmed_up", 10)) < events.index(("available", None)), events
    finally:
        server.stop()


def test_a_version_whose_warmup_fails_is_not_served_and_the_one_before_goes_on(tmp_path, val_faces):
    server = start_model_server(tmp_path)
    try:
        staging = server.base / MODEL / ".2.staging"
        shutil.copytree(server.base / MODEL / "1", staging)
        request = predict_request(np.zeros((1, 10, 10, 1), np.float32))  # not the model's input shape
        with tf.io.TFRecordWriter(str(staging / WARMUP_FILE)) as writer:
            writer.write(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString())  # fmt: skip
        staging.rename(server.base / MODEL / "2")
        with server.channel() as channel:
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            status = get_model_status_pb2.GetModelStatusRequest()
            status.model_spec.name = MODEL
            deadline = time.monotonic() + PATIENCE_S
            while True:
                versions = {v.version: v for v in models.GetModelStatus(status, timeout=10).model_version_status}
                if 2 in versions and versions[2].state == get_model_status_pb2.ModelVersionStatus.State.END:
                    break
                assert time.monotonic() < deadline, f"version 2 never failed: {versions}"
                time.sleep(0.2)
            assert "shape" in versions[2].status.error_message, versions[2].status
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = predict.Predict(predict_request(val_faces[0][:1]), timeout=30)
            assert response.model_spec.version.value == 1
    finally:
        server.stop()
