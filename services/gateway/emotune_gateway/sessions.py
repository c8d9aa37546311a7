"""Capture sessions: a user's stretch of frames from one source, kept under their keys in Redis.

A session's source is ``upload`` (the browser or a client posts frames) or one the capture service
opens itself (``webcam:N``, ``video:FILE``, ``images:DIR``, ``rtsp://...``, ``http(s)://...``): those
are put in the capture registry, where one capture instance takes each with a lease (see
emotune_capture.sessions). Stopping a session removes it from the registry.
"""

from __future__ import annotations

import json
from pathlib import Path

import redis.asyncio as aioredis

from emotune_common.ids import new_id, now_us
from emotune_common.keys import CAPTURE_SESSIONS, session_key, user_key
from emotune_common.sources import SourceError, parse_source

UPLOAD = "upload"


class SessionError(ValueError):
    """A session that cannot be started as asked; the text says why."""


def check_source(source: str, allowed_kinds: set[str], media_dir: Path) -> str:
    """The source as the capture service will open it; SessionError when not allowed or malformed."""
    source = source.strip()
    if source == UPLOAD:
        if UPLOAD not in allowed_kinds:
            raise SessionError("upload sessions are turned off on this gateway")
        return source
    try:
        spec = parse_source(source)
    except SourceError as e:
        raise SessionError(str(e)) from None
    if spec.kind not in allowed_kinds:
        raise SessionError(f"{spec.kind} sources are not allowed here (allowed: {', '.join(sorted(allowed_kinds))})")
    if spec.kind in ("video", "images"):
        root = media_dir.resolve()
        target = (root / spec.target).resolve()
        if not target.is_relative_to(root):
            raise SessionError(f"{spec.kind} sources must be inside the media folder")
        if not target.exists():
            raise SessionError(f"no such {'file' if spec.kind == 'video' else 'folder'} in the media folder: "
                               f"{spec.target}")  # fmt: skip
        source = source.replace(spec.target, str(target), 1)
    return source


async def create(redis: aioredis.Redis, user_id: str, source: str) -> dict[str, str]:
    session_id = new_id()
    record = {"id": session_id, "user_id": user_id, "source": source, "state": "active",
              "created_at_us": str(now_us()), "frames": "0"}  # fmt: skip
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(session_key(user_id, session_id), mapping=record)
        pipe.zadd(user_key(user_id, "sessions"), {session_id: int(record["created_at_us"])})
        if source != UPLOAD:
            pipe.hset(CAPTURE_SESSIONS, session_id, json.dumps({"user_id": user_id, "source": source}))
        await pipe.execute()
    return record


async def get(redis: aioredis.Redis, user_id: str, session_id: str) -> dict[str, str] | None:
    raw = await redis.hgetall(session_key(user_id, session_id))
    return {k.decode(): v.decode() for k, v in raw.items()} if raw else None


async def list_for(redis: aioredis.Redis, user_id: str, limit: int = 100) -> list[dict[str, str]]:
    ids = [s.decode() for s in await redis.zrevrange(user_key(user_id, "sessions"), 0, limit - 1)]
    found = [await get(redis, user_id, s) for s in ids]
    return [s for s in found if s]


async def stop(redis: aioredis.Redis, user_id: str, session_id: str) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(session_key(user_id, session_id), mapping={"state": "stopped", "stopped_at_us": str(now_us())})
        pipe.hdel(CAPTURE_SESSIONS, session_id)
        await pipe.execute()


async def count_frame(redis: aioredis.Redis, user_id: str, session_id: str) -> int:
    """The next frame number of an upload session."""
    return int(await redis.hincrby(session_key(user_id, session_id), "frames", 1))
