"""Predict over TensorFlow Serving's gRPC API, with retries and a circuit breaker.

Transient failures (the server is down, slow, or its queue is full) are retried with backoff for as
long as it takes: the caller holds its crops, unacknowledged, so nothing is lost and the work
resumes when the server is back. After ``failures`` consecutive failures the circuit opens: calls
wait ``reset_s`` before a single trial call instead of hammering a server that is down.
Requests the server rejects (INVALID_ARGUMENT, NOT_FOUND) are not retried: they raise
:class:`ModelRejected`.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

import grpc
import numpy as np

from emotune.v1 import tfserving_pb2
from emotune_common.logs import get_logger
from emotune_inference import metrics

log = get_logger("emotune.inference")
PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
TRANSIENT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


class Stopped(Exception):
    """A stop was asked for while waiting for the model server; the crops stay pending."""


class ModelRejected(Exception):
    """The model server refused the request itself; retrying the same request cannot help."""


@dataclass
class Prediction:
    probabilities: np.ndarray  # float32 [N, 7]
    model_version: int


def images_tensor(images: np.ndarray) -> tfserving_pb2.TensorProto:
    """float32 [N,48,48,1] as TensorFlow's TensorProto (see proto/emotune/v1/tfserving.proto)."""
    dims = [tfserving_pb2.TensorShapeProto.Dim(size=d) for d in images.shape]
    return tfserving_pb2.TensorProto(
        dtype=tfserving_pb2.DT_FLOAT,
        tensor_shape=tfserving_pb2.TensorShapeProto(dim=dims),
        tensor_content=np.ascontiguousarray(images, np.float32).tobytes(),
    )


def probabilities_of(tensor: tfserving_pb2.TensorProto) -> np.ndarray:
    shape = [d.size for d in tensor.tensor_shape.dim]
    if tensor.tensor_content:
        return np.frombuffer(tensor.tensor_content, np.float32).reshape(shape)
    return np.array(tensor.float_val, np.float32).reshape(shape)


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._consecutive = 0
        self._opened_at: float | None = None

    @property
    def open(self) -> bool:
        return self._opened_at is not None

    def wait_time(self) -> float:
        """Seconds to wait before the next call may go out (0 when closed or ready for a trial)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.reset_s - time.monotonic())

    def success(self) -> None:
        if self._opened_at is not None:
            log.info("circuit_closed")
        self._consecutive, self._opened_at = 0, None
        metrics.BREAKER_OPEN.set(0)

    def failure(self) -> None:
        self._consecutive += 1
        if self._consecutive >= self.failures:
            if self._opened_at is None:
                log.warning("circuit_open", failures=self._consecutive)
            self._opened_at = time.monotonic()
            metrics.BREAKER_OPEN.set(1)


class ModelClient:
    def __init__(self, target: str, model: str, deadline_s: float, breaker: CircuitBreaker) -> None:
        self.target = target
        self.model = model
        self.deadline_s = deadline_s
        self.breaker = breaker
        # gRPC's own reconnect backoff grows to 2 minutes while the server is down, and a call meanwhile fails at
        # once without trying: a server back after a 30 s outage went unnoticed for another 15 s. The breaker
        # decides how often calls go out; the channel must reconnect at least as often.
        reconnect_ms = max(100, int(breaker.reset_s * 1000))
        self._channel = grpc.aio.insecure_channel(target, options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.initial_reconnect_backoff_ms", min(1000, reconnect_ms)),
            ("grpc.max_reconnect_backoff_ms", reconnect_ms),
        ])  # fmt: skip
        self._predict = self._channel.unary_unary(
            PREDICT_METHOD,
            request_serializer=tfserving_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfserving_pb2.PredictResponse.FromString,
        )

    async def close(self) -> None:
        await self._channel.close()

    async def predict_once(self, images: np.ndarray) -> Prediction:
        request = tfserving_pb2.PredictRequest()
        request.model_spec.name = self.model
        request.model_spec.signature_name = "serving_default"
        request.inputs["images"].CopyFrom(images_tensor(images))
        response = await self._predict(request, timeout=self.deadline_s)
        return Prediction(probabilities_of(response.outputs["probabilities"]), response.model_spec.version.value)

    async def predict(self, images: np.ndarray, stop: asyncio.Event | None = None) -> Prediction:
        """Predict, retrying transient failures until it succeeds or ``stop`` is set (then raises)."""
        attempt = 0
        while True:
            delay = self.breaker.wait_time()
            if delay:
                await _sleep(delay, stop)
            started = time.perf_counter()
            try:
                result = await self.predict_once(images)
            except grpc.aio.AioRpcError as e:
                metrics.MODEL_ERRORS.labels(e.code().name).inc()
                if e.code() not in TRANSIENT:
                    raise ModelRejected(f"{e.code().name}: {e.details()}") from None
                self.breaker.failure()
                attempt += 1
                backoff = min(2.0, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                log.warning("model_call_failed", code=e.code().name, attempt=attempt, retry_in_s=round(backoff, 3))
                await _sleep(backoff, stop)
                continue
            metrics.MODEL_SECONDS.observe(time.perf_counter() - started)
            self.breaker.success()
            return result


async def _sleep(seconds: float, stop: asyncio.Event | None) -> None:
    if stop is None:
        await asyncio.sleep(seconds)
        return
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
    raise Stopped("stopped while waiting for the model server")
