"""Detect-then-track for video: a full Haar pass every ``every`` frames, template matching between.

A full Haar pass over a 640x360 frame with a 30 px minimum face costs tens of milliseconds: it is
the bulk of the capture service's work. Faces in video move little from one frame to the next, so
between full passes each face found before is followed by template matching: its last patch is
looked for in a window around its last box (grown by ``window`` on each side), both downscaled to
about 24 px a face, which costs a fraction of a millisecond. A face whose best match scores below
``min_score`` is dropped (it left, or turned away); a face that appears is found at the next full
pass, at most ``every - 1`` frames later. ``every=1`` detects every frame.
"""

from __future__ import annotations

import cv2
import numpy as np

from emotune_capture.detector import Face, FaceDetector

MATCH_SIZE = 24  # pixels across a face when matching


class FaceTracker:
    def __init__(self, detector: FaceDetector, every: int = 5, window: float = 0.5, min_score: float = 0.6,
                 offset: int = 0) -> None:  # fmt: skip
        """``offset`` shifts the full passes, so that sources started together do not all run one at once."""
        self.detector = detector
        self.every = max(1, every)
        self.window = window
        self.min_score = min_score
        self._tracks: list[tuple[tuple[int, int, int, int], np.ndarray]] = []  # box, patch at match scale
        self._frames = offset % self.every

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in this frame of the video, largest first."""
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        full = self._frames % self.every == 0
        self._frames += 1
        if full:
            boxes = [(f.x, f.y, f.width, f.height) for f in self.detector.detect(gray)]
        else:
            boxes = [box for track in self._tracks if (box := self._follow(gray, *track)) is not None]
        self._tracks = [(box, self._patch(gray, box)) for box in boxes] if self.every > 1 else []
        return [Face(*box, self.detector.crop(gray, box)) for box in boxes]

    @staticmethod
    def _scale(box: tuple[int, int, int, int]) -> float:
        return MATCH_SIZE / max(box[2], box[3])

    def _patch(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        x, y, w, h = box
        s = self._scale(box)
        return cv2.resize(gray[y : y + h, x : x + w], (max(1, round(w * s)), max(1, round(h * s))),
                          interpolation=cv2.INTER_AREA)  # fmt: skip

    def _follow(self, gray: np.ndarray, box: tuple[int, int, int, int], patch: np.ndarray):
        x, y, w, h = box
        dx, dy = round(w * self.window), round(h * self.window)
        x0, y0 = max(0, x - dx), max(0, y - dy)
        x1, y1 = min(gray.shape[1], x + w + dx), min(gray.shape[0], y + h + dy)
        s = self._scale(box)
        area = cv2.resize(gray[y0:y1, x0:x1], (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                          interpolation=cv2.INTER_AREA)  # fmt: skip
        if area.shape[0] < patch.shape[0] or area.shape[1] < patch.shape[1]:
            return None  # the face is at the frame's edge, mostly outside
        scores = cv2.matchTemplate(area, patch, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(scores)
        if best < self.min_score:
            return None
        nx, ny = x0 + round(mx / s), y0 + round(my / s)
        return (min(max(0, nx), gray.shape[1] - w), min(max(0, ny), gray.shape[0] - h), w, h)
