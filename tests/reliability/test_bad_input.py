"""Bad input gets a clear error and loses nothing else: malformed and oversized stream entries, broken,
huge and unusual images (through the gateway and through capture's upload consumer), and requests
the model server must refuse while it goes on serving."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import os
import struct
import zlib
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

from emotune.v1 import messages_pb2
from emotune_capture.detector import FaceDetector
from emotune_capture.headers import HeaderError, image_size
from emotune_capture.uploads import decode_image, upload_handler
from emotune_common.codec import DecodeError, EntryTooLarge, decode, encode
from emotune_common.consumer import Outcome, StreamConsumer
from emotune_common.ids import derived_header, make_header
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import connect
from emotune_common.settings import StreamSettings
from emotune_common.sharded import ShardedProducer, shard_consumers
from emotune_common.shards import session_stream, shard_streams
from emotune_common.streams import FACES, FRAMES, dead_letter_stream
from emotune_gateway import accounts
from emotune_gateway.app import create_app
from emotune_gateway.images import ImageError, check_image
from emotune_gateway.settings import GatewaySettings

from ..common.helpers import crops, read_shards, shard_length, wait_for
from ..conftest import DATA_DIR
from ..modelserver.helpers import predict_request, probabilities
from ..processes import PATIENCE_S

FAST = StreamSettings(batch_size=8, block_ms=50, claim_idle_ms=200, max_deliveries=2)
#: Capture's upload consumers as the service runs them: one a shard of emotune:frames (a detector each), each
#: writing its crops to the same shard of emotune:faces.
UPLOADS = FAST.model_copy(update={"shards": 4})
PHOTO = (DATA_DIR / "images" / "obama.jpg").read_bytes()


def encoded(image: Image.Image, fmt: str = "JPEG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def photo() -> Image.Image:
    return Image.open(io.BytesIO(PHOTO)).convert("RGB")


def exif_rotated() -> bytes:
    """The photo stored turned a quarter to the left, with the EXIF tag that says to turn it back
    (Orientation 6: rotate 90 degrees clockwise to display)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(photo().rotate(90, expand=True), exif=exif.tobytes())


def bad_icc_png() -> bytes:
    """A PNG whose iCCP chunk (after the pixels) ends early: PIL raised IndexError on it, a 500 from the
    gateway before fuzz/fuzz_frames.py found it."""
    png = encoded(Image.new("L", (8, 8)), "PNG")
    data = b"name\0"  # a profile name, then nothing: no compression method, no profile
    chunk = struct.pack(">I", len(data)) + b"iCCP" + data + struct.pack(">I", zlib.crc32(b"iCCP" + data))
    return png[:-12] + chunk + png[-12:]  # before IEND


def huge_jpeg() -> bytes:
    """A real 10000x10000 JPEG: 1.2 MB encoded, 300 MB once decoded to BGR."""
    return encoded(Image.new("L", (10_000, 10_000), 128), quality=50)


async def length_at_least(redis, stream: str, n: int) -> bool:
    return await redis.xlen(stream) >= n


@contextlib.asynccontextmanager
async def running(*consumers: StreamConsumer) -> AsyncIterator[None]:
    """``consumers`` run inside the block, and must all still be running at its end."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    try:
        yield
        assert not any(task.done() for task in tasks), "a consumer stopped by itself"
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), PATIENCE_S)


def upload_consumers(redis) -> list[StreamConsumer]:
    """Capture's upload consumers, as its service makes them: a consumer of group ``capture`` a shard of
    emotune:frames, each with a detector of its own and writing to that shard of emotune:faces."""
    faces = ShardedProducer(redis, FACES, UPLOADS.shards, 1000)
    return shard_consumers(redis, FRAMES, "capture", lambda shard: upload_handler(FaceDetector(), faces.shard(shard)),
                           UPLOADS, message_type=messages_pb2.Frame)  # fmt: skip


async def uploads_handled(redis) -> bool:
    """Whether every shard's upload consumer has read and acknowledged all of its shard of emotune:frames."""
    for name in shard_streams(FRAMES, UPLOADS.shards):
        if await redis.exists(name) and not await _acked(redis, name, "capture"):
            return False
    return True


# -- stream entries -----------------------------------------------------------------------------------


def echo_handler(out: StreamProducer):
    def event(crop: messages_pb2.FaceCrop) -> messages_pb2.EmotionEvent:
        return messages_pb2.EmotionEvent(header=derived_header(crop.header), crop_id=crop.header.id)

    async def handle(batch):
        return Outcome(publish=[(out, event(d.message)) for d in batch])

    return handle


def test_an_oversized_entry_is_refused_before_it_is_parsed():
    big = messages_pb2.FaceCrop(header=make_header("s", "u"), pixels=b"\0" * 9_000_000)
    assert decode(encode(big)) == big  # well-formed: only the bound refuses it
    with pytest.raises(EntryTooLarge, match=r"9000\d+ bytes is over the limit of 8000000 bytes"):
        decode(encode(big), messages_pb2.FaceCrop, max_bytes=8_000_000)
    # garbage over the bound is refused for its size, not parsed for its content
    with pytest.raises(EntryTooLarge):
        decode({b"type": b"emotune.v1.FaceCrop", b"pb": os.urandom(1000)}, max_bytes=999)
    assert issubclass(EntryTooLarge, DecodeError)  # callers that catch DecodeError catch it too
    assert StreamSettings().max_entry_bytes == 8_000_000


async def test_bad_entries_end_in_the_dead_letter_stream_and_the_good_ones_around_them_are_handled(redis_server):
    redis = connect(redis_server.url)
    src, dst = "faces-under-test", "emotions-under-test"
    good = crops(20)
    producer = StreamProducer(redis, src, maxlen=10_000)
    await producer.publish_many(good[:10])
    oversized = messages_pb2.FaceCrop(header=make_header("s", "mallory"), pixels=os.urandom(20_000_000))
    bad = {
        "random bytes": {"type": "emotune.v1.FaceCrop", "pb": os.urandom(300)},
        "wrong type": {"type": "emotune.v1.EmotionEvent", "pb": good[0].SerializeToString()},
        "empty message": {"type": "emotune.v1.FaceCrop", "pb": b""},
        "no type": {"pb": good[0].SerializeToString()},
        "oversized": encode(oversized),  # a well-formed FaceCrop of 20 MB
    }
    bad_ids = {name: (await redis.xadd(src, fields)).decode() for name, fields in bad.items()}
    await producer.publish_many(good[10:])

    consumer = StreamConsumer(redis, src, "inference", echo_handler(StreamProducer(redis, dst, 10_000)),
                              settings=FAST, message_type=messages_pb2.FaceCrop)  # fmt: skip
    dlq = dead_letter_stream(src)
    async with running(consumer):
        await wait_for(lambda: length_at_least(redis, dlq, len(bad)), PATIENCE_S, "every bad entry dead-lettered")
        await wait_for(lambda: length_at_least(redis, dst, 20), PATIENCE_S, "the 20 good entries handled")
        letters = {f[b"dlq_entry_id"].decode(): f for _, f in await redis.xrange(dlq)}
        reasons = {name: letters[bad_ids[name]][b"dlq_reason"].decode() for name in bad}
        assert "does not parse" in reasons["random bytes"] or "without header.id" in reasons["random bytes"]
        assert "wrong message type" in reasons["wrong type"]
        assert "without header.id" in reasons["empty message"]
        assert "lacks field 'type'" in reasons["no type"]
        assert reasons["oversized"].startswith("too large: entry of 200000")
        assert "EMOTUNE_STREAM_MAX_ENTRY_BYTES" in reasons["oversized"]
        for name in bad:
            assert reasons[name].startswith("too large" if name == "oversized" else "undecodable"), reasons[name]
        big = letters[bad_ids["oversized"]]
        assert big[b"dlq_deliveries"] == b"1"  # at once: no retry makes it smaller
        assert b"pb" not in big and big[b"dlq_omitted"] == b"pb" and int(big[b"dlq_entry_bytes"]) > 20_000_000
        assert big[b"type"] == b"emotune.v1.FaceCrop"
        assert all(int(letters[bad_ids[n]][b"dlq_deliveries"]) == FAST.max_deliveries for n in bad if n != "oversized")
        assert (await redis.xpending(src, "inference"))["pending"] == 0

        # and it keeps running: one more good entry goes through
        await producer.publish(crops(1)[0])
        await wait_for(lambda: length_at_least(redis, dst, 21), PATIENCE_S, "an entry after the bad ones")
    events = [decode(f, messages_pb2.EmotionEvent) for _, f in await redis.xrange(dst)]
    assert {e.crop_id for e in events} >= {c.header.id for c in good}
    await redis.aclose()


# -- images -------------------------------------------------------------------------------------------


def test_the_dimensions_come_from_the_header_alone():
    big = huge_jpeg()
    assert image_size(big) == ("jpeg", 10_000, 10_000)
    assert image_size(big[:700]) == ("jpeg", 10_000, 10_000)  # the first bytes are enough: nothing decoded
    assert image_size(PHOTO) == ("jpeg", 910, 1137)
    assert image_size(encoded(photo().convert("RGBA"), "PNG")) == ("png", 910, 1137)
    with pytest.raises(ValueError, match="over the limit of 16777216 pixels"):
        decode_image(big[:700])  # refused from the header before the (missing) pixels are looked at
    broken = [(b"GIF89a....", "neither"), (b"\xff\xd8\xff\xd9", "without a frame header"),
              (PHOTO[:100], "ends before its frame header"), (b"\x89PNG\r\n\x1a\n\0\0", "shorter")]  # fmt: skip
    for data, why in broken:
        with pytest.raises(HeaderError, match=why):
            image_size(data)
    # 53 bytes that made OpenCV allocate 4 GB (fuzz/fuzz_frames.py found it): a chunk stated at 4 GB
    bomb = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAADAAAAA8EAAAAAOrxP+c8P9FtElEQVR4MQMAAAAASa5CYII=")
    with pytest.raises(ValueError, match="runs past the end of the image"):
        decode_image(bomb)


def frame(image: bytes, number: int, content_type: str = "image/jpeg", user: str = "alice") -> messages_pb2.Frame:
    """Frame ``number`` of one of 3 sessions (by its number), so that the frames spread over the shards."""
    return messages_pb2.Frame(header=make_header(f"s{number % 3}", user), image=image, content_type=content_type,
                              frame_number=number)  # fmt: skip


async def test_capture_refuses_bad_frames_clearly_and_finds_faces_in_unusual_good_ones(redis_server):
    """Frames written straight to emotune:frames (a buggy or hostile writer: the gateway would refuse
    the bad ones), handled by capture's real upload consumer."""
    redis = connect(redis_server.url)
    good = {
        1: ("plain photo", PHOTO, "image/jpeg"),
        2: ("grayscale", encoded(photo().convert("L")), "image/jpeg"),
        3: ("PNG with alpha", encoded(photo().convert("RGBA"), "PNG"), "image/png"),
        4: ("EXIF-rotated", exif_rotated(), "image/jpeg"),
    }
    bad = {
        11: ("truncated JPEG", PHOTO[: len(PHOTO) // 2], "not a decodable JPEG or PNG image"),
        12: ("zero bytes", b"", "empty image"),
        13: ("10000x10000", huge_jpeg(), "image of 10000x10000 pixels is over the limit of 16777216 pixels"),
        14: ("not an image", b"hello, I am text" * 10, "not a decodable JPEG or PNG image"),
        15: ("GIF", encoded(photo(), "GIF"), "not a decodable JPEG or PNG image"),  # OpenCV would decode it
    }
    frames = ShardedProducer(redis, FRAMES, UPLOADS.shards, 1000)  # the gateway's: a frame to its session's shard
    await frames.publish_many([frame(data, n, kind) for n, (_, data, kind) in good.items()])
    await frames.publish_many([frame(data, n) for n, (_, data, _) in bad.items()])
    assert len({session_stream(FRAMES, f"s{n % 3}", UPLOADS.shards) for n in good | bad}) > 1  # several shards
    dlq = dead_letter_stream(FRAMES)
    async with running(*upload_consumers(redis)):
        await wait_for(lambda: shard_dead_at_least(redis, len(bad)), PATIENCE_S, "the bad frames dead-lettered")
        await wait_for(lambda: uploads_handled(redis), PATIENCE_S, "every frame handled")

    letters = [(name, f) for name in shard_streams(FRAMES, UPLOADS.shards) for _, f in await redis.xrange(
        dead_letter_stream(name))]  # fmt: skip
    reasons = {decode(f, messages_pb2.Frame).frame_number: f[b"dlq_reason"].decode() for _, f in letters}
    assert reasons == {n: why for n, (_, _, why) in bad.items()}
    assert all(f[b"dlq_stream"].decode() == name for name, f in letters)  # each in its own shard's dead letters
    assert not await redis.exists(dlq, FRAMES, FACES)  # nothing on the unsharded names
    by_frame: dict[int, list[messages_pb2.FaceCrop]] = {}
    for name, _, f in await read_shards(redis, FACES, UPLOADS.shards):
        crop = decode(f, messages_pb2.FaceCrop)
        assert name == session_stream(FACES, crop.header.session_id, UPLOADS.shards)  # its frame's shard
        by_frame.setdefault(crop.frame_number, []).append(crop)
    assert set(by_frame) == set(good), f"faces found in frames {sorted(by_frame)}"
    upright = [c.box for c in by_frame[1]]
    assert len(upright) == 1
    # OpenCV applied the EXIF orientation: the face is found where it is in the upright photo
    [turned] = [c.box for c in by_frame[4]]
    assert abs(turned.x - upright[0].x) <= 10 and abs(turned.y - upright[0].y) <= 10, (turned, upright[0])
    [with_alpha] = [c.box for c in by_frame[3]]
    assert abs(with_alpha.x - upright[0].x) <= 2 and abs(with_alpha.width - upright[0].width) <= 2
    await redis.aclose()


async def shard_dead_at_least(redis, n: int) -> bool:
    """Whether the dead letters of emotune:frames' shards hold ``n`` entries or more together."""
    return sum([await redis.xlen(dead_letter_stream(s)) for s in shard_streams(FRAMES, UPLOADS.shards)]) >= n


async def _acked(redis, stream: str, group: str) -> bool:
    groups = await redis.xinfo_groups(stream)
    return bool(groups) and groups[0]["lag"] == 0 and groups[0]["pending"] == 0


def test_the_gateway_answers_each_bad_upload_clearly_and_capture_finds_faces_in_what_it_accepts(redis_server):
    async def new_user() -> str:
        redis = connect(redis_server.url)
        try:
            await accounts.create_user(redis, "alice")
            return await accounts.create_key(redis, "alice")
        finally:
            await redis.aclose()

    headers = {"Authorization": f"Bearer {asyncio.run(new_user())}"}
    settings = GatewaySettings.model_validate({
        "REDIS_URL": redis_server.url, "recommender_addr": "127.0.0.1:9", "media_dir": DATA_DIR / "video",
        "rate_limit": "100000/minute", "frame_rate_limit": "1000/second", "log_json": False,
        "stream": {"block_ms": 50, "shards": UPLOADS.shards},
    })  # fmt: skip
    with TestClient(create_app(settings)) as client:
        session = client.post("/v1/users/alice/sessions", json={"source": "upload"}, headers=headers).json()
        url = f"/v1/users/alice/sessions/{session['id']}/frames"

        def post(data: bytes, content_type: str):
            return client.post(url, content=data, headers={**headers, "Content-Type": content_type})

        accepted = {
            "grayscale": post(encoded(photo().convert("L")), "image/jpeg"),
            "PNG with alpha": post(encoded(photo().convert("RGBA"), "PNG"), "image/png"),
            "EXIF-rotated": post(exif_rotated(), "image/jpeg"),
        }
        for name, r in accepted.items():
            assert r.status_code == 202, f"{name}: {r.text}"
        assert accepted["EXIF-rotated"].json()["width"] == 1137  # as stored; capture turns it upright
        refused = {
            "truncated JPEG": (post(PHOTO[: len(PHOTO) // 2], "image/jpeg"), 422, "does not decode"),
            "zero bytes": (post(b"", "image/jpeg"), 422, "empty body"),
            "10000x10000 JPEG": (post(huge_jpeg(), "image/jpeg"), 413, "over the limit of 16777216 pixels"),
            "not an image": (post(b"hello, I am text" * 10, "image/png"), 422, "not a decodable PNG"),
            "broken ICC profile": (post(bad_icc_png(), "image/png"), 422, "does not decode: IndexError"),
        }
        for name, (r, status, why) in refused.items():
            assert r.status_code == status and why in r.json()["detail"], f"{name}: {r.status_code} {r.text}"

    async def capture() -> dict[int, int]:
        redis = connect(redis_server.url)
        assert await shard_length(redis, FRAMES, UPLOADS.shards) == 3  # the gateway wrote them to their shard
        async with running(*upload_consumers(redis)):
            await wait_for(lambda: uploads_handled(redis), PATIENCE_S, "the accepted frames handled")
        found: dict[int, int] = {}
        for _, _, f in await read_shards(redis, FACES, UPLOADS.shards):
            number = decode(f, messages_pb2.FaceCrop).frame_number
            found[number] = found.get(number, 0) + 1
        assert not await shard_dead_at_least(redis, 1)
        await redis.aclose()
        return found

    faces = asyncio.run(capture())
    assert set(faces) == {1, 2, 3}, faces  # every accepted frame, the refused ones never published


# -- the model server -----------------------------------------------------------------------------------


def tensor(shape: tuple[int, ...], dtype: int = types_pb2.DT_FLOAT, content: bytes = b"") -> tensor_pb2.TensorProto:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims),
                                  tensor_content=content)  # fmt: skip


def raw_request(**inputs: tensor_pb2.TensorProto):
    request = predict_request(np.zeros((1, 48, 48, 1), np.float32))
    del request.inputs["images"]
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value)
    return request


@pytest.mark.parametrize(
    ("request_fn", "code", "message"),
    [  # tests/modelserver covers a wrong input name, dtype, shape, rank and a batch over the limit
        (lambda: raw_request(), grpc.StatusCode.INVALID_ARGUMENT, "Missing input tensor alias(es): images"),
        (lambda: raw_request(images=tensor((2, 48, 48, 1), content=b"\0" * 100)), grpc.StatusCode.INVALID_ARGUMENT,
         "malformed tensor"),
        (lambda: raw_request(images=tensor((1, 48, 48, 1), types_pb2.DT_STRING)), grpc.StatusCode.INVALID_ARGUMENT,
         "to be float32 but string is provided"),
        # a huge batch declared with no data: refused before anything is allocated
        (lambda: raw_request(images=tensor((10**6, 48, 48, 1))), grpc.StatusCode.INVALID_ARGUMENT,
         "Task size 1000000 is larger than maximum input batch size 64"),
        (lambda: raw_request(images=tensor((10**9, 48, 48, 1))), grpc.StatusCode.INVALID_ARGUMENT,
         "larger than maximum input batch size"),
        (lambda: raw_request(images=tensor((-5, 48, 48, 1))), grpc.StatusCode.INVALID_ARGUMENT, "malformed tensor"),
    ],
    ids=["no-input", "content-size", "string-dtype", "huge-declared-batch", "enormous-declared-batch",
         "negative-batch"],
)  # fmt: skip
def test_the_model_server_refuses_bad_requests_clearly_and_keeps_serving(model_server, val_faces, request_fn, code,
                                                                          message):  # fmt: skip
    channel = model_server.channel()
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as error:
        predict.Predict(request_fn(), timeout=30)
    assert error.value.code() == code, error.value.details()
    assert message in error.value.details()
    assert error.value.details(), "an error without a message"
    served = probabilities(predict.Predict(predict_request(val_faces[0][:8]), timeout=30))
    assert served.shape == (8, 7) and np.allclose(served.sum(axis=1), 1, atol=1e-4)
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = "emotion_cnn"
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    assert [v.state for v in models.GetModelStatus(status, timeout=10).model_version_status] == [30]  # AVAILABLE
    channel.close()


def test_a_png_that_ends_before_its_pixels_is_refused_before_opencv_reads_past_its_end():
    """53 bytes: IHDR, IEND, then a chunk header stating 2 GB. OpenCV reads chunks up to the first IDAT,
    past IEND, and allocated the 2 GB before finding the data missing: a clean-clone run of
    fuzz/fuzz_frames.py peaked at 2.2 GB of resident memory on such an input."""
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    chunks = [struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
              for kind, body in ((b"IHDR", ihdr), (b"IEND", b""))]  # fmt: skip
    bomb = b"\x89PNG\r\n\x1a\n" + b"".join(chunks) + struct.pack(">I4s", 0x7FFF_FFF0, b"IDAT")
    assert len(bomb) == 53
    with pytest.raises(ValueError, match=r"PNG ends \(IEND\) before its image data \(IDAT\)"):
        decode_image(bomb)  # refused from its chunk headers: OpenCV never sees it
    with pytest.raises(ImageError, match="does not decode") as refused:
        check_image(bomb, "image/png", 1 << 20)  # the gateway's Pillow stops at IEND: no pixels, a 422
    assert refused.value.status == 422
    good = encoded(Image.new("RGB", (8, 8)), "PNG")
    assert decode_image(good + b"trailing bytes after IEND").shape == (8, 8, 3)  # tolerated, as before
