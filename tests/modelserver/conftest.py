"""Fixtures of the model server tests (the server process itself: tests/processes.py)."""

from __future__ import annotations

import pytest
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc


@pytest.fixture(scope="session")
def stubs(model_server):
    channel = model_server.channel()
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel), model_service_pb2_grpc.ModelServiceStub(channel)
    channel.close()
