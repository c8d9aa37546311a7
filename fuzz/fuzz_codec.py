"""Fuzz the stream codec: ``emotune_common.codec.decode`` on arbitrary entries may raise only DecodeError.

    python fuzz/fuzz_codec.py CORPUS_DIR [-atheris_runs=N | -max_total_time=S]   (libFuzzer options)

An input is one stream entry: a mode byte, the ``type`` field, a newline, the ``pb`` field (seeds:
fuzz/seeds.py). The mode's bits leave out ``type`` (1 << 1) or ``pb`` (1 << 2), add an unknown field
(1 << 3), ask for a given message type (1 << 0, chosen by the mode's top bits) and bound the entry's
size below its own (1 << 4). A message that decodes must carry a header id, be of the type asked for,
and survive a round trip through ``encode``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["emotune_common"]):
    from emotune.v1 import messages_pb2
    from emotune_common.codec import DecodeError, EntryTooLarge, decode, encode, entry_size

TYPES = (messages_pb2.Frame, messages_pb2.FaceCrop, messages_pb2.EmotionEvent, messages_pb2.MoodChange,
         messages_pb2.RecommendationSet, messages_pb2.Feedback)  # fmt: skip


def entry(data: bytes) -> tuple[dict[bytes, bytes], int]:
    mode = data[0] if data else 0
    type_name, _, payload = data[1:].partition(b"\n")
    fields = {b"type": type_name, b"pb": payload}
    if mode & 2:
        del fields[b"type"]
    if mode & 4:
        del fields[b"pb"]
    if mode & 8:
        fields[b"extra"] = payload[:16]
    return fields, mode


def test_one_input(data: bytes) -> None:
    fields, mode = entry(data)
    expected = TYPES[(mode >> 5) % len(TYPES)] if mode & 1 else None
    max_bytes = max(0, entry_size(fields) - 1) if mode & 16 else None
    try:
        message = decode(fields, expected, max_bytes)
    except EntryTooLarge:
        assert max_bytes is not None, "refused for its size without a bound"
        return
    except DecodeError as e:
        assert str(e), "a DecodeError without a reason"
        return
    assert max_bytes is None, "an entry over the bound was parsed"
    assert message.header.id, "decoded without a header id"
    assert expected is None or isinstance(message, expected), f"{type(message).__name__} is not {expected}"
    assert decode(encode(message), type(message)) == message, "no round trip"


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
