"""The live path on the sample video: capture -> faces -> inference workers -> emotion events.

- Throughput: every frame of the video through detection and the model, as fast as they go, with
  1, 2 and 4 inference workers: frames/s and faces/s from the first capture to the last event, and
  end-to-end latency per face (capture timestamp to the event's entry in emotune:emotions, any shard).
- Live load: 4 concurrent streams of the video at 10 fps each in real time (newest-frame mode, as
  a camera runs) with 2 workers: latency p50/p99, frames held per stream, frames dropped.
- Baseline: the same frames through the `fer` package (FER(mtcnn=False).detect_emotions) in its
  own virtualenv (bench/.venv-fer), frames/s.

Everything runs as real processes on this machine: a private redis-server, the model server, the
capture service and the workers.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from bench.metrics import metric
from bench.sizes import SMOKE
from bench.videos import shifted_copy
from emotune_common.settings import default_data_dir
from emotune_common.streams import EMOTIONS, FACES
from tests.cluster import RedisCluster
from tests.processes import (
    RedisServer,
    Service,
    free_port,
    group_totals,
    python_module,
    shard_entries,
    shard_length,
    spawn,
    start_model_server,
    stop,
    stream_shards,
    sync_client,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = default_data_dir()
VIDEO = DATA_DIR / "video" / "short_hamilton_clip.mp4"
FER_PYTHON = ROOT / "bench" / ".venv-fer" / "bin" / "python"


#: Capture reads only its fixed sources and so ends with them (no uploads, no API sessions).
SOURCES_ONLY = {"EMOTUNE_CAPTURE_UPLOADS": "false", "EMOTUNE_CAPTURE_SESSIONS": "false"}
QUIET = {"EMOTUNE_LOG_LEVEL": "WARNING"}
LIVE_S = 8 if SMOKE else 30  # seconds of each live run
LIVE_WARMUP_S = 2 if SMOKE else 5  # its first seconds, left out of its steady latency


def start_workers(client: redis.Redis, env: dict, count: int) -> list[Service]:
    """Start ``count`` inference workers (consumers w0, w1, ...) and wait until their consumer group exists on
    every shard of emotune:faces."""
    pool = [spawn(f"inference-w{i}", python_module("emotune_inference"), {**env, "EMOTUNE_CONSUMER_NAME": f"w{i}"})
            for i in range(count)]  # fmt: skip
    shards = stream_shards()  # the workers get this environment
    wait_until(lambda: (group_totals(client, FACES, "inference") or {}).get("shards") == shards, 60,
               "the inference group on every shard")  # fmt: skip
    return pool


def all_scored(client: redis.Redis, faces: int) -> bool:
    """Whether emotune:emotions holds ``faces`` events or more and nothing is pending, over every shard."""
    return shard_length(client, EMOTIONS) >= faces and group_totals(client, FACES, "inference")["pending"] == 0


def _events(client: redis.Redis) -> list[tuple[float, float]]:
    """Per event (every shard's, each once): its capture time (s) and its latency, the entry's time minus the
    capture time (ms). On one Redis every shard's entry ids are its clock."""
    from emotune.v1 import messages_pb2
    from emotune_common.codec import decode

    events, seen = [], set()
    for _, entry_id, fields in shard_entries(client, EMOTIONS):
        event = decode(fields, messages_pb2.EmotionEvent)
        if event.header.id in seen:
            continue
        seen.add(event.header.id)
        captured_ms = event.header.captured_at_us / 1000
        events.append((captured_ms / 1000, int(entry_id.split(b"-")[0]) - captured_ms))
    return events


def _percentiles(values: list[float]) -> dict:
    return {"p50_ms": round(float(np.percentile(values, 50)), 1), "p99_ms": round(float(np.percentile(values, 99)), 1)}


def _throughput(url: str, model: str, workers: int) -> dict:
    client = redis.Redis.from_url(url)
    client.flushall()
    env = {**QUIET, "REDIS_URL": url, "MODEL_SERVER": model}
    pool = start_workers(client, env, workers)
    capture = spawn("capture", python_module("emotune_capture", "serve"),
                    {**env, **SOURCES_ONLY, "EMOTUNE_CAPTURE_FPS": "0",
                     "EMOTUNE_CAPTURE_SOURCES": f"video:{VIDEO}?every_frame=1&realtime=0"})  # fmt: skip
    try:
        capture.process.wait(300)
        faces = shard_length(client, FACES)
        wait_until(lambda: all_scored(client, faces), 120, "every face scored")
    finally:
        stop(capture, *pool)
    events = _events(client)
    elapsed = max(c + ms / 1000 for c, ms in events) - min(c for c, _ in events)
    return {"workers": workers, "faces": faces, "frames": 275, "seconds": round(elapsed, 2),
            "frames_per_s": round(275 / elapsed, 1), "faces_per_s": round(faces / elapsed, 1),
            **_percentiles([ms for _, ms in events])}  # fmt: skip


def _live(url: str, model: str, workdir: Path, streams: int = 4, fps: float = 10, workers: int = 2) -> dict:
    """Live streams of the video, each starting at another point of it (as independent cameras, not in step),
    looping for ``LIVE_S`` over one Redis or a Redis Cluster (``url``). Latency is given over the whole run,
    and steady: the events of frames captured after the first ``LIVE_WARMUP_S`` (every source starting at
    once, each with a full pass on every frame until it finds a face, is not how a running system looks)."""
    client = sync_client(url)
    client.flushall()
    env = {**QUIET, "REDIS_URL": url, "MODEL_SERVER": model}
    pool = start_workers(client, env, workers)
    for i in range(streams):
        shifted_copy(VIDEO, workdir / f"stream{i}.mp4", i / streams)
    sources = " ".join(f"video:{workdir / f'stream{i}.mp4'}?fps={fps}&loop=1&session=stream{i}"
                       for i in range(streams))  # fmt: skip
    capture = spawn("capture", python_module("emotune_capture", "serve"),
                    {**env, **SOURCES_ONLY, "EMOTUNE_CAPTURE_SOURCES": sources,
                     "EMOTUNE_METRICS_PORT": str(metrics_port := free_port())})  # fmt: skip
    try:
        wait_until(lambda: metric(metrics_port, "emotune_capture_frames_read_total") is not None, 60, "capture")
        started = time.monotonic()
        time.sleep(LIVE_S)
        stop(capture)
        duration = time.monotonic() - started
        faces = shard_length(client, FACES)
        wait_until(lambda: shard_length(client, EMOTIONS) >= faces, 60, "every face scored")
    except BaseException:
        stop(capture)
        raise
    finally:
        stop(*pool)
    events = _events(client)
    start = min(c for c, _ in events)
    steady = [ms for c, ms in events if c >= start + LIVE_WARMUP_S]
    frames: dict[str, set[int]] = {}
    from emotune.v1 import messages_pb2
    from emotune_common.codec import decode

    for _, _, fields in shard_entries(client, FACES):
        crop = decode(fields, messages_pb2.FaceCrop)
        frames.setdefault(crop.header.session_id, set()).add(crop.header.captured_at_us)
    return {"streams": streams, "fps_cap": fps, "workers": workers, "faces": faces,
            "frames_with_faces_per_stream_per_s": round(np.mean([len(v) for v in frames.values()]) / duration, 1),
            "capture_seconds": round(duration, 1), **_percentiles([ms for _, ms in events]),
            "warmup_s": LIVE_WARMUP_S, "steady": {"events": len(steady), **_percentiles(steady)}}  # fmt: skip


def _fer() -> dict:
    if not FER_PYTHON.exists():
        return {"error": f"{FER_PYTHON} missing: `make bench` installs it"}
    done = subprocess.run([str(FER_PYTHON), str(ROOT / "bench" / "fer_baseline.py"), str(VIDEO)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _recall() -> dict:
    """Faces the default detection finds against a full Haar pass on every frame (emotune_capture.recall)."""
    import cv2

    from emotune_capture.__main__ import tracker
    from emotune_capture.detector import FaceDetector
    from emotune_capture.recall import behind_boxes, boxes, measure, score, video_frames
    from emotune_capture.settings import CaptureSettings
    from emotune_common.sources import parse_source

    cv2.setNumThreads(1)
    settings = CaptureSettings()
    frames = video_frames(VIDEO)[:: 9 if SMOKE else 1]
    reference, full_ms = boxes(FaceDetector(settings.detector_options()), frames)
    r = measure(reference, tracker(settings, parse_source(f"video:{VIDEO}")), frames)
    late = tracker(settings, parse_source(f"video:{VIDEO}"))
    live = score(reference, *behind_boxes(late, frames, 2, live=True), late.full_passes)
    cv2.setNumThreads(-1)  # back to OpenCV's default for what follows
    return {"frames": r.frames, "reference_faces": r.reference_faces, "recall": round(r.recall, 4),
            "steady_recall": round(r.steady_recall, 4), "extra_per_frame": round(r.extra_per_frame, 3),
            "ms_per_frame": round(r.ms_per_frame, 1), "full_pass_ms": round(full_ms, 1),
            "full_passes": r.full_passes, "recall_late": round(live.recall, 4),
            "extra_per_frame_late": round(live.extra_per_frame, 3)}  # fmt: skip


def run(redis_url: str) -> dict:
    """Ignores ``redis_url``: each run flushes its Redis, so a private redis-server it is."""
    workdir = Path(tempfile.mkdtemp(prefix="emotune-bench-"))
    redis_server = RedisServer(free_port(), workdir / "redis", appendonly=False)
    model_server = None
    try:
        redis_server.start()
        model_server = start_model_server(workdir / "modelserver", poll_seconds=1.0, env=QUIET)
        url, model = redis_server.url, model_server.target
        result = {"fer": _fer(), "recall": _recall()}
        result["throughput"] = [_throughput(url, model, n) for n in ((1,) if SMOKE else (1, 2, 4))]
        result["live"] = _live(url, model, workdir, streams=1 if SMOKE else 4)
        cluster = RedisCluster(workdir / "cluster", masters=3, replicas=1)
        cluster.start()
        try:  # the same live run, the streams on a Redis Cluster instead
            (on_cluster := workdir / "on-cluster").mkdir()
            result["live_cluster"] = _live(cluster.url, model, on_cluster, streams=1 if SMOKE else 4)
        finally:
            cluster.stop()
    finally:
        if model_server is not None:
            model_server.stop()
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    best = max(result["throughput"], key=lambda r: r["frames_per_s"])
    fer_fps = result["fer"].get("frames_per_s")
    result["ratio_frames_per_s_vs_fer"] = round(best["frames_per_s"] / fer_fps, 2) if fer_fps else None
    result["ratio_faces_per_s_vs_fer"] = (
        round(best["faces_per_s"] / result["fer"]["faces_per_s"], 2) if fer_fps else None
    )
    return result


def markdown(r: dict) -> str:
    fer = r["fer"]
    rows = [f"| emotune, {t['workers']} worker(s) | {t['frames_per_s']} | {t['faces']} | {t['faces_per_s']} | "
            f"{t['p50_ms']} / {t['p99_ms']} ms |" for t in r["throughput"]]  # fmt: skip
    live, lc, rc = r["live"], r["live_cluster"], r["recall"]
    return "\n".join([
        "## Pipeline: capture -> inference -> emotion events, on the sample video",
        "",
        "All 275 frames as fast as they go through capture (its default detection: full Haar passes when due, "
        "tracking between) and the model, as real processes; latency here includes the queue of a burst.",
        "",
        "| path | frames/s | faces found | faces/s | latency p50 / p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        f"| `fer` FER(mtcnn=False).detect_emotions | {fer.get('frames_per_s', '-')} | {fer.get('faces', '-')} | "
        f"{fer.get('faces_per_s', '-')} | |",
        "",
        f"Ratio, best emotune configuration over `fer`: {r['ratio_frames_per_s_vs_fer']}x in frames/s, "
        f"{r['ratio_faces_per_s_vs_fer']}x in faces/s.",
        "",
        f"Live: {live['streams']} streams of the video (each starting at another point of it, looping) at "
        f"{live['fps_cap']:.0f} fps each in real time for {live['capture_seconds']} s, {live['workers']} workers. "
        f"Steady latency is over the frames captured after the first {live['warmup_s']} s, when every source "
        "starts at once and runs a full pass on every frame until it finds a face:",
        "",
        "| run | faces | frames with a face held per stream | latency p50 / p99, whole run | steady p50 / p99 |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {name} | {x['faces']} | {x['frames_with_faces_per_stream_per_s']}/s | {x['p50_ms']} / {x['p99_ms']} ms | "
          f"{x['steady']['p50_ms']} / {x['steady']['p99_ms']} ms |"
          for name, x in (("one Redis", live), ("Redis Cluster, 3 masters + 3 replicas, WAIT for one", lc))),
        "",
        f"Faces found: capture's default detection, against a full Haar pass on every one of {rc['frames']} frames "
        f"({rc['reference_faces']} faces, {rc['full_pass_ms']} ms a frame on one thread), found {rc['recall']:.1%} of "
        f"them ({rc['steady_recall']:.1%} of those the pass also finds in the frame before or after), at "
        f"{rc['ms_per_frame']} ms a frame with {rc['full_passes']} full passes; {rc['extra_per_frame']} boxes a frame "
        "the full pass has not. With each pass back 2 frames late, as a live source's passes come back beside its "
        f"frames, and no frame waiting: {rc['recall_late']:.1%}, {rc['extra_per_frame_late']} extra boxes a frame "
        "(`python -m emotune_capture.recall` breaks it down by rule).",
        "",
        "Floors: throughput at least 4x `fer`'s (aim 6x); p99 latency at most 100 ms with 4 streams at 10 fps "
        "(aim 50 ms); at least 95% of the full pass's faces found (aim 99%).",
    ])  # fmt: skip
