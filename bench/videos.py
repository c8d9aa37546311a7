"""Copies of the sample video for benchmarks of several streams."""

from __future__ import annotations

from pathlib import Path

import cv2


def shifted_copy(video: Path, to: Path, start: float) -> None:
    """``video`` as it plays from ``start`` (a share of its length) round to where it started."""
    if not start:
        to.symlink_to(video)
        return
    capture = cv2.VideoCapture(str(video))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (read := capture.read())[0]:
        frames.append(read[1])
    capture.release()
    k = round(start * len(frames))
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(to), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames[k:] + frames[:k]:
        writer.write(frame)
    writer.release()
