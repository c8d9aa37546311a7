"""Sessions of the capture registry: leases, take-over, status, on a private Redis and the real sample video."""

from __future__ import annotations

import asyncio
import contextlib
import json
from functools import partial

import redis.asyncio as aioredis

from emotune.v1 import messages_pb2
from emotune_capture.__main__ import _serve, tracker
from emotune_capture.sessions import SessionWatcher
from emotune_capture.settings import CaptureSettings
from emotune_common.codec import decode
from emotune_common.keys import CAPTURE_SESSIONS, capture_lease, session_key
from emotune_common.sharded import ShardedProducer
from emotune_common.shards import session_stream
from emotune_common.streams import FACES

from ..common.helpers import wait_for
from ..conftest import DATA_DIR
from ..processes import PATIENCE_S

VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"
LOOPING = f"video:{VIDEO}?loop=1"


def fast(**changes) -> CaptureSettings:
    """Short polls and leases, a 10 fps cap."""
    values = {"capture_poll_s": 0.2, "capture_lease_ms": 1000, "capture_fps": 10.0, "capture_retry_s": 60.0}
    return CaptureSettings(**(values | changes))


@contextlib.asynccontextmanager
async def watcher(redis: aioredis.Redis, owner: str, settings: CaptureSettings | None = None):
    """A running SessionWatcher, its task and its stop event (SIGTERM); stopped on the way out, unless cancelled."""
    settings = settings or fast()
    w = SessionWatcher(
        redis,
        settings,
        ShardedProducer(redis, FACES, settings.stream.shards, 100_000),
        partial(tracker, settings),
        owner=owner,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    try:
        yield w, task, stop
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, PATIENCE_S)


async def register(redis: aioredis.Redis, session_id: str, source: str, user: str = "alice") -> None:
    """What the gateway does for a session with a source: its record, and the registry entry."""
    await redis.hset(session_key(user, session_id), mapping={"id": session_id, "user_id": user, "source": source,
                                                            "state": "active"})  # fmt: skip
    await redis.hset(CAPTURE_SESSIONS, session_id, json.dumps({"user_id": user, "source": source}))


async def crops_of(redis: aioredis.Redis, session_id: str) -> list[messages_pb2.FaceCrop]:
    stream = session_stream(FACES, session_id, CaptureSettings().stream.shards)  # all of a session's in its shard
    crops = (decode(f, messages_pb2.FaceCrop) for _, f in await redis.xrange(stream))
    return [c for c in crops if c.header.session_id == session_id]


async def status(redis: aioredis.Redis, session_id: str, user: str = "alice") -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in (await redis.hgetall(session_key(user, session_id))).items()}


async def has_crops(redis: aioredis.Redis, session_id: str, n: int = 3) -> bool:
    return len(await crops_of(redis, session_id)) >= n


async def lease_of(redis: aioredis.Redis, session_id: str) -> str | None:
    value = await redis.get(capture_lease(session_id))
    return value.decode() if value else None


async def state_is(redis: aioredis.Redis, session_id: str, state: str, user: str = "alice") -> bool:
    return (await status(redis, session_id, user)).get("capture_state") == state


async def test_a_registered_session_gets_crops_until_it_leaves_the_registry(redis):
    await register(redis, "s1", f"{LOOPING}&session=other&user=mallory")  # the registry names session and user
    async with watcher(redis, "w1") as (w, _, _):
        await wait_for(lambda: has_crops(redis, "s1"), PATIENCE_S, "crops of s1")
        crops = await crops_of(redis, "s1")
        assert {(c.header.session_id, c.header.user_id, c.source) for c in crops} == {
            ("s1", "alice", "video:short_hamilton_clip.mp4")}  # fmt: skip
        record = await status(redis, "s1")
        assert (record["capture_state"], record["capture_owner"]) == ("running", "w1")
        assert await lease_of(redis, "s1") == "w1"
        await wait_for(lambda: _detail_has(redis, "s1", "frames processed"), PATIENCE_S, "counts in capture_detail")

        await redis.hdel(CAPTURE_SESSIONS, "s1")  # the gateway stops the session
        await wait_for(lambda: state_is(redis, "s1", "ended"), PATIENCE_S, "capture_state ended")
        assert (await status(redis, "s1"))["capture_detail"].startswith("stopped: ")
        assert await lease_of(redis, "s1") is None and not w.running
        seen = len(await crops_of(redis, "s1"))
        await asyncio.sleep(1.0)
        assert len(await crops_of(redis, "s1")) == seen


async def test_two_watchers_compete_and_one_runs_the_session(redis):
    await register(redis, "s1", LOOPING)
    async with watcher(redis, "a") as (a, _, _), watcher(redis, "b") as (b, _, _):
        await wait_for(lambda: has_crops(redis, "s1"), PATIENCE_S, "crops of s1")
        owner = await lease_of(redis, "s1")
        for _ in range(5):  # several polls and renewals: still one runner, the lease holder
            assert [w.owner for w in (a, b) if "s1" in w.running] == [owner]
            assert (await status(redis, "s1"))["capture_owner"] == owner
            await asyncio.sleep(0.25)
    assert await lease_of(redis, "s1") is None  # both stopped: the holder handed it back


async def test_a_dead_watchers_session_is_taken_over_when_its_lease_expires(redis):
    await register(redis, "s1", LOOPING)
    async with watcher(redis, "a") as (a, a_task, _):
        await wait_for(lambda: has_crops(redis, "s1"), PATIENCE_S, "crops of s1")
        async with watcher(redis, "b") as (b, _, _):
            await asyncio.sleep(0.5)
            assert "s1" in a.running and not b.running
            a_task.cancel()  # dies: its runner stops, its lease stays until it expires
            with contextlib.suppress(asyncio.CancelledError):
                await a_task
            assert await lease_of(redis, "s1") == "a"
            await wait_for(lambda: _owner_is(redis, "s1", "b"), PATIENCE_S, "b to take s1 over")
            assert await lease_of(redis, "s1") == "b" and "s1" in b.running
            seen = len(await crops_of(redis, "s1"))
            await wait_for(lambda: has_crops(redis, "s1", seen + 3), PATIENCE_S, "crops from b")


async def test_a_stopping_watcher_hands_its_leases_back_at_once(redis):
    await register(redis, "s1", LOOPING)
    slow = fast(capture_lease_ms=30_000)  # a take-over within seconds cannot be an expiry
    async with watcher(redis, "a", slow) as (a, a_task, a_stop):
        await wait_for(lambda: _owner_is(redis, "s1", "a"), PATIENCE_S, "a to take s1")
        async with watcher(redis, "b", slow):
            a_stop.set()  # SIGTERM
            await asyncio.wait_for(a_task, PATIENCE_S)
            assert not a.running
            await wait_for(lambda: _owner_is(redis, "s1", "b"), PATIENCE_S, "b to take s1 over")
            assert await lease_of(redis, "s1") == "b"


async def test_a_bad_source_fails_clearly_and_the_watcher_runs_the_others(redis):
    await register(redis, "bad", "video:/nonexistent.mp4")
    await register(redis, "odd", "ftp://example.com/x")
    await register(redis, "good", LOOPING)
    async with watcher(redis, "w1") as (w, _, _):
        await wait_for(lambda: state_is(redis, "bad", "failed"), PATIENCE_S, "bad to fail")
        await wait_for(lambda: state_is(redis, "odd", "failed"), PATIENCE_S, "odd to fail")
        assert (await status(redis, "bad"))["capture_detail"] == (
            "video:/nonexistent.mp4: no such video file /nonexistent.mp4")  # fmt: skip
        assert "unknown source" in (await status(redis, "odd"))["capture_detail"]
        assert await lease_of(redis, "bad") is None and await redis.hexists(CAPTURE_SESSIONS, "bad")
        await wait_for(lambda: has_crops(redis, "good"), PATIENCE_S, "crops of good")
        assert await state_is(redis, "good", "running")

        await redis.hset(session_key("alice", "bad"), "capture_detail", "not tried again")
        await asyncio.sleep(1.0)  # five polls: a failed source is remembered, not retried in a loop
        assert (await status(redis, "bad"))["capture_detail"] == "not tried again"
        assert set(w.running) == {"good"}


async def test_a_file_read_to_its_end_is_ended_and_leaves_the_registry(redis):
    await register(redis, "once", f"video:{VIDEO}?realtime=0&fps=0")  # as fast as detection goes
    async with watcher(redis, "w1"):
        await wait_for(lambda: state_is(redis, "once", "ended"), PATIENCE_S, "the file to end")
        assert "frames processed" in (await status(redis, "once"))["capture_detail"]
        assert not await redis.hexists(CAPTURE_SESSIONS, "once")
        assert await lease_of(redis, "once") is None
        assert await crops_of(redis, "once")


async def test_an_instance_runs_at_most_its_maximum(redis):
    await register(redis, "s1", LOOPING)
    await register(redis, "s2", LOOPING)
    async with watcher(redis, "a", fast(capture_max_sessions=1)) as (a, _, _):
        await wait_for(lambda: _any_running(redis, "s1", "s2"), PATIENCE_S, "a session to run")
        await asyncio.sleep(0.6)
        assert len(a.running) == 1
        [waiting] = {"s1", "s2"} - set(a.running)
        assert await lease_of(redis, waiting) is None
        async with watcher(redis, "b", fast(capture_max_sessions=1)):
            await wait_for(lambda: _owner_is(redis, waiting, "b"), PATIENCE_S, "b to take the other session")


async def test_serve_runs_registry_sessions_without_static_sources_or_uploads(redis, redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    settings = fast(capture_sources="", capture_uploads=False, consumer_name="served")
    stop = asyncio.Event()
    task = asyncio.create_task(_serve(settings, stop))
    try:
        await register(redis, "s1", LOOPING)
        await wait_for(lambda: has_crops(redis, "s1"), PATIENCE_S, "crops of s1")
        assert await lease_of(redis, "s1") == "served"
    finally:
        stop.set()
        await asyncio.wait_for(task, PATIENCE_S)
    assert await lease_of(redis, "s1") is None


async def _detail_has(redis, session_id: str, text: str) -> bool:
    return text in (await status(redis, session_id)).get("capture_detail", "")


async def _owner_is(redis, session_id: str, owner: str) -> bool:
    record = await status(redis, session_id)
    return record.get("capture_state") == "running" and record.get("capture_owner") == owner


async def _any_running(redis, *session_ids: str) -> bool:
    return any([await state_is(redis, s, "running") for s in session_ids])
