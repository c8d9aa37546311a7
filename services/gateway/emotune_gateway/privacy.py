"""Deleting everything emotune holds about a user.

That is: every key under ``emotune:user:<id>:`` (sessions, moods, feedback state, Spotify tokens,
and with ``account=True`` the account and its keys), the capture registry's entries for their
sessions, and every stream entry whose header names them, dead letters included, in every shard of
every stream. A model trained on their feedback keeps what it learnt until the next retrain (see the README).

On a Redis Cluster the user's keys lie on every master: redis-py's cluster SCAN asks every primary, and
its DEL of many keys is split by slot. A user's stream entries are in every shard their sessions hashed
to (and their session-less feedback's), so every shard is read: a user's sessions may be gone from
their list already, and the cost is one pass over the streams, as on one Redis.
"""

from __future__ import annotations

from dataclasses import dataclass

from emotune_common.codec import DecodeError, decode
from emotune_common.keys import CAPTURE_SESSIONS, api_key_index, user_key, user_key_kind, user_key_pattern
from emotune_common.redis_client import Client
from emotune_common.shards import shard_streams
from emotune_common.streams import EMOTIONS, FACES, FEEDBACK, FRAMES, RECOMMENDATIONS, dead_letter_stream

STREAMS = (FACES, EMOTIONS, RECOMMENDATIONS, FEEDBACK)  #: in the main Redis; FRAMES in the frames Redis
KEPT_WITH_ACCOUNT = ("account", "apikeys")


@dataclass
class Deleted:
    keys: int = 0
    stream_entries: int = 0


async def _delete_stream_entries(redis: Client, stream: str, user_id: str, page: int = 1000) -> int:
    """XDEL every entry of ``stream`` whose message belongs to ``user_id``; entries that do not decode
    (dead letters of poison) are deleted when the user id appears in their raw fields."""
    deleted, start, needle = 0, "-", user_id.encode()
    while True:
        entries = await redis.xrange(stream, min=start, max="+", count=page)
        if not entries:
            return deleted
        mine = []
        for entry_id, fields in entries:
            try:
                owner = decode(fields).header.user_id.encode()
                if owner == needle:
                    mine.append(entry_id)
            except DecodeError:
                if any(needle in v for v in fields.values()):
                    mine.append(entry_id)
        if mine:
            deleted += await redis.xdel(stream, *mine)
        if len(entries) < page:
            return deleted
        start = "(" + entries[-1][0].decode()


async def delete_user_data(
    redis: Client, user_id: str, shards: int, account: bool = False, frames_redis: Client | None = None
) -> Deleted:
    """Delete what emotune holds about ``user_id``; ``account=True`` also removes the account and keys.

    ``shards``: the streams' (``EMOTUNE_STREAM_SHARDS``). ``frames_redis``: the Redis of emotune:frames, when
    it is not ``redis``.
    """
    result = Deleted()
    sessions = [s.decode() for s in await redis.zrange(user_key(user_id, "sessions"), 0, -1)]
    if sessions:
        await redis.hdel(CAPTURE_SESSIONS, *sessions)
    if account:
        digests = [d.decode() for d in await redis.smembers(user_key(user_id, "apikeys"))]
        if digests:
            result.keys += await redis.delete(*(api_key_index(d) for d in digests))
    keys = []
    async for key in redis.scan_iter(match=user_key_pattern(user_id), count=1000):
        kind = user_key_kind(key.decode(), user_id)
        if kind is not None and (account or kind not in KEPT_WITH_ACCOUNT):
            keys.append(key)
    for i in range(0, len(keys), 500):
        result.keys += await redis.delete(*keys[i : i + 500])
    for client, stream in [(frames_redis or redis, FRAMES), *((redis, s) for s in STREAMS)]:
        for shard in shard_streams(stream, shards):
            for name in (shard, dead_letter_stream(shard)):
                result.stream_entries += await _delete_stream_entries(client, name, user_id)
    return result
