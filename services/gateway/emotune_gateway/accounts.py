"""Users, their API keys and the sources they may open, kept in Redis. Keys are random; only their SHA-256
digest is stored.

A key is 32 random bytes (``et_`` + URL-safe base64), so a plain SHA-256 is the right hash: there is
nothing to brute-force, and verifying costs one GET of ``emotune:apikey:<digest>``.

Opening a source is a privilege: a camera source reads the face of whoever sits at the server's camera, and
a stream or file source makes the server connect or read where the user says. So every user may start
``upload`` sessions (their own browser's frames), and the other kinds only when an operator grants them
(``users create NAME --sources ...``, ``users sources NAME KIND...``). The grant is the field ``sources`` of
the account's hash, kinds separated by spaces; an account without one has ``upload`` only.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable

import redis.asyncio as aioredis

from emotune_common.ids import now_us
from emotune_common.keys import USER_ID, api_key_index, user_key
from emotune_common.sources import SOURCE_KINDS

KEY_PREFIX = "et_"
UPLOAD = "upload"
#: What a user may be granted: uploads, and the kinds of source the capture service opens.
GRANTABLE = frozenset({UPLOAD, *SOURCE_KINDS})
#: What every user has.
DEFAULT_SOURCES = frozenset({UPLOAD})


class AccountError(ValueError):
    """A user or key that cannot be created or found; the text says why."""


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def check_user_id(user_id: str) -> str:
    if not USER_ID.match(user_id):
        raise AccountError(
            f"bad user id {user_id!r}: 1-64 letters, digits or _ . @ : - , starting with a letter or digit"
        )
    return user_id


def check_sources(kinds: Iterable[str]) -> frozenset[str]:
    """The grant of ``kinds`` (upload always in); AccountError names a kind that is not one."""
    grant = frozenset(kind.strip().lower() for kind in kinds if kind.strip())
    unknown = grant - GRANTABLE
    if unknown:
        raise AccountError(f"unknown source kind {', '.join(sorted(unknown))}: use {', '.join(sorted(GRANTABLE))}")
    return grant | DEFAULT_SOURCES


async def create_user(redis: aioredis.Redis, user_id: str, name: str = "", sources: Iterable[str] = ()) -> None:
    """A new user, who may open ``sources`` besides upload."""
    check_user_id(user_id)
    grant = check_sources(sources)
    created = await redis.hsetnx(user_key(user_id, "account"), "created_at_us", now_us())
    if not created:
        raise AccountError(f"user {user_id!r} exists")
    await redis.hset(user_key(user_id, "account"), mapping={"name": name or user_id, "sources": _field(grant)})


async def set_sources(redis: aioredis.Redis, user_id: str, kinds: Iterable[str]) -> frozenset[str]:
    """Grant exactly ``kinds`` (and upload) to an existing user, revoking the others; returns the grant.

    New sessions follow it; the sessions of a revoked kind that run already are stopped by
    :func:`emotune_gateway.sessions.stop_ungranted` (the admin command does both).
    """
    grant = check_sources(kinds)
    if not await user_exists(redis, user_id):
        raise AccountError(f"no user {user_id!r}")
    await redis.hset(user_key(user_id, "account"), "sources", _field(grant))
    return grant


async def sources_of(redis: aioredis.Redis, user_id: str) -> frozenset[str]:
    """The kinds of source ``user_id`` may open (upload for an account that predates grants)."""
    stored = await redis.hget(user_key(user_id, "account"), "sources")
    return (frozenset(stored.decode().split()) & GRANTABLE) | DEFAULT_SOURCES if stored else DEFAULT_SOURCES


def _field(grant: frozenset[str]) -> str:
    return " ".join(sorted(grant))


async def user_exists(redis: aioredis.Redis, user_id: str) -> bool:
    return bool(await redis.exists(user_key(user_id, "account")))


async def list_users(redis: aioredis.Redis) -> list[str]:
    found = [k.decode() async for k in redis.scan_iter(match="emotune:user:*:account", count=1000)]
    return sorted(k.removeprefix("emotune:user:").removesuffix(":account") for k in found)


async def create_key(redis: aioredis.Redis, user_id: str) -> str:
    """A new key for an existing user; the key itself is shown once and never stored.

    Two single-key writes, not one transaction (the index and the user's set are in different slots of a
    cluster), in the order that is safe when only the first is done: the digest joins the user's set before
    the index makes the key work. Stopped in between, the user's set names a key that opens nothing; the
    other way round, a working key would be missing from the set, and deleting the account would miss it.
    """
    if not await user_exists(redis, user_id):
        raise AccountError(f"no user {user_id!r}")
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    await redis.sadd(user_key(user_id, "apikeys"), digest(api_key))
    await redis.set(api_key_index(digest(api_key)), user_id)
    return api_key


async def revoke_key(redis: aioredis.Redis, api_key: str) -> str:
    """Revoke a key; returns the user it belonged to. The index goes first: from then on the key opens nothing."""
    d = digest(api_key)
    user_id = await redis.getdel(api_key_index(d))
    if user_id is None:
        raise AccountError("no such key")
    await redis.srem(user_key(user_id.decode(), "apikeys"), d)
    return user_id.decode()


async def user_of_key(redis: aioredis.Redis, api_key: str) -> str | None:
    """The user a key belongs to, or None for an unknown key."""
    if not api_key.startswith(KEY_PREFIX) or len(api_key) > 100:
        return None
    user_id = await redis.get(api_key_index(digest(api_key)))
    return user_id.decode() if user_id is not None else None
