"""Users and their API keys, kept in Redis. Keys are random; only their SHA-256 digest is stored.

A key is 32 random bytes (``et_`` + URL-safe base64), so a plain SHA-256 is the right hash: there is
nothing to brute-force, and verifying costs one GET of ``emotune:apikey:<digest>``.
"""

from __future__ import annotations

import hashlib
import secrets

import redis.asyncio as aioredis

from emotune_common.ids import now_us
from emotune_common.keys import USER_ID, api_key_index, user_key

KEY_PREFIX = "et_"


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


async def create_user(redis: aioredis.Redis, user_id: str, name: str = "") -> None:
    check_user_id(user_id)
    created = await redis.hsetnx(user_key(user_id, "account"), "created_at_us", now_us())
    if not created:
        raise AccountError(f"user {user_id!r} exists")
    await redis.hset(user_key(user_id, "account"), "name", name or user_id)


async def user_exists(redis: aioredis.Redis, user_id: str) -> bool:
    return bool(await redis.exists(user_key(user_id, "account")))


async def list_users(redis: aioredis.Redis) -> list[str]:
    found = [k.decode() async for k in redis.scan_iter(match="emotune:user:*:account", count=1000)]
    return sorted(k.removeprefix("emotune:user:").removesuffix(":account") for k in found)


async def create_key(redis: aioredis.Redis, user_id: str) -> str:
    """A new key for an existing user; the key itself is shown once and never stored."""
    if not await user_exists(redis, user_id):
        raise AccountError(f"no user {user_id!r}")
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(api_key_index(digest(api_key)), user_id)
        pipe.sadd(user_key(user_id, "apikeys"), digest(api_key))
        await pipe.execute()
    return api_key


async def revoke_key(redis: aioredis.Redis, api_key: str) -> str:
    """Revoke a key; returns the user it belonged to."""
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
