"""Redis keys that hold a user's data, named in one place so that deleting a user finds them all.

Everything emotune keeps about user ``u`` lives under ``emotune:user:<u>:<kind>...`` (the kinds are
listed in :data:`USER_KINDS`), plus the index of their API keys (``emotune:apikey:<digest>``), the
capture registry's entry for each of their sessions, and the stream entries whose header names them.

On a Redis Cluster a transaction or a script must keep to one slot. The capture service's coordination
keys (registry, instances, leases) share the hash tag ``{capture}`` for its scripts; a user's keys carry
no tag (they spread over the cluster), so no code writes two of them in one transaction or script: each
such write is single-key commands in an order that is safe when it stops half-way (see its docstring).
"""

from __future__ import annotations

import re

#: What may follow ``emotune:user:<id>:`` in a key. A user's key is recognised by its kind, so that
#: deleting user ``lastfm`` never touches ``emotune:user:lastfm:2:liked`` (user ``lastfm:2``).
USER_KINDS = ("account", "apikeys", "sessions", "session", "liked", "disliked", "skipped", "played", "genres",
              "artists", "adjust", "lift", "spotify")  # fmt: skip

USER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")

#: Hash of live capture sessions with a camera, video or stream source: session id -> JSON
#: ``{"user_id", "source"}``. Capture instances take each one with a lease (``capture_lease``).
CAPTURE_SESSIONS = "emotune:{capture}:sessions"

#: Sorted set of the live capture instances: owner name -> when it last polled (Redis time, ms). Each
#: instance counts the others in it to take only its fair share of the registry (no user data).
CAPTURE_INSTANCES = "emotune:{capture}:instances"


def user_key(user_id: str, kind: str, *rest: str) -> str:
    """``emotune:user:<id>:<kind>[:rest...]``; ``kind`` must be one of :data:`USER_KINDS`."""
    if kind not in USER_KINDS:
        raise ValueError(f"unknown kind of user key {kind!r}")
    return ":".join(("emotune:user", user_id, kind, *rest))


def session_key(user_id: str, session_id: str, *rest: str) -> str:
    """A session's record (``...:session:<sid>``) or one of its parts (``...:session:<sid>:mood``)."""
    return user_key(user_id, "session", session_id, *rest)


def user_key_kind(key: str, user_id: str) -> str | None:
    """The kind of ``key`` if it is one of ``user_id``'s keys (not merely a key that starts alike)."""
    prefix = f"emotune:user:{user_id}:"
    kind = key[len(prefix) :].split(":", 1)[0] if key.startswith(prefix) else None
    return kind if kind in USER_KINDS else None


def user_key_pattern(user_id: str) -> str:
    """A SCAN pattern that finds every key of ``user_id`` (and maybe others: check :func:`user_key_kind`)."""
    return "emotune:user:" + re.sub(r"([*?\[\]\\])", r"\\\1", user_id) + ":*"


def api_key_index(digest: str) -> str:
    """``emotune:apikey:<sha256 hex>`` -> the user id the key belongs to."""
    return f"emotune:apikey:{digest}"


def capture_lease(session_id: str) -> str:
    """Held by the capture instance that runs a session's source (SET NX with a TTL, renewed); in the slot of
    :data:`CAPTURE_INSTANCES`, so that one script reads every lease while it announces the instance."""
    return f"emotune:{{capture}}:lease:{session_id}"
