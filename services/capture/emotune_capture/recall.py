"""How many faces a detection configuration finds, against a full Haar pass on every frame.

    python -m emotune_capture.recall [VIDEO] [--detect-every 5 ...]

Speed must not lose faces. The reference is the detector run on its own on every frame of a video
(its options from the settings, as capture runs them); a configuration (the tracker, with its full
passes and tracking between) is run over the same frames in order. A reference face counts as found
in a frame when the configuration gives a box there overlapping it by an IoU of at least 0.3:

- ``recall``: the share of the reference's face-frames found;
- ``steady recall``: the same over the reference's faces that it also finds in the frame before or
  after. The Haar cascade flickers, finding a face in one frame and missing it in the next, and its
  one-frame finds are often not faces at all (a hand, a fold of cloth);
- ``extra per frame``: boxes the configuration gives that the reference has not in that frame. Some
  are its false positives, others faces the reference flickered off.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import typer

from emotune_capture.crops import Detects
from emotune_capture.detector import FaceDetector
from emotune_capture.settings import CaptureSettings
from emotune_capture.tracker import Box, FaceTracker, iou
from emotune_common.settings import default_data_dir

MATCH_IOU = 0.3


@dataclass(frozen=True)
class Recall:
    frames: int
    reference_faces: int
    found: int
    steady: int
    steady_found: int
    extra: int
    ms_per_frame: float
    full_passes: int | None

    @property
    def recall(self) -> float:
        return self.found / self.reference_faces if self.reference_faces else 1.0

    @property
    def steady_recall(self) -> float:
        return self.steady_found / self.steady if self.steady else 1.0

    @property
    def extra_per_frame(self) -> float:
        return self.extra / self.frames if self.frames else 0.0


def video_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video file, in grayscale."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise typer.BadParameter(f"OpenCV cannot open {path}")
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    capture.release()
    if not frames:
        raise typer.BadParameter(f"{path} has no frames")
    return frames


def boxes(detector: Detects, frames: Sequence[np.ndarray]) -> tuple[list[list[Box]], float]:
    """The boxes ``detector`` gives on each frame in order, and its milliseconds a frame."""
    started = time.perf_counter()
    out = [[(f.x, f.y, f.width, f.height) for f in detector.detect(frame)] for frame in frames]
    return out, 1000 * (time.perf_counter() - started) / len(frames)


def _overlaps(box: Box, others: Sequence[Box]) -> bool:
    return any(iou(box, other) >= MATCH_IOU for other in others)


def behind_boxes(tracker: FaceTracker, frames: Sequence[np.ndarray], lag: int,
                 live: bool = False) -> tuple[list[list[Box]], float]:  # fmt: skip
    """The boxes ``tracker`` gives on each frame when each full pass comes back ``lag`` frames after its own,
    as capture runs them beside the frames (late faces included): sooner when the next is wanted, as for a
    file read frame by frame, unless ``live`` (a live source waits for nothing)."""
    started = time.perf_counter()
    out: list[list[Box]] = [[] for _ in frames]
    out_pass, age = None, 0
    for t, frame in enumerate(frames):
        done = None
        if out_pass is not None:
            age += 1
            if age >= lag or (tracker.pass_wanted and not live):
                done, out_pass = out_pass, None
        followed = tracker.follow(frame, done, t)
        for tag, face in followed.late:
            out[tag].append((face.x, face.y, face.width, face.height))
        out[t] += [(f.x, f.y, f.width, f.height) for f in followed.faces]
        if followed.asked is not None:
            out_pass, age = followed.asked.run(), 0
    return out, 1000 * (time.perf_counter() - started) / len(frames)


def measure(reference: Sequence[Sequence[Box]], detector: Detects, frames: Sequence[np.ndarray]) -> Recall:
    """How much of ``reference`` (boxes per frame) ``detector`` finds on ``frames``."""
    return score(reference, *boxes(detector, frames), getattr(detector, "full_passes", None))


def score(reference: Sequence[Sequence[Box]], found_boxes: Sequence[Sequence[Box]], ms: float,
          full_passes: int | None = None) -> Recall:  # fmt: skip
    """How much of ``reference`` (boxes per frame) ``found_boxes`` has; ``ms`` a frame it cost."""
    found = steady = steady_found = extra = 0
    for t, (ref, got) in enumerate(zip(reference, found_boxes, strict=True)):
        neighbours = [*(reference[t - 1] if t else []), *(reference[t + 1] if t + 1 < len(reference) else [])]
        for box in ref:
            hit = _overlaps(box, got)
            found += hit
            if _overlaps(box, neighbours):
                steady += 1
                steady_found += hit
        extra += sum(not _overlaps(box, ref) for box in got)
    return Recall(len(found_boxes), sum(map(len, reference)), found, steady, steady_found, extra, ms, full_passes)


Run = Callable[[Sequence[np.ndarray]], Recall]


def configurations(settings: CaptureSettings, reference: Sequence[Sequence[Box]]) -> dict[str, Run]:
    """The default configuration of the settings, as capture runs it (full passes beside the frames) and with
    each pass run at once, and what each of its rules is worth (one left out)."""
    options = settings.detector_options()

    def tracker(**overrides: int) -> Callable[[], FaceTracker]:
        args = dict(every=settings.detect_every, every_empty=settings.detect_every_empty,
                    keep_missed=settings.track_keep_missed)  # fmt: skip
        args.update(overrides)
        return lambda: FaceTracker(FaceDetector(options), min_score=settings.track_min_score, **args)

    def at_once(make: Callable[[], FaceTracker], shed: bool = False) -> Run:
        def run(frames: Sequence[np.ndarray]) -> Recall:
            detector = make()
            detector.shed = shed
            return measure(reference, detector, frames)

        return run

    def beside(lag: int, live: bool) -> Run:
        def run(frames: Sequence[np.ndarray]) -> Recall:
            detector = tracker()()
            return score(reference, *behind_boxes(detector, frames, lag, live), detector.full_passes)

        return run

    every = settings.detect_every
    return {
        "the settings' configuration, passes at once": at_once(tracker()),
        "passes back 2 frames late (a file)": beside(2, live=False),
        "passes back 1 frame late (live)": beside(1, live=True),
        "passes back 2 frames late (live)": beside(2, live=True),
        "shedding, as when detection falls behind": at_once(tracker(), shed=True),
        "without full passes on empty scenes": at_once(tracker(every_empty=every)),
        "without keeping missed faces": at_once(tracker(keep_missed=0)),
        f"a full pass every {max(2, every // 2)} frames": at_once(tracker(every=max(2, every // 2))),
        f"a full pass every {every * 2} frames": at_once(tracker(every=every * 2)),
    }


app = typer.Typer(add_completion=False)


@app.command()
def main(
    video: Path = typer.Argument(None, help="Default: the sample video of EMOTUNE_DATA_DIR"),
    stride: int = typer.Option(1, min=1, help="Keep every n-th frame, as a frame-rate cap does (3: 30 fps -> 10)"),
) -> None:
    """Print recall and cost of each configuration against a full pass on every frame."""
    cv2.setNumThreads(1)
    settings = CaptureSettings()
    path = video or default_data_dir() / "video" / "short_hamilton_clip.mp4"
    frames = video_frames(path)[::stride]
    reference, ms = boxes(FaceDetector(settings.detector_options()), frames)
    print(f"{path.name}: {len(frames)} frames, full pass on every frame: {sum(map(len, reference))} faces, "
          f"{ms:.1f} ms a frame (one thread)")  # fmt: skip
    print(f"{'configuration':44} {'ms/frame':>8} {'full passes':>11} {'recall':>7} {'steady':>7} {'extra/frame':>11}")
    for name, run in configurations(settings, reference).items():
        r = run(frames)
        print(f"{name:44} {r.ms_per_frame:8.1f} {r.full_passes or 0:11} {r.recall:7.1%} {r.steady_recall:7.1%} "
              f"{r.extra_per_frame:11.3f}")  # fmt: skip


if __name__ == "__main__":
    app()
