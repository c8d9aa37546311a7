"""The emotion CNN: data loading, network, training, export and evaluation.

TensorFlow Serving reads the numbered version folders beside this package (``1/``, ``2/`` ...) and
ignores everything else in the folder, so code and exported models can live side by side.
"""

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
IMAGE_SIZE = 48
