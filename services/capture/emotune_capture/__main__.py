"""The capture service, and a command line to run a source by hand.

python -m emotune_capture serve                      # the service: EMOTUNE_CAPTURE_SOURCES, uploads, sessions
python -m emotune_capture run video:clip.mp4 --user alice    # one source by hand, with progress
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from dataclasses import replace
from typing import Any

import typer
from tqdm import tqdm

from emotune.v1 import messages_pb2
from emotune_capture import proxy
from emotune_capture.detector import FaceDetector
from emotune_capture.live import Counts, SourceRunner
from emotune_capture.passes import PassPool
from emotune_capture.sessions import SessionWatcher
from emotune_capture.settings import CaptureSettings
from emotune_capture.tracker import FaceTracker
from emotune_capture.uploads import upload_handler
from emotune_common.consumer import Handler
from emotune_common.lifecycle import run_service, serve_ops, stop_on_signals
from emotune_common.logs import configure_logging, get_logger
from emotune_common.redis_client import connect, connect_or_reuse
from emotune_common.sharded import ShardedProducer, shard_consumers
from emotune_common.shards import session_stream
from emotune_common.sources import SourceError, SourceSpec, parse_source
from emotune_common.streams import FACES, FRAMES

app = typer.Typer(add_completion=False, help="emotune capture: frames in, 48x48 face crops out to emotune:faces")
log = get_logger("emotune.capture")


def tracker(settings: CaptureSettings, spec: SourceSpec, index: int = 0) -> FaceTracker:
    """Detection for the ``index``-th source, ``spec``: full passes when due (tracker.py), tracking
    between; sources take turns for their first full pass."""
    return FaceTracker(FaceDetector(settings.detector_options(spec.min_face)), settings.detect_every,
                       min_score=settings.track_min_score, offset=index, every_empty=settings.detect_every_empty,
                       keep_missed=settings.track_keep_missed, shed_at=settings.detect_shed_at)  # fmt: skip


async def _serve(settings: CaptureSettings, stop: asyncio.Event) -> None:
    specs = [parse_source(s, settings.capture_session, settings.capture_user) for s in settings.capture_sources.split()]
    specs = [s if s.fps else replace(s, fps=settings.capture_fps) for s in specs]
    redis = connect(settings.redis_url)
    faces = ShardedProducer(redis, FACES, settings.stream.shards, settings.faces_maxlen)
    reconnect_s = settings.capture_reconnect_s
    passes = PassPool(settings.detect_threads, settings.detect_nice)
    jobs: list[tuple[str, Coroutine[Any, Any, Any]]] = [
        (spec.name, SourceRunner(spec, tracker(settings, spec, i), faces.for_session(spec.session),
                                 reconnect_s=reconnect_s, passes=passes,
                                 late_max_s=settings.detect_late_max_s).run(stop))
        for i, spec in enumerate(specs)
    ]  # fmt: skip
    frames_redis = connect_or_reuse(settings.frames_url(), redis, settings.redis_url)
    if settings.capture_uploads:
        consumers = shard_consumers(frames_redis, FRAMES, "capture", lambda shard: _uploads(settings, faces, shard),
                                    settings.stream, consumer=settings.consumer_name or None,
                                    message_type=messages_pb2.Frame)  # fmt: skip
        jobs.append(("uploads", _essential("uploads", asyncio.gather(*(c.run(stop) for c in consumers)), stop)))
    if settings.capture_sessions:
        watcher = SessionWatcher(redis, settings, faces, lambda spec, i: tracker(settings, spec, len(specs) + i),
                                 passes=passes)  # fmt: skip
        jobs.append(("sessions", _essential("sessions", watcher.run(stop), stop)))
    if not jobs:
        raise typer.BadParameter(
            "nothing to capture: set EMOTUNE_CAPTURE_SOURCES, "
            "or EMOTUNE_CAPTURE_UPLOADS=true or EMOTUNE_CAPTURE_SESSIONS=true"
        )

    async def ready() -> bool:
        return bool(await redis.ping()) and bool(await frames_redis.ping())

    ops = asyncio.create_task(serve_ops(settings.metrics_port, ready, stop))
    proxy.install(settings.stream_policy())  # before any source opens: every stream goes through it
    try:
        results = await asyncio.gather(*(job for _, job in jobs), return_exceptions=True)
    finally:
        proxy.uninstall()
    failed = [name for (name, _), result in zip(jobs, results, strict=True) if isinstance(result, Exception)]
    stop.set()
    await ops
    await redis.aclose()
    if frames_redis is not redis:
        await frames_redis.aclose()
    if failed:  # each was logged when it failed; a supervisor should see the service fail too
        raise SystemExit(f"failed: {', '.join(failed)}")


def _uploads(settings: CaptureSettings, faces: ShardedProducer, shard: int) -> Handler:
    """The upload handler of one shard of emotune:frames: its crops go to the same shard of emotune:faces.
    A detector of its own: the shards' handlers detect at once, each in a thread, and one OpenCV cascade
    is not safe to share between threads."""
    detector = FaceDetector(settings.detector_options(settings.capture_uploads_min_face))
    return upload_handler(detector, faces.shard(shard), settings.max_frame_pixels)


async def _essential(name: str, job: Awaitable[Any], stop: asyncio.Event) -> None:
    """Uploads and sessions are the service: when one fails, the whole service stops (and is restarted)."""
    try:
        await job
    except Exception:
        log.exception("component_failed", component=name)
        stop.set()
        raise


@app.command()
def serve() -> None:
    """Run the capture service with the settings of the environment."""
    try:
        run_service(_serve, CaptureSettings(), "capture")
    except SourceError as e:
        raise typer.BadParameter(str(e)) from None


@app.command()
def run(
    source: str = typer.Argument(..., help="webcam:0, video:PATH[?loop=1], images:DIR, rtsp://..., http://..."),
    session: str = typer.Option("cli", help="Session the crops belong to"),
    user: str = typer.Option("cli", help="User the crops belong to"),
    fps: float = typer.Option(0.0, help="Frame-rate cap (0: the source's own rate)"),
    realtime: bool = typer.Option(True, help="Pace a video file at its own frame rate"),
    publish: bool = typer.Option(True, help="Publish crops to emotune:faces (off: only count)"),
    every_frame: bool = typer.Option(False, help="Detect every frame of a file instead of the newest one"),
) -> None:
    """Run one source by hand, with a progress bar of frames, faces and drops."""
    settings = CaptureSettings()
    configure_logging("WARNING", json=False)
    try:
        spec = parse_source(source, session, user)
    except SourceError as e:
        raise typer.BadParameter(str(e), param_hint="SOURCE") from None
    spec = replace(
        spec, fps=fps or spec.fps, realtime=realtime and spec.realtime, every_frame=every_frame or spec.every_frame
    )
    proxy.install(settings.stream_policy())

    async def go() -> Counts:
        redis = connect(settings.redis_url) if publish else None
        faces = ShardedProducer(redis, FACES, settings.stream.shards, settings.faces_maxlen) if redis else None
        producer = faces.for_session(spec.session) if faces else None
        bar = tqdm(desc=spec.name, unit="frame")

        def show(counts: Counts) -> None:
            bar.update(counts.processed - bar.n)
            bar.set_postfix(faces=counts.faces, skipped=counts.skipped, dropped=counts.dropped)

        stop = asyncio.Event()
        stop_on_signals(stop)
        try:
            runner = SourceRunner(spec, tracker(settings, spec), producer, show, settings.capture_reconnect_s,
                                  PassPool(settings.detect_threads, settings.detect_nice),
                                  settings.detect_late_max_s)  # fmt: skip
            return await runner.run(stop)
        finally:
            bar.close()
            if redis:
                await redis.aclose()

    try:
        counts = asyncio.run(go())
    except SourceError as e:
        raise typer.BadParameter(str(e), param_hint="SOURCE") from None
    where = f" published to {session_stream(FACES, spec.session, settings.stream.shards)}" if publish else ""
    typer.echo(
        f"{counts.processed} frames processed ({counts.read} read, {counts.skipped} over the cap, "
        f"{counts.dropped} dropped), {counts.faces} faces{where}"
    )


if __name__ == "__main__":
    app()
