"""Two shots of one video, made of the real photographs: for the tests of cuts and lost faces."""

from __future__ import annotations

import cv2
import numpy as np

from ..conftest import DATA_DIR

IMAGES = DATA_DIR / "images"


def two_shots() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grayscale frames of one size: Obama's portrait, then Biden's on the left of a grey frame (a cut
    between them), and the grey frame alone."""
    obama = cv2.imread(str(IMAGES / "obama.jpg"), cv2.IMREAD_GRAYSCALE)
    blank = np.full_like(obama, 128)
    portrait = cv2.imread(str(IMAGES / "biden.jpg"), cv2.IMREAD_GRAYSCALE)
    portrait = cv2.resize(portrait, None, fx=obama.shape[0] / portrait.shape[0], fy=obama.shape[0] / portrait.shape[0])
    biden = blank.copy()
    biden[:, : portrait.shape[1]] = portrait
    return obama, biden, blank
