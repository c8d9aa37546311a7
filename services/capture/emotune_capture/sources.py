"""Frame sources: a webcam, a video file, an RTSP/HTTP stream or a folder of images.

A source is described by a URI-like string, so that one setting can list several:

    webcam:0                      the first camera
    video:/path/clip.mp4?loop=1   a file (looping when loop=1), paced at its own frame rate
    rtsp://host/stream            an RTSP or HTTP(S) stream, as OpenCV opens it
    images:/path/folder           the images of a folder, in name order

Every source takes ``fps`` (a cap), ``session`` and ``user`` as query parameters, e.g.
``video:clip.mp4?fps=10&session=s1&user=alice``; files and folders also ``loop=1``,
``realtime=0`` (read as fast as detection goes) and ``every_frame=1`` (detect every frame rather
than the newest one, for offline processing and tests). Uploaded frames come through the emotune:frames
stream instead (see uploads.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


class SourceError(ValueError):
    """A source that cannot be parsed or opened; the text says which and why."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # webcam | video | stream | images
    target: str
    fps: float = 0.0  # 0: no cap
    loop: bool = False
    realtime: bool = True  # pace files at their own frame rate
    every_frame: bool = False  # wait for detection instead of dropping frames (files and folders only)
    session: str = ""
    user: str = ""
    raw: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"{self.kind}:{Path(self.target).name if self.kind in ('video', 'images') else self.target}"


def parse_source(text: str, default_session: str = "", default_user: str = "") -> SourceSpec:
    text = text.strip()
    if not text:
        raise SourceError("empty source")
    parts = urlsplit(text)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    scheme = parts.scheme.lower()
    if scheme in ("rtsp", "rtsps", "http", "https"):
        kind, target = "stream", text.split("?", 1)[0] if scheme in ("rtsp", "rtsps") else text
        if scheme in ("http", "https"):
            target = parts._replace(query="").geturl()
    elif scheme in ("webcam", "video", "images"):
        kind = scheme
        target = text.split(":", 1)[1].split("?", 1)[0]
    else:
        raise SourceError(f"unknown source {text!r}: use webcam:N, video:PATH, images:DIR, rtsp://... or http://...")
    try:
        fps = float(query.get("fps", 0))
    except ValueError:
        raise SourceError(f"{text!r}: fps must be a number") from None
    if fps < 0:
        raise SourceError(f"{text!r}: fps must be >= 0")
    if kind == "webcam" and not target.isdigit():
        raise SourceError(f"{text!r}: a webcam is an index, e.g. webcam:0")
    return SourceSpec(
        kind=kind,
        target=target,
        fps=fps,
        loop=query.get("loop", "0") in ("1", "true", "yes"),
        realtime=query.get("realtime", "1") in ("1", "true", "yes"),
        every_frame=query.get("every_frame", "0") in ("1", "true", "yes") and kind in ("video", "images"),
        session=query.get("session", default_session),
        user=query.get("user", default_user),
        raw=text,
    )


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
    capture = cv2.VideoCapture(int(spec.target) if spec.kind == "webcam" else spec.target)
    if not capture.isOpened():
        raise SourceError(f"{spec.raw}: OpenCV cannot open {spec.target}")
    return capture


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
