"""Protobuf messages in stream entries: field ``pb`` holds the bytes, field ``type`` the full name."""

from __future__ import annotations

from typing import TypeVar

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import DecodeError as ProtobufDecodeError
from google.protobuf.message import Message

import emotune.v1.messages_pb2  # noqa: F401  (registers the message types)

M = TypeVar("M", bound=Message)

TYPE_FIELD = b"type"
PB_FIELD = b"pb"


class DecodeError(ValueError):
    """A stream entry that does not hold a valid emotune message; the text says why."""


class EntryTooLarge(DecodeError):
    """A stream entry over the size bound, refused before it is parsed: it will never get smaller."""


def entry_size(fields: dict[bytes, bytes]) -> int:
    """Bytes of an entry's field names and values."""
    return sum(len(k) + len(v) for k, v in fields.items())


def encode(message: Message) -> dict[bytes, bytes]:
    """The fields of a stream entry that carries ``message``."""
    return {TYPE_FIELD: message.DESCRIPTOR.full_name.encode(), PB_FIELD: message.SerializeToString()}


def message_class(full_name: str) -> type[Message]:
    """The generated class of a message by full name, e.g. ``emotune.v1.FaceCrop``."""
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        raise DecodeError(f"unknown message type {full_name!r}") from None
    return message_factory.GetMessageClass(descriptor)


def decode(fields: dict[bytes, bytes] | None, expected: type[M] | None = None, max_bytes: int | None = None) -> M:
    """Parse a stream entry. Raises :class:`DecodeError` for anything but a well-formed message.

    ``expected`` restricts the accepted type. Every emotune message has a header with an id; one
    without is refused, which also catches most random bytes that protobuf would parse leniently.
    An entry of more than ``max_bytes`` raises :class:`EntryTooLarge` before anything is parsed.
    """
    if not fields:
        raise DecodeError("empty entry (no fields, or deleted)")
    if max_bytes is not None and (size := entry_size(fields)) > max_bytes:
        raise EntryTooLarge(
            f"entry of {size} bytes is over the limit of {max_bytes} bytes (EMOTUNE_STREAM_MAX_ENTRY_BYTES)"
        )
    type_name, payload = fields.get(TYPE_FIELD), fields.get(PB_FIELD)
    if type_name is None or payload is None:
        raise DecodeError(
            f"entry lacks field 'type' or 'pb' (has {sorted(k.decode(errors='replace') for k in fields)})"
        )
    try:
        name = type_name.decode()
    except UnicodeDecodeError:
        raise DecodeError("field 'type' is not UTF-8") from None
    if expected is not None and name != expected.DESCRIPTOR.full_name:
        raise DecodeError(f"wrong message type {name!r}, expected {expected.DESCRIPTOR.full_name!r}")
    cls = expected or message_class(name)
    message = cls()
    try:
        message.ParseFromString(payload)
    except ProtobufDecodeError as e:
        raise DecodeError(f"field 'pb' does not parse as {name}: {e}") from None
    header = getattr(message, "header", None)
    if header is None or not header.id:
        raise DecodeError(f"{name} without header.id")
    return message
