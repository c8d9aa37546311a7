"""Seed corpora of the fuzz targets, from real messages and real (small) images.

    python fuzz/seeds.py fuzz/corpus      # writes fuzz/corpus/codec/* and fuzz/corpus/frames/*

The codec seeds are the stream entries emotune writes (a Frame of a real photo, the FaceCrop that
capture makes of it, the events downstream), in the input format of fuzz_codec.py. The frame seeds
are one real photograph (EMOTUNE_DATA_DIR/images/obama.jpg) made small, in every variant the upload
path accepts: baseline and progressive JPEG, grey, PNG with alpha, 16-bit PNG, EXIF-rotated.
"""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from emotune.v1 import messages_pb2
from emotune_capture.crops import face_crops
from emotune_capture.detector import FaceDetector
from emotune_capture.uploads import decode_image
from emotune_common.codec import encode
from emotune_common.ids import derived_header, make_header
from emotune_common.settings import default_data_dir

PHOTO = default_data_dir() / "images" / "obama.jpg"


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def images() -> dict[str, bytes]:
    """Small variants of a real photo (48x60: at most a few KB each)."""
    if not PHOTO.exists():
        raise SystemExit(f"{PHOTO} is missing: `make data` fetches the data sets")
    photo = Image.open(PHOTO).convert("RGB")
    small = photo.resize((48, 60))
    exif = Image.Exif()
    exif[0x0112] = 6  # turned a quarter: display rotated 90 degrees clockwise
    deep = Image.fromarray(np.asarray(small.convert("L"), dtype=np.uint16) * 257)  # 16-bit grey
    return {
        "photo.jpg": _encoded(small, "JPEG", quality=80),
        "progressive.jpg": _encoded(small, "JPEG", quality=60, progressive=True),
        "grey.jpg": _encoded(small.convert("L"), "JPEG"),
        "exif_rotated.jpg": _encoded(small.rotate(90, expand=True), "JPEG", exif=exif.tobytes()),
        "alpha.png": _encoded(small.convert("RGBA"), "PNG"),
        "grey_alpha.png": _encoded(small.convert("LA"), "PNG"),
        "deep.png": _encoded(deep, "PNG"),
        "palette.png": _encoded(small.convert("P"), "PNG"),
    }


def codec_input(fields: dict[bytes, bytes], mode: int = 0) -> bytes:
    """fuzz_codec.py's input: a mode byte, the ``type`` field, a newline, the ``pb`` field."""
    return bytes([mode]) + fields[b"type"] + b"\n" + fields[b"pb"]


def messages() -> list[messages_pb2.Frame]:
    """One of each stream message, as the services make them, from the real photo."""
    photo = PHOTO.read_bytes()
    frame = messages_pb2.Frame(header=make_header("s1", "alice"), image=images()["photo.jpg"],
                               content_type="image/jpeg", frame_number=1)  # fmt: skip
    crops = face_crops(FaceDetector(), decode_image(photo), session_id="s1", user_id="alice",
                       captured_at_us=frame.header.captured_at_us, frame_number=1, source="upload",
                       frame_id=frame.header.id)  # fmt: skip
    crop = crops[0]
    probabilities = [0.02, 0.01, 0.03, 0.81, 0.04, 0.05, 0.04]
    event = messages_pb2.EmotionEvent(header=derived_header(crop.header), crop_id=crop.header.id,
                                      probabilities=probabilities, label=4, confidence=0.81,
                                      model_name="emotion_cnn", model_version=1, frame_number=1)  # fmt: skip
    mood = messages_pb2.MoodChange(header=derived_header(event.header), mood=4, previous_mood=7,
                                   smoothed=probabilities, confidence=0.81, valence=0.8, arousal=0.5)  # fmt: skip
    track = messages_pb2.Track(spotify_id="4uLU6hMCjMI75M1A2tKUQC", name="Never Gonna Give You Up",
                               spotify_url="https://open.spotify.com/track/4uLU6hMCjMI75M1A2tKUQC")  # fmt: skip
    item = messages_pb2.Recommendation(artist_id="89", artist_name="Rick Astley", score=0.9, taste_score=0.8,
                                       mood_fit=0.95, reason="taste 0.80, fit to happy 0.95", genres=["pop"],
                                       tracks=[track], spotify_url=track.spotify_url)  # fmt: skip
    recommendations = messages_pb2.RecommendationSet(header=derived_header(mood.header), mood=4, policy=1,
                                                     items=[item], model_version="1")  # fmt: skip
    feedback = messages_pb2.Feedback(header=make_header("s1", "alice"), action=messages_pb2.LIKE, artist_id="89",
                                     track_id=track.spotify_id, mood=4)  # fmt: skip
    return [frame, crop, event, mood, recommendations, feedback]


def write(out: Path) -> None:
    for name, items in (("codec", _codec_seeds()), ("frames", images())):
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        for label, data in items.items():
            (folder / f"{label}-{hashlib.sha1(data).hexdigest()[:8]}").write_bytes(data)


def _codec_seeds() -> dict[str, bytes]:
    seeds = {}
    for message in messages():
        name = message.DESCRIPTOR.name
        seeds[name] = codec_input(encode(message))
        seeds[f"{name}-expected"] = codec_input(encode(message), mode=1)
    return seeds


if __name__ == "__main__":
    write(Path(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus"))
