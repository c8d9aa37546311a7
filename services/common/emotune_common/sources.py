"""Frame sources described as text: parsing only, so that the gateway can check a source it does not open.

A source is a URI-like string, so that one setting (or one REST field) can name it:

    webcam:0                      the first camera
    video:/path/clip.mp4?loop=1   a file (looping when loop=1), paced at its own frame rate
    rtsp://host/stream            an RTSP or HTTP(S) stream, as OpenCV opens it
    images:/path/folder           the images of a folder, in name order

Every source takes ``fps`` (a cap), ``session``, ``user`` and ``min_face`` (the smallest face
looked for, as a share of the frame's shorter side: a webcam's faces are big, a crowd's small) as
query parameters, e.g. ``video:clip.mp4?fps=10&session=s1&user=alice&min_face=0.2``; files and folders also ``loop=1``,
``realtime=0`` (read as fast as detection goes) and ``every_frame=1`` (detect every frame rather
than the newest one, for offline processing and tests). The capture service opens and reads them
(emotune_capture.sources).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_TRUE = ("1", "true", "yes")
#: The kinds of source the capture service opens (besides the frames browsers upload).
SOURCE_KINDS = ("webcam", "video", "images", "stream")


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
    min_face: float = 0.0  # the smallest face, a share of the frame's shorter side (0: capture's default)
    session: str = ""
    user: str = ""
    raw: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        return f"{self.kind}:{Path(self.target).name if self.kind in ('video', 'images') else self.target}"

    @property
    def finite(self) -> bool:
        """Whether the source ends by itself (a file or folder read once), rather than when stopped."""
        return self.kind in ("video", "images") and not self.loop


def parse_source(text: str, default_session: str = "", default_user: str = "") -> SourceSpec:
    """The :class:`SourceSpec` of ``text``; :class:`SourceError` says what is wrong with it."""
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
    try:
        min_face = float(query.get("min_face", 0))
    except ValueError:
        raise SourceError(f"{text!r}: min_face must be a number") from None
    if not 0 <= min_face < 1:
        raise SourceError(f"{text!r}: min_face is a share of the frame's shorter side, from 0 to 1")
    if kind == "webcam" and not target.isdigit():
        raise SourceError(f"{text!r}: a webcam is an index, e.g. webcam:0")
    return SourceSpec(
        kind=kind,
        target=target,
        fps=fps,
        loop=query.get("loop", "0") in _TRUE,
        realtime=query.get("realtime", "1") in _TRUE,
        every_frame=query.get("every_frame", "0") in _TRUE and kind in ("video", "images"),
        min_face=min_face,
        session=query.get("session", default_session),
        user=query.get("user", default_user),
        raw=text,
    )
