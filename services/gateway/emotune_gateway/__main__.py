"""The gateway, and the admin commands for users and keys.

python -m emotune_gateway serve                 # the API and the web page on EMOTUNE_GATEWAY_PORT (8000)
python -m emotune_gateway users create alice    # a user, and their first API key (shown once)
python -m emotune_gateway users create bob --sources "webcam video stream"   # who may open those too
python -m emotune_gateway users sources bob video   # bob's sources from now: upload and video (others stopped)
python -m emotune_gateway keys create alice     # another key
python -m emotune_gateway keys revoke KEY
python -m emotune_gateway users delete alice    # everything about alice, account and keys included
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer
import uvicorn

from emotune_common.logs import configure_logging
from emotune_common.redis_client import connect, connect_or_reuse
from emotune_gateway import accounts, sessions
from emotune_gateway.privacy import Deleted, delete_user_data
from emotune_gateway.settings import GatewaySettings

app = typer.Typer(add_completion=False, help="emotune gateway: REST, subscriptions, web page, Spotify")
users = typer.Typer(help="Users (accounts)")
keys = typer.Typer(help="API keys")
app.add_typer(users, name="users")
app.add_typer(keys, name="keys")
T = TypeVar("T")


def _with_redis(action: Callable[..., Awaitable[T]], *args) -> T:
    async def go() -> T:
        redis = connect(GatewaySettings().redis_url)
        try:
            return await action(redis, *args)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(go())
    except accounts.AccountError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve() -> None:
    """Run the gateway with the settings of the environment."""
    settings = GatewaySettings()
    configure_logging(settings.log_level, settings.log_json, service="gateway")
    from emotune_gateway.app import create_app

    # Events are small: compressing each one for every subscriber cost 2-3x the CPU of sending it
    # (bench/results/fanout.md), so WebSocket compression is off.
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        ws_ping_interval=20,
        ws_per_message_deflate=False,
    )


def _kinds(values: list[str]) -> list[str]:
    """Kinds given as several words, or in one separated by spaces or commas."""
    return [kind for value in values for kind in value.replace(",", " ").split()]


SOURCES_HELP = f"Kinds of source besides upload: {', '.join(sorted(accounts.GRANTABLE - accounts.DEFAULT_SOURCES))}"


@users.command("create")
def users_create(
    user_id: str,
    name: str = typer.Option("", help="Display name"),
    exist_ok: bool = typer.Option(False, help="Only a new key when the user exists"),
    sources: list[str] = typer.Option([], "--sources", help=SOURCES_HELP + " (a new user's grant)"),
) -> None:
    """Create a user and print their first API key (it is not stored: keep it).

    Every user may upload frames from their browser; a camera, video, image folder or stream source only
    when granted here or with `users sources`."""

    async def go(redis) -> str:
        try:
            await accounts.create_user(redis, user_id, name, _kinds(sources))
        except accounts.AccountError:
            if not (exist_ok and await accounts.user_exists(redis, user_id)):
                raise
        return await accounts.create_key(redis, user_id)

    typer.echo(_with_redis(go))


@users.command("sources")
def users_sources(
    user_id: str, kinds: list[str] = typer.Argument(None, help=SOURCES_HELP + "; none: show the grant")
) -> None:
    """Show a user's sources, or grant exactly KINDS and upload (`upload` alone: no others).

    The user's running sessions of a kind taken away are stopped."""

    async def go(redis) -> tuple[frozenset[str], list[str]]:
        if not kinds:
            if not await accounts.user_exists(redis, user_id):
                raise accounts.AccountError(f"no user {user_id!r}")
            return await accounts.sources_of(redis, user_id), []
        grant = await accounts.set_sources(redis, user_id, _kinds(kinds))
        return grant, await sessions.stop_ungranted(redis, user_id, grant)

    grant, stopped = _with_redis(go)
    typer.echo(f"{user_id}: {' '.join(sorted(grant))}")
    for session_id in stopped:
        typer.echo(f"stopped session {session_id}: its source is no longer granted")


@users.command("list")
def users_list() -> None:
    """The user ids, one a line."""
    for user_id in _with_redis(accounts.list_users):
        typer.echo(user_id)


@users.command("delete")
def users_delete(user_id: str) -> None:
    """Delete everything about a user, their account and keys included."""

    async def go(redis) -> Deleted:
        settings = GatewaySettings()
        frames = connect_or_reuse(settings.frames_url(), redis, settings.redis_url)
        try:
            return await delete_user_data(redis, user_id, settings.stream.shards, account=True, frames_redis=frames)
        finally:
            if frames is not redis:
                await frames.aclose()

    deleted = _with_redis(go)
    typer.echo(f"deleted {deleted.keys} keys and {deleted.stream_entries} stream entries of {user_id}")


@keys.command("create")
def keys_create(user_id: str) -> None:
    """A new API key for an existing user (printed once)."""
    typer.echo(_with_redis(accounts.create_key, user_id))


@keys.command("revoke")
def keys_revoke(api_key: str) -> None:
    """Revoke an API key."""
    typer.echo(f"revoked a key of {_with_redis(accounts.revoke_key, api_key)}")


if __name__ == "__main__":
    app()
