"""Start a network from the weights of an exported SavedModel version.

An exported version holds the Keras model's variables under their layer paths
(``conv2d/kernel:0``), so a freshly built network of the same shape takes them back by name. The
random-generator state of the dropout layers is not a weight and is left as it is.
"""

from __future__ import annotations

from pathlib import Path

import keras


def load_weights_from_savedmodel(model: keras.Model, version_dir: Path) -> int:
    """Copy every weight of ``model`` from the SavedModel at ``version_dir``; return how many."""
    import tensorflow as tf

    exported = {v.name.removesuffix(":0"): v for v in tf.saved_model.load(str(version_dir)).variables}
    missing = [w.path for w in model.weights if w.path not in exported]
    if missing:
        raise ValueError(f"{version_dir} lacks weights {missing[:3]} ({len(missing)} in all): not the same network")
    for weight in model.weights:
        source = exported[weight.path]
        if tuple(source.shape) != tuple(weight.shape):
            shapes = f"{version_dir} has {tuple(source.shape)}, the network {tuple(weight.shape)}"
            raise ValueError(f"{weight.path}: {shapes}")
        weight.assign(source.numpy())
    return len(model.weights)
