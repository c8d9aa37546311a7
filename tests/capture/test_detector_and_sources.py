"""Face detection on real photographs and the real video; sources, caps and back-pressure."""

from __future__ import annotations

import asyncio
import threading
import time

import cv2
import numpy as np
import pytest
from prometheus_client import REGISTRY

from emotune.v1 import messages_pb2
from emotune_capture import sources as capture_sources
from emotune_capture.__main__ import tracker as capture_tracker
from emotune_capture.detector import DetectorOptions, FaceDetector, equalize
from emotune_capture.live import SourceRunner
from emotune_capture.recall import behind_boxes, boxes, measure, score, video_frames
from emotune_capture.settings import CaptureSettings
from emotune_capture.sources import Pacer, open_frames
from emotune_capture.tracker import FaceTracker
from emotune_common.codec import decode
from emotune_common.producer import StreamProducer
from emotune_common.sources import SourceError, parse_source

from ..common.helpers import wait_for
from ..conftest import DATA_DIR
from ..processes import PATIENCE_S
from .shots import two_shots

IMAGES = DATA_DIR / "images"
VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"


@pytest.mark.parametrize(
    ("name", "faces"),
    [("obama.jpg", 1), ("biden.jpg", 1), ("two_people.jpg", 2), ("obama_partial_face.jpg", 0)],
)
def test_faces_in_real_photographs(name, faces):
    found = FaceDetector().detect(cv2.imread(str(IMAGES / name)))
    assert len(found) == faces
    for face in found:
        assert face.pixels.shape == (48, 48) and face.pixels.dtype == np.uint8


def test_a_group_photo_has_several_faces_and_largest_only_keeps_the_biggest():
    frame = cv2.imread(str(IMAGES / "obama_and_biden.jpg"))
    faces = FaceDetector().detect(frame)
    assert len(faces) >= 2
    assert [f.width * f.height for f in faces] == sorted((f.width * f.height for f in faces), reverse=True)
    [largest] = FaceDetector(DetectorOptions(largest_only=True)).detect(frame)
    assert (largest.x, largest.y, largest.width) == (faces[0].x, faces[0].y, faces[0].width)


def test_crop_margin_is_clipped_to_the_frame_and_equalisation_spreads_the_histogram():
    frame = cv2.imread(str(IMAGES / "obama.jpg"), cv2.IMREAD_GRAYSCALE)
    detector = FaceDetector(DetectorOptions(margin=0.5))
    crop = detector.crop(frame, (0, 0, 40, 40))  # a box in the corner: the margin leaves the frame
    assert crop.shape == (48, 48)
    dull = (np.arange(48 * 48).reshape(48, 48) % 40 + 100).astype(np.uint8)
    for how in ("hist", "clahe"):
        assert np.ptp(equalize(dull, how)) > np.ptp(dull)
    assert np.array_equal(equalize(dull, "none"), dull)


def test_the_sample_video_yields_the_faces_its_readme_counts():
    detector = FaceDetector()
    spec = parse_source(f"video:{VIDEO}")
    assert sum(len(detector.detect(frame)) for frame in open_frames(spec)) == 204


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("ftp://x", "unknown source"),
        ("webcam:front", "an index"),
        ("video:x.mp4?fps=fast", "fps must be a number"),
        ("video:x.mp4?fps=-1", "fps must be >= 0"),
        ("webcam:0?min_face=big", "min_face must be a number"),
        ("webcam:0?min_face=1.5", "share of the frame's shorter side"),
    ],
)
def test_bad_sources_are_clear_errors(text, message):
    with pytest.raises(SourceError, match=message):
        parse_source(text)


def test_sources_that_cannot_be_opened_say_why(tmp_path):
    with pytest.raises(SourceError, match="no such video file"):
        next(open_frames(parse_source(f"video:{tmp_path / 'missing.mp4'}")))
    with pytest.raises(SourceError, match="no images"):
        next(open_frames(parse_source(f"images:{tmp_path}")))
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open"):
        next(open_frames(parse_source(f"video:{tmp_path / 'broken.mp4'}")))


def test_source_parameters():
    spec = parse_source("video:/data/clip.mp4?loop=1&fps=5&session=s1&user=alice&realtime=0&every_frame=1&min_face=.2")
    assert (spec.kind, spec.target, spec.fps, spec.loop, spec.realtime, spec.every_frame, spec.min_face) == (
        "video", "/data/clip.mp4", 5.0, True, False, True, 0.2)  # fmt: skip
    assert parse_source("webcam:0").min_face == 0  # capture's default
    assert (spec.session, spec.user) == ("s1", "alice")
    assert parse_source("rtsp://cam.local:554/live?fps=8").target == "rtsp://cam.local:554/live"
    assert parse_source("webcam:0?every_frame=1").every_frame is False  # a camera never waits


def test_an_image_folder_loops_and_skips_unreadable_files(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes((IMAGES / "obama.jpg").read_bytes())
    (tmp_path / "c.jpg").write_bytes(b"broken")
    frames = open_frames(parse_source(f"images:{tmp_path}?loop=1"))
    assert len([next(frames) for _ in range(5)]) == 5


def test_the_pacer_caps_the_frame_rate(monkeypatch):
    """Frames arriving every 2 ms for one second, on a clock of the test's own (no machine is too slow)."""
    clock = FakeClock()
    monkeypatch.setattr(capture_sources, "time", clock)
    pacer = Pacer(cap_fps=10)
    kept = 0
    for _ in range(500):
        kept += pacer.keep()
        clock.now += 0.002
    assert 9 <= kept <= 11


class FakeClock:
    """Stands for the ``time`` module in emotune_capture.sources: ``monotonic`` reads ``now``, ``sleep`` moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_a_slow_detector_drops_old_frames_instead_of_blocking_the_source():
    spec = parse_source(f"video:{VIDEO}?realtime=0")  # the reader goes as fast as it can
    runner = SourceRunner(spec, FaceTracker(FaceDetector()), producer=None)
    counts = await runner.run(asyncio.Event())
    assert counts.read == 275
    assert counts.dropped > 0
    assert counts.processed + counts.dropped == counts.read
    assert runner.detector.shed  # it told its tracker, which shed the optional passes


async def test_a_video_in_real_time_with_a_cap_keeps_a_third_of_its_frames():
    spec = parse_source(f"video:{VIDEO}?fps=10&every_frame=1")
    started = time.monotonic()
    stop = asyncio.Event()
    task = asyncio.create_task(SourceRunner(spec, FaceDetector(), producer=None).run(stop))
    await asyncio.sleep(3)
    stop.set()
    counts = await task
    elapsed = time.monotonic() - started
    # upper bounds only, so a slower machine passes too: read no faster than the file's 29.97 fps, and
    # kept no more than the 10 fps cap allows (frames a slow machine could not read are not kept either)
    assert 0 < counts.read <= 30 * elapsed + 5
    assert counts.read - counts.skipped <= 10 * elapsed + 2


def test_the_default_configuration_finds_95_percent_of_the_faces_a_full_pass_on_every_frame_finds():
    """Speed must not lose faces: capture's default tracking against a full Haar pass on every frame."""
    settings = CaptureSettings()
    frames = video_frames(VIDEO)
    reference, _ = boxes(FaceDetector(settings.detector_options()), frames)
    tracker = capture_tracker(settings, parse_source(f"video:{VIDEO}"))
    result = measure(reference, tracker, frames)
    assert result.reference_faces == 204
    assert result.recall >= 0.95, result
    assert result.full_passes < len(frames) / 2  # and it does skip most full passes
    assert all(f.pixels.shape == (48, 48) for f in tracker.detect(frames[-1]))


def test_passes_run_beside_the_frames_find_95_percent_of_the_faces_however_late_they_come_back():
    """Capture runs its full passes beside the frames: a pass's new faces are given late, in its frame and
    those since. A file read frame by frame waits for a pass out before the next is due; a live source does not."""
    settings = CaptureSettings()
    frames = video_frames(VIDEO)
    reference, _ = boxes(FaceDetector(settings.detector_options()), frames)
    for lag, live in ((1, False), (3, False), (10, False), (1, True), (2, True)):
        tracker = capture_tracker(settings, parse_source(f"video:{VIDEO}"))
        result = score(reference, *behind_boxes(tracker, frames, lag, live), tracker.full_passes)
        assert result.recall >= 0.95, (lag, live, result)
        assert result.full_passes < len(frames) / 2


def test_a_pass_that_comes_back_late_gives_its_new_face_in_its_frame_and_each_one_since():
    obama = cv2.imread(str(IMAGES / "obama.jpg"), cv2.IMREAD_GRAYSCALE)
    [face] = FaceDetector().detect(obama)
    tracker = FaceTracker(FaceDetector(), every=5)
    first = tracker.follow(obama, tag="frame 1")
    assert first.faces == [] and first.late == [] and first.asked is not None  # nothing followed yet: a pass
    second = tracker.follow(obama, tag="frame 2")  # the pass is out: no other is asked for
    assert second.faces == [] and second.asked is None
    third = tracker.follow(obama, first.asked.run(), tag="frame 3")
    assert [tag for tag, _ in third.late] == ["frame 1", "frame 2"]
    assert all(abs(f.x - face.x) + abs(f.y - face.y) <= 0.05 * face.width for _, f in third.late)
    assert len(third.faces) == 1 and third.asked is None  # followed into this frame; the next pass is not due
    fourth = tracker.follow(obama, tag="frame 4")
    assert len(fourth.faces) == 1 and fourth.late == []


class HeldPasses(FaceDetector):
    """A detector whose full passes from the ``first_held``-th on wait for ``go``."""

    def __init__(self, first_held: int) -> None:
        super().__init__()
        self.first_held = first_held
        self.passes, self.go = 0, threading.Event()

    def boxes(self, gray):
        self.passes += 1
        if self.passes >= self.first_held:
            self.go.wait(PATIENCE_S)
        return super().boxes(gray)


async def test_a_runner_publishes_the_followed_faces_of_the_frames_after_a_full_pass_while_it_runs(redis, tmp_path):
    cv2.imwrite(str(tmp_path / "obama.png"), cv2.imread(str(IMAGES / "obama.jpg")))
    detector = HeldPasses(first_held=2)
    # frame 1: a full pass, waited for by frame 2 (a file read frame by frame skips no pass), which gives the
    # face late in frame 1 and follows it; frame 3's pass is held, and frame 4 is followed all the same
    spec = parse_source(f"images:{tmp_path}?loop=1&fps=20&every_frame=1&session=s1")
    runner = SourceRunner(spec, FaceTracker(detector, every=2), StreamProducer(redis, "crops", 100))
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await wait_for(lambda: _crops_and_held(redis, detector), PATIENCE_S, "frame 4's crop during frame 3's pass")
        assert detector.passes == 2 and not detector.go.is_set()
        detector.go.set()
        await wait_for(lambda: _more_crops(redis, 6), PATIENCE_S, "crops after the pass")
    finally:
        detector.go.set()
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    frames = [int(decode(f, messages_pb2.FaceCrop).frame_number) for _, f in await redis.xrange("crops")]
    assert frames[0] == 0  # the first frame's face, given late by its pass, before the next frame's
    assert len(frames) >= 6 and frames == sorted(set(frames))  # one crop a frame: the pass found the face again


@pytest.mark.parametrize("every_frame", [False, True], ids=["live", "file read frame by frame"])
async def test_faces_a_pass_finds_late_in_frames_older_than_the_bound_are_dropped_and_counted(
    redis, tmp_path, every_frame
):
    cv2.imwrite(str(tmp_path / "obama.png"), cv2.imread(str(IMAGES / "obama.jpg")))
    detector = HeldPasses(first_held=1)
    spec = parse_source(f"images:{tmp_path}?loop=1&fps=20&every_frame={int(every_frame)}&session=s1")
    runner = SourceRunner(spec, FaceTracker(detector, every=2), StreamProducer(redis, "crops", 100), late_max_s=0.05)
    before = _late_dropped(spec.name)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await asyncio.sleep(0.5)  # frame 0's pass is held well past the bound (a file's frame 1 waits for it)
        detector.go.set()
        await wait_for(lambda: _more_crops(redis, 3), PATIENCE_S, "crops after the pass")
    finally:
        detector.go.set()
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    frames = [int(decode(f, messages_pb2.FaceCrop).frame_number) for _, f in await redis.xrange("crops")]
    assert frames == sorted(set(frames))
    if every_frame:  # read for every face, not for the newest: the bound does not apply
        assert frames[0] == 0 and _late_dropped(spec.name) == before
    else:  # frame 0's late face and those of the frames followed while the pass was held, 50 ms apart
        assert frames[0] > 0 and _late_dropped(spec.name) >= before + 1


async def test_the_faces_of_the_pass_out_when_a_source_ends_are_published(redis, tmp_path):
    cv2.imwrite(str(tmp_path / "obama.png"), cv2.imread(str(IMAGES / "obama.jpg")))
    spec = parse_source(f"images:{tmp_path}?every_frame=1&session=s1")  # one frame: its pass is still out at the end
    runner = SourceRunner(spec, FaceTracker(FaceDetector()), StreamProducer(redis, "crops", 100))
    counts = await asyncio.wait_for(runner.run(asyncio.Event()), PATIENCE_S)
    assert counts.processed == 1 and counts.faces == 1
    [(_, crop)] = await redis.xrange("crops")
    assert int(decode(crop, messages_pb2.FaceCrop).frame_number) == 0


def _late_dropped(source: str) -> float:
    return REGISTRY.get_sample_value("emotune_capture_late_faces_dropped_total", {"source": source}) or 0.0


async def _crops_and_held(redis, detector) -> bool:
    return await redis.xlen("crops") >= 4 and detector.passes == 2


async def _more_crops(redis, n: int) -> bool:
    return await redis.xlen("crops") >= n


def test_a_cut_is_detected_again_at_once_and_a_face_that_leaves_is_dropped():
    obama, biden, blank = two_shots()
    detector = FaceDetector()
    [at_obama], [at_biden] = detector.detect(obama), detector.detect(biden)
    tracker = FaceTracker(detector, every=100)
    [first] = tracker.detect(obama)
    [followed] = tracker.detect(obama)
    assert (first.x, first.y) == (at_obama.x, at_obama.y)
    assert abs(followed.x - first.x) + abs(followed.y - first.y) <= 0.05 * first.width  # matching's rounding
    assert tracker.full_passes == 1  # the second frame was tracked
    [after_cut] = tracker.detect(biden)  # a cut: a full pass, not the stale box
    assert (after_cut.x, after_cut.y, after_cut.width) == (at_biden.x, at_biden.y, at_biden.width)
    assert tracker.full_passes == 2
    assert tracker.detect(blank) == [] and tracker.detect(blank) == []


def test_a_tracker_behind_sheds_its_optional_full_passes_until_it_keeps_up_again():
    frames = video_frames(VIDEO)[:120]
    full, shed = FaceTracker(FaceDetector()), FaceTracker(FaceDetector())
    shed.note_pressure(0.2)  # a fifth of the source's frames dropped
    assert shed.shed and not full.shed
    for frame in frames:
        full.detect(frame)
        assert shed.detect(frame) is not None
    assert shed.full_passes < 0.6 * full.full_passes
    shed.note_pressure(0.03)  # below the threshold, above a fifth of it: still shedding (no flapping)
    assert shed.shed
    shed.note_pressure(0.005)
    assert not shed.shed
    never = FaceTracker(FaceDetector(), shed_at=0)
    never.note_pressure(1.0)
    assert not never.shed


def test_a_larger_minimum_face_skips_the_small_ones_and_a_source_or_the_uploads_set_their_own():
    frame = cv2.imread(str(IMAGES / "obama_and_biden.jpg"))
    short = min(frame.shape[:2])
    every = FaceDetector().detect(frame)
    big = FaceDetector(DetectorOptions(min_face=0.2)).detect(frame)
    assert 0 < len(big) < len(every)
    assert all(f.width >= 0.2 * short for f in big)
    assert {(f.x, f.y) for f in big} <= {(f.x, f.y) for f in every}
    settings = CaptureSettings()
    assert capture_tracker(settings, parse_source("webcam:0?min_face=0.3")).detector.options.min_face == 0.3
    assert capture_tracker(settings, parse_source("webcam:0")).detector.options.min_face == settings.detect_min_face
    assert settings.detector_options(settings.capture_uploads_min_face).min_face > settings.detect_min_face


async def test_a_source_that_fails_to_open_ends_its_runner_with_the_error(tmp_path):
    runner = SourceRunner(parse_source(f"video:{tmp_path / 'missing.mp4'}"), FaceDetector(), producer=None)
    with pytest.raises(SourceError, match="no such video file"):
        await asyncio.wait_for(runner.run(asyncio.Event()), PATIENCE_S)
