"""Who am I, and deleting everything about me."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from emotune_common.keys import user_key
from emotune_gateway import accounts
from emotune_gateway.deps import ClientsDep, CurrentUser, Owner
from emotune_gateway.privacy import delete_user_data

router = APIRouter(prefix="/v1", tags=["users"])


class Me(BaseModel):
    user_id: str
    name: str
    sources: list[str] = Field(description="The kinds of source this user may open (an operator's grant)")


class DeletedReport(BaseModel):
    deleted_keys: int
    deleted_stream_entries: int


@router.get("/me", response_model=Me, summary="The user of the API key")
async def me(user_id: CurrentUser, clients: ClientsDep) -> Me:
    name = await clients.redis.hget(user_key(user_id, "account"), "name")
    sources = sorted(await accounts.sources_of(clients.redis, user_id))
    return Me(user_id=user_id, name=name.decode() if name else user_id, sources=sources)


@router.delete("/users/{user_id}/data", response_model=DeletedReport, summary="Delete my data, keep my account")
async def delete_data(user_id: Owner, clients: ClientsDep) -> DeletedReport:
    """Sessions, moods, feedback, Spotify tokens, and every stream entry that names the user."""
    deleted = await delete_user_data(
        clients.redis, user_id, clients.settings.stream.shards, account=False, frames_redis=clients.frames_redis
    )
    return DeletedReport(deleted_keys=deleted.keys, deleted_stream_entries=deleted.stream_entries)


@router.delete("/users/{user_id}", response_model=DeletedReport, summary="Delete my data and my account")
async def delete_user(user_id: Owner, clients: ClientsDep) -> DeletedReport:
    """Everything of ``/data``, and the account and its API keys (this key stops working)."""
    deleted = await delete_user_data(
        clients.redis, user_id, clients.settings.stream.shards, account=True, frames_redis=clients.frames_redis
    )
    return DeletedReport(deleted_keys=deleted.keys, deleted_stream_entries=deleted.stream_entries)
