"""The emotion CNN: data loading, network, training, export and evaluation.

TensorFlow Serving reads the numbered version folders beside this package (``1/``, ``2/`` ...) and
ignores everything else in the folder, so code and exported models can live side by side.
"""

from emotune_common.labels import CROP_SIZE as IMAGE_SIZE
from emotune_common.labels import EMOTIONS as LABELS

__all__ = ["IMAGE_SIZE", "LABELS"]
