"""Opening and reading frame sources: a webcam, a video file, an RTSP/HTTP stream or a folder of images.

What a source string means (``webcam:0``, ``video:clip.mp4?loop=1&fps=10``, ``images:DIR``,
``rtsp://...``) is parsed by :mod:`emotune_common.sources`, so that the gateway can check a source
without OpenCV; this module opens them, streams only through the guard of proxy.py, which checks them
against ``EMOTUNE_STREAM_ALLOW``. Uploaded frames come through the emotune:frames stream instead (see
uploads.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from emotune_capture import proxy
from emotune_common.egress import StreamRefused, redacted
from emotune_common.sources import SourceError, SourceSpec

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def open_frames(spec: SourceSpec) -> Iterator[np.ndarray]:
    """BGR frames of a source, as fast as it gives them (pacing and caps are the caller's)."""
    if spec.kind == "images":
        yield from _folder(spec)
        return
    while True:
        capture = _open_capture(spec)
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield frame
        finally:
            capture.release()
        if not (spec.loop and spec.kind == "video"):
            return


def native_fps(spec: SourceSpec) -> float:
    """A file's own frame rate (0 when unknown or not a file)."""
    if spec.kind != "video":
        return 0.0
    capture = _open_capture(spec)
    try:
        return float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        capture.release()


def _open_capture(spec: SourceSpec) -> cv2.VideoCapture:
    if spec.kind == "video" and not Path(spec.target).is_file():
        raise SourceError(f"{spec.raw}: no such video file {spec.target}")
    if spec.kind == "stream":
        return _open_stream(spec)
    capture = cv2.VideoCapture(int(spec.target) if spec.kind == "webcam" else spec.target)
    if not capture.isOpened():
        raise SourceError(f"{spec.raw}: OpenCV cannot open {spec.target}")
    return capture


def _open_stream(spec: SourceSpec) -> cv2.VideoCapture:
    """A stream, checked right before it is opened and opened through the process's guard (proxy.py)."""
    stream_guard = proxy.guard()
    refused = stream_guard.refused
    capture = cv2.VideoCapture(stream_guard.open_url(spec.target), cv2.CAP_FFMPEG)
    if capture.isOpened():
        return capture
    shown = redacted(spec.target)
    if stream_guard.refused > refused:  # (or another stream's, opened at the same moment)
        raise StreamRefused(f"{shown}: a connection FFmpeg made for it (a redirect?) was refused by "
                            "EMOTUNE_STREAM_ALLOW; capture's log (stream_refused) says where to and why")  # fmt: skip
    raise SourceError(f"{shown}: OpenCV cannot open it")


def _folder(spec: SourceSpec) -> Iterator[np.ndarray]:
    folder = Path(spec.target)
    if not folder.is_dir():
        raise SourceError(f"{spec.raw}: no such folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise SourceError(f"{spec.raw}: no images in {folder}")
    while True:
        for path in files:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:  # an unreadable file is skipped, the rest go on
                yield frame
        if not spec.loop:
            return


class Pacer:
    """Keeps a source at most at ``fps`` frames a second: says which frames to keep, and how long to
    wait for files read faster than real time."""

    def __init__(self, cap_fps: float, native: float = 0.0, realtime: bool = True) -> None:
        self.interval = 1.0 / cap_fps if cap_fps else 0.0
        self.native_interval = 1.0 / native if (native and realtime) else 0.0
        self._next_keep = 0.0
        self._media_time = 0.0
        self._started = time.monotonic()

    def wait(self) -> None:
        """For a file in real time: sleep until this frame's moment."""
        if self.native_interval:
            delay = self._started + self._media_time - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._media_time += self.native_interval

    def keep(self) -> bool:
        """Whether the frame that just arrived is kept under the cap (10% early is on time)."""
        if not self.interval:
            return True
        now = time.monotonic()
        if now < self._next_keep - 0.1 * self.interval:
            return False
        on_schedule = now - self._next_keep < self.interval
        self._next_keep = (self._next_keep if on_schedule else now) + self.interval
        return True
