"""Load: 8 concurrent streams at 10 fps for 60 s through the whole system on this machine.

Every service runs as a real process, as deployed (tests/processes.py's ``System``): a private
redis-server with AOF on and one for raw frames that keeps nothing on disk, the model server, the
capture service reading 8 looping copies of the sample video at 10 fps each in real time (newest-frame
mode, as cameras run), 2 inference workers, the recommender (a model trained into a temporary folder
first, or a copy of EMOTUNE_RECOMMENDER_MODEL_DIR's) and the gateway, with one WebSocket subscriber per
stream's user in this process, so the whole path through to subscribers is loaded.

After a warm-up (10 s), over the measured window (60 s):

- held frame rate: frames processed per stream per second against the 10 asked, from capture's
  per-source counters (read, over the cap, dropped because detection was busy, processed);
- consumer lag of ``inference`` on emotune:faces and ``recommender`` on emotune:emotions, sampled
  every second and summed over the streams' shards (XINFO GROUPS of each: lag = not yet delivered,
  pending = delivered, not acknowledged);
- end-to-end latency, capture to emotion event (the event's created_at_us minus the frame's
  captured_at_us) and capture to subscriber (receipt at the WebSocket client), p50/p99;
- drops: crops evicted from emotune:faces unread (``emotune:stats:emotune:{sN}:faces`` dropped, every shard), frames
  capture dropped, crops that never got an event, events a subscriber never received;
- resident memory (VmRSS) of every process at the start and the end of the window, checked against a
  bound: growth at most 30 MB or 10% of the start, whichever is larger.

Then capture stops and the rest must drain: nothing pending, every crop scored, every event delivered.
CPU over the window, per process and for the whole machine (/proc), tells what other jobs took: the
run waits for a quiet machine first and measures again when others took a noticeable share.

The 8 sources are 8 copies of the one video file, each starting at another point of it (stream i at
frame i/8 of the way through, looping): independent cameras do not cut, fill and empty in step, while 8
copies in lockstep make every cut and every empty scene cost all 8 streams a full Haar pass in the
same 100 ms. ``BENCH_LOAD_LOCKSTEP=1`` runs them in step instead. Capture labels its metrics by file
name, so distinct names give per-stream counters (``video:stream3.mp4``, session ``stream3``, user
``load3``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import redis

from bench.fanout import Subscriber, accounts
from bench.metrics import cpu_s, machine_cpu_s, metric, metric_samples, rss_mb
from bench.pipeline import QUIET, SOURCES_ONLY, VIDEO
from bench.sizes import SMOKE, size
from bench.videos import shifted_copy
from emotune_common.shards import shard_streams
from emotune_common.streams import EMOTIONS, FACES, dead_letter_stream, stats_key
from tests.processes import (
    ROOT,
    System,
    free_port,
    group_totals,
    python_module,
    start_model_server,
    stream_shards,
    wait_until,
)

STREAMS = size("BENCH_LOAD_STREAMS", 8, 2)
FPS = 10.0
WORKERS = 2
LOCKSTEP = bool(size("BENCH_LOAD_LOCKSTEP", 0, 0))
CAPTURE_PROCESSES = size("BENCH_LOAD_CAPTURE_PROCESSES", 2, 2)  # the streams split between them
SECONDS = size("BENCH_LOAD_SECONDS", 60.0, 3.0)
WARMUP_S = size("BENCH_LOAD_WARMUP_S", 10.0, 1.0)
RSS_BOUND_MB = 30.0  # a process passes when it grew by at most this much ...
RSS_BOUND_FRACTION = 0.10  # ... or by at most this share of its size at the start
DRAIN_S = 60.0  # after capture stops, how long the rest may take to finish
QUIET_LOAD = 1.5  # the final figures wait for a 1-minute load average at most this (other jobs finished)
QUIET_OTHERS_PCT = 20.0  # ... and other jobs taking at most this much of a core during the window
QUIET_WAIT_S = size("BENCH_LOAD_QUIET_WAIT_S", 900.0, 0.0)
RELIABILITY_JSON = ROOT / "reliability" / "results" / "load.json"
GROUPS = {"inference": FACES, "recommender": EMOTIONS}  # each over all of its shards
LATENCIES = {
    "capture_to_event": "capture to emotion event",
    "capture_to_subscriber": "capture to WebSocket subscriber",
    "capture_to_crop": "of which capture to crop (waiting for and running detection)",
    "crop_to_event": "of which crop to event (queue, inference, model server)",
}
COUNTERS = {  # capture's per-source counters
    "read": "emotune_capture_frames_read_total",
    "over_cap": "emotune_capture_frames_skipped_total",
    "dropped": "emotune_capture_frames_dropped_total",
    "processed": "emotune_capture_frames_processed_total",
    "faces": "emotune_capture_faces_total",
    "detect_s": "emotune_capture_detect_seconds_sum",  # wall time of detection (and tracking), thread pool included
}


@dataclass
class Tail:
    """Every crop and emotion event written, read as they come, every shard: emotune:faces is trimmed to its
    bound (each shard to 2,000 by default) during a long run, so reading it at the end could miss early crops."""

    crops: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # crop id -> (session, captured, created)
    events: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # event id -> (crop id, captured, created)
    entries_by_user: Counter = field(default_factory=Counter)  # emotion entries (duplicates too) by user
    entries: int = 0
    _after: dict[str, str] = field(default_factory=dict)  # a shard's stream -> the last entry read of it

    def read(self, client: redis.Redis) -> None:
        from emotune.v1 import messages_pb2
        from emotune_common.codec import decode

        for stream, kind in ((FACES, messages_pb2.FaceCrop), (EMOTIONS, messages_pb2.EmotionEvent)):
            for name in shard_streams(stream, stream_shards()):
                while chunk := client.xrange(name, min="(" + self._after.get(name, "0-0"), count=1000):
                    self._after[name] = chunk[-1][0].decode()
                    self._add(stream, [decode(fields, kind) for _, fields in chunk])

    def _add(self, stream: str, messages: list) -> None:
        for m in messages:
            h = m.header
            if stream == FACES:
                self.crops[h.id] = (h.session_id, h.captured_at_us, h.created_at_us)
            else:
                self.events.setdefault(h.id, (m.crop_id, h.captured_at_us, h.created_at_us))
                self.entries_by_user[h.user_id] += 1
                self.entries += 1

    def unanswered(self) -> int:
        """Crops without an event yet."""
        return len(self.crops.keys() - {crop for crop, _, _ in self.events.values()})


def _groups(client: redis.Redis) -> dict[str, dict]:
    """lag (entries not yet delivered to the group) and pending (delivered, not acknowledged) per group, each
    summed over every shard of its stream; lag is None when Redis cannot tell it for some shard (after a trim),
    and the backlog then counts the shards it can tell."""
    out = {}
    for group, stream in GROUPS.items():
        totals = group_totals(client, stream, group) or {"lag": 0, "pending": 0, "unknown_lag": 0}
        lag = None if totals["unknown_lag"] else totals["lag"]
        out[group] = {"lag": lag, "pending": totals["pending"], "backlog": totals["lag"] + totals["pending"]}
    return out


def _per_source(capture_ports: list[int]) -> dict[str, dict[str, float]]:
    """Capture's per-source counters, over every capture process (each runs its own sources)."""
    counts: dict[str, dict[str, float]] = {}
    for port in capture_ports:
        for key, name in COUNTERS.items():
            for labels, value in metric_samples(port, name) or []:
                counts.setdefault(labels["source"], {})[key] = value
    return counts


def _snapshot(client: redis.Redis, capture_ports: list[int], pids: dict[str, int]) -> dict:
    stats: Counter = Counter()  # every shard's counters of emotune:faces, summed
    for name in shard_streams(FACES, stream_shards()):
        stats.update({k.decode(): int(v) for k, v in client.hgetall(stats_key(name)).items()})
    return {"t": time.monotonic(), "wall_us": time.time_ns() // 1000, "sources": _per_source(capture_ports),
            "rss": {n: rss_mb(p) for n, p in pids.items()}, "cpu": {n: cpu_s(p) for n, p in pids.items()},
            "bench_cpu": time.process_time(), "machine": machine_cpu_s(), "faces_stats": dict(stats),
            "loadavg": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(values)
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1), "max_ms": round(float(a.max()), 1)}  # fmt: skip


def measure(recommender_models: Path, workdir: Path, seconds: float = SECONDS, warmup_s: float = WARMUP_S,
            streams: int = STREAMS, fps: float = FPS, workers: int = WORKERS, appendfsync: str = "always",
            drain_s: float = DRAIN_S, captures: int = CAPTURE_PROCESSES) -> dict:  # fmt: skip
    """Run the whole system, over private Redis servers (the main one with AOF on, fsync ``appendfsync``), with
    ``streams`` looping sources at ``fps`` split between ``captures`` capture processes for ``warmup_s`` +
    ``seconds``, then let it drain; the figures (see the module's docstring)."""
    system = System(workdir, recommender_models=recommender_models, appendonly=True, appendfsync=appendfsync)
    return asyncio.run(_measure(system, seconds, warmup_s, streams, fps, workers, drain_s, captures))


async def _measure(system: System, seconds: float, warmup_s: float, streams: int, fps: float, workers: int,
                   drain_within: float, captures: int) -> dict:  # fmt: skip
    workdir, url = system.workdir, system.redis.url
    client = redis.Redis.from_url(url)
    users = [f"load{i}" for i in range(streams)]
    (videos := workdir / "video").mkdir(exist_ok=True)
    sources = []
    for i in range(streams):
        shifted_copy(VIDEO, videos / f"stream{i}.mp4", 0.0 if LOCKSTEP else i / streams)
        sources.append(f"video:{videos / f'stream{i}.mp4'}?fps={fps:g}&loop=1&session=stream{i}&user={users[i]}")
    subs: list[Subscriber] = []
    try:
        system.start_redis()
        model = start_model_server(workdir / "modelserver", poll_seconds=1.0, env=QUIET)
        system.services["modelserver"] = model.service
        system.model_server = model.target
        system.start_recommender(EMOTUNE_METRICS_PORT=str(free_port()))
        system.start_gateway()
        for i in range(workers):
            system.start_worker(f"inference-w{i}", EMOTUNE_CONSUMER_NAME=f"w{i}")
        shards = stream_shards()  # the services get this environment
        wait_until(lambda: (group_totals(client, FACES, "inference") or {}).get("shards") == shards, 60,
                   "the inference group on every shard")  # fmt: skip
        system.wait_recommender(120)
        wait_until(lambda: system.check() or metric(system.gateway_port, "emotune_gateway_subscribers") is not None,
                   60, "the gateway answering")  # fmt: skip
        wait_until(lambda: (group_totals(client, EMOTIONS, "recommender") or {}).get("shards") == shards, 60,
                   "the recommender's group on every shard")  # fmt: skip

        keys = await accounts(url, users)
        base = f"ws://127.0.0.1:{system.gateway_port}/v1/users"
        subs = [Subscriber(u, f"{base}/{u}/events/ws?key={keys[u]}") for u in users]
        await asyncio.gather(*(s.open() for s in subs))
        gateway_port = system.gateway_port
        await asyncio.to_thread(wait_until, lambda: metric(gateway_port, "emotune_gateway_subscribers") == streams, 30,
                                "the subscriptions")  # fmt: skip

        capture = [system.start_capture(f"capture-{i}" if i else "capture", **SOURCES_ONLY,
                                        EMOTUNE_CAPTURE_SOURCES=" ".join(sources[i::captures]))
                   for i in range(captures)]  # fmt: skip
        ports = [c.ops for c in capture]
        await asyncio.to_thread(wait_until, lambda: system.check() or len(_per_source(ports)) == streams, 60,
                                "every source read")  # fmt: skip
        pids = {name: s.process.pid for name, s in system.services.items()}
        pids["redis"] = int(client.info("server")["process_id"])
        tail, series = Tail(), []
        started = time.monotonic()

        def sample() -> None:
            tail.read(client)
            series.append({"t": round(time.monotonic() - started, 2), **_groups(client),
                           "rss": {n: rss_mb(p) for n, p in pids.items()}})  # fmt: skip

        async def sample_until(deadline: float) -> None:
            while time.monotonic() < deadline:
                await asyncio.to_thread(sample)
                system.check()
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))

        await sample_until(started + warmup_s)
        first = await asyncio.to_thread(_snapshot, client, ports, pids)
        await sample_until(first["t"] + seconds)
        last = await asyncio.to_thread(_snapshot, client, ports, pids)
        in_window = [s for s in series if first["t"] - started <= s["t"] <= last["t"] - started]

        for c in capture:
            c.stop()
        drain_started = time.monotonic()

        def drained() -> bool:
            tail.read(client)
            groups = _groups(client)
            received = Counter(s.user_id for s in subs for _, text in s.received if '"type":"emotion"' in text)
            return (all(g["backlog"] == 0 for g in groups.values()) and tail.unanswered() == 0
                    and all(received[u] >= tail.entries_by_user[u] for u in users))  # fmt: skip

        try:
            await asyncio.to_thread(wait_until, drained, drain_within, "draining")
            drain_s = round(time.monotonic() - drain_started, 1)
        except TimeoutError:
            drain_s = None
        after_drain = _groups(client)
        dead_letters = {s: sum(client.xlen(dead_letter_stream(name)) for name in shard_streams(s, shards))
                        for s in GROUPS.values()}  # fmt: skip
        await asyncio.gather(*(s.close() for s in subs))
    except Exception as e:
        raise RuntimeError(f"{e!r}; the services' logs end:\n{system.logs(1500)}") from e
    finally:
        for s in subs:
            if s.task is not None and not s.task.done():
                s.task.cancel()
        client.close()
        system.stop()
    return _figures({
        "streams": streams, "fps": fps, "workers": workers, "captures": captures, "seconds": seconds,
        "warmup_s": warmup_s,
        "first": first, "last": last, "series": in_window, "tail": tail, "subs": subs, "users": users,
        "drain_s": drain_s, "after_drain": after_drain, "dead_letters": dead_letters,
    })  # fmt: skip


def _figures(r: dict) -> dict:
    first, last, tail = r["first"], r["last"], r["tail"]
    elapsed = last["t"] - first["t"]
    fps = r["fps"]

    per_stream = []
    for i in range(r["streams"]):
        source = f"video:stream{i}.mp4"
        a, b = first["sources"].get(source, {}), last["sources"].get(source, {})
        delta = {k: int(b.get(k, 0) - a.get(k, 0)) for k in COUNTERS if k != "detect_s"}
        detect_s = b.get("detect_s", 0) - a.get("detect_s", 0)
        per_stream.append({"stream": f"stream{i}", **delta, "processed_fps": round(delta["processed"] / elapsed, 2),
                           "held": round(delta["processed"] / elapsed / fps, 3),
                           "detect_ms": round(1000 * detect_s / max(1, delta["processed"]), 1)})  # fmt: skip
    processed_fps = [s["processed_fps"] for s in per_stream]

    lag = {}
    for group in GROUPS:
        values = [s[group] for s in r["series"]]
        lag[group] = {
            "stream": GROUPS[group],
            "shards": stream_shards(),  # every figure summed over them
            "max_lag": max((v["lag"] or 0 for v in values), default=0),
            "max_pending": max((v["pending"] for v in values), default=0),
            "max_backlog": max((v["backlog"] for v in values), default=0),
            "mean_backlog": round(float(np.mean([v["backlog"] for v in values])), 1) if values else 0,
            "end_backlog": values[-1]["backlog"] if values else 0,
            "lag_unknown_samples": sum(v["lag"] is None for v in values),
            "after_drain": r["after_drain"][group],
        }

    window = (first["wall_us"], last["wall_us"])
    in_window = [(crop, captured, created) for crop, captured, created in tail.events.values()
                 if window[0] <= captured <= window[1]]  # fmt: skip
    to_event = [(created - captured) / 1000 for _, captured, created in in_window]
    to_crop = [(tail.crops[crop][2] - captured) / 1000 for crop, captured, _ in in_window if crop in tail.crops]
    crop_to_event = [(created - tail.crops[crop][2]) / 1000 for crop, _, created in in_window if crop in tail.crops]
    to_subscriber, delivered, other = [], Counter(), Counter()
    for s in r["subs"]:
        for at_us, text in s.received:
            event = json.loads(text)
            if event["type"] != "emotion":
                other[event["type"]] += 1
                continue
            delivered[s.user_id] += 1
            if window[0] <= (captured := event["data"]["captured_at_us"]) <= window[1]:
                to_subscriber.append((at_us - captured) / 1000)
    expected = tail.entries_by_user
    missing = sum(max(0, expected[u] - delivered[u]) for u in r["users"])

    crops_with_event = {crop for crop, _, _ in tail.events.values()}
    stats = last["faces_stats"]
    drops = {
        "faces_stream_dropped": stats.get("dropped", 0),
        "faces_stream_trimmed": stats.get("trimmed", 0),
        "capture_frames_dropped": sum(s["dropped"] for s in per_stream),
        "capture_frames_dropped_pct": round(
            100 * sum(s["dropped"] for s in per_stream) / max(1, sum(s["read"] - s["over_cap"] for s in per_stream)), 1
        ),
        "crops": len(tail.crops),
        "crops_without_event": len(tail.crops.keys() - crops_with_event),
        "events": len(tail.events),
        "duplicate_event_entries": tail.entries - len(tail.events),
        "dead_letters": r["dead_letters"],
    }

    memory = {}
    for name, start in first["rss"].items():
        end = last["rss"][name]
        allowed = max(RSS_BOUND_MB, RSS_BOUND_FRACTION * start)
        points = [(s["t"], s["rss"][name]) for s in r["series"]]
        slope = float(np.polyfit([t for t, _ in points], [m for _, m in points], 1)[0]) * 60 if len(points) > 2 else 0.0
        memory[name] = {"start_mb": start, "end_mb": end, "max_mb": max([end, *(m for _, m in points)]),
                        "growth_mb": round(end - start, 1), "allowed_mb": round(allowed, 1),
                        "slope_mb_per_min": round(slope, 2), "ok": end - start <= allowed}  # fmt: skip

    busy = last["machine"][0] - first["machine"][0]
    ours = {n: round(100 * (last["cpu"][n] - first["cpu"][n]) / elapsed, 1) for n in first["cpu"]}
    ours["bench (subscribers, sampling)"] = round(100 * (last["bench_cpu"] - first["bench_cpu"]) / elapsed, 1)
    cpu = {
        "cores": os.cpu_count(),
        "machine_busy_pct": round(100 * busy / elapsed, 1),  # of one core: 200 is both cores busy
        "by_process_pct": ours,
        "ours_pct": round(sum(ours.values()), 1),
        "others_pct": round(100 * busy / elapsed - sum(ours.values()), 1),
    }
    complete = (drops["crops_without_event"] == 0 and drops["faces_stream_dropped"] == 0 and missing == 0
                and r["drain_s"] is not None and sum(r["dead_letters"].values()) == 0)  # fmt: skip
    return {
        "streams": r["streams"], "fps_asked": fps, "inference_workers": r["workers"],
        "capture_processes": r["captures"], "seconds": round(elapsed, 1),
        "warmup_s": r["warmup_s"], "loadavg_window_start": first["loadavg"], "loadavg_window_end": last["loadavg"],
        "frame_rate": {"min_fps": min(processed_fps), "mean_fps": round(float(np.mean(processed_fps)), 2),
                       "max_fps": max(processed_fps), "held_min": round(min(processed_fps) / fps, 3)},
        "per_stream": per_stream,
        "lag": lag,
        "latency": {"capture_to_event": _percentiles(to_event), "capture_to_subscriber": _percentiles(to_subscriber),
                    "capture_to_crop": _percentiles(to_crop), "crop_to_event": _percentiles(crop_to_event)},
        "delivery": {"emotion_entries": tail.entries, "emotion_delivered": sum(delivered.values()), "missing": missing,
                     "other_events": dict(other),
                     "closed_by_gateway": sum(s.close_code not in (None, 1000) for s in r["subs"])},
        "drops": drops,
        "drain_s": r["drain_s"],
        "complete": complete,
        "memory_bound": f"growth at most {RSS_BOUND_MB:g} MB or {RSS_BOUND_FRACTION:.0%} of the start, the larger",
        "memory": memory,
        "memory_ok": all(m["ok"] for m in memory.values()),
        "cpu": cpu,
    }  # fmt: skip


def _wait_quiet(deadline: float) -> list[float]:
    """Wait (until ``deadline``) for a 1-minute load average at most QUIET_LOAD; the load average then."""
    while (load := os.getloadavg())[0] > QUIET_LOAD and time.monotonic() < deadline:
        print(f"load average {load[0]:.2f} > {QUIET_LOAD}: waiting for other jobs to finish", flush=True)
        time.sleep(60)
    return [round(x, 2) for x in os.getloadavg()]


def _recommender_models(folder: Path) -> Path:
    """The recommender's model folder: a copy of EMOTUNE_RECOMMENDER_MODEL_DIR's when that environment variable
    names one (the test suite's, trained once for its session), else one trained into ``folder`` (minutes)."""
    saved = os.environ.get("EMOTUNE_RECOMMENDER_MODEL_DIR")
    if saved and Path(saved).is_dir() and any(Path(saved).iterdir()):
        return Path(shutil.copytree(saved, folder))
    env = {**os.environ, "EMOTUNE_LOG_LEVEL": "WARNING", "EMOTUNE_RECOMMENDER_MODEL_DIR": str(folder)}
    trained = subprocess.run(python_module("emotune_recommender", "train"), cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=900)  # fmt: skip
    if trained.returncode != 0:
        raise RuntimeError(f"training the recommender failed: {trained.stderr[-2000:]}")
    return folder


def run(redis_url: str) -> dict:
    """Ignores ``redis_url``: the whole system gets private Redis servers, the main one with AOF on.

    The figures are meant for an otherwise idle machine: the run waits for a quiet load average first,
    and runs again when other jobs took more than QUIET_OTHERS_PCT of a core during the window (as long
    as QUIET_WAIT_S allows; the last run's figures say how much they took)."""
    workdir = Path(tempfile.mkdtemp(prefix="emotune-bench-load-"))
    try:
        models = _recommender_models(workdir / "recommender-models")
        deadline, attempt = time.monotonic() + QUIET_WAIT_S, 0
        while True:
            attempt += 1
            quiet = _wait_quiet(deadline)
            (rundir := workdir / f"run{attempt}").mkdir()
            result = measure(models, rundir, appendfsync="everysec")
            others = result["cpu"]["others_pct"]
            if others <= QUIET_OTHERS_PCT or time.monotonic() > deadline:
                break
            print(f"other jobs took {others}% of a core during the run: measuring again", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["loadavg_before_start"] = quiet
    result["runs"] = attempt
    result["lockstep"] = LOCKSTEP
    result["redis"] = "private redis-server, AOF on (appendfsync everysec, as deployed)"
    if not SMOKE:  # a smoke run's figures mean nothing
        RELIABILITY_JSON.parent.mkdir(parents=True, exist_ok=True)
        RELIABILITY_JSON.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _scaling(r: dict) -> str:
    """What limits the next stream, and what one more core of capture would give, from this run's CPU."""
    cpu, streams = r["cpu"], r["streams"]
    by = cpu["by_process_pct"]
    capture = sum(v for n, v in by.items() if n.startswith("capture"))
    scoring = sum(v for n, v in by.items() if n.startswith("inference") or n == "modelserver")
    rest = cpu["ours_pct"] - capture - scoring
    parts = {"capture (detection)": capture, "scoring": scoring, "the rest": rest}
    biggest = max(parts, key=parts.get)
    return (
        f"Where the CPU goes, per stream at {r['fps_asked']:g} fps: capture {capture / streams:.1f}% of a core, "
        f"scoring (workers and model server) {scoring / streams:.1f}%, the rest (Redis, recommender, gateway) "
        f"{rest / streams:.1f}%: {cpu['ours_pct'] / streams:.1f}% in all, so this machine's "
        f"{cpu['cores'] * 100}% holds about {cpu['cores'] * 100 / (cpu['ours_pct'] / streams):.0f} streams, and "
        f"{biggest} is {parts[biggest] / max(cpu['ours_pct'], 1e-9):.0%} of the work and limits the next step. "
        f"Capture processes share the sessions, so a core more of capture (a third core, or a second machine running "
        f"capture) holds about {100 / max(capture / streams, 1e-9):.0f} more streams' detection, and the scoring of "
        f"about {100 / max(scoring / streams, 1e-9):.0f} streams fits in a core of workers and model server."
    )


def markdown(r: dict) -> str:
    fr, lat, drops, cpu = r["frame_rate"], r["latency"], r["drops"], r["cpu"]
    streams = " ".join(f"{s['processed_fps']:.1f}" for s in r["per_stream"])
    lag_rows = [f"| `{g}` on {v['stream']} ({v.get('shards', 1)} shards) | {v['max_lag']} | {v['max_pending']} | "
                f"{v['max_backlog']} | {v['mean_backlog']} | {v['end_backlog']} | {v['after_drain']['backlog']} |"
                for g, v in r["lag"].items()]  # fmt: skip
    mem_rows = [f"| {n} | {m['start_mb']} | {m['end_mb']} | {m['growth_mb']:+} | {m['allowed_mb']} | "
                f"{m['slope_mb_per_min']:+} | {cpu['by_process_pct'].get(n, '')} | {'ok' if m['ok'] else 'OVER'} |"
                for n, m in r["memory"].items()]  # fmt: skip
    d = r["delivery"]
    return "\n".join([
        f"## Load: {r['streams']} streams at {r['fps_asked']:g} fps for {r['seconds']:.0f} s through the whole system",
        "",
        f"Real processes on this {cpu['cores']}-core machine: redis-server (AOF on), model server, "
        f"{r.get('capture_processes', 1)} capture process(es) sharing {r['streams']} looping sources of the sample "
        f"video ({'in lockstep' if r.get('lockstep') else 'each starting at another point of it'}) at "
        f"{r['fps_asked']:g} fps each (newest-frame mode), "
        f"{r['inference_workers']} inference workers, recommender, gateway with one WebSocket subscriber per stream's "
        f"user. Measured over {r['seconds']:.0f} s after a {r['warmup_s']:g} s warm-up; 1-minute load average "
        f"{r.get('loadavg_before_start', r['loadavg_window_start'])[0]} before starting, "
        f"{r['loadavg_window_end'][0]} at the end (our own load included). CPU over the window: "
        f"{cpu['machine_busy_pct']}% busy of {cpu['cores'] * 100}%, {cpu['ours_pct']}% ours, "
        f"{cpu['others_pct']}% other jobs.",
        "",
        f"Held frame rate: {fr['mean_fps']} frames/s processed per stream on average (min {fr['min_fps']}, "
        f"max {fr['max_fps']}) of {r['fps_asked']:g} asked, {fr['held_min']:.0%} held by the slowest; per stream: "
        f"{streams}. Capture dropped {drops['capture_frames_dropped']} frames "
        f"({drops['capture_frames_dropped_pct']}% of those under the cap) because detection was busy; detection "
        f"and tracking took {np.mean([s['detect_ms'] for s in r['per_stream']]):.1f} ms a frame (wall time).",
        "",
        "| latency | p50 | p99 | max | n |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {LATENCIES[name]} | {v['p50_ms']} ms | {v['p99_ms']} ms | {v['max_ms']} ms | {v['n']} |"
          for name, v in lat.items()),
        "",
        "| consumer group (summed over its shards) "
        "| max lag | max pending | max backlog | mean backlog | backlog at the end | after drain |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *lag_rows,
        "",
        f"Lost: {drops['faces_stream_dropped']} crops evicted unread from emotune:faces, "
        f"{drops['crops_without_event']} of {drops['crops']} crops without an event, {d['missing']} of "
        f"{d['emotion_entries']} emotion events not delivered to their subscriber, dead letters "
        f"{sum(drops['dead_letters'].values())}; drained in {r['drain_s']} s after capture stopped. "
        + ("Nothing lost." if r["complete"] else "INCOMPLETE."),
        "",
        _scaling(r),
        "",
        f"Resident memory (bound: {r['memory_bound']}):",
        "",
        "| process | start MB | end MB | growth | allowed | slope MB/min | CPU % of a core | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *mem_rows,
    ])  # fmt: skip
