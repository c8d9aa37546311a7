"""TensorProto <-> numpy, and checking a request's inputs against a signature as TF Serving does."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.protobuf import meta_graph_pb2


class InvalidInput(ValueError):
    """A request that does not fit the signature (INVALID_ARGUMENT)."""


def to_numpy(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """The tensor's array. A shape too large to allocate (values left out are filled in, as in
    TensorFlow) is a parsing error, INVALID_ARGUMENT, as in TF Serving: not the server's failure."""
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"malformed tensor: {e}") from None
    except MemoryError as e:
        raise InvalidInput(f"tensor parsing error: {e}") from None


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    return tf.make_tensor_proto(array)


def _dtype_name(dtype: int) -> str:
    return tf.dtypes.as_dtype(dtype).name


def check_inputs(signature: meta_graph_pb2.SignatureDef, inputs: dict[str, tensor_pb2.TensorProto]) -> int:
    """Validate names, dtypes and shapes; return the batch size (first dimension) of the request."""
    expected = sorted(signature.inputs)
    known = ",".join(expected)
    for key in inputs:
        if key not in signature.inputs:
            raise InvalidInput(
                f"input tensor alias not found in signature: {key}. Inputs expected to be in the set {{{known}}}."
            )
    missing = [k for k in expected if k not in inputs]
    if missing:
        raise InvalidInput(
            f"Missing input tensor alias(es): {','.join(missing)}. Inputs expected: {{{','.join(expected)}}}."
        )
    batch = None
    for position, key in enumerate(expected):
        info, tensor = signature.inputs[key], inputs[key]
        if tensor.dtype != info.dtype:
            raise InvalidInput(
                f"Expects arg[{position}] to be {_dtype_name(info.dtype)} but {_dtype_name(tensor.dtype)} is provided"
            )
        got = [d.size for d in tensor.tensor_shape.dim]
        want = [d.size for d in info.tensor_shape.dim]
        if not info.tensor_shape.unknown_rank and (
            len(got) != len(want) or any(w != -1 and w != g for w, g in zip(want, got, strict=True))
        ):
            raise InvalidInput(f"input '{key}' has shape {got}, the signature expects {want} (-1: any)")
        if got:
            if batch is not None and got[0] != batch:
                raise InvalidInput(f"inputs disagree on the batch size: {batch} and {got[0]}")
            batch = got[0]
    return batch or 1
