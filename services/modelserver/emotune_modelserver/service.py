"""TensorFlow Serving's gRPC API over the model registry, with TF Serving's status codes."""

from __future__ import annotations

import asyncio
import functools
import time

import grpc
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from emotune_modelserver import metrics
from emotune_modelserver.batching import QueueFull, TaskTooLarge
from emotune_modelserver.servables import DEFAULT_SIGNATURE, ModelRegistry, NotFound, Servable
from emotune_modelserver.tensors import InvalidInput, check_inputs, to_numpy, to_proto

_CODES = {code.value[0]: code for code in grpc.StatusCode}
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"


def _rpc(method: str):
    """Map the registry's errors to TF Serving's status codes, and count and time every call."""

    def wrap(fn):
        @functools.wraps(fn)
        async def call(self, request, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await fn(self, request, context)
            except NotFound as e:
                code, message = grpc.StatusCode.NOT_FOUND, str(e)
            except (InvalidInput, TaskTooLarge) as e:
                code, message = grpc.StatusCode.INVALID_ARGUMENT, str(e)
            except QueueFull as e:
                code, message = grpc.StatusCode.RESOURCE_EXHAUSTED, str(e)
            except tf.errors.OpError as e:  # the model's own error, with its own code
                code, message = _CODES.get(e.error_code, grpc.StatusCode.INTERNAL), e.message
            except Exception:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                metrics.REQUESTS.labels(method, code.name).inc()
                metrics.REQUEST_SECONDS.labels(method).observe(time.perf_counter() - started)
            await context.abort(code, message)

        return call

    return wrap


def _version(spec: model_pb2.ModelSpec) -> int | None:
    return spec.version.value if spec.HasField("version") else None


def _spec(servable: Servable, signature: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=servable.name, signature_name=signature)
    spec.version.value = servable.version
    return spec


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, registry: ModelRegistry, batching: bool) -> None:
        self.registry = registry
        self.batching = batching

    def _servable(self, spec: model_pb2.ModelSpec) -> Servable:
        return self.registry.get(spec.name, _version(spec), spec.version_label or None)

    @_rpc("Predict")
    async def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        servable = self._servable(request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.signature(signature_name)
        rows = check_inputs(signature, dict(request.inputs))
        for key in request.output_filter:
            if key not in signature.outputs:
                known = ",".join(sorted(signature.outputs))
                raise InvalidInput(
                    f"output tensor alias not found in signature: {key} Outputs expected to be in the set {{{known}}}."
                )
        scheduler = servable.schedulers.get(signature_name) if self.batching else None
        if scheduler is not None and rows > scheduler.config.max_batch_size:  # before allocating its tensors
            raise TaskTooLarge(
                f"Task size {rows} is larger than maximum input batch size {scheduler.config.max_batch_size}"
            )
        inputs = {k: to_numpy(v) for k, v in request.inputs.items()}
        if scheduler is not None:
            outputs = await asyncio.wrap_future(scheduler.submit(inputs, rows))
        else:
            outputs = await asyncio.to_thread(servable.run, signature_name, inputs)
        keep = set(request.output_filter) or set(outputs)
        response = predict_pb2.PredictResponse(model_spec=_spec(servable, signature_name))
        for key in sorted(keep):
            response.outputs[key].CopyFrom(to_proto(outputs[key]))
        return response

    @_rpc("GetModelMetadata")
    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest, context):
        servable = self._servable(request.model_spec)
        for field in request.metadata_field:
            if field != "signature_def":
                raise InvalidInput(f"Metadata field {field} is not supported")
        if not request.metadata_field:
            raise InvalidInput("GetModelMetadataRequest must specify at least one metadata_field")
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in servable.signature_defs.items():
            signatures.signature_def[name].CopyFrom(signature)
        packed = any_pb2.Any()
        packed.Pack(signatures)
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=_spec(servable, ""))
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    @_rpc("Classify")
    async def Classify(self, request: classification_pb2.ClassificationRequest, context):
        servable = self._servable(request.model_spec)
        servable.signature(request.model_spec.signature_name, CLASSIFY_METHOD)
        raise InvalidInput("Classify over tf.Example inputs is not served here; use Predict")

    @_rpc("Regress")
    async def Regress(self, request: regression_pb2.RegressionRequest, context):
        servable = self._servable(request.model_spec)
        servable.signature(request.model_spec.signature_name, REGRESS_METHOD)
        raise InvalidInput("Regress over tf.Example inputs is not served here; use Predict")

    @_rpc("MultiInference")
    async def MultiInference(self, request: inference_pb2.MultiInferenceRequest, context):
        for task in request.tasks:
            servable = self._servable(task.model_spec)
            servable.signature(task.model_spec.signature_name, task.method_name or CLASSIFY_METHOD)
        raise InvalidInput("MultiInference over tf.Example inputs is not served here; use Predict")


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    @_rpc("GetModelStatus")
    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest, context):
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, state, error in self.registry.status(request.model_spec.name, _version(request.model_spec)):
            status = response.model_version_status.add(version=version, state=state)
            if error:
                status.status.error_code = 2  # UNKNOWN, as TF Serving reports a failed load
                status.status.error_message = error
        return response

    async def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest, context):
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED, "edit models.config and restart; new versions load by themselves"
        )
