"""The emotion CNN: data loading, network, training, export and evaluation.

TensorFlow Serving reads the numbered version folders beside this package (``1/``, ``2/`` ...) and
ignores everything else in the folder, so code and exported models can live side by side.
"""

from emotune_common.labels import CROP_SIZE as IMAGE_SIZE
from emotune_common.labels import EMOTIONS as LABELS

#: The served signature: images float32 [N,48,48,1] in 0..1 -> probabilities [N,7] (export.py, warmup.py).
SIGNATURE = "serving_default"
INPUT_KEY = "images"
OUTPUT_KEY = "probabilities"

__all__ = ["IMAGE_SIZE", "INPUT_KEY", "LABELS", "OUTPUT_KEY", "SIGNATURE"]
