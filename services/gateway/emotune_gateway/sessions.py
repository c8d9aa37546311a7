"""Capture sessions: a user's stretch of frames from one source, kept under their keys in Redis.

A session's source is ``upload`` (the browser or a client posts frames) or one the capture service
opens itself (``webcam:N``, ``video:FILE``, ``images:DIR``, ``rtsp://...``, ``http(s)://...``): those
are put in the capture registry, where one capture instance takes each with a lease (see
emotune_capture.sessions). Stopping a session removes it from the registry.

Which kinds a user may open is their grant (emotune_gateway.accounts); where a stream may lead is
``EMOTUNE_STREAM_ALLOW`` (emotune_common.egress), checked here when the session starts and by capture again
when it connects.
"""

from __future__ import annotations

import json
from pathlib import Path

from emotune_common.egress import StreamAllow, StreamRefused, endpoint
from emotune_common.ids import new_id, now_us
from emotune_common.keys import CAPTURE_SESSIONS, session_key, user_key
from emotune_common.redis_client import Client
from emotune_common.sources import SourceError, SourceSpec, parse_source
from emotune_gateway.accounts import UPLOAD
from emotune_gateway.settings import GatewaySettings


class SessionError(ValueError):
    """A session that cannot be started as asked; the text says why."""


class SourceForbidden(SessionError):
    """A source this user may not open, or a stream that leads where no stream may go; the text says why."""


def source_kind(source: str) -> str:
    """``upload``, or the kind of source capture opens (SourceError when it is none)."""
    return UPLOAD if source.strip() == UPLOAD else parse_source(source).kind


def check_source(source: str, user_id: str, granted: frozenset[str], settings: GatewaySettings) -> str:
    """The source as the capture service will open it.

    :class:`SessionError` for a source that is malformed or missing; :class:`SourceForbidden` for one whose kind
    is off on this gateway (``EMOTUNE_SESSION_SOURCES``) or not granted to the user, or a stream that
    ``EMOTUNE_STREAM_ALLOW`` refuses (its address, or a redirect's). Blocking: it resolves names and asks an
    HTTP stream where it redirects, so run it in a thread.
    """
    source = source.strip()
    try:
        kind = source_kind(source)
    except SourceError as e:
        raise SessionError(str(e)) from None
    enabled = set(settings.session_sources.split())
    if kind not in enabled:
        raise SourceForbidden(f"{kind} sources are turned off on this gateway "
                              f"(EMOTUNE_SESSION_SOURCES: {' '.join(sorted(enabled)) or 'none'})")  # fmt: skip
    if kind not in granted:
        raise SourceForbidden(f"{kind} sources are not granted to {user_id} (granted: {' '.join(sorted(granted))}): "
                              "an operator grants them")  # fmt: skip
    if kind == UPLOAD:
        return source
    spec = parse_source(source)
    if kind in ("video", "images"):
        return _in_media_dir(source, spec, settings.media_dir)
    if kind == "stream":
        _check_stream(spec.target, settings.stream_policy())
    return source


def _in_media_dir(source: str, spec: SourceSpec, media_dir: Path) -> str:
    """The source with its file or folder resolved inside the media folder (SessionError when outside or missing)."""
    root = media_dir.resolve()
    target = (root / spec.target).resolve()
    if not target.is_relative_to(root):
        raise SessionError(f"{spec.kind} sources must be inside the media folder")
    if not target.exists():
        raise SessionError(f"no such {'file' if spec.kind == 'video' else 'folder'} in the media folder: {spec.target}")
    return source.replace(spec.target, str(target), 1)


def _check_stream(url: str, allow: StreamAllow) -> None:
    """Every address of the stream and, for HTTP(S), of every redirect it answers with, allowed."""
    try:
        allow.check(url)
        if endpoint(url).scheme in ("http", "https"):
            allow.follow_redirects(url)
    except StreamRefused as e:
        raise SourceForbidden(str(e)) from None
    except SourceError as e:
        raise SessionError(str(e)) from None


async def create(redis: Client, user_id: str, source: str) -> dict[str, str]:
    """A new session: its record, its place in the user's list, and (a source capture opens) its registry entry.

    Single-key writes, not one transaction: on a cluster the user's keys and the registry are in different
    slots. In this order, a start stopped half-way never leaves a registry entry that the user's deletion
    would miss (it finds them through the list) or that capture would run without a record to report to;
    a record missing from the list is still found by the deletion's SCAN of the user's keys.
    """
    session_id = new_id()
    record = {"id": session_id, "user_id": user_id, "source": source, "state": "active",
              "created_at_us": str(now_us()), "frames": "0"}  # fmt: skip
    await redis.hset(session_key(user_id, session_id), mapping=record)
    await redis.zadd(user_key(user_id, "sessions"), {session_id: int(record["created_at_us"])})
    if source != UPLOAD:
        await redis.hset(CAPTURE_SESSIONS, session_id, json.dumps({"user_id": user_id, "source": source}))
    return record


async def get(redis: Client, user_id: str, session_id: str) -> dict[str, str] | None:
    raw = await redis.hgetall(session_key(user_id, session_id))
    return {k.decode(): v.decode() for k, v in raw.items()} if raw else None


async def list_for(redis: Client, user_id: str, limit: int = 100) -> list[dict[str, str]]:
    ids = [s.decode() for s in await redis.zrevrange(user_key(user_id, "sessions"), 0, limit - 1)]
    found = [await get(redis, user_id, s) for s in ids]
    return [s for s in found if s]


async def stop(redis: Client, user_id: str, session_id: str) -> None:
    """Take the session out of the capture registry, then mark its record stopped (two slots of a cluster:
    two writes). The registry goes first, so that a stop cut short never leaves a camera running behind a
    record that says stopped; stopping again finishes it."""
    await redis.hdel(CAPTURE_SESSIONS, session_id)
    await redis.hset(session_key(user_id, session_id), mapping={"state": "stopped", "stopped_at_us": str(now_us())})


async def stop_ungranted(redis: Client, user_id: str, granted: frozenset[str]) -> list[str]:
    """Stop the user's running capture sessions of a kind no longer granted; returns their ids."""
    stopped = []
    for session_id, raw in (await redis.hgetall(CAPTURE_SESSIONS)).items():
        entry = json.loads(raw)
        if entry.get("user_id") != user_id:
            continue
        try:
            kind = source_kind(entry.get("source", ""))
        except SourceError:
            kind = ""
        if kind not in granted:
            await stop(redis, user_id, session_id.decode())
            stopped.append(session_id.decode())
    return stopped


async def count_frame(redis: Client, user_id: str, session_id: str) -> int:
    """The next frame number of an upload session."""
    return int(await redis.hincrby(session_key(user_id, session_id), "frames", 1))
