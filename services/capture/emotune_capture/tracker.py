"""Detect-then-track for video: full Haar passes when they are needed, template matching between.

A full Haar pass over a 640x360 frame with a 30 px minimum face costs tens of milliseconds: it is
the bulk of the capture service's work. Faces in video move little from one frame to the next, so
between full passes each face found before is followed by template matching: its last patch is
looked for in a window around its last box (grown by ``window`` on each side), both downscaled to
about 24 px a face, which costs a fraction of a millisecond.

A full pass runs:

- every ``every`` frames;
- on the frame after a face was lost (its best match scored below ``min_score``: it left, or turned
  away), since whatever replaced it is best found at once;
- on a cut (the mean change of a 32x18 thumbnail above ``cut``): every box is stale after it;
- every ``every_empty`` frames while no face is followed, since a face that appears in an empty
  scene would otherwise wait up to ``every - 1`` frames.

The Haar cascade flickers: a face found in one frame is often missed in the next at the same place.
So a followed face that a full pass misses is kept, by its template, through ``keep_missed`` full
passes before it is dropped.

Measured against a full pass on every frame of the sample video (``python -m emotune_capture.recall``,
one thread): with a full pass every 3rd frame (capture's default) these rules find 97.5% of that
pass's face-frames at 46% of its cost; every 5th frame, 93.6% at 33%. Before them, a full pass every
5th frame with tracking between found 81%. Haar detection in a window around each followed face,
instead of template matching, cost 15% more and found no more faces, so it is not used.

Those passes cost: on a machine short of CPU (8 streams on 2 cores) detection falls behind, and the
source's runner drops whole frames, which loses every face in them. So the runner reports the share of
frames it drops (:meth:`FaceTracker.note_pressure`); above ``shed_at`` the tracker sheds the optional
passes until the share falls below a fifth of it: no full pass on every frame without a face, and the
regular cadence doubled. A file read frame by frame (``every_frame``) never drops, so never sheds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from emotune_capture.detector import Face, FaceDetector

MATCH_SIZE = 24  # pixels across a face when matching
THUMBNAIL = (32, 18)  # the frame, this small, tells a cut
Box = tuple[int, int, int, int]


@dataclass
class _Track:
    box: Box
    patch: np.ndarray  # the face at match scale
    missed: int = 0  # full passes in a row that did not find it


class FaceTracker:
    def __init__(self, detector: FaceDetector, every: int = 3, window: float = 0.5, min_score: float = 0.6,
                 offset: int = 0, every_empty: int = 1, keep_missed: int = 1, cut: float = 20.0,
                 shed_at: float = 0.05) -> None:  # fmt: skip
        """``offset`` shifts the full passes, so that sources started together do not all run one at once."""
        self.detector = detector
        self.every = max(1, every)
        self.every_empty = max(1, every_empty)
        self.window = window
        self.min_score = min_score
        self.keep_missed = keep_missed
        self.cut = cut
        self.shed_at = shed_at
        self.shed = False  # shedding the optional full passes (see the module's text)
        self.full_passes = 0
        self._tracks: list[_Track] = []
        self._since_full = self.every_empty - 1 - offset % self.every  # frames since the last full pass
        self._lost = False
        self._thumbnail: np.ndarray | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in this frame of the video: those :meth:`detect_in_two` gives at once, then those its pass adds."""
        faces, full_pass = self.detect_in_two(frame)
        return faces + (full_pass() if full_pass else [])

    def detect_in_two(self, frame: np.ndarray) -> tuple[list[Face], Callable[[], list[Face]] | None]:
        """Faces in this frame of the video, and the full pass still to run on it, if one is due while faces are
        followed: it returns the faces it adds (new ones; those it finds again only refresh their tracks).

        So the crops of the faces followed need not wait behind the pass: on a 2-core machine running
        8 streams, a pass takes 50-150 ms, tracking a face a millisecond or two.
        """
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if self.every == 1:
            return self.detector.detect(gray), None
        if self._is_cut(gray):
            self._tracks = []
        self._since_full += 1
        every = 2 * self.every if self.shed else self.every
        due = self.every_empty if not (self._tracks or self.shed) else every
        if not (self._lost or self._since_full >= due):
            self._follow_all(gray)
            return self._faces(gray, self._tracks), None
        if not self._tracks:
            self._full_pass(gray)
            return self._faces(gray, self._tracks), None
        self._follow_all(gray)
        # A face this pass must find again to be kept is not given before the pass (nor, unfound, at all).
        sure = [t for t in self._tracks if t.missed < self.keep_missed]
        return self._faces(gray, sure), lambda: self._faces(gray, self._full_pass(gray, given=sure))

    def _faces(self, gray: np.ndarray, tracks: list[_Track]) -> list[Face]:
        return [Face(*t.box, self.detector.crop(gray, t.box)) for t in tracks]

    def note_pressure(self, dropped_share: float) -> None:
        """The share of this source's recent frames dropped because detection was busy."""
        if self.shed_at:
            self.shed = dropped_share > (self.shed_at / 5 if self.shed else self.shed_at)

    def _is_cut(self, gray: np.ndarray) -> bool:
        small = cv2.resize(gray, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.int16)
        previous, self._thumbnail = self._thumbnail, small
        return previous is not None and float(np.abs(small - previous).mean()) > self.cut

    def _full_pass(self, gray: np.ndarray, given: list[_Track] | None = None) -> list[_Track]:
        """Found faces replace the tracks they overlap; returns the found ones that overlap none of ``given``.

        ``given``: the tracks were already followed into this frame, and these given as its faces.
        """
        self.full_passes += 1
        self._since_full = 0
        self._lost = False
        found = [_Track(box, self._patch(gray, box)) for box in self.detector.boxes(gray)]
        kept = []
        for track in self._tracks:
            if track.missed >= self.keep_missed or any(iou(track.box, f.box) >= 0.3 for f in found):
                continue
            box = track.box if given is not None else self._follow(gray, track)
            if box is not None:
                kept.append(_Track(box, track.patch, track.missed + 1))
        self._tracks = found + kept
        return [f for f in found if not any(iou(f.box, t.box) >= 0.3 for t in given or [])]

    def _follow_all(self, gray: np.ndarray) -> None:
        tracks = []
        for track in self._tracks:
            box = self._follow(gray, track)
            if box is None:
                self._lost = True
            else:
                tracks.append(_Track(box, self._patch(gray, box), track.missed))
        self._tracks = tracks

    @staticmethod
    def _scale(box: Box) -> float:
        return MATCH_SIZE / max(box[2], box[3])

    def _patch(self, gray: np.ndarray, box: Box) -> np.ndarray:
        x, y, w, h = box
        s = self._scale(box)
        return cv2.resize(gray[y : y + h, x : x + w], (max(1, round(w * s)), max(1, round(h * s))),
                          interpolation=cv2.INTER_AREA)  # fmt: skip

    def _follow(self, gray: np.ndarray, track: _Track) -> Box | None:
        x, y, w, h = track.box
        dx, dy = round(w * self.window), round(h * self.window)
        x0, y0 = max(0, x - dx), max(0, y - dy)
        x1, y1 = min(gray.shape[1], x + w + dx), min(gray.shape[0], y + h + dy)
        s = self._scale(track.box)
        area = cv2.resize(gray[y0:y1, x0:x1], (max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))),
                          interpolation=cv2.INTER_AREA)  # fmt: skip
        if area.shape[0] < track.patch.shape[0] or area.shape[1] < track.patch.shape[1]:
            return None  # the face is at the frame's edge, mostly outside
        scores = cv2.matchTemplate(area, track.patch, cv2.TM_CCOEFF_NORMED)
        _, best, _, (mx, my) = cv2.minMaxLoc(scores)
        if best < self.min_score:
            return None
        nx, ny = x0 + round(mx / s), y0 + round(my / s)
        return (min(max(0, nx), gray.shape[1] - w), min(max(0, ny), gray.shape[0] - h), w, h)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x, y, width, height)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
