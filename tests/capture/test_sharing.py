"""Capture instances share the registry's sessions fairly (sessions.py, "Sharing between instances"): watchers
in one process on a private Redis, then two real capture processes as the capture Redis user."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path

import pytest
import redis as sync_redis
import redis.asyncio as aioredis

from emotune.v1 import messages_pb2
from emotune_capture.__main__ import tracker
from emotune_capture.sessions import SessionWatcher
from emotune_capture.settings import CaptureSettings
from emotune_common.codec import decode
from emotune_common.keys import CAPTURE_INSTANCES, CAPTURE_SESSIONS, capture_lease, session_key
from emotune_common.sharded import ShardedProducer
from emotune_common.shards import shard_streams
from emotune_common.sources import SourceError, SourceSpec
from emotune_common.streams import FACES

from ..common.helpers import wait_for
from ..processes import PATIENCE_S, Service, free_port, python_module, spawn, stop, wait_until
from ..reliability.test_redis_acl import TEMPLATE, start_acl_redis
from .test_sessions import VIDEO, fast, register, status

#: A cheap source: the sample video decoded in real time, one frame a second detected.
SLOW = f"video:{VIDEO}?loop=1&fps=1"
LEASE_MS = 2000


def make(redis: aioredis.Redis, owner: str, kind: type[SessionWatcher] = SessionWatcher) -> SessionWatcher:
    settings = fast(capture_lease_ms=LEASE_MS, capture_fps=1.0)
    return kind(
        redis,
        settings,
        ShardedProducer(redis, FACES, settings.stream.shards, 100_000),
        partial(tracker, settings),
        owner=owner,
    )


@contextlib.asynccontextmanager
async def running(w: SessionWatcher) -> AsyncIterator[tuple[asyncio.Task, asyncio.Event]]:
    """``w`` running, its task and its stop event (SIGTERM); stopped on the way out, unless cancelled."""
    stop_event = asyncio.Event()
    task = asyncio.create_task(w.run(stop_event))
    try:
        yield task, stop_event
    finally:
        stop_event.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, PATIENCE_S)


class Overlaps:
    """Samples every watcher's runners every 10 ms: a session whose runner task is alive in two watchers at
    once is an overlap. A task is followed after its watcher forgets it, until it has really stopped."""

    def __init__(self, watchers: list[SessionWatcher]) -> None:
        self.watchers = watchers  # may grow
        self.seen: dict[int, tuple[str, str, asyncio.Task]] = {}
        self.found: list[tuple[str, set[str]]] = []
        self.samples = 0

    async def watch(self) -> None:
        while True:
            for w in self.watchers:
                for run in w.running.values():
                    self.seen.setdefault(id(run.task), (w.owner, run.session_id, run.task))
            alive: dict[str, set[str]] = {}
            for owner, session_id, task in self.seen.values():
                if not task.done():
                    alive.setdefault(session_id, set()).add(owner)
            self.found += [(s, owners) for s, owners in alive.items() if len(owners) > 1]
            self.samples += 1
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def no_overlaps(watchers: list[SessionWatcher]) -> AsyncIterator[Overlaps]:
    overlaps = Overlaps(watchers)
    task = asyncio.create_task(overlaps.watch())
    try:
        yield overlaps
    finally:
        task.cancel()
    assert overlaps.samples > 100 and not overlaps.found, overlaps.found[:5]


async def holders(redis: aioredis.Redis, sessions: list[str]) -> dict[str, str | None]:
    leases = await redis.mget([capture_lease(s) for s in sessions])
    return {s: v.decode() if v else None for s, v in zip(sessions, leases, strict=True)}


def split(watchers: list[SessionWatcher]) -> list[int]:
    return sorted(len(w.running) for w in watchers)


async def settled(redis: aioredis.Redis, sessions: list[str], watchers: list[SessionWatcher], want: list[int]) -> bool:
    """The watchers run ``want`` sessions each (in any order), every session has one, and its lease and record
    name the watcher that runs it."""
    if split(watchers) != sorted(want):
        return False
    running = {s: w.owner for w in watchers for s in w.running}
    if set(running) != set(sessions) and sum(want) == len(sessions):
        return False
    records = [await status(redis, s) for s in running]
    owners = [(r.get("capture_state"), r.get("capture_owner")) for r in records]
    return await holders(redis, list(running)) == running and owners == [("running", o) for o in running.values()]


async def still(redis: aioredis.Redis, sessions: list[str], watchers: list[SessionWatcher], want: list[int]) -> None:
    """Settled, and still the same sessions on the same watchers a second (five polls) later: no flapping."""
    await wait_for(lambda: settled(redis, sessions, watchers, want), PATIENCE_S, f"a split of {want}")
    before = {w.owner: set(w.running) for w in watchers}
    await asyncio.sleep(1.0)
    assert {w.owner: set(w.running) for w in watchers} == before
    assert await settled(redis, sessions, watchers, want)


async def test_two_watchers_split_eight_sessions_a_third_rebalances_and_the_survivor_takes_all(redis):
    sessions = [f"s{i}" for i in range(8)]
    for s in sessions:
        await register(redis, s, SLOW)
    a, b, c = make(redis, "a"), make(redis, "b"), make(redis, "c")
    watchers = [a, b]
    async with no_overlaps(watchers), running(a), running(b) as (b_task, _):
        await still(redis, sessions, watchers, [4, 4])
        assert set(await redis.zrange(CAPTURE_INSTANCES, 0, -1)) == {b"a", b"b"}

        watchers.append(c)
        async with running(c) as (c_task, c_stop):
            await still(redis, sessions, watchers, [3, 3, 2])  # ceil(8 / 3) = 3: the one with 2 takes nothing
            c_stop.set()  # SIGTERM: c hands its leases back and leaves the instances
            await asyncio.wait_for(c_task, PATIENCE_S)
        assert b"c" not in await redis.zrange(CAPTURE_INSTANCES, 0, -1)
        await still(redis, sessions, watchers, [0, 4, 4])

        b_task.cancel()  # b dies: its heartbeat and leases stay until they expire
        with contextlib.suppress(asyncio.CancelledError):
            await b_task
        assert await redis.zscore(CAPTURE_INSTANCES, "b") is not None
        assert list((await holders(redis, sessions)).values()).count("b") == 4
        await wait_for(lambda: settled(redis, sessions, [a], [8]), PATIENCE_S, "a to take all 8")
        assert await redis.zrange(CAPTURE_INSTANCES, 0, -1) == [b"a"]


class WithoutCamera(SessionWatcher):
    """An instance on a host without session ``cam``'s camera: that source fails here, and only here."""

    def _spec(self, session_id: str, entry: bytes) -> tuple[str, SourceSpec]:
        if session_id == "cam":
            raise SourceError("webcam:0: no camera 0 on this host")
        return super()._spec(session_id, entry)


async def test_a_session_the_instance_below_its_share_cannot_run_stays_with_one_that_can(redis):
    a, b = make(redis, "a"), make(redis, "b", WithoutCamera)
    watchers = [a, b]
    async with no_overlaps(watchers), running(a):
        await register(redis, "vid", SLOW)
        await wait_for(lambda: _runs({a: {"vid"}}), PATIENCE_S, "a alone to take vid")
        await register(redis, "cam", SLOW)  # the newest a takes: the one it hands back first
        await wait_for(lambda: settled(redis, ["cam", "vid"], [a], [2]), PATIENCE_S, "a alone to take both")
        async with running(b):
            # a hands cam back, b fails it; free for a lease, a takes it again and keeps it, and hands vid back
            await wait_for(lambda: _runs({a: {"cam"}, b: {"vid"}}), PATIENCE_S, "a on cam, b on vid")
            await still(redis, ["cam", "vid"], watchers, [1, 1])
            assert a.running["cam"].keep_until > 0  # taken beyond its share, as nobody else could run it


async def _runs(sessions: dict[SessionWatcher, set[str]]) -> bool:
    return all(set(w.running) == s for w, s in sessions.items())


# -- two capture processes -------------------------------------------------------------------------------


def metric(service: Service, name: str) -> float:
    """The sum of a counter over its labels, from a process's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{service.ops}/metrics", timeout=5) as reply:
        lines = reply.read().decode().splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{"))


def start_capture(name: str, redis_url: str, folder: Path) -> Service:
    """A capture process that runs only the registry's sessions, polling fast, as consumer ``name``."""
    ops = free_port()
    return spawn(name, python_module("emotune_capture", "serve"), {
        "REDIS_URL": redis_url, "EMOTUNE_CAPTURE_UPLOADS": "false", "EMOTUNE_CONSUMER_NAME": name,
        "EMOTUNE_CAPTURE_POLL_S": "0.2", "EMOTUNE_CAPTURE_LEASE_MS": str(LEASE_MS), "EMOTUNE_CAPTURE_FPS": "1",
        "EMOTUNE_METRICS_PORT": str(ops), "EMOTUNE_LOG_LEVEL": "INFO",
    }, log=folder / f"{name}.log", ops=ops)  # fmt: skip


@pytest.fixture
def acl_redis_url(tmp_path) -> Iterator[tuple[str, str]]:
    """A Redis with emotune's users (deploy/redis/users.acl.template): the admin's URL and capture's."""
    with start_acl_redis(tmp_path / "redis", TEMPLATE, ["--save", "", "--appendonly", "no"]) as server:
        yield server.url("default"), server.url("capture")


@pytest.mark.slow
def test_two_capture_processes_split_eight_sessions_as_the_capture_user(acl_redis_url, tmp_path):
    admin_url, capture_url = acl_redis_url
    admin = sync_redis.Redis.from_url(admin_url)
    sessions = [uuid.uuid4().hex for _ in range(8)]  # as the gateway makes them: capture may write such records
    for s in sessions:
        admin.hset(session_key("alice", s), mapping={"id": s, "user_id": "alice", "source": SLOW, "state": "active"})
        admin.hset(CAPTURE_SESSIONS, s, json.dumps({"user_id": "alice", "source": SLOW}))
    names = ("capture-a", "capture-b")
    services = [start_capture(name, capture_url, tmp_path) for name in names]

    def logs() -> str:
        return "\n".join(f"--- {s.name} ---\n{s.tail()}" for s in services)

    def owners() -> dict[str, str]:
        for s in services:
            s.check()
        records = [admin.hgetall(session_key("alice", s)) for s in sessions]
        return {s: r.get(b"capture_owner", b"").decode() for s, r in zip(sessions, records, strict=True)
                if r.get(b"capture_state") == b"running"}  # fmt: skip

    def split_4_4() -> dict[str, str] | None:
        now = owners()
        leases = [v.decode() if v else "" for v in admin.mget([capture_lease(s) for s in sessions])]
        counts = sorted(list(now.values()).count(n) for n in names)
        return now if counts == [4, 4] and leases == [now.get(s) for s in sessions] else None

    def publishing() -> bool:  # every session's crops in the stream, and each process counting its own
        shards = shard_streams(FACES, CaptureSettings().stream.shards)
        crops = {decode(f, messages_pb2.FaceCrop).header.session_id for s in shards for _, f in admin.xrange(s)}
        return set(sessions) <= crops and all(metric(s, "emotune_capture_faces_total") > 0 for s in services)

    started = time.monotonic()
    try:
        split = wait_until(split_4_4, PATIENCE_S, "a 4/4 split", every=0.2, detail=logs)
        wait_until(publishing, PATIENCE_S, "crops of every session, from both processes", every=0.5, detail=logs)
        time.sleep(1.0)  # five polls later: the same split
        assert owners() == split, logs()
        assert sorted(m.decode() for m in admin.zrange(CAPTURE_INSTANCES, 0, -1)) == list(names)
        print(f"split 4/4 and publishing after {time.monotonic() - started:.1f} s")
    finally:
        stop(*services)
    assert not any("NOPERM" in s.tail(100_000) or "no permissions" in s.tail(100_000) for s in services), logs()
    assert [s.process.returncode for s in services] == [0, 0], logs()
    assert not admin.exists(CAPTURE_INSTANCES, *(capture_lease(s) for s in sessions))  # all handed back
    admin.close()
