"""From a frame to FaceCrop messages."""

from __future__ import annotations

import uuid
from typing import Protocol

import numpy as np

from emotune.v1 import messages_pb2
from emotune_capture.detector import Face
from emotune_common.ids import make_header
from emotune_common.labels import CROP_SIZE


class Detects(Protocol):
    """A FaceDetector (each frame on its own) or a FaceTracker (frames of one video in order)."""

    def detect(self, frame: np.ndarray) -> list[Face]: ...


def face_crops(
    detector: Detects,
    frame: np.ndarray,
    *,
    session_id: str,
    user_id: str,
    captured_at_us: int,
    frame_number: int,
    source: str,
    frame_id: str | None = None,
) -> list[messages_pb2.FaceCrop]:
    """Detect the faces of a frame and make one FaceCrop message each.

    With ``frame_id`` (a frame that may be delivered again, such as an upload) the crops' ids are
    derived from it, so handling the same frame twice makes the same messages, which consumers
    then de-duplicate.
    """
    return [
        crop_message(face, session_id, user_id, captured_at_us, frame_number, source,
                     uuid.uuid5(uuid.NAMESPACE_URL, f"{frame_id}/{i}").hex if frame_id else None)
        for i, face in enumerate(detector.detect(frame))
    ]  # fmt: skip


def crop_message(
    face: Face,
    session_id: str,
    user_id: str,
    captured_at_us: int,
    frame_number: int,
    source: str,
    message_id: str | None = None,
) -> messages_pb2.FaceCrop:
    return messages_pb2.FaceCrop(
        header=make_header(session_id, user_id, captured_at_us, message_id),
        pixels=face.pixels.tobytes(),
        width=CROP_SIZE,
        height=CROP_SIZE,
        box=messages_pb2.BoundingBox(x=face.x, y=face.y, width=face.width, height=face.height),
        frame_number=frame_number,
        detector="haar:frontalface_default",
        source=source,
    )
