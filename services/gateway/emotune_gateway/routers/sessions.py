"""Capture sessions and the frames a browser or client uploads into them."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status
from pydantic import BaseModel, Field

from emotune.v1 import messages_pb2
from emotune_common.ids import make_header
from emotune_gateway import accounts, metrics, sessions
from emotune_gateway.deps import ClientsDep, Owner, check_rate
from emotune_gateway.images import ImageError, check_image

router = APIRouter(prefix="/v1/users/{user_id}/sessions", tags=["sessions"])


class SessionIn(BaseModel):
    source: str = Field(
        "upload",
        max_length=2000,
        description="'upload' (frames are posted to the session), or a source the capture service opens: "
        "webcam:N, video:FILE or images:DIR (inside the gateway's media folder), rtsp://..., http(s)://... "
        "(those only when an operator granted their kind to the user)",
        examples=["upload", "video:short_hamilton_clip.mp4?loop=1", "rtsp://camera.local/stream"],
    )


class Session(BaseModel):
    id: str
    user_id: str
    source: str
    state: str = Field(description="active or stopped")
    created_at_us: int
    stopped_at_us: int | None = None
    frames: int = Field(0, description="Frames uploaded so far")
    capture_state: str | None = Field(None, description="For capture-opened sources: running, failed or ended")
    capture_detail: str | None = None

    @classmethod
    def of(cls, record: dict[str, str]) -> Session:
        return cls(**record)


class FrameAccepted(BaseModel):
    frame_id: str
    frame_number: int
    width: int
    height: int


async def owned_session(
    user_id: Owner, session_id: Annotated[str, Path(max_length=64)], clients: ClientsDep
) -> dict[str, str]:
    record = await sessions.get(clients.redis, user_id, session_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no session {session_id!r}")
    return record


OwnedSession = Annotated[dict[str, str], Depends(owned_session)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Session,
    summary="Start a capture session",
    responses={
        403: {"description": "The source's kind is not granted to the user or is off here, or the stream leads to "
                             "an address EMOTUNE_STREAM_ALLOW refuses: the detail says which and why"},
        422: {"description": "The source is malformed, or its file or folder is not in the media folder"},
    },
)  # fmt: skip
async def start(user_id: Owner, body: SessionIn, clients: ClientsDep) -> Session:
    granted = await accounts.sources_of(clients.redis, user_id)
    try:  # in a thread: a stream's names are resolved and its redirects asked
        source = await asyncio.to_thread(sessions.check_source, body.source, user_id, granted, clients.settings)
    except sessions.SourceForbidden as e:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(e)) from None
    except sessions.SessionError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from None
    return Session.of(await sessions.create(clients.redis, user_id, source))


@router.get("", response_model=list[Session], summary="My sessions, newest first")
async def list_sessions(user_id: Owner, clients: ClientsDep) -> list[Session]:
    return [Session.of(r) for r in await sessions.list_for(clients.redis, user_id)]


@router.get("/{session_id}", response_model=Session, summary="One session")
async def get_session(session: OwnedSession) -> Session:
    return Session.of(session)


@router.delete("/{session_id}", response_model=Session, summary="Stop a session")
async def stop(session: OwnedSession, clients: ClientsDep) -> Session:
    await sessions.stop(clients.redis, session["user_id"], session["id"])
    return Session.of(await sessions.get(clients.redis, session["user_id"], session["id"]) or session)


@router.post(
    "/{session_id}/frames",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FrameAccepted,
    summary="Upload one frame (the raw JPEG or PNG bytes as the body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {t: {"schema": {"type": "string", "format": "binary"}} for t in ("image/jpeg", "image/png")},
        }
    },
    responses={
        409: {"description": "The session is stopped, or its source is not 'upload'"},
        413: {"description": "Body or image larger than allowed"},
        415: {"description": "Not image/jpeg or image/png"},
        422: {"description": "The image does not decode"},
    },
)
async def upload_frame(request: Request, session: OwnedSession, clients: ClientsDep) -> FrameAccepted:
    settings = clients.settings
    user_id, session_id = session["user_id"], session["id"]
    await check_rate(clients, clients.frame_limit, user_id, scope="frames")
    if session["state"] != "active" or session["source"] != sessions.UPLOAD:
        metrics.FRAMES.labels("refused").inc()
        raise HTTPException(status.HTTP_409_CONFLICT, "frames go only to an active session with source 'upload'")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_frame_bytes:
        metrics.FRAMES.labels("too_large").inc()
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, f"frames are limited to {settings.max_frame_bytes} bytes"
        )
    data = bytearray()
    async for chunk in request.stream():  # counted as it arrives: a missing or false length cannot get past
        data += chunk
        if len(data) > settings.max_frame_bytes:
            metrics.FRAMES.labels("too_large").inc()
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE, f"frames are limited to {settings.max_frame_bytes} bytes"
            )
    content_type = request.headers.get("content-type", "")
    try:
        width, height = check_image(bytes(data), content_type, settings.max_frame_pixels)
    except ImageError as e:
        metrics.FRAMES.labels("bad_image").inc()
        raise HTTPException(e.status, str(e)) from None
    number = await sessions.count_frame(clients.redis, user_id, session_id)
    frame = messages_pb2.Frame(
        header=make_header(session_id, user_id), image=bytes(data),
        content_type=content_type.split(";")[0].strip().lower(), frame_number=number,
    )  # fmt: skip
    await clients.frames.publish(frame)
    metrics.FRAMES.labels("accepted").inc()
    return FrameAccepted(frame_id=frame.header.id, frame_number=number, width=width, height=height)
