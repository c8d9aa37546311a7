"""Detect-then-track for video: full Haar passes when they are needed, template matching between.

A full Haar pass over a 640x360 frame with a 30 px minimum face costs tens of milliseconds: it is
the bulk of the capture service's work. Faces in video move little from one frame to the next, so
between full passes each face found before is followed by template matching: its last patch is
looked for in a window around its last box (grown by ``window`` on each side), both downscaled to
about 24 px a face, which costs a fraction of a millisecond.

A full pass runs:

- every ``every`` frames;
- on the frame where a face was lost (its best match scored below ``min_score``: it left, or turned
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

A full pass need not hold up the frames after it. :meth:`FaceTracker.follow` follows the faces into a
frame and, when a pass is due, hands it out as a :class:`FullPass` to run anywhere (capture runs them on
threads of their own, at a lower priority than tracking and publishing); the pass goes back to the
tracker with a later frame, and what it found is followed from its frame into that one. Meanwhile no
other pass is asked for. So the followed faces of every frame are published within a millisecond or two
however long a pass takes, and a face the pass found new is given late, in the pass's frame and in each
frame followed since (the tracker keeps those frames while a pass is out). A pass asked because faces
were lost (one, or every one at a cut) is ``urgent``: capture's pass pool runs it before the others
(passes.py). On the sample video, passes
back 1 to 10 frames late find the same 97.5% when a file waits for the pass out before the next is due
(:attr:`FaceTracker.pass_wanted`); a live source waits for nothing, and its passes then come less
often: 97.5% back 1 frame late, 96.6% 2 frames, 95.6% 3 (``python -m emotune_capture.recall``).
Without the late faces, a pass back 1 frame late found 87%.

Those passes cost: on a machine short of CPU (8 streams on 2 cores) detection falls behind, and the
source's runner drops whole frames, which loses every face in them. So the runner reports the share of
frames it drops (:meth:`FaceTracker.note_pressure`); above ``shed_at`` the tracker sheds the optional
passes until the share falls below a fifth of it: no full pass on every frame without a face, and the
regular cadence doubled. A file read frame by frame (``every_frame``) never drops, so never sheds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from emotune_capture.detector import Face, FaceDetector

MATCH_SIZE = 24  # pixels across a face when matching
MAX_LATE_FRAMES = 30  # frames followed while a pass is out that its new faces are given late in, at most
THUMBNAIL = (32, 18)  # the frame, this small, tells a cut
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Track:
    box: Box
    patch: np.ndarray  # the face at match scale
    missed: int = 0  # full passes in a row that did not find it
    id: int = 0


@dataclass
class FullPass:
    """A full pass :meth:`FaceTracker.follow` asked for: :meth:`run` it anywhere, then give it to a later
    ``follow``. It holds its frame, and the boxes the followed faces had there."""

    gray: np.ndarray
    tag: object  # the caller's name for the frame (capture: its number and time), given back with late faces
    detector: FaceDetector
    followed: dict[int, Box]  # the tracks' boxes in ``gray``, by id
    cuts: int  # the cuts the tracker had seen: one after it makes the pass stale
    urgent: bool = False  # asked because faces were lost (one, or all at a cut): run it before the others
    boxes: list[Box] = field(default_factory=list)

    def run(self) -> FullPass:
        """Detect the faces of the frame (thread-safe: it touches nothing the tracker uses)."""
        self.boxes = self.detector.boxes(self.gray)
        return self


@dataclass(frozen=True)
class Followed:
    """What :meth:`FaceTracker.follow` gives for a frame."""

    faces: list[Face]  # in this frame
    late: list[tuple[object, Face]]  # faces the pass given back found new, in its frame and those since: (tag, face)
    asked: FullPass | None  # the full pass to run now


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
        self._ids = itertools.count(1)
        self._since_full = self.every_empty - 1 - offset % self.every  # frames since the last full pass
        self._lost = False
        self._out = False  # a full pass was handed out and has not come back
        self._since_out: list[tuple[object, np.ndarray]] = []  # the frames followed since, tagged
        self._cuts = 0
        self._thumbnail: np.ndarray | None = None

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Faces in this frame of the video, its full pass (when one is due) run at once."""
        gray = _gray(frame)
        if self.every == 1:
            return self.detector.detect(gray)
        asked = self._step(gray)
        if asked is not None:
            self.take_back(asked.run())
        return self._faces(gray)

    def follow(self, frame: np.ndarray, done: FullPass | None = None, tag: object = None) -> Followed:
        """Faces in this frame of the video, and the full pass to run, if one is due and none is out.

        ``done``: the pass asked for earlier, run since. The faces it found new (that no followed face
        overlapped in its frame) are given late, in its frame and each frame followed since (by their
        ``tag``), so a pass that runs beside the frames finds the faces it would have found before them.
        """
        gray = _gray(frame)
        if self.every == 1:
            return Followed(self.detector.detect(gray), [], None)
        late = self.take_back(done) if done is not None else []
        asked = self._step(gray, tag)
        return Followed(self._faces(gray), late, asked)

    @property
    def pass_wanted(self) -> bool:
        """The next frame would ask for a full pass, were none out: a caller that must not skip one
        (a file read frame by frame) waits for the one out before that frame."""
        return self._pass_due(self._since_full + 1)

    def note_pressure(self, dropped_share: float) -> None:
        """The share of this source's recent frames dropped because detection was busy."""
        if self.shed_at:
            self.shed = dropped_share > (self.shed_at / 5 if self.shed else self.shed_at)

    def _step(self, gray: np.ndarray, tag: object = None) -> FullPass | None:
        """Follow the faces into this frame; the full pass to run on it, if one is due and none is out."""
        if self._is_cut(gray):
            self._tracks = []
            self._cuts += 1
            self._lost = True  # every face followed: a pass on this frame at once
            self._out, self._since_out = False, []  # the pass out is stale: this one instead
        self._since_full += 1
        self._follow_all(gray)
        if self._out:
            self._since_out = [*self._since_out[-MAX_LATE_FRAMES + 1 :], (tag, gray)]
            return None
        if not self._pass_due(self._since_full):
            return None
        self.full_passes += 1
        self._since_full = 0
        urgent, self._lost = self._lost, False
        self._out = True
        return FullPass(gray, tag, self.detector, {t.id: t.box for t in self._tracks}, self._cuts, urgent)

    def _pass_due(self, since_full: int) -> bool:
        """A full pass is due ``since_full`` frames after the last: a face was lost, or the cadence says so."""
        return self._lost or since_full >= self._due()

    def _due(self) -> int:
        if not (self._tracks or self.shed):
            return self.every_empty
        return 2 * self.every if self.shed else self.every

    def take_back(self, done: FullPass) -> list[tuple[object, Face]]:
        """Take back a pass with no frame to follow into (``follow`` does it with one): the source ended.

        The faces a pass found replace the tracks they overlap in its frame, followed from there through
        the frames since; a track it missed is kept ``keep_missed`` passes. Returns the new faces in those
        frames. A pass from before a cut is stale: it is let go (another was asked for at the cut)."""
        if done.cuts != self._cuts:
            return []
        self._out = False
        since, self._since_out = self._since_out, []
        late: list[tuple[object, Face]] = []
        found = []
        for box in done.boxes:
            new = not any(iou(box, was) >= 0.3 for was in done.followed.values())
            track: _Track | None = _Track(box, self._patch(done.gray, box), id=next(self._ids))
            frames = [(done.tag, done.gray), *since]
            for i, (tag, gray) in enumerate(frames):
                if i and (track := self._followed(gray, track)) is None:
                    self._lost = True
                    break
                if new:
                    late.append((tag, self._face(gray, track.box)))
            if track is not None:
                found.append(track)
        kept = []
        for track in self._tracks:
            was = done.followed.get(track.id)
            if was is None:
                kept.append(track)
            elif not any(iou(was, box) >= 0.3 for box in done.boxes) and track.missed < self.keep_missed:
                kept.append(replace(track, missed=track.missed + 1))
        self._tracks = found + kept
        return late

    def _faces(self, gray: np.ndarray) -> list[Face]:
        return [self._face(gray, t.box) for t in self._tracks]

    def _face(self, gray: np.ndarray, box: Box) -> Face:
        return Face(*box, self.detector.crop(gray, box))

    def _is_cut(self, gray: np.ndarray) -> bool:
        small = cv2.resize(gray, THUMBNAIL, interpolation=cv2.INTER_AREA).astype(np.int16)
        previous, self._thumbnail = self._thumbnail, small
        return previous is not None and float(np.abs(small - previous).mean()) > self.cut

    def _follow_all(self, gray: np.ndarray) -> None:
        tracks = [self._followed(gray, track) for track in self._tracks]
        self._lost = self._lost or any(t is None for t in tracks)
        self._tracks = [t for t in tracks if t is not None]

    def _followed(self, gray: np.ndarray, track: _Track) -> _Track | None:
        """The track moved into this frame, with its patch from there; None when it is lost."""
        box = self._follow(gray, track)
        return None if box is None else replace(track, box=box, patch=self._patch(gray, box))

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


def _gray(frame: np.ndarray) -> np.ndarray:
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (x, y, width, height)."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)
