"""Uploaded frames through the consumer group `capture`: faces out, broken images to dead letters."""

from __future__ import annotations

import asyncio

from emotune.v1 import messages_pb2
from emotune_capture.detector import FaceDetector
from emotune_capture.uploads import upload_handler
from emotune_common.codec import decode
from emotune_common.consumer import StreamConsumer
from emotune_common.ids import make_header
from emotune_common.producer import StreamProducer
from emotune_common.settings import StreamSettings
from emotune_common.streams import dead_letter_stream

from ..common.helpers import wait_for
from ..conftest import DATA_DIR
from ..processes import PATIENCE_S

FAST = StreamSettings(batch_size=8, block_ms=50, claim_idle_ms=200, max_deliveries=2)


def frame(image: bytes, user: str = "alice") -> messages_pb2.Frame:
    return messages_pb2.Frame(header=make_header("s1", user), image=image, content_type="image/jpeg", frame_number=1)


async def test_uploaded_frames_become_face_crops_and_broken_ones_dead_letters(aredis, names):
    frames_stream, faces_stream = names("frames"), names("faces")
    photo = (DATA_DIR / "images" / "two_people.jpg").read_bytes()
    good, broken = frame(photo), frame(photo[: len(photo) // 3])
    await StreamProducer(aredis, frames_stream, 1000).publish_many([good, frame(b"not an image"), broken])
    faces = StreamProducer(aredis, faces_stream, 1000)
    consumer = StreamConsumer(aredis, frames_stream, "capture", upload_handler(FaceDetector(), faces),
                              settings=FAST, message_type=messages_pb2.Frame)  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    dlq = dead_letter_stream(frames_stream)
    try:
        await wait_for(lambda: _length_at_least(aredis, dlq, 2), PATIENCE_S, "the two undecodable frames in the DLQ")
        await wait_for(lambda: _length_at_least(aredis, faces_stream, 2), PATIENCE_S, "two faces")
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    crops = [decode(f, messages_pb2.FaceCrop) for _, f in await aredis.xrange(faces_stream)]
    assert len(crops) == 2
    for crop in crops:
        assert (crop.header.user_id, crop.header.session_id) == ("alice", "s1")
        assert crop.header.captured_at_us == good.header.captured_at_us
        assert len(crop.pixels) == 48 * 48 and crop.source == "upload"
    reasons = [f[b"dlq_reason"].decode() for _, f in await aredis.xrange(dlq)]
    assert reasons == ["not a decodable JPEG or PNG image"] * 2  # random bytes and a truncated JPEG


async def test_a_frame_handled_twice_makes_the_same_crop_ids(aredis, names):
    photo = (DATA_DIR / "images" / "obama.jpg").read_bytes()
    upload = frame(photo)
    handler = upload_handler(FaceDetector(), StreamProducer(aredis, names("faces"), 10))
    from emotune_common.consumer import Delivery

    first = await handler([Delivery("1-0", upload, 1)])
    again = await handler([Delivery("1-0", upload, 2)])
    assert [m.header.id for _, m in first.publish] == [m.header.id for _, m in again.publish]
    assert len(first.publish) == 1


async def _length_at_least(redis, stream, n):
    return await redis.xlen(stream) >= n
