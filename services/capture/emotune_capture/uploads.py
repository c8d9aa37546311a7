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
from emotune_capture.headers import HeaderError, UnknownFormat, image_size
from emotune_common.consumer import Delivery, Outcome
from emotune_common.producer import StreamProducer

SOURCE = "upload"
#: The gateway's default bound (EMOTUNE_MAX_FRAME_PIXELS): a 4096x4096 frame, 48 MB decoded.
MAX_PIXELS = 16_777_216
UNDECODABLE = "not a decodable JPEG or PNG image"


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """A JPEG or PNG as a BGR array (grey and alpha dropped to BGR, EXIF orientation applied).

    ValueError when it is empty, not a JPEG or PNG (OpenCV would decode other formats too), larger
    than ``max_pixels`` by its header (refused before any pixel is decoded), or does not decode.
    """
    if not data:
        raise ValueError("empty image")
    try:
        _, width, height = image_size(data)
    except UnknownFormat:
        raise ValueError(UNDECODABLE) from None
    except HeaderError as e:
        raise ValueError(f"{UNDECODABLE}: {e}") from None
    if width * height > max_pixels:
        raise ValueError(f"image of {width}x{height} pixels is over the limit of {max_pixels} pixels")
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise ValueError(UNDECODABLE)
    return frame


def upload_handler(detector: FaceDetector, faces: StreamProducer, max_pixels: int = MAX_PIXELS):
    """A batch handler that turns Frame messages into FaceCrop messages; frames over ``max_pixels``
    are refused from their header."""

    def crops_of(frame: messages_pb2.Frame) -> list[messages_pb2.FaceCrop]:
        image = decode_image(frame.image, max_pixels)
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
