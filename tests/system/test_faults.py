"""Fault injection on the whole system as processes: real Redis (AOF, fsync always), the model server,
two inference workers, the recommender, the gateway with a WebSocket subscriber, capture on the video.

Each test runs capture, breaks one part while crops flow (and slips two entries of random bytes into
emotune:faces), stops capture, lets the system drain, and checks what must hold after any fault:

- every crop in emotune:faces (every shard) has exactly one emotion event once duplicates (same event id) are
  removed;
- nothing stays pending in any consumer group;
- the dead-letter streams hold the poison and nothing else;
- the subscriber, which reconnects and resumes from its last event id, got exactly the events of its
  user that the streams hold, in order, none twice.

What each fault cost (time to recover, duplicates, losses) goes to reliability/results/faults.json.
The tests share one system and run in order; the ledger is cumulative, so each test checks everything
that happened so far.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest

from emotune_common.streams import EMOTIONS, FACES, RECOMMENDATIONS

from ..conftest import ROOT
from ..processes import PATIENCE_S, shard_length
from .faults import CLAIM_IDLE_MS, INFERENCE, RECOMMENDER, USER, FaultSystem, Subscriber, Tail, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RESULTS = ROOT / "reliability" / "results" / "faults.json"
WARM_UP_EVENTS = 20  # events seen before the fault: the flow is steady


class Results:
    """The records of the module's faults, written after each (so a failing run still leaves its figures)."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def add(self, record: dict) -> None:
        self.records = [r for r in self.records if r["fault"] != record["fault"]] + [record]
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "generated_by": "tests/system/test_faults.py",
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "settings": {
                "capture": "video:short_hamilton_clip.mp4?fps=10&loop=1 (about 7 crops a second)",
                "inference_workers": 2,
                "inference_batch_size": 8,
                "claim_idle_ms": CLAIM_IDLE_MS,
                "block_ms": 100,
                "max_deliveries": 5,
                "redis": "private, appendonly yes, appendfsync always",
            },
            "faults": self.records,
        }
        RESULTS.write_text(json.dumps(document, indent=2) + "\n")


@pytest.fixture(scope="module")
def results() -> Results:
    return Results()


@pytest.fixture(scope="module")
def system(tmp_path_factory, recommender_models) -> Iterator[FaultSystem]:
    s = FaultSystem(tmp_path_factory.mktemp("faults"), recommender_models=recommender_models)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def subscriber(system) -> Iterator[Subscriber]:
    """Connected before any event exists, from the start of the streams: it must end up with all of them."""
    sub = Subscriber(system.gateway_url, USER, system.api_key).start()
    yield sub
    sub.stop()


def begin(system: FaultSystem) -> Tail:
    """Capture running, a steady flow of events, and two poison entries on their way to the dead letters;
    returns the last crop of every shard before this run."""
    since_faces, since_events = system.last_id(FACES), system.last_id(EMOTIONS)
    system.start_capture()
    system.wait_new(EMOTIONS, since_events, WARM_UP_EVENTS)
    system.inject_poison()
    return since_faces


def finish(system: FaultSystem, subscriber: Subscriber, results: Results, since_faces: Tail, record: dict) -> None:
    """Stop capture, drain, check everything, and write the record (before asserting, so it is kept)."""
    system.stop_capture()
    _, took = system.settle()
    subscriber.wait_caught_up(system, USER)
    ledger = system.ledger()
    window = ledger.window(since_faces)
    problems = ledger.problems(system.poison) + subscriber.check(ledger, USER)
    down = [p for p in system.services.values() if not p.alive and p.name != "capture"]
    problems += [f"{p.name} died (exit {p.process.returncode}): {p.tail(500)}" for p in down]
    emotions, recommendations = ledger.user_entries(USER)
    record.update(
        lost=window["lost"],
        duplicates_removed=window["duplicates_removed"],
        ok=not problems,
        problems=problems,
    )
    record["details"].update(
        crops=window["crops"],
        crop_entries=window["crop_entries"],
        events_distinct=window["events"],
        event_entries=window["event_entries"],
        drain_after_capture_stopped_s=round(took["nothing_pending_s"], 2),
        poison_dead_lettered_so_far=len(system.poison),
        subscriber={
            "events_received_so_far": len(subscriber.snapshot()),
            "emotion_entries_of_user_so_far": len(emotions),
            "mood_and_recommendation_entries_of_user_so_far": len(recommendations),
            "connections_so_far": len(subscriber.connected),
        },
    )
    results.add(record)
    assert not problems, "\n".join(problems) + "\n" + system.logs()


def rounded(seconds: float) -> float:
    return round(seconds, 2)


def test_an_inference_worker_killed_mid_batch(system, subscriber, results):
    since = begin(system)
    kill = system.kill_holding("w1", FACES, INFERENCE, ["w1"])  # it dies mid-batch (its consumer of every shard)
    killed, held = kill.at, kill.held
    tail = system.last_id(FACES)

    def held_done() -> bool:
        return not held & system.pending_ids(FACES, INFERENCE)

    recovered = (
        wait_until(held_done, PATIENCE_S, "the dead worker's crops to be claimed and scored") and time.monotonic()
    )
    system.wait_new(EMOTIONS, system.last_id(EMOTIONS), 10)  # one worker carries the flow
    alone = time.monotonic()
    system.start_worker("w1")  # back to two (the same consumer names: it first re-reads its own pending)
    finish(system, subscriber, results, since, {
        "fault": "inference worker killed (SIGKILL) mid-batch",
        "what_happened": (
            f"worker w1 of 2 was killed holding {len(held)} unacknowledged crops; the other worker claimed them "
            f"after {CLAIM_IDLE_MS} ms idle and scored them; w1 was started again later"
        ),
        "time_to_recover_s": rounded(recovered - killed),
        "details": {
            "held_by_the_dead_worker": len(held),
            "faces_tail_at_kill": tail,
            "recovery": "from the kill to the last crop the dead worker held being acknowledged by the other",
            "ran_on_one_worker_s": rounded(alone - killed),
            "stops_to_catch_it_holding_a_batch": kill.attempts,
        },
    })  # fmt: skip


def test_the_model_server_down_for_10_s(system, subscriber, results):
    since = begin(system)
    faces_before = system.last_id(FACES)
    stopped = time.monotonic()
    system.stop_model()  # SIGTERM: down
    time.sleep(0.5)  # what was scored before the stop is written by now
    events_before = system.last_id(EMOTIONS)
    # Started again so that it answers 10 s after the stop, or as soon as it can: loading TensorFlow and the
    # model takes its own time (measured at the first start), which is part of the outage anyway.
    delay = max(0.0, 10 - system.model_start_s)

    def restart() -> float:
        time.sleep(delay)
        return system.start_model()  # the same port

    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(restart)
        serving = system.wait_grpc(system.model_port, PATIENCE_S)
        first = system.wait_new(EMOTIONS, events_before, 1, within=120)  # the workers got through again
        tail_at_first = system.last_id(FACES)
        backlog = "the backlog"
        wait_until(
            lambda: system.backlog_done(FACES, INFERENCE, tail_at_first, set(system.poison)), PATIENCE_S, backlog
        )
        drained = time.monotonic()
        restart_s = starting.result(timeout=240)
    crops_while_down = system.entries_after(FACES, faces_before, tail_at_first)
    finish(system, subscriber, results, since, {
        "fault": "model server stopped (SIGTERM), started again on the same port 10 s later or as soon as it loads",
        "what_happened": (
            f"capture kept publishing ({crops_while_down} crops while it was down); the workers retried behind their "
            "circuit breakers, holding their batches unacknowledged; once it answered, the backlog was scored"
        ),
        "time_to_recover_s": rounded(drained - serving),
        "details": {
            "down_s": rounded(serving - stopped),
            "model_server_start_s": rounded(restart_s),
            "first_event_after_serving_s": rounded(first - serving),
            "backlog_scored_after_serving_s": rounded(drained - serving),
            "crops_while_down": crops_while_down,
            "recovery": "from the model server answering again to the backlog (every crop published until the first "
            "new event) being scored",
        },
    })  # fmt: skip


def test_redis_restarted_under_load(system, subscriber, results):
    since = begin(system)
    before = {s: system.last_id(s) for s in (FACES, EMOTIONS, RECOMMENDATIONS)}
    lengths = {s: shard_length(system.client, s, system.shards) for s in (FACES, EMOTIONS, RECOMMENDATIONS)}
    killed = time.monotonic()
    system.redis.process.kill()  # SIGKILL: a crash; with appendfsync always no acknowledged write is lost
    system.redis.process.wait(10)
    system.redis.process = None
    time.sleep(2)  # down for a moment, as a restart on a loaded host
    restarted = time.monotonic()
    system.redis.start()  # the same port and directory: it loads its append-only file
    up = time.monotonic()
    kept = {s: shard_length(system.client, s, system.shards) >= lengths[s] and system.holds(before[s])
            for s in lengths}  # fmt: skip
    tail_at_up = system.last_id(FACES)
    first_crop = system.wait_new(FACES, tail_at_up, 1, within=120)
    first_event = system.wait_new(EMOTIONS, system.last_id(EMOTIONS), 1, within=120)
    wait_until(lambda: system.backlog_done(FACES, INFERENCE, tail_at_up, set(system.poison)), PATIENCE_S, "the backlog")
    drained = time.monotonic()
    capture_alive = system.services["capture"].alive
    record = {
        "fault": "Redis killed (SIGKILL) and restarted under load (AOF on, appendfsync always)",
        "what_happened": (
            "Redis crashed with capture, two workers, the recommender and the gateway's reader on it, stayed down "
            "2 s and came back from its append-only file; every client backed off and reconnected"
        ),
        "time_to_recover_s": rounded(first_event - up),
        "details": {
            "down_s": rounded(up - killed),
            "redis_start_s": rounded(up - restarted),
            "writes_before_the_crash_kept": kept,
            "first_crop_after_restart_s": rounded(first_crop - up),
            "first_event_after_restart_s": rounded(first_event - up),
            "backlog_scored_after_restart_s": rounded(drained - up),
            "capture_survived": capture_alive,
            "recovery": "from Redis answering again to the first new emotion event",
        },
    }
    assert all(kept.values()), f"writes acknowledged before the crash are gone: {kept}"
    assert capture_alive, f"capture died when Redis went away:\n{system.services['capture'].tail()}"
    finish(system, subscriber, results, since, record)


def test_the_recommender_killed_and_restarted(system, subscriber, results):
    since = begin(system)
    mood_before = system.mood_updated_at()
    assert system.recommendations_status() == 200, "the gateway's recommendations do not answer before the fault"
    consumer = f"{socket.gethostname()}-{system.services['recommender'].process.pid}"  # its default name
    asking, answers = threading.Event(), []  # a page that keeps asking for recommendations meanwhile

    def ask() -> None:
        while not asking.is_set():
            answers.append((time.monotonic(), system.recommendations_status()))
            asking.wait(0.5)

    pool = ThreadPoolExecutor(1)
    pool.submit(ask)
    try:
        kill = system.kill_holding("recommender", EMOTIONS, RECOMMENDER, [consumer], within=30)  # mid-batch
        killed = kill.at
        time.sleep(2)
        system.start_recommender()  # the same port and models; a new consumer name (the host and the new pid)
        up = time.monotonic()
        tail_at_up = system.last_id(EMOTIONS)
        wait_until(
            lambda: system.backlog_done(EMOTIONS, RECOMMENDER, tail_at_up), PATIENCE_S, "the recommender's backlog"
        )
        caught_up = time.monotonic()
        wait_until(lambda: any(at > up and code == 200 for at, code in answers), PATIENCE_S, "recommendations again")
    finally:
        asking.set()
        pool.shutdown()
    refused = sum(1 for at, code in answers if killed < at < up and code != 200)
    rest_back = next(at for at, code in answers if at > up and code == 200)
    wait_until(lambda: system.mood_updated_at() > mood_before, PATIENCE_S, "the session's mood to move again")
    finish(system, subscriber, results, since, {
        "fault": "recommender killed (SIGKILL) and restarted",
        "what_happened": (
            "the recommender died while emotion events flowed; restarted 2 s later, it loaded its model, "
            f"claimed what the dead process held after {CLAIM_IDLE_MS} ms idle and read the events it had missed"
        ),
        "time_to_recover_s": rounded(caught_up - killed),
        "details": {
            "held_by_the_dead_recommender": len(kill.held),
            "stops_to_catch_it_holding_a_batch": kill.attempts,
            "restart_to_serving_s": rounded(up - killed - 2),
            "backlog_handled_after_serving_s": rounded(caught_up - up),
            "gateway_recommendations_back_after_serving_s": rounded(rest_back - up),
            "gateway_recommendations_refused_while_down": refused,
            "recovery": "from the kill to every emotion event up to the restart being handled (none pending)",
        },
    })  # fmt: skip


def test_the_gateway_killed_while_a_subscriber_is_connected(system, subscriber, results):
    since = begin(system)
    connections = len(subscriber.connected)
    subscriber.flap()  # after the restart the client also drops its first new connection after one event
    killed = system.kill("gateway")
    time.sleep(2)
    system.start_gateway()
    up = time.monotonic()
    wait_until(lambda: len(subscriber.connected) >= connections + 2, PATIENCE_S, "the subscriber to reconnect twice")
    after = wait_until(
        lambda: [r for r in subscriber.snapshot() if r.connection >= connections], PATIENCE_S, "an event"
    )
    reconnected = subscriber.connected[connections][0]
    replayed = [r for r in after if r.connection == connections]
    wall = time.time() - time.monotonic()  # entry ids are Redis's wall clock, in milliseconds
    window = (int((killed + wall) * 1000), int((reconnected + wall) * 1000))
    emotions, recommendations = system.ledger().user_entries(USER)
    while_away = [i for _, i in emotions + recommendations if window[0] <= int(i.split("-")[0]) <= window[1]]
    finish(system, subscriber, results, since, {
        "fault": "gateway killed (SIGKILL) and restarted while a WebSocket subscriber is connected",
        "what_happened": (
            "the subscriber lost its socket, retried until the gateway was back 2 s later, resumed from its last "
            "event id (replayed what it missed), dropped that connection itself after one event and resumed again"
        ),
        "time_to_recover_s": rounded(after[0].at - killed),
        "details": {
            "gateway_start_s": rounded(up - killed - 2),
            "reconnected_after_s": rounded(reconnected - killed),
            "first_event_after_reconnect_s": rounded(after[0].at - reconnected),
            "events_published_while_away": len(while_away),
            "events_on_the_first_connection_after_restart": len(replayed),
            "recovery": "from the kill to the subscriber's first event on a new connection",
        },
    })  # fmt: skip
