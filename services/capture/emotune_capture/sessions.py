"""Sessions whose source the capture service opens: the registry, leases and status.

The gateway puts every session with a camera, video or stream source in the registry
(:data:`~emotune_common.keys.CAPTURE_SESSIONS`: session id -> JSON ``{"user_id", "source"}``) and
takes it out when the session stops. Every capture instance runs a :class:`SessionWatcher`, which
each ``capture_poll_s``:

- reads the registry; a session not run here is taken with a lease, ``SET capture_lease(sid) <owner>
  NX PX <capture_lease_ms>``, and its source run with a :class:`~emotune_capture.live.SourceRunner`
  (up to the instance's fair share, below);
- renews the leases it holds, only while they are still its own (compare and PEXPIRE in one script), and
  writes each session's status after its lease is renewed;
- stops a runner when its entry leaves the registry (or changes), or its lease is lost or could not be
  renewed for a whole lease (Redis away: another instance may have it by now).

A dead instance's leases expire, and another instance takes its sessions over. On SIGTERM an
instance stops its runners and hands its leases back, so that another one takes over at once.

Sharing between instances (consumer-group style, on the leases). Every poll an instance announces
itself in :data:`~emotune_common.keys.CAPTURE_INSTANCES` (owner -> Redis time; members older than a
lease are dropped, so a dead instance stops counting when its leases expire) and reads, in the same
script, who holds each registry session's lease. Its fair share is ``ceil(sessions / live
instances)``, at most ``capture_max_sessions``; the sessions counted are the leased ones and the free
ones whose source has not failed here (a source that fails everywhere counts for no one). It takes
free sessions only up to its share, so a second instance that starts finds work left. An instance
above its share hands back one session a poll, the newest it took (stopped first, then its lease
released), and only while some live instance holds fewer than the share: the handed-back session
goes to that instance at its next poll. Why this does not flap: the ceiling makes the shares add up
to at least the sessions, so a split such as 3/3/2 leaves no instance above its share and nothing
moves; an instance hands back only down to its share, so it never wants the session back; and one
a poll lets the others' holdings show before it hands back another. A session free for a whole lease
(the instance below its share cannot run it: a camera of another host, say) goes to any instance
with room under ``capture_max_sessions``, which keeps it for ``capture_retry_s`` before it may hand
it back: fairness never leaves a session unrun, and such a session moves at most once a retry.

The session's record (``session_key(user, sid)``, written by the gateway) gets ``capture_state``
(running | reconnecting | failed | ended), ``capture_detail`` (the error, or the counts) and ``capture_owner``;
only a record that exists is written, so that a deleted user's session is not brought back. A
stream that stops is ``reconnecting`` while it is opened again (live.py; ``capture_detail`` says why
and the attempts so far), for up to ``capture_reconnect_s``. A source that fails (it cannot be opened,
a camera stops, or a stream is not back in time) is ``failed``: its lease is
handed back and its entry left in the registry, where another instance (with that camera, say) may
take it; this instance tries it again only after ``capture_retry_s``. A file or folder read to its
end is ``ended``, and its entry leaves the registry, so that no instance plays it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import redis.asyncio as aioredis

from emotune_capture.crops import Detects
from emotune_capture.live import Counts, SourceRunner
from emotune_capture.passes import PassPool
from emotune_capture.settings import CaptureSettings
from emotune_common.consumer import default_consumer_name
from emotune_common.keys import CAPTURE_INSTANCES, CAPTURE_SESSIONS, capture_lease, session_key
from emotune_common.logs import get_logger
from emotune_common.redis_client import TRANSIENT_ERRORS
from emotune_common.sharded import ShardedProducer
from emotune_common.sources import SourceError, SourceSpec, parse_source

log = get_logger("emotune.capture.sessions")

RUNNING, FAILED, ENDED = "running", "failed", "ended"
RECONNECTING = "reconnecting"  # a stream that stopped, being opened again (live.py)

# Lease scripts: their keys are in the slot of {capture} (emotune_common.keys). A session's record is
# among its user's keys, in another slot of a cluster, so it is written by a script of its own.

# KEYS: lease; ARGV: owner, lease ms. Renews the lease when it is the owner's; returns 0 when it is not (lost).
_HOLD = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: lease, registry; ARGV: owner, session id, registry entry to remove ('' keeps it). Only while the
# lease is the owner's: deletes it, and removes the registry entry if it is still the one that was run.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' and redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
return 1
"""

# KEYS: session record; ARGV: state ('' leaves it as it is), detail, owner. Sets the status fields, only
# when the record exists (a deleted user's session is not brought back).
_SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'capture_state', ARGV[1]) end
redis.call('HSET', KEYS[1], 'capture_detail', ARGV[2], 'capture_owner', ARGV[3])
return 1
"""

# KEYS: the instances, then the leases of the registry's sessions; ARGV: owner, lease ms. Announces the
# owner (scored by Redis's clock, so that the hosts' clocks do not matter), drops the instances not seen
# for a lease, and returns the live instances and each lease's holder (false: free).
_HEARTBEAT = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZADD', KEYS[1], ms, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local holders = {}
for i = 2, #KEYS do holders[i - 1] = redis.call('GET', KEYS[i]) end
return {redis.call('ZRANGE', KEYS[1], 0, -1), holders}
"""


def describe(counts: Counts) -> str:
    return (
        f"{counts.processed} frames processed ({counts.read} read, {counts.skipped} over the cap, "
        f"{counts.dropped} dropped), {counts.faces} faces"
    )


def live_status(runner: SourceRunner) -> tuple[str, str]:
    """The state and detail of a session whose runner runs: reconnecting (why, attempts) or running (counts)."""
    return (RECONNECTING, runner.lost) if runner.lost else (RUNNING, describe(runner.counts))


@dataclass
class _Running:
    """A session this instance holds the lease of, and its runner."""

    session_id: str
    user_id: str
    entry: bytes  # the registry entry as it was read: a changed entry is a new session
    spec: SourceSpec
    runner: SourceRunner
    stop: asyncio.Event
    task: asyncio.Task
    renewed_at: float
    keep_until: float = 0.0  # taken beyond the fair share: not handed back before this (monotonic)

    @property
    def record(self) -> str:
        return session_key(self.user_id, self.session_id)


class SessionWatcher:
    """Runs the registry's sessions that this instance wins the lease of (see the module's text)."""

    def __init__(
        self,
        redis: aioredis.Redis,
        settings: CaptureSettings,
        faces: ShardedProducer,
        detectors: Callable[[SourceSpec, int], Detects],
        owner: str | None = None,
        passes: PassPool | None = None,
    ) -> None:
        """``detectors(spec, i)`` makes the detector of ``spec``, the ``i``-th session started here;
        ``owner`` names this instance in the leases (default: the consumer name, else host and pid);
        ``passes`` runs the trackers' full passes (SourceRunner)."""
        if settings.capture_lease_ms <= 1000 * settings.capture_poll_s:
            raise ValueError("capture_lease_ms must be longer than capture_poll_s, or leases lapse between renewals")
        self.redis = redis
        self.settings = settings
        self.faces = faces
        self.detectors = detectors
        self.passes = passes
        self.owner = owner or settings.consumer_name or default_consumer_name()
        self.poll_s = settings.capture_poll_s
        self.lease_ms = settings.capture_lease_ms
        self.running: dict[str, _Running] = {}
        self._skip: dict[str, tuple[bytes, float]] = {}  # session -> (entry, monotonic time to retry it)
        self._started = 0
        self._free_since: dict[str, float] = {}  # a session nobody holds -> since when (monotonic), as seen here
        self._wake = asyncio.Event()
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)
        self._set_status = redis.register_script(_SET_STATUS)
        self._heartbeat = redis.register_script(_HEARTBEAT)

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set, then stop the runners and hand the leases back.

        Cancelled (or failing), it stops its runners but leaves the leases to expire, as a dead
        instance would.
        """
        log.info("session_watcher_start", owner=self.owner, poll_s=self.poll_s, lease_ms=self.lease_ms)
        relay = asyncio.create_task(self._relay(stop))
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.poll()
                except TRANSIENT_ERRORS as e:
                    log.warning("registry_unavailable", owner=self.owner, error=f"{type(e).__name__}: {e}")
                await self._fence()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_s)
        except BaseException:
            await self._halt()
            raise
        finally:
            relay.cancel()
        await self._hand_back()
        log.info("session_watcher_stop", owner=self.owner)

    async def _relay(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wake.set()

    async def poll(self) -> None:
        """One round: reap runners that ended, follow the registry, renew leases, share the sessions."""
        entries = await self._entries()
        ended = [run for run in self.running.values() if run.task.done()]
        for run in ended:
            await self._ended(run)
        if ended:  # a file that ended left the registry: it is not to be taken again from the entries read before
            entries = await self._entries()
        for run in list(self.running.values()):
            if entries.get(run.session_id) != run.entry:
                await self._stop(run)
                await self._hand(run, ENDED, f"stopped: {describe(run.runner.counts)}", owner=self.owner)
                log.info("session_stopped", session=run.session_id, user=run.user_id, owner=self.owner)
        for run in list(self.running.values()):
            if await self._renew(run, *live_status(run.runner)):
                run.renewed_at = time.monotonic()
            else:
                log.warning("lease_lost", session=run.session_id, user=run.user_id, owner=self.owner)
                await self._stop(run)
        now = time.monotonic()
        self._skip = {s: (e, t) for s, (e, t) in self._skip.items() if entries.get(s) == e and t > now}
        await self._share(entries)

    async def _entries(self) -> dict[str, bytes]:
        return {k.decode(): v for k, v in (await self.redis.hgetall(CAPTURE_SESSIONS)).items()}

    # -- sharing --------------------------------------------------------------------------------------

    async def _share(self, entries: dict[str, bytes]) -> None:
        """Announce this instance, hand back one session above the fair share, take free ones up to it."""
        sessions = list(entries)
        live, leases = await self._heartbeat(
            keys=[CAPTURE_INSTANCES, *map(capture_lease, sessions)], args=[self.owner, self.lease_ms]
        )
        instances = {i.decode() for i in live} | {self.owner}
        holders = {s: h.decode() if h else None for s, h in zip(sessions, leases, strict=True)}
        now = time.monotonic()
        self._free_since = {s: self._free_since.get(s, now) for s, h in holders.items() if h is None}
        countable = [s for s, h in holders.items() if h is not None or s not in self._skip]
        share = min(self.settings.capture_max_sessions, -(-len(countable) // len(instances)))
        held = Counter(h for h in holders.values() if h in instances)
        if len(self.running) > share and any(held[i] < share for i in instances - {self.owner}):
            await self._give_one(share, len(instances))
        for session_id, entry in entries.items():
            if len(self.running) >= self.settings.capture_max_sessions:
                break
            if holders[session_id] is not None or session_id in self.running or session_id in self._skip:
                continue
            if len(self.running) < share:
                await self._take(session_id, entry)
            elif now - self._free_since[session_id] >= self.lease_ms / 1000:  # nobody else runs it
                await self._take(session_id, entry, keep_until=now + self.settings.capture_retry_s)

    async def _give_one(self, share: int, instances: int) -> None:
        """Hand back the newest session taken here (not one kept), for an instance below its share."""
        now = time.monotonic()
        run = next((r for r in reversed(self.running.values()) if r.keep_until <= now), None)
        if run is None:
            return
        await self._stop(run)
        detail = f"handed back by {self.owner} (its share: {share} of the sessions, {instances} instances)"
        await self._hand(run, "", detail, owner="")
        log.info("session_handed_back", session=run.session_id, user=run.user_id, owner=self.owner, share=share)

    # -- starting -------------------------------------------------------------------------------------

    async def _take(self, session_id: str, entry: bytes, keep_until: float = 0.0) -> None:
        try:
            user_id, spec = self._spec(session_id, entry)
        except SourceError as e:  # the same for every instance: say so, and do not try again for a while
            self._skip[session_id] = (entry, time.monotonic() + self.settings.capture_retry_s)
            log.warning("session_source_invalid", session=session_id, error=str(e))
            if user_id := _user_of(entry):
                await self._set_status(keys=[session_key(user_id, session_id)], args=[FAILED, str(e), ""])
            return
        lease = capture_lease(session_id)
        if not await self.redis.set(lease, self.owner, nx=True, px=self.lease_ms):
            return  # another instance runs it
        self._started += 1
        stop = asyncio.Event()
        runner = SourceRunner(spec, self.detectors(spec, self._started - 1), self.faces.for_session(session_id),
                              reconnect_s=self.settings.capture_reconnect_s, passes=self.passes,
                              late_max_s=self.settings.detect_late_max_s)  # fmt: skip
        task = asyncio.create_task(runner.run(stop), name=f"session-{session_id}")
        task.add_done_callback(lambda _: self._wake.set())  # report an end or a failure at once
        run = _Running(session_id, user_id, entry, spec, runner, stop, task, time.monotonic(), keep_until)
        self.running[session_id] = run
        await self._set_status(keys=[run.record], args=[RUNNING, "starting", self.owner])
        log.info("session_taken", session=session_id, user=user_id, source=spec.name, owner=self.owner)

    def _spec(self, session_id: str, entry: bytes) -> tuple[str, SourceSpec]:
        """The user and source of a registry entry; the entry names the session and user, not the source."""
        try:
            value = json.loads(entry)
            user_id, source = value["user_id"], value["source"]
        except (ValueError, TypeError, KeyError):
            raise SourceError(f"malformed registry entry {entry[:200]!r}") from None
        if not (isinstance(user_id, str) and user_id and isinstance(source, str)):
            raise SourceError(f"malformed registry entry {entry[:200]!r}")
        spec = parse_source(source)
        return user_id, replace(spec, session=session_id, user=user_id, fps=spec.fps or self.settings.capture_fps)

    # -- ending -------------------------------------------------------------------------------------

    async def _ended(self, run: _Running) -> None:
        """A runner that returned by itself: a file read to its end, or a source that failed."""
        del self.running[run.session_id]
        error = asyncio.CancelledError("cancelled") if run.task.cancelled() else run.task.exception()
        if error is None and run.spec.finite:
            log.info("session_ended", session=run.session_id, user=run.user_id, **vars(run.runner.counts))
            await self._hand(run, ENDED, describe(run.runner.counts), owner=self.owner, remove=True)
            return
        if isinstance(error, SourceError):
            detail = str(error)
        elif error is not None:
            detail = f"{type(error).__name__}: {error}"
        else:  # a camera or a stream does not end by itself
            detail = f"{run.spec.name} stopped giving frames after {describe(run.runner.counts)}"
        log.warning("session_failed", session=run.session_id, user=run.user_id, error=detail)
        self._skip[run.session_id] = (run.entry, time.monotonic() + self.settings.capture_retry_s)
        await self._hand(run, FAILED, detail, owner=self.owner)

    async def _stop(self, run: _Running) -> None:
        """Stop a runner and forget it (its lease and status are the caller's)."""
        self.running.pop(run.session_id, None)
        run.stop.set()
        with contextlib.suppress(Exception):  # it failed while stopping: nothing more to do with it
            await run.task

    async def _renew(self, run: _Running, state: str, detail: str) -> bool:
        """Renew ``run``'s lease and, when it is still this instance's, write the session's status.

        Two scripts, not one: the lease is in the slot of ``{capture}`` and the record among its user's keys,
        in another slot of a cluster. The lease is renewed first, for a whole lease, so the status written
        just after is its holder's: no other instance can take the lease in between.
        """
        if not await self._hold(keys=[capture_lease(run.session_id)], args=[self.owner, self.lease_ms]):
            return False
        await self._set_status(keys=[run.record], args=[state, detail, self.owner])
        return True

    async def _hand(self, run: _Running, state: str, detail: str, owner: str, remove: bool = False) -> bool:
        """Give the lease back with a last status (only while it is still ours): the lease renewed, the status
        written, then the lease deleted (with the registry entry, when ``remove``: the same slot). Stopped
        half-way, the lease expires as a dead instance's does, and the status is still its holder's last."""
        lease = capture_lease(run.session_id)
        if not await self._hold(keys=[lease], args=[self.owner, self.lease_ms]):
            return False
        await self._set_status(keys=[run.record], args=[state, detail, owner])
        released = await self._release(
            keys=[lease, CAPTURE_SESSIONS], args=[self.owner, run.session_id, run.entry if remove else b""]
        )
        return bool(released)

    async def _fence(self) -> None:
        """Stop the runners whose lease could not be renewed for a whole lease: it may be another's now."""
        stale = time.monotonic() - self.lease_ms / 1000
        for run in list(self.running.values()):
            if run.renewed_at < stale and not run.task.done():
                log.warning("lease_not_renewed", session=run.session_id, user=run.user_id, owner=self.owner)
                await self._stop(run)

    async def _halt(self) -> None:
        """Stop every runner without a word to Redis (cancelled, or Redis failed us)."""
        runs = list(self.running.values())
        self.running.clear()
        for run in runs:
            run.stop.set()
        await asyncio.gather(*(run.task for run in runs), return_exceptions=True)

    async def _hand_back(self) -> None:
        """Shutting down: stop the runners and give their leases back, so another instance takes over now
        (and leave the instances, so that the others' shares grow at once)."""
        runs = list(self.running.values())
        await self._halt()
        try:
            await self.redis.zrem(CAPTURE_INSTANCES, self.owner)
        except TRANSIENT_ERRORS as e:  # it drops out of the instances after a lease
            log.warning("instance_not_removed", owner=self.owner, error=f"{type(e).__name__}: {e}")
        for run in runs:
            try:
                await self._hand(run, "", f"handed back by {self.owner} (shutting down)", owner="")
            except TRANSIENT_ERRORS as e:  # the lease expires by itself
                log.warning("lease_not_released", session=run.session_id, error=f"{type(e).__name__}: {e}")


def _user_of(entry: bytes) -> str:
    """The user id of a registry entry, or "" if it has none."""
    try:
        user_id = json.loads(entry).get("user_id")
    except (ValueError, AttributeError):
        return ""
    return user_id if isinstance(user_id, str) else ""
