"""The track catalogue: search it for artists and genres, and pick a few to start a listener's taste."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, TypeVar

import grpc
from fastapi import APIRouter, HTTPException, Query, status
from google.protobuf.json_format import MessageToDict
from pydantic import BaseModel, Field

from emotune.v1 import recommender_pb2
from emotune_gateway.deps import ClientsDep, CurrentUser, Owner

router = APIRouter(prefix="/v1", tags=["catalogue"])
T = TypeVar("T")


class CatalogueArtist(BaseModel):
    artist_id: str
    name: str
    genres: list[str]
    tracks: int = Field(description="Tracks of the catalogue by this artist")


class CatalogueGenre(BaseModel):
    name: str
    tracks: int


class CatalogueMatches(BaseModel):
    artists: list[CatalogueArtist]
    genres: list[CatalogueGenre]


class Taste(BaseModel):
    genres: list[Annotated[str, Field(max_length=100)]] = Field([], max_length=20)
    artist_ids: list[Annotated[str, Field(max_length=120)]] = Field([], max_length=20)


async def _ask(call: Awaitable[T]) -> T:
    """A recommender call, its errors as HTTP: 404 for what does not exist, 422 for a bad request, 503 when away."""
    try:
        return await call
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, e.details()) from None
        if e.code() == grpc.StatusCode.INVALID_ARGUMENT:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, e.details()) from None
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"the recommender is unavailable: {e.code().name}",
                            headers={"Retry-After": "2"}) from None  # fmt: skip


@router.get("/catalogue/search", response_model=CatalogueMatches, summary="Artists and genres whose names contain q")
async def search(
    _: CurrentUser,
    clients: ClientsDep,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> CatalogueMatches:
    query = recommender_pb2.CatalogueQuery(text=q, limit=limit)
    reply = await _ask(clients.recommender.SearchCatalogue(query, timeout=clients.settings.recommender_timeout_s))
    return CatalogueMatches(
        **MessageToDict(reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    )


@router.put("/users/{user_id}/taste", response_model=Taste, tags=["users"],
            summary="A new listener's picks: genres and artists of the catalogue; their next list starts from them",
            responses={404: {"description": "A genre or artist the catalogue lacks"}})  # fmt: skip
async def set_taste(body: Taste, user_id: Owner, clients: ClientsDep) -> Taste:
    request = recommender_pb2.TasteRequest(user_id=user_id, genres=body.genres, artist_ids=body.artist_ids)
    reply = await _ask(clients.recommender.SetTaste(request, timeout=clients.settings.recommender_timeout_s))
    return Taste(genres=list(reply.genres), artist_ids=list(reply.artist_ids))
