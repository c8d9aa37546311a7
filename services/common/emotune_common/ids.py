"""Message ids, timestamps and headers."""

from __future__ import annotations

import time
import uuid

from emotune.v1 import messages_pb2


def new_id() -> str:
    """A unique message id: UUID4 hex."""
    return uuid.uuid4().hex


def now_us() -> int:
    """Wall-clock time in microseconds since the epoch (comparable across processes on one host)."""
    return time.time_ns() // 1000


def make_header(
    session_id: str = "", user_id: str = "", captured_at_us: int | None = None, message_id: str | None = None
) -> messages_pb2.Header:
    """A header with a fresh id; ``captured_at_us`` defaults to now (for messages that start a chain)."""
    now = now_us()
    return messages_pb2.Header(
        id=message_id or new_id(),
        session_id=session_id,
        user_id=user_id,
        captured_at_us=captured_at_us if captured_at_us is not None else now,
        created_at_us=now,
    )


def derived_header(parent: messages_pb2.Header, message_id: str | None = None) -> messages_pb2.Header:
    """A header for a message made from ``parent``: same session, user and capture time, new id."""
    return make_header(parent.session_id, parent.user_id, parent.captured_at_us, message_id)
