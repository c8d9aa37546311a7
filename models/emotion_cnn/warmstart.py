"""Start a network from the weights of an exported SavedModel version.

An exported version holds the variables its serving function reads, under their layer paths
(``conv2d_1/kernel:0``), in no order to rely on: a version written by export.py exposes them only
through that function, in the order it uses them. Each weight of a freshly built network of the same
shape is matched by its layer's kind, that layer's rank among the layers of its kind, and the weight's
role (``batch_normalization``, 3rd, ``gamma``), so the layer numbers themselves do not matter: a second
network built in one process numbers its layers on from the first's. Shapes are checked on the way. The
random-generator state of the dropout layers is not a weight and is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras

from models.emotion_cnn import SIGNATURE

_PATH = re.compile(r"^(?P<kind>[a-z0-9_]+?)(?:_(?P<number>\d+))?/(?P<role>[^:]+)")


def _keys(paths: list[str]) -> list[tuple[str, int, str]]:
    """``(kind, rank among the layers of that kind, role)`` of each ``layer/role`` path."""
    parsed = []
    for path in paths:
        match = _PATH.match(path)
        if match is None:
            raise ValueError(f"{path!r} is not a layer's weight")
        parsed.append((match["kind"], int(match["number"] or 0), match["role"]))
    numbers: dict[str, set[int]] = {}
    for kind, number, _ in parsed:
        numbers.setdefault(kind, set()).add(number)
    ranks = {kind: {n: rank for rank, n in enumerate(sorted(ns))} for kind, ns in numbers.items()}
    return [(kind, ranks[kind][number], role) for kind, number, role in parsed]


def load_weights_from_savedmodel(model: keras.Model, version_dir: Path) -> int:
    """Copy every weight of ``model`` from the SavedModel at ``version_dir``; return how many."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(version_dir))  # held: its variables go with it
    exported = [v for v in loaded.signatures[SIGNATURE].variables if "seed_generator" not in v.name]
    if len(exported) != len(model.weights):
        raise ValueError(f"{version_dir} holds {len(exported)} weights, the network {len(model.weights)}: not the same")
    sources = dict(zip(_keys([v.name for v in exported]), exported, strict=True))
    for weight, key in zip(model.weights, _keys([w.path for w in model.weights]), strict=True):
        source = sources.get(key)
        if source is None or tuple(source.shape) != tuple(weight.shape):
            theirs = "nothing" if source is None else f"{source.name} {tuple(source.shape)}"
            raise ValueError(f"{version_dir} has {theirs} where the network has {weight.path} {tuple(weight.shape)}: "
                             "not the same network")  # fmt: skip
        weight.assign(source.numpy())
    return len(model.weights)
