"""Logical shards of the streams, for Redis Cluster: which shard a session belongs to, and the shard's keys.

A fixed number of shards (``EMOTUNE_STREAM_SHARDS``), each a hash tag: shard 3 of ``emotune:faces`` is
``emotune:{s3}:faces``. Redis Cluster hashes only what is inside the first ``{...}`` of a key, so every
key of a shard lands in the slot of ``s3`` whatever follows it. The keys the stream library derives from
a stream name keep the stream name whole after their own prefix, and so keep its tag first:

- dead letters ``emotune:dlq:emotune:{s3}:faces`` (:func:`emotune_common.streams.dead_letter_stream`),
- counters ``emotune:stats:emotune:{s3}:faces`` (:func:`emotune_common.streams.stats_key`),
- handled message ids ``emotune:seen:<group>:emotune:{s3}:faces:<window>`` (``StreamConsumer``; a group
  name holds no brace, so it cannot bring a tag of its own before the stream's).

A consumer's MULTI/EXEC (its outputs to ``emotune:{s3}:emotions``, its dead letters, its handled ids and
the XACK on ``emotune:{s3}:faces``) therefore stays in one slot, as a cluster transaction must. The
number of shards is fixed, not the number of nodes: a cluster grows by moving slots, so no key is ever
renamed. On one plain Redis the same names hold every shard.
"""

from __future__ import annotations

import hashlib

PREFIX = "emotune:"


def shard_of(session_id: str, shards: int) -> int:
    """The shard of a session: the same in every process, service, host and Python version.

    BLAKE2b of the id's UTF-8 bytes (8 bytes of digest, as an unsigned integer) modulo ``shards``: not
    Python's ``hash()``, which is salted per process. Every frame, crop, event and recommendation of a
    session goes to this one shard, so its order within the session is the order of one stream.
    """
    if shards < 1:
        raise ValueError(f"the number of shards must be at least 1, not {shards}")
    digest = hashlib.blake2b(session_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


def shard_key(name: str, shard: int) -> str:
    """``emotune:{s<shard>}:<name>``: key ``name`` (``faces``, say) of shard ``shard``."""
    if shard < 0:
        raise ValueError(f"a shard is a number from 0, not {shard}")
    if "{" in name or "}" in name:
        raise ValueError(f"{name!r} has a brace: a second hash tag in a shard's key would be ignored or misread")
    return f"{PREFIX}{{s{shard}}}:{name}"


def shard_stream(stream: str, shard: int) -> str:
    """Shard ``shard`` of a stream named as in :mod:`emotune_common.streams`: ``emotune:faces`` ->
    ``emotune:{s3}:faces``."""
    if not stream.startswith(PREFIX):
        raise ValueError(f"{stream!r} is not an emotune stream (emotune:<name>)")
    return shard_key(stream.removeprefix(PREFIX), shard)


def shard_streams(stream: str, shards: int) -> list[str]:
    """Every shard of ``stream``, in shard order: what a consumer group reads (one consumer per shard)."""
    if shards < 1:
        raise ValueError(f"the number of shards must be at least 1, not {shards}")
    return [shard_stream(stream, shard) for shard in range(shards)]


def session_stream(stream: str, session_id: str, shards: int) -> str:
    """The shard of ``stream`` that a session's entries go to."""
    return shard_stream(stream, shard_of(session_id, shards))
