"""The services' side of the shards (emotune_common.shards): a producer that routes each message to its
session's shard, and a consumer group read with one consumer per shard.

Routing. A message goes to the shard of its header's session id; a message without a session (feedback
on a track played outside any session, say) goes to the shard of its user id instead, so that one
user's session-less messages keep their order too. Every service routes with :func:`shard_of_message`,
so a reply always lands on the shard of what it answers.

Reading. XREADGROUP over several keys is refused across cluster slots (CROSSSLOT), and a shard is a slot,
so a process reads a stream with one :class:`~emotune_common.consumer.StreamConsumer` per shard, each its
own asyncio task: an idle shard costs one blocked connection, a busy one never waits behind another.
Each consumer's handler is made for its shard and writes to that shard's outputs only, so its outputs
and its XACK share one MULTI/EXEC in one slot. On one plain Redis the same names hold every shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from google.protobuf.message import Message

from emotune_common.consumer import Handler, StreamConsumer
from emotune_common.producer import StreamProducer
from emotune_common.redis_client import Client
from emotune_common.settings import StreamSettings
from emotune_common.shards import shard_of, shard_stream, shard_streams


def routing_id(message: Message) -> str:
    """What a message is sharded by: its session id, else (no session) its user id."""
    header = message.header  # type: ignore[attr-defined]
    return header.session_id or header.user_id


def shard_of_message(message: Message, shards: int) -> int:
    """The shard a message belongs to (see :func:`routing_id`)."""
    return shard_of(routing_id(message), shards)


class ShardedProducer:
    """A :class:`StreamProducer` for each shard of ``stream`` (each bounded to ``maxlen`` on its own)."""

    def __init__(self, redis: Client, stream: str, shards: int, maxlen: int | None, **kwargs) -> None:
        self.stream = stream
        self.shards = [StreamProducer(redis, name, maxlen, **kwargs) for name in shard_streams(stream, shards)]

    def shard(self, shard: int) -> StreamProducer:
        """The producer of shard ``shard``: a handler's outputs, in its input's shard."""
        return self.shards[shard]

    def for_session(self, session_id: str) -> StreamProducer:
        """The producer of a session's shard: a capture source's crops, all of one session."""
        return self.shards[shard_of(session_id, len(self.shards))]

    def route(self, message: Message) -> StreamProducer:
        """The producer of ``message``'s shard."""
        return self.shards[shard_of_message(message, len(self.shards))]

    async def publish(self, message: Message) -> str:
        """Add one message to its shard; returns its entry id."""
        return await self.route(message).publish(message)

    async def publish_many(self, messages: Iterable[Message]) -> list[str]:
        """Add messages, each to its shard (in order within a shard); returns their entry ids in order."""
        messages = list(messages)
        by_shard: dict[int, list[int]] = {}
        for i, message in enumerate(messages):
            by_shard.setdefault(shard_of_message(message, len(self.shards)), []).append(i)
        ids = [""] * len(messages)
        for shard, indices in by_shard.items():
            written = await self.shards[shard].publish_many([messages[i] for i in indices])
            for i, entry_id in zip(indices, written, strict=True):
                ids[i] = entry_id
        return ids


def shard_consumers(
    redis: Client,
    stream: str,
    group: str,
    handler_for: Callable[[int], Handler],
    settings: StreamSettings,
    **kwargs,
) -> list[StreamConsumer]:
    """One consumer of ``group`` per shard of ``stream`` (``settings.shards`` of them), in shard order.

    ``handler_for(shard)`` makes the handler of each: it publishes to the outputs of that shard only
    (``ShardedProducer.shard(shard)``). ``kwargs`` go to every :class:`StreamConsumer` (its consumer name,
    message type...): a consumer name is per stream in Redis, so every shard's consumer has the same one.
    """
    return [
        StreamConsumer(redis, shard_stream(stream, shard), group, handler_for(shard), settings=settings, **kwargs)
        for shard in range(settings.shards)
    ]
