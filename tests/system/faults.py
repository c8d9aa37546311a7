"""The whole emotune system as processes, for fault injection, and the ledger that says what was lost.

:class:`FaultSystem` (a :class:`tests.processes.System`) runs a private Redis (AOF on, fsync always)
and one for raw frames, a model server, two inference workers, the recommender, the gateway and,
during each run, capture on the real video; each part can be killed, stopped and started again on the
same port. :class:`Subscriber` is a WebSocket client of the gateway in a thread of its own that does
what the README's client does: reconnect, and resume from its last event id. :meth:`FaultSystem.settle`
waits for the pipeline to drain and checks what must hold after any fault (:class:`Ledger`).

Every stream is read over all of its shards (emotune_common.shards). Entry ids are comparable within one
shard only, so an entry is an :data:`Entry` (its shard's stream name, its id), and a position in a stream
is a :data:`Tail` (each shard's last entry id). The video's session has all its entries on its one shard.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field

import redis

from emotune.v1 import messages_pb2
from emotune_common.codec import DecodeError, decode
from emotune_common.keys import session_key
from emotune_common.shards import session_stream, shard_of, shard_stream, shard_streams
from emotune_common.streams import EMOTIONS, FACES, RECOMMENDATIONS, dead_letter_stream

from ..conftest import DATA_DIR
from ..processes import (
    PATIENCE_S,
    ModelServer,
    Service,
    System,
    free_port,
    start_model_server,
    stream_shards,
    wait_until,
)

VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"
USER, SESSION = "u1", "s1"
INFERENCE, RECOMMENDER = "inference", "recommender"
CLAIM_IDLE_MS = 1500

#: A stream entry: the name of its shard's stream (``emotune:{s3}:faces``) and its entry id.
Entry = tuple[str, str]
#: A position in a stream: each shard's stream name -> its last entry id (a shard not in it: at its start).
#: A plain entry id (``"0-0"``) is that position in every shard.
Tail = dict[str, str] | str


def entry_key(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, seq = text.split("-")
    return int(ms), int(seq)


def shard_name(entry: Entry) -> str:
    """What a stable sort of entries by shard sorts by: each shard's entries keep their order."""
    return entry[0]


def at(tail: Tail, name: str) -> str:
    """``tail``'s position in the shard stream ``name``."""
    return tail if isinstance(tail, str) else tail.get(name, "0-0")


def after(entry: Entry, tail: Tail) -> bool:
    """Whether ``entry`` came after ``tail`` in its shard."""
    return entry_key(entry[1]) > entry_key(at(tail, entry[0]))


# -- processes -------------------------------------------------------------------------------------


@dataclass
class FaultSystem(System):
    appendonly: bool = field(default=True, kw_only=True)
    model: ModelServer | None = None
    model_port: int = field(default_factory=free_port)
    poison: list[Entry] = field(default_factory=list)  # the poison added to emotune:faces (the session's shard)
    api_key: str = ""
    model_start_s: float = 0.0  # how long the model server took to answer, the first time
    _model_starts: int = 0
    _rest_session: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.model_server = f"127.0.0.1:{self.model_port}"
        self.shards = stream_shards()  # the services get this process's environment
        self.client = self._client(self.redis.port)
        self.frames_client = self._client(self.frames.port)

    @staticmethod
    def _client(port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=10, socket_connect_timeout=2)

    def env(self, **extra: str) -> dict[str, str]:
        return super().env(**{
            "EMOTUNE_STREAM_BLOCK_MS": "100",
            "EMOTUNE_STREAM_CLAIM_IDLE_MS": str(CLAIM_IDLE_MS),
            # no trimming: the ledger reads every crop and every event of the whole module
            "EMOTUNE_FACES_MAXLEN": "1000000",
            "EMOTUNE_EMOTIONS_MAXLEN": "1000000",
            "EMOTUNE_RECOMMENDATIONS_MAXLEN": "1000000",
            **extra,
        })  # fmt: skip

    # -- starting and stopping ---------------------------------------------------------------------

    def start(self) -> FaultSystem:
        self.start_redis()
        for name in ("w1", "w2"):  # all at once: they wait for each other by themselves
            self.start_worker(name, wait=False)
        self.start_recommender(wait=False)
        self.start_gateway(wait=False)
        self.api_key = self.create_user(USER)
        self.model_start_s = self.start_model()
        for name in ("w1", "w2"):
            self.wait_http(name, "/healthz", 90)
        self.wait_recommender(PATIENCE_S)
        self.wait_http("gateway", "/readyz", 90)
        return self

    def stop(self) -> None:
        super().stop()
        if self.model is not None:
            self.stop_model()
        self.client.close()
        self.frames_client.close()

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> float:
        """Send ``sig`` and wait for the process to end; returns the moment it was sent."""
        service = self.services[name]
        at = time.monotonic()
        service.process.send_signal(sig)
        service.process.wait(30)
        return at

    def kill_holding(
        self, name: str, stream: str, group: str, consumers: list[str], within: float = PATIENCE_S
    ) -> Killed:
        """SIGKILL ``name`` while it holds entries of ``stream`` that it has not acknowledged: SIGSTOP it when
        XPENDING shows some, look again, SIGKILL it if it still holds them (else SIGCONT and try again).
        After ``within`` seconds without catching it so, it is killed anyway (``held`` is then empty)."""
        service = self.services[name]
        deadline, attempts = time.monotonic() + within, 0

        def holding() -> set[Entry]:
            ids = set().union(*(self.pending_ids(stream, group, c) for c in consumers))
            return ids - set(self.poison)

        held: set[Entry] = set()
        while not held and time.monotonic() < deadline:
            if not holding():
                time.sleep(0.002)
                continue
            attempts += 1
            service.process.send_signal(signal.SIGSTOP)
            held = holding()
            if not held:
                service.process.send_signal(signal.SIGCONT)
        return Killed(self.kill(name), held, attempts)

    def start_worker(self, name: str, wait: bool = True, **env: str) -> Service:
        service = super().start_worker(name, EMOTUNE_CONSUMER_NAME=name, EMOTUNE_INFERENCE_BATCH_SIZE="8", **env)
        if wait:
            self.wait_http(name, "/healthz", 90)
        return service

    def start_recommender(self, wait: bool = True, **env: str) -> Service:
        service = super().start_recommender(**env)
        if wait:
            self.wait_recommender(PATIENCE_S)
        return service

    def start_gateway(self, wait: bool = True, **env: str) -> Service:
        service = super().start_gateway(**env)
        if wait:
            self.wait_http("gateway", "/readyz", 90)
        return service

    def start_capture(self, sessions: tuple[str, ...] = (SESSION,), **env: str) -> Service:
        """Capture on the looping video at 10 frames a second, a source a session: a steady flow of crops until
        stopped."""
        sources = " ".join(f"video:{VIDEO}?fps=10&loop=1&session={session}&user={USER}" for session in sessions)
        service = super().start_capture(
            EMOTUNE_CAPTURE_SOURCES=sources, EMOTUNE_CAPTURE_SESSIONS="false", EMOTUNE_CAPTURE_UPLOADS="false", **env,
        )  # fmt: skip
        self.wait_http("capture", "/readyz", 90)
        return service

    def stop_capture(self) -> None:
        """A graceful stop (SIGTERM): the frame in hand is published, then the set of crops is fixed."""
        service = self.services["capture"]
        assert service.alive, f"capture died:\n{service.tail()}"
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(60) == 0, f"capture failed:\n{service.tail()}"

    def start_model(self) -> float:
        """The model server on its fixed port (again); returns how long it took to answer."""
        started = time.monotonic()
        self._model_starts += 1
        self.model = start_model_server(self.workdir / f"modelserver-{self._model_starts}", port=self.model_port)
        return time.monotonic() - started

    def stop_model(self) -> None:
        assert self.model is not None
        self.model.stop()
        self.model = None

    # -- Redis views ---------------------------------------------------------------------------------

    def names(self, stream: str) -> list[str]:
        """Every shard's stream of ``stream``."""
        return shard_streams(stream, self.shards)

    def last_id(self, stream: str) -> Tail:
        """The last entry id of every shard of ``stream`` that has entries."""
        tail = {}
        for name in self.names(stream):
            if last := self.client.xrevrange(name, count=1):
                tail[name] = last[0][0].decode()
        return tail

    def entries_after(self, stream: str, since: Tail, upto: Tail = "+") -> int:
        """The entries of every shard of ``stream`` after ``since`` (up to ``upto``, inclusive)."""
        total = 0
        for name in self.names(stream):
            top = at(upto, name) if upto != "+" else "+"
            total += len(self.client.xrange(name, min=f"({at(since, name)}", max=top))
        return total

    def holds(self, tail: Tail) -> bool:
        """Whether every shard still holds its entry of ``tail`` (a dict): nothing written before it lost."""
        return all(self.client.xrange(name, entry_id, entry_id) for name, entry_id in tail.items())

    def wait_new(self, stream: str, since: Tail, count: int, within: float = PATIENCE_S) -> float:
        """Wait for ``count`` entries newer than ``since`` (over every shard); returns the moment they were seen."""
        wait_until(lambda: self.entries_after(stream, since) >= count, within, f"{count} new entries in {stream}")
        return time.monotonic()

    def pending_ids(self, stream: str, group: str, consumer: str | None = None) -> set[Entry]:
        """The entries of ``stream`` that ``group`` (``consumer`` of it) holds unacknowledged, over every shard."""
        out = set()
        for name in self.names(stream):
            try:
                rows = self.client.xpending_range(name, group, "-", "+", 100_000, consumername=consumer)
            except redis.ResponseError:  # NOGROUP: no consumer of the group has started on that shard yet
                continue
            out |= {(name, r["message_id"].decode()) for r in rows}
        return out

    def groups(self) -> dict[tuple[str, str], dict]:
        """Every consumer group of every stream (every shard): (stream, group) -> XINFO GROUPS row."""
        out = {}
        for key in self.client.scan_iter(_type="STREAM"):
            for g in self.client.xinfo_groups(key):
                out[(key.decode(), g["name"].decode())] = g
        return out

    def backlog_done(self, stream: str, group: str, upto: Tail, ignore: set[Entry] = frozenset()) -> bool:
        """Whether ``group`` was delivered every entry up to ``upto`` in each shard and holds none of them pending."""
        for name, last in ({n: at(upto, n) for n in self.names(stream)} if isinstance(upto, str) else upto).items():
            if entry_key(last) == (0, 0):
                continue
            info = next((g for g in self.client.xinfo_groups(name) if g["name"].decode() == group), None)
            if info is None or entry_key(info["last-delivered-id"]) < entry_key(last):
                return False
            rows = self.client.xpending_range(name, group, "-", last, 100_000)
            if {(name, r["message_id"].decode()) for r in rows} - ignore:
                return False
        return True

    def inject_poison(self, count: int = 2, seed: int = 0) -> list[Entry]:
        """Random bytes into emotune:faces (the session's shard, where its workers read its crops): one as a
        FaceCrop's payload, one with no payload field at all."""
        rng = random.Random(f"{seed}-{len(self.poison)}")
        name, ids = session_stream(FACES, SESSION, self.shards), []
        for i in range(count):
            junk = rng.randbytes(48 + rng.randrange(64))
            fields = {b"type": b"emotune.v1.FaceCrop", b"pb": junk} if i % 2 == 0 else {rng.randbytes(8): junk}
            try:
                decode(fields, messages_pb2.FaceCrop)
            except DecodeError:
                pass
            else:  # pragma: no cover - the seeds are fixed; this guards the test, not the system
                raise AssertionError("the poison decodes: pick another seed")
            ids.append((name, self.client.xadd(name, fields).decode()))
        self.poison.extend(ids)
        return ids

    def api(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """A call to the gateway's REST API as the user: (status, JSON body); status 0 when nothing answers."""
        request = urllib.request.Request(
            f"{self.gateway_url}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, {}
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return 0, {}

    def recommendations_status(self) -> int:
        """The HTTP status of the gateway's recommendations for an upload session of the user (the gateway asks
        the recommender over gRPC)."""
        if not self._rest_session:
            created, session = self.api("POST", f"/v1/users/{USER}/sessions", {"source": "upload"})
            assert created == 201, f"the gateway did not create a session: {created}"
            self._rest_session = session["id"]
        return self.api("GET", f"/v1/users/{USER}/sessions/{self._rest_session}/recommendations?k=5")[0]

    def mood_updated_at(self) -> int:
        value = self.client.hget(session_key(USER, SESSION, "mood"), "updated_at_us")
        return int(value) if value else 0

    # -- the ledger ------------------------------------------------------------------------------------

    def ledger(self) -> Ledger:
        def entries(stream: str) -> list[tuple[Entry, dict]]:
            return [((n, i.decode()), f) for n in self.names(stream) for i, f in self.client.xrange(n)]

        crops, poison_seen = {}, []
        for entry, fields in entries(FACES):
            try:
                crops[entry] = decode(fields, messages_pb2.FaceCrop).header.id
            except DecodeError:
                poison_seen.append(entry)
        events: dict[Entry, tuple[str, str, str]] = {}  # entry -> (crop id, event id, user)
        for entry, fields in entries(EMOTIONS):
            e = decode(fields, messages_pb2.EmotionEvent)
            events[entry] = (e.crop_id, e.header.id, e.header.user_id)
        recommendations = {}
        for entry, fields in entries(RECOMMENDATIONS):
            recommendations[entry] = decode(fields).header.user_id
        dead = {}
        for client in (self.client, self.frames_client):  # emotune:frames' dead letters are in the frames Redis
            for key in client.scan_iter("emotune:dlq:*"):
                dead[key.decode()] = [
                    {k.decode(): v.decode(errors="replace") for k, v in f.items() if k.startswith(b"dlq_")}
                    for _, f in client.xrange(key)
                ]
        return Ledger(crops, poison_seen, events, recommendations, dead, self.names(FACES))

    def settle(self, within: float = PATIENCE_S) -> tuple[Ledger, dict[str, float]]:
        """After capture stopped: wait until every crop has its event and nothing is pending in any group
        (the poison dead-lettered); returns the ledger and how long each took (from now)."""
        started = time.monotonic()
        took: dict[str, float] = {}

        def all_scored() -> bool:
            ledger = self.ledger()
            return not ledger.lost()

        wait_until(all_scored, within, "an emotion event for every crop", every=0.5)
        took["every_crop_scored_s"] = time.monotonic() - started

        def nothing_pending() -> bool:
            return all(int(g["pending"]) == 0 and not g.get("lag") for g in self.groups().values())

        wait_until(nothing_pending, within, f"no pending entries in any group: {self.groups()}", every=0.2)
        took["nothing_pending_s"] = time.monotonic() - started
        return self.ledger(), took


@dataclass
class Killed:
    at: float  # time.monotonic() of the SIGKILL
    held: set[Entry]  # the entries it held unacknowledged
    attempts: int  # how many times it was stopped to catch it holding some


@dataclass
class Ledger:
    """Everything in the streams, every shard: crops by entry, events by entry, dead letters by stream."""

    crops: dict[Entry, str]  # faces entry -> crop id
    poison_seen: list[Entry]  # faces entries that do not decode
    events: dict[Entry, tuple[str, str, str]]  # emotions entry -> (crop id, event id, user id)
    recommendations: dict[Entry, str]  # recommendations entry -> user id
    dead: dict[str, list[dict[str, str]]]  # dead-letter stream -> its entries' dlq_* fields
    faces: list[str]  # every shard's stream of emotune:faces

    def event_ids_by_crop(self) -> dict[str, set[str]]:
        by_crop: dict[str, set[str]] = defaultdict(set)
        for crop_id, event_id, _ in self.events.values():
            by_crop[crop_id].add(event_id)
        return by_crop

    def lost(self) -> set[str]:
        """Crop ids with no emotion event."""
        return set(self.crops.values()) - set(self.event_ids_by_crop())

    def window(self, since: Tail) -> dict[str, int]:
        """Counts for the crops added after ``since`` (of emotune:faces): crops, events, duplicates removed."""
        crop_ids = {c for i, c in self.crops.items() if after(i, since)}
        entries = [(c, e) for c, e, _ in self.events.values() if c in crop_ids]
        distinct = {e for _, e in entries}
        return {
            "crops": len(crop_ids),
            "crop_entries": sum(1 for i in self.crops if after(i, since)),
            "event_entries": len(entries),
            "events": len(distinct),
            "duplicates_removed": len(entries) - len(distinct),
            "lost": len(crop_ids - {c for c, _ in entries}),
        }

    def problems(self, poison: list[Entry]) -> list[str]:
        """What breaks the guarantees, in words (empty when all holds)."""
        out = []
        by_crop = self.event_ids_by_crop()
        crop_ids = set(self.crops.values())
        if lost := self.lost():
            out.append(f"{len(lost)} crops without an emotion event, e.g. {sorted(lost)[:3]}")
        if several := {c: ids for c, ids in by_crop.items() if len(ids) != 1}:
            out.append(f"{len(several)} crops with several distinct event ids, e.g. {list(several.items())[:2]}")
        if orphans := set(by_crop) - crop_ids:
            out.append(f"{len(orphans)} events of crops not in {FACES}, e.g. {sorted(orphans)[:3]}")
        dlqs = {dead_letter_stream(name) for name in self.faces}
        dead = [d for k in sorted(dlqs) for d in self.dead.get(k, [])]
        dead_faces = [(d.get("dlq_stream"), d.get("dlq_entry_id")) for d in dead]
        if sorted(dead_faces) != sorted(poison):
            healthy = set(dead_faces) - set(poison)
            out.append(
                f"the dead letters of {FACES}'s shards hold {len(dead_faces)} entries, the poison is {len(poison)}: "
                f"{len(healthy)} healthy crops dead-lettered "
                f"{[d for d in dead if (d.get('dlq_stream'), d.get('dlq_entry_id')) in healthy][:3]}"
                f", poison missing {sorted(set(poison) - set(dead_faces))}"
            )
        if others := {k: v for k, v in self.dead.items() if k not in dlqs and v}:
            out.append(f"other dead letters: { {k: v[:2] for k, v in others.items()} }")
        if sorted(self.poison_seen) != sorted(poison):
            out.append(f"undecodable entries in {FACES} {self.poison_seen} are not the poison {poison}")
        return out

    def user_entries(self, user: str) -> tuple[list[Entry], list[Entry]]:
        """The entries of ``user``'s emotion events and of their mood/recommendation events, shard by shard,
        each shard in order."""
        emotions = sorted((i for i, (_, _, u) in self.events.items() if u == user), key=shard_name)
        recommendations = sorted((i for i, u in self.recommendations.items() if u == user), key=shard_name)
        return emotions, recommendations


# -- the subscriber ------------------------------------------------------------------------------------


def event_entry(event: dict, user: str, shards: int) -> Entry:
    """The stream entry of an event a subscriber got, from its id (the gateway's cursor, see
    emotune_gateway.hub): per shard ``<emotions entry id>_<recommendations entry id>``, the shards in order
    joined by ``.``, a shard still at its start left empty (one part alone: the same in every shard). The
    event is on its session's shard (its user's without a session), and the cursor's part of that shard
    is the event's own entry: a subscriber gets each shard's events in order."""
    stream = EMOTIONS if event["type"] == "emotion" else RECOMMENDATIONS
    shard = shard_of(event.get("session_id") or user, shards)
    parts = event["id"].split(".")
    part = (parts * shards if len(parts) == 1 else parts)[shard] or "0-0_0-0"
    emotions, recommendations = part.split("_")
    return shard_stream(stream, shard), emotions if stream == EMOTIONS else recommendations


@dataclass
class Received:
    at: float  # time.monotonic() when it arrived
    connection: int  # which connection brought it (0: the first)
    event: dict
    entry: Entry  # its stream entry (see event_entry)


class Subscriber:
    """A WebSocket subscriber of one user's events, in a thread: it reconnects with its last event id.

    ``flap()`` makes it close its next connection itself after one event, as a client whose network
    drops twice would, so that it resumes from an event it got in a replay.
    """

    def __init__(self, base_url: str, user: str, key: str, start: str = "0-0_0-0", shards: int | None = None) -> None:
        self.user, self.shards = user, shards or stream_shards()
        self.url = f"{base_url.replace('http', 'ws', 1)}/v1/users/{user}/events/ws?key={key}"
        self.last = start
        self.received: list[Received] = []
        self.connected: list[tuple[float, str]] = []  # (when, the last event id it resumed from)
        self.dropped: list[tuple[float, str]] = []  # (when, why)
        self._flap = False
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="subscriber", daemon=True)

    def start(self, within: float = PATIENCE_S) -> Subscriber:
        self._thread.start()
        wait_until(lambda: self.connected, within, "the subscriber to connect")
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    def flap(self) -> None:
        self._flap = True

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    async def _run(self) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        while not self._stop.is_set():
            try:
                url = f"{self.url}&last_event_id={self.last}"
                async with connect(url, open_timeout=10, proxy=None, compression=None, max_size=None) as ws:
                    self.connected.append((time.monotonic(), self.last))
                    number, got = len(self.connected) - 1, 0
                    while not self._stop.is_set():
                        try:
                            text = await asyncio.wait_for(ws.recv(), PATIENCE_S)
                        except TimeoutError:
                            continue
                        event = json.loads(text)
                        with self._lock:
                            entry = event_entry(event, self.user, self.shards)
                            self.received.append(Received(time.monotonic(), number, event, entry))
                            self.last = event["id"]
                        got += 1
                        if self._flap and got == 1:
                            self._flap = False
                            self.dropped.append((time.monotonic(), "closed by the client after one event"))
                            break
            except (WebSocketException, OSError, TimeoutError) as e:
                self.dropped.append((time.monotonic(), f"{type(e).__name__}: {e}"))
                await asyncio.sleep(0.2)

    def check(self, ledger: Ledger, user: str) -> list[str]:
        """What the subscriber got against what the streams hold for its user: the same entries, each shard's
        in order (the shards' events interleave as they come)."""
        got = self.snapshot()
        emotions, recommendations = ledger.user_entries(user)
        # sorted by shard only (a stable sort): each shard's events in the order they came
        got_emotions = sorted((r.entry for r in got if r.event["type"] == "emotion"), key=shard_name)
        got_recommendations = sorted((r.entry for r in got if r.event["type"] != "emotion"), key=shard_name)
        out = []
        for what, expected, actual in (
            ("emotion", emotions, got_emotions),
            ("mood/recommendations", recommendations, got_recommendations),
        ):
            if actual != expected:
                missing = sorted(set(expected) - set(actual), key=lambda e: (e[0], entry_key(e[1])))
                extra = len(actual) - len(set(actual))
                first = next((i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b), None)
                out.append(
                    f"{what} events: got {len(actual)}, the streams hold {len(expected)}; {len(missing)} missing "
                    f"(e.g. {missing[:3]}), {extra} repeated, first difference at #{first}"
                )
        return out

    def caught_up(self, ledger: Ledger, user: str) -> bool:
        emotions, recommendations = ledger.user_entries(user)
        got = {r.entry for r in self.snapshot()}
        last = {name: (name, entry_id) for name, entry_id in emotions + recommendations}  # each shard's last
        return all(entry in got for entry in last.values())

    def wait_caught_up(self, system: FaultSystem, user: str, within: float = PATIENCE_S) -> None:
        """Wait until it has the last event of its user in every shard of both streams; the TimeoutError says
        what it lacks, how its connections went and what the services logged."""

        def detail() -> str:
            lacking = self.check(system.ledger(), user)
            return "\n".join([*lacking, f"connections {self.connected[-5:]}, drops {self.dropped[-5:]}", system.logs()])

        wait_until(lambda: self.caught_up(system.ledger(), user), within, "the subscriber to get every event",
                   detail=detail)  # fmt: skip
