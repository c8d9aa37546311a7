"""Start a network from the weights of an exported SavedModel version.

An exported version holds the Keras model's variables in the order of the model's weights, under their
layer paths (``conv2d_1/kernel:0``). A freshly built network of the same shape takes them back in that
order; the kinds of the layers and the shapes are checked on the way. Layer numbers are left out of
the check: a second network built in one process numbers its layers on from the first's. The
random-generator state of the dropout layers is not a weight and is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras

_NUMBER = re.compile(r"_\d+(?=/)")


def _kind(path: str) -> str:
    """``batch_normalization_3/gamma:0`` -> ``batch_normalization/gamma``."""
    return _NUMBER.sub("", path.removesuffix(":0"))


def load_weights_from_savedmodel(model: keras.Model, version_dir: Path) -> int:
    """Copy every weight of ``model`` from the SavedModel at ``version_dir``; return how many."""
    import tensorflow as tf

    exported = [v for v in tf.saved_model.load(str(version_dir)).variables if "seed_generator" not in v.name]
    if len(exported) != len(model.weights):
        raise ValueError(f"{version_dir} holds {len(exported)} weights, the network {len(model.weights)}: not the same")
    for weight, source in zip(model.weights, exported, strict=True):
        if _kind(weight.path) != _kind(source.name) or tuple(source.shape) != tuple(weight.shape):
            theirs, ours = f"{source.name} {tuple(source.shape)}", f"{weight.path} {tuple(weight.shape)}"
            raise ValueError(f"{version_dir} has {theirs} where the network has {ours}: not the same network")
        weight.assign(source.numpy())
    return len(model.weights)
