"""Live subscriptions to a user's emotion events, mood changes and recommendation sets.

Server-Sent Events at ``/v1/users/{id}/events`` and WebSocket at ``/v1/users/{id}/events/ws``. Both
resume from ``last_event_id`` (or SSE's ``Last-Event-ID`` header): a reconnecting client gets every
event after it that is still in the streams. Browsers cannot set headers on either, so both also take
the API key as ``?key=``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, WebSocket, WebSocketDisconnect, status
from fastapi.sse import EventSourceResponse

from emotune_common.ids import now_us
from emotune_gateway import metrics
from emotune_gateway.deps import Clients, authenticate, get_clients
from emotune_gateway.hub import MAX_CURSOR, TYPES, Closed, Cursor, Event, Overflow, Subscription

router = APIRouter(prefix="/v1/users/{user_id}/events", tags=["events"])

KEEPALIVE_S = 15.0
OVERFLOW_CLOSE = 1013  # "try again later": the client reconnects with its last event id


def parse_types(types: str | None) -> frozenset[str]:
    wanted = frozenset(t.strip() for t in (types or ",".join(TYPES)).split(",") if t.strip())
    unknown = wanted - set(TYPES)
    if unknown or not wanted:
        raise ValueError(f"types must be a comma-separated subset of {', '.join(TYPES)}")
    return wanted


def parse_cursor(text: str | None, shards: int) -> Cursor | None:
    return Cursor.parse(text, shards) if text else None


async def open_subscription(
    clients: Clients, user_id: str, session: str | None, types: frozenset[str], since: Cursor | None
) -> tuple[Subscription, list[Event]]:
    """Register a subscription, then replay what it missed (in that order, so that nothing falls between)."""
    await clients.hub.started.wait()
    sub = clients.hub.subscribe(Subscription(user_id, session or None, types, clients.settings.subscriber_queue,
                                             position=clients.hub.position))  # fmt: skip
    try:
        missed = await clients.hub.replay(sub, since) if since is not None else []
    except BaseException:
        clients.hub.unsubscribe(sub)
        raise
    return sub, missed


def observe(event: Event, transport: str) -> None:
    metrics.EVENTS_SENT.labels(transport).inc()
    metrics.DELIVERY_SECONDS.observe(max(0, now_us() - event.created_at_us) / 1e6)


@router.get(
    "",
    response_model=None,
    summary="Server-Sent Events: emotion, mood and recommendations events of the user",
    responses={
        200: {"description": "An event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}}
    },
)
async def sse(
    request: Request,
    user_id: str,
    session: Annotated[str | None, Query(max_length=64, description="Only this session's events")] = None,
    types: Annotated[
        str | None, Query(max_length=100, description="Comma-separated: emotion,mood,recommendations")
    ] = None,
    last_event_id: Annotated[str | None, Query(max_length=MAX_CURSOR, description="Resume after this event id")] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID", max_length=MAX_CURSOR)] = None,
    key: Annotated[str | None, Query(max_length=100, description="The API key (EventSource sends no headers)")] = None,
) -> EventSourceResponse:
    clients = get_clients(request)
    caller = await authenticate(clients, _header_key(request) or key)
    if caller != user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "a user reaches only their own data")
    try:
        wanted, since = parse_types(types), parse_cursor(last_event_id_header or last_event_id, clients.hub.shards)
    except ValueError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(e)) from None
    sub, missed = await open_subscription(clients, user_id, session, wanted, since)
    return EventSourceResponse(_sse_stream(clients, sub, missed), headers={"Cache-Control": "no-store"})


async def _sse_stream(clients: Clients, sub: Subscription, missed: list[Event]) -> AsyncIterator[str]:
    """The SSE wire format: ``id``, ``event`` and ``data`` lines; comments keep idle connections open."""
    try:
        yield ": subscribed\nretry: 1000\n\n"
        for event in missed:
            observe(event, "sse")
            yield _sse(sub, event)
        while True:
            try:
                event = await asyncio.wait_for(sub.next(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            except Overflow:
                yield f'id: {sub.position}\nevent: overflow\ndata: {{"type":"overflow"}}\n\n'
                return
            observe(event, "sse")
            yield _sse(sub, event)
    finally:
        clients.hub.unsubscribe(sub)


def _sse(sub: Subscription, event: Event) -> str:
    text = sub.text(event)
    return f"id: {sub.position}\nevent: {event.type}\ndata: {text}\n\n"


def _header_key(request: Request | WebSocket) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


@router.websocket("/ws")
async def websocket(
    ws: WebSocket,
    user_id: str,
    session: str | None = None,
    types: str | None = None,
    last_event_id: str | None = None,
    key: str | None = None,
) -> None:
    """WebSocket: one JSON event per text message. Close 4401 without a valid key, 4403 for another
    user's events, 4422 for bad parameters, 1013 when the client was too slow (resume and carry on)."""
    clients: Clients = ws.app.state.clients

    async def refuse(code: int, reason: str) -> None:
        # accepted first: a close before the handshake reaches a browser as a bare 1006, reason lost
        await ws.accept()
        await ws.close(code=code, reason=reason[:120])

    try:
        caller = await authenticate(clients, _header_key(ws) or key)
    except HTTPException as e:
        return await refuse(4000 + e.status_code, str(e.detail))
    if caller != user_id:
        return await refuse(4403, "a user reaches only their own data")
    try:
        wanted, since = parse_types(types), parse_cursor(last_event_id, clients.hub.shards)
        if session is not None and len(session) > 64:
            raise ValueError("session ids are at most 64 characters")
    except ValueError as e:
        return await refuse(4422, str(e))
    sub, missed = await open_subscription(clients, user_id, session, wanted, since)  # before accepting: once
    receiver: asyncio.Task | None = None
    try:
        await ws.accept()  # the client sees the socket open, every later event reaches it
        receiver = asyncio.create_task(_drain(ws))  # notices the client leaving while no event comes
        receiver.add_done_callback(lambda _: sub.close())
        for event in missed:
            await ws.send_text(sub.text(event))
            observe(event, "websocket")
        while True:
            try:
                event = await sub.next()
            except Overflow:
                await ws.close(code=OVERFLOW_CLOSE, reason="too slow: resume from the last event id")
                break
            await ws.send_text(sub.text(event))
            observe(event, "websocket")
    except (Closed, WebSocketDisconnect, RuntimeError):
        pass  # the client went away
    finally:
        clients.hub.unsubscribe(sub)
        if receiver is not None:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver


async def _drain(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
