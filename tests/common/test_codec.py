import os

import pytest

from emotune.v1 import messages_pb2
from emotune_common.codec import DecodeError, decode, encode
from emotune_common.ids import derived_header, make_header


def test_round_trip_keeps_every_field():
    crop = messages_pb2.FaceCrop(
        header=make_header("s", "u"),
        pixels=bytes(range(256)) * 9,
        width=48,
        height=48,
        box=messages_pb2.BoundingBox(x=1, y=2, width=3, height=4),
        frame_number=7,
    )
    assert decode(encode(crop), messages_pb2.FaceCrop) == crop
    assert decode(encode(crop)) == crop  # type taken from the entry


def test_derived_header_keeps_session_user_and_capture_time_with_a_new_id():
    parent = make_header("s", "u", captured_at_us=123)
    child = derived_header(parent)
    assert (child.session_id, child.user_id, child.captured_at_us) == ("s", "u", 123)
    assert child.id != parent.id


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (None, "empty"),
        ({}, "empty"),
        ({b"pb": b"x"}, "lacks field"),
        ({b"type": b"emotune.v1.Nope", b"pb": b""}, "unknown message type"),
        ({b"type": b"\xff\xfe", b"pb": b""}, "not UTF-8"),
        ({b"type": b"emotune.v1.FaceCrop", b"pb": b"\xff\xff\xff\xff"}, "does not parse"),
        ({b"type": b"emotune.v1.FaceCrop", b"pb": b""}, "without header.id"),
    ],
)
def test_bad_entries_get_a_reason(fields, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(fields)


def test_wrong_type_is_refused():
    event = messages_pb2.EmotionEvent(header=make_header())
    with pytest.raises(DecodeError, match="wrong message type"):
        decode(encode(event), messages_pb2.FaceCrop)


def test_random_bytes_never_pass_as_a_message():
    for seed in range(200):
        payload = os.urandom(64 + seed)
        try:
            decode({b"type": b"emotune.v1.FaceCrop", b"pb": payload})
        except DecodeError:
            continue
        raise AssertionError(f"random bytes decoded as a FaceCrop: {payload!r}")
