"""Browser-uploaded frames: the consumer group ``capture`` on emotune:frames."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import cv2
import numpy as np

from emotune.v1 import messages_pb2
from emotune_capture import metrics
from emotune_capture.crops import face_crops
from emotune_capture.detector import FaceDetector
from emotune_common.consumer import Delivery, Outcome
from emotune_common.producer import StreamProducer

SOURCE = "upload"


def decode_image(data: bytes) -> np.ndarray:
    """A JPEG or PNG as a BGR array; ValueError when it is not a decodable image."""
    if not data:
        raise ValueError("empty image")
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError("not a decodable JPEG or PNG image")
    return frame


def upload_handler(detector: FaceDetector, faces: StreamProducer):
    """A batch handler that turns Frame messages into FaceCrop messages."""

    def crops_of(frame: messages_pb2.Frame) -> list[messages_pb2.FaceCrop]:
        image = decode_image(frame.image)
        return face_crops(detector, image, session_id=frame.header.session_id, user_id=frame.header.user_id,
                          captured_at_us=frame.header.captured_at_us, frame_number=frame.frame_number,
                          source=SOURCE, frame_id=frame.header.id)  # fmt: skip

    async def handle(batch: Sequence[Delivery]) -> Outcome:
        outcome = Outcome()
        for delivery in batch:
            try:
                crops = await asyncio.to_thread(crops_of, delivery.message)
            except ValueError as e:
                metrics.BAD_UPLOADS.inc()
                outcome.failed[delivery.entry_id] = str(e)
                continue
            outcome.publish.extend((faces, crop) for crop in crops)
            metrics.FRAMES_PROCESSED.labels(SOURCE).inc()
            metrics.FACES.labels(SOURCE).inc(len(crops))
        return outcome

    return handle
