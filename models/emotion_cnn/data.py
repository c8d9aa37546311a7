"""Loading FER-2013 arrays (``x`` uint8 [N,48,48], ``y`` uint8 [N]) with clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emotune_common.settings import default_data_dir
from models.emotion_cnn import IMAGE_SIZE, LABELS

DEFAULT_DATA_DIR = default_data_dir()


class DataError(ValueError):
    """A data file is missing or not in the expected format."""


def fer_path(split: str, data_dir: Path = DEFAULT_DATA_DIR) -> Path:
    return Path(data_dir) / "fer2013" / f"{split}.npz"


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate one FER-style file; return images as float32 [N,48,48,1] in 0..1 and labels."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist (set EMOTUNE_DATA_DIR or run `make data`)")
    try:
        with np.load(path) as f:
            if "x" not in f or "y" not in f:
                raise DataError(f"{path} must hold arrays 'x' and 'y', has {sorted(f.files)}")
            x, y = f["x"], f["y"]
    except (OSError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        raise DataError(f"{path} is not a readable .npz file: {e}") from e
    if x.ndim != 3 or x.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or x.dtype != np.uint8:
        raise DataError(f"{path}: 'x' must be uint8 [N,{IMAGE_SIZE},{IMAGE_SIZE}], got {x.dtype} {list(x.shape)}")
    if y.shape != (x.shape[0],):
        raise DataError(f"{path}: 'y' must be [N] with N={x.shape[0]}, got {list(y.shape)}")
    if y.size and (y.min() < 0 or y.max() >= len(LABELS)):
        raise DataError(f"{path}: labels must be in 0..{len(LABELS) - 1}, got {y.min()}..{y.max()}")
    return (x.astype(np.float32) / 255.0)[..., None], y.astype(np.int64)
