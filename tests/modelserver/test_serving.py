"""Batching, back-pressure, new versions and health of a running model server."""

from __future__ import annotations

import re
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from ..processes import start_model_server
from .helpers import predict_request, probabilities


def batch_sizes_observed(metrics_port: int) -> dict[float, float]:
    """Cumulative counts of the batch-size histogram: {upper bound: count}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics/", timeout=5).read().decode()
    return {
        float(m.group(1)): float(m.group(2))
        for m in re.finditer(r'emotune_modelserver_batch_size_bucket\{le="([0-9.]+)",model="[^"]+"\} ([0-9.e+]+)', text)
    }


def test_concurrent_requests_are_merged_into_batches(tmp_path, val_faces):
    server = start_model_server(
        tmp_path,
        batching="""
        max_batch_size { value: 64 } batch_timeout_micros { value: 100000 }
        num_batch_threads { value: 1 } max_enqueued_batches { value: 100 }""",
    )
    try:
        images = val_faces[0]
        with server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            with ThreadPoolExecutor(16) as pool:
                results = list(pool.map(lambda i: probabilities(stub.Predict(predict_request(images[i : i + 1]),
                                                                             timeout=30)), range(32)))  # fmt: skip
            single = probabilities(stub.Predict(predict_request(images[:32]), timeout=30))
        np.testing.assert_allclose(np.concatenate(results), single, atol=1e-5)  # each caller gets its own rows
        buckets = batch_sizes_observed(server.metrics_port)
        calls, single_row_calls = buckets[256.0], buckets[1.0]
        assert calls - single_row_calls > 0, f"no model call merged requests: {buckets}"
        assert calls < 33  # 33 requests in all, fewer model calls
    finally:
        server.stop()


def test_a_full_queue_answers_resource_exhausted_and_serves_the_rest(tmp_path, val_faces):
    server = start_model_server(
        tmp_path,
        batching="""
        max_batch_size { value: 1 } batch_timeout_micros { value: 0 }
        num_batch_threads { value: 1 } max_enqueued_batches { value: 1 }""",
    )
    try:
        with server.channel() as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def call(i):
                try:
                    stub.Predict(predict_request(val_faces[0][i : i + 1]), timeout=30)
                    return grpc.StatusCode.OK
                except grpc.RpcError as e:
                    return e.code()

            with ThreadPoolExecutor(32) as pool:
                codes = list(pool.map(call, range(64)))
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) > 0
        assert codes.count(grpc.StatusCode.OK) > 0
    finally:
        server.stop()


def test_a_new_version_is_served_without_a_restart(tmp_path, val_faces):
    server = start_model_server(tmp_path)
    try:
        with server.channel() as channel:
            predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            models = model_service_pb2_grpc.ModelServiceStub(channel)
            assert predict.Predict(predict_request(val_faces[0][:1]), timeout=30).model_spec.version.value == 1
            staging = server.base / "emotion_cnn" / ".2.staging"
            shutil.copytree(server.base / "emotion_cnn" / "1", staging)
            staging.rename(server.base / "emotion_cnn" / "2")  # how export_savedmodel publishes a version

            def states():
                request = get_model_status_pb2.GetModelStatusRequest()
                request.model_spec.name = "emotion_cnn"
                response = models.GetModelStatus(request, timeout=10)
                return {v.version: get_model_status_pb2.ModelVersionStatus.State.Name(v.state)
                        for v in response.model_version_status}  # fmt: skip

            deadline = time.monotonic() + 60
            while states() != {2: "AVAILABLE", 1: "END"}:
                assert time.monotonic() < deadline, f"version 2 not served: {states()}"
                time.sleep(0.2)
            assert predict.Predict(predict_request(val_faces[0][:1]), timeout=30).model_spec.version.value == 2
            with pytest.raises(grpc.RpcError) as error:
                predict.Predict(predict_request(val_faces[0][:1], version=1), timeout=30)
            assert error.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        server.stop()


def test_health_and_readiness(model_server):
    with model_server.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    ready = urllib.request.urlopen(f"http://127.0.0.1:{model_server.metrics_port}/readyz", timeout=5)
    assert ready.status == 200
