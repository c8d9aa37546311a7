"""Running one source: a reader thread that never waits, and a detector that takes the newest frame.

The reader thread pulls frames from the source (paced for files, capped at ``fps``) and leaves the
newest in a one-slot mailbox. The detection task takes whatever is newest; a frame replaced before
detection got to it is dropped and counted. So a slow detector or a slow Redis never blocks the
camera, and latency stays bounded: the system always works on the most recent picture.

A stream (RTSP, HTTP) that stops after it played, its server gone or its connection cut, is opened
again by the reader thread: after 0.5 s, then backing off (doubling, at most 10 s a wait) for up to
``reconnect_s`` since it was lost; each opening goes through the egress guard again, as the first did.
Meanwhile :attr:`SourceRunner.lost` says why and how many attempts failed, and the runner goes on
once frames come again (``stream_lost``, ``stream_reconnected``). A stream that cannot be opened at
all, or whose opening is refused by ``EMOTUNE_STREAM_ALLOW``, fails at once: a wrong URL or a refused
address is no outage to wait out. Cameras and files are not reopened.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from emotune.v1 import messages_pb2
from emotune_capture import metrics
from emotune_capture.crops import Detects, crop_message
from emotune_capture.detector import Face
from emotune_capture.passes import PassPool, run_timed
from emotune_capture.sources import Pacer, native_fps, open_frames
from emotune_capture.tracker import FaceTracker, FullPass
from emotune_common.egress import StreamRefused, redacted
from emotune_common.ids import now_us
from emotune_common.logs import get_logger
from emotune_common.producer import StreamProducer
from emotune_common.sources import SourceError, SourceSpec

log = get_logger("emotune.capture")

RECONNECT_FIRST_S = 0.5  # the wait before the first attempt to open a lost stream again
RECONNECT_MAX_S = 10.0  # the longest wait between two attempts
DROPS_WINDOW = 20  # frames: the dropped share is an exponential average over about this many


@dataclass
class Counts:
    read: int = 0
    skipped: int = 0
    dropped: int = 0
    processed: int = 0
    faces: int = 0


class Mailbox:
    """The newest frame of a source, handed from a thread to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Condition()
        self._item: tuple[np.ndarray, int, int] | None = None
        self._ready = asyncio.Event()
        self.closed = False

    def put(self, item: tuple[np.ndarray, int, int], wait: bool = False, halt: threading.Event | None = None) -> bool:
        """Leave ``item``; returns True when it replaced one nobody took (a drop).

        With ``wait`` (files read frame by frame) it waits for the slot to be free instead.
        """
        with self._lock:
            while wait and self._item is not None and not (halt and halt.is_set()):
                self._lock.wait(0.1)
            replaced = self._item is not None
            self._item = item
        self._loop.call_soon_threadsafe(self._ready.set)
        return replaced

    def close(self) -> None:
        self.closed = True
        self._loop.call_soon_threadsafe(self._ready.set)

    async def take(self) -> tuple[np.ndarray, int, int] | None:
        """The newest item, waiting for one; None once closed and empty."""
        while True:
            with self._lock:
                item, self._item = self._item, None
                self._lock.notify()
            if item is not None:
                return item
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()


class SourceRunner:
    """Reads one source and publishes its faces until the source ends or ``stop`` is set."""

    def __init__(
        self,
        spec: SourceSpec,
        detector: Detects,
        producer: StreamProducer | None,
        on_frame: Callable[[Counts], None] | None = None,
        reconnect_s: float = 0.0,
        passes: PassPool | None = None,
        late_max_s: float = 0.0,
    ) -> None:
        """``reconnect_s``: how long a stream that stopped is tried again (0: not at all); ``passes``: where a
        tracker's full passes run (passes.py; None: asyncio's default executor, in the order asked);
        ``late_max_s``: how old a frame may be for the faces a pass found late in it to be published (0: any;
        a file read frame by frame publishes every face: it is read for them all, not for the newest)."""
        self.spec = spec
        self.detector = detector
        self.producer = producer
        self.on_frame = on_frame
        self.reconnect_s = reconnect_s if spec.kind == "stream" else 0.0
        self.passes = passes
        self.late_max_us = 0 if spec.every_frame else round(late_max_s * 1e6)
        self._pass: asyncio.Future[FullPass] | None = None  # a tracker's full pass out
        self.counts = Counts()
        self.dropped_share = 0.0  # of the recent frames under the cap, dropped because detection was busy
        self.error: Exception | None = None
        #: While a lost stream is being opened again: why it was lost, and the attempts so far ("" while it plays).
        self.lost = ""

    def _read(self, mailbox: Mailbox, stop: threading.Event) -> None:
        name = self.spec.name
        try:
            pacer = Pacer(self.spec.fps, native_fps(self.spec), self.spec.realtime)
            for number, frame in enumerate(self._frames(stop)):
                if stop.is_set():
                    break
                pacer.wait()
                self.counts.read += 1
                metrics.FRAMES_READ.labels(name).inc()
                if not pacer.keep():
                    self.counts.skipped += 1
                    metrics.FRAMES_SKIPPED.labels(name).inc()
                    continue
                dropped = mailbox.put((frame, number, now_us()), wait=self.spec.every_frame, halt=stop)
                self.dropped_share += (dropped - self.dropped_share) / DROPS_WINDOW
                if dropped:
                    self.counts.dropped += 1
                    metrics.FRAMES_DROPPED.labels(name).inc()
        except Exception as e:  # reported by run(); the other sources go on
            self.error = e
        finally:
            mailbox.close()

    def _frames(self, stop: threading.Event) -> Iterator[np.ndarray]:
        """The source's frames, a lost stream's again once it is back (see the module's text)."""
        yield from open_frames(self.spec)
        while self.reconnect_s and not stop.is_set():
            reopened = self._reconnect(stop)
            if reopened is None:  # stopped meanwhile
                return
            first, frames = reopened
            yield first
            yield from frames

    def _reconnect(self, stop: threading.Event) -> tuple[np.ndarray, Iterator[np.ndarray]] | None:
        """The stream opened again: its first frame and the rest. SourceError when it is not back within
        ``reconnect_s``, StreamRefused when an opening is refused, None when ``stop`` is set meanwhile."""
        name, shown = self.spec.name, redacted(self.spec.target)
        why = f"{shown} stopped giving frames"
        log.warning("stream_lost", source=name, session=self.spec.session, reason=why, reconnect_s=self.reconnect_s)
        metrics.STREAMS_LOST.labels(name).inc()
        lost_at = time.monotonic()
        attempts, delay = 0, RECONNECT_FIRST_S
        while True:
            self.lost = (
                f"stream lost: {why}; reconnecting (failed attempts so far: {attempts}; "
                f"gives up {self.reconnect_s:g} s after it was lost)"
            )
            left = lost_at + self.reconnect_s - time.monotonic()
            if left <= 0:
                raise SourceError(f"stream lost: {why}; not back after {attempts} attempts in {self.reconnect_s:g} s")
            if stop.wait(min(delay, left)):
                return None
            attempts, delay = attempts + 1, min(2 * delay, RECONNECT_MAX_S)
            frames = open_frames(self.spec)  # opened at its first frame, through the egress guard
            try:
                first = next(frames)
            except StreamRefused:
                raise
            except SourceError as e:
                why = str(e)
                continue
            except StopIteration:
                why = f"{shown} opened but gave no frame"
                continue
            log.info("stream_reconnected", source=name, session=self.spec.session, attempts=attempts,
                     lost_s=round(time.monotonic() - lost_at, 1))  # fmt: skip
            metrics.STREAM_RECONNECTS.labels(name).inc()
            self.lost = ""
            return first, frames

    async def run(self, stop: asyncio.Event) -> Counts:
        name = self.spec.name
        mailbox = Mailbox(asyncio.get_running_loop())
        halt = threading.Event()
        reader = threading.Thread(target=self._read, args=(mailbox, halt), name=f"read-{name}", daemon=True)
        reader.start()
        log.info("source_start", source=name, session=self.spec.session, user=self.spec.user, fps=self.spec.fps)
        stopping = asyncio.create_task(stop.wait())
        try:
            while True:
                taking = asyncio.create_task(mailbox.take())
                await asyncio.wait({taking, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not taking.done():
                    taking.cancel()
                    break
                item = taking.result()
                if item is None:
                    break
                await self._process(*item, stop=stop)
        finally:
            halt.set()
            stopping.cancel()
            await asyncio.to_thread(reader.join)
            if self._pass is not None:  # let it finish: nothing runs on after the runner
                await asyncio.wait([self._pass])
        if self.error:
            log.error("source_failed", source=name, error=str(self.error))
            raise self.error
        await self._last_pass(stop)
        log.info("source_end", source=name, **vars(self.counts))
        return self.counts

    async def _process(self, frame: np.ndarray, number: int, captured_at_us: int, stop: asyncio.Event) -> None:
        """Detect and publish a frame's faces. A tracker's full passes run beside the frames, on ``passes``:
        each frame's followed faces are published at once, and the faces a pass found new when it comes
        back, in its frame and those since (FaceTracker.follow)."""
        name = self.spec.name
        started = time.perf_counter()
        late: list[tuple[object, Face]] = []
        if isinstance(self.detector, FaceTracker):
            self._note_pressure(self.detector)
            done = await self._pass_back(self.detector)
            followed = await asyncio.to_thread(self.detector.follow, frame, done, (number, captured_at_us))
            faces, late = followed.faces, followed.late
            if followed.asked is not None:
                self._ask(followed.asked)
        else:
            faces = await asyncio.to_thread(self.detector.detect, frame)
        metrics.DETECT_SECONDS.labels(name).observe(time.perf_counter() - started)
        crops = self._late_crops(late) + [self._crop(f, number, captured_at_us) for f in faces]
        await self._publish(crops, stop)
        self.counts.processed += 1
        metrics.FRAMES_PROCESSED.labels(name).inc()
        if self.on_frame:
            self.on_frame(self.counts)

    def _ask(self, asked: FullPass) -> None:
        """Run the pass asked for beside the frames; one still out was made stale (a cut): it is cancelled."""
        if self._pass is not None:
            self._pass.cancel()
        if self.passes is None:
            self._pass = asyncio.get_running_loop().run_in_executor(None, run_timed, asked, self.spec.name)
        else:
            self._pass = asyncio.wrap_future(self.passes.submit(asked.urgent, run_timed, asked, self.spec.name))

    async def _last_pass(self, stop: asyncio.Event) -> None:
        """Publish the new faces of the pass out when the source ended or was stopped: they were in its frames."""
        if self._pass is None or not isinstance(self.detector, FaceTracker):
            return
        done, self._pass = self._pass.result(), None
        await self._publish(self._late_crops(self.detector.take_back(done)), stop)

    async def _pass_back(self, tracker: FaceTracker) -> FullPass | None:
        """The full pass out, once it is done; a file read frame by frame waits for it when the next frame
        wants another (it must not skip passes: it never drops frames, so never falls behind)."""
        if self._pass is None or not (self._pass.done() or (self.spec.every_frame and tracker.pass_wanted)):
            return None
        done, self._pass = await self._pass, None
        return done

    def _late_crops(self, late: list[tuple[object, Face]]) -> list[messages_pb2.FaceCrop]:
        """Crops of the late faces (oldest first) in frames young enough to be worth an event (``late_max_s``),
        each with its frame's number and time (the tags given to FaceTracker.follow)."""
        oldest = now_us() - self.late_max_us if self.late_max_us else 0
        fresh = [(tag, face) for tag, face in late if tag[1] >= oldest]  # type: ignore[index]  # (number, time)
        if len(fresh) < len(late):
            metrics.LATE_FACES_DROPPED.labels(self.spec.name).inc(len(late) - len(fresh))
        return [self._crop(face, number, captured_at_us) for (number, captured_at_us), face in fresh]

    def _crop(self, face: Face, number: int, captured_at_us: int) -> messages_pb2.FaceCrop:
        return crop_message(face, self.spec.session, self.spec.user, captured_at_us, number, self.spec.name)

    def _note_pressure(self, tracker: FaceTracker) -> None:
        shedding = tracker.shed
        tracker.note_pressure(self.dropped_share)
        if tracker.shed != shedding:
            log.info("detection_shedding" if tracker.shed else "detection_full", source=self.spec.name,
                     dropped_share=round(self.dropped_share, 3))  # fmt: skip
            metrics.SHEDDING.labels(self.spec.name).set(int(tracker.shed))

    async def _publish(self, crops: list[messages_pb2.FaceCrop], stop: asyncio.Event) -> None:
        """Count the faces and publish them (when there are crops and a producer), riding out Redis being away.
        Meanwhile the reader keeps only the newest frame (the others are dropped and counted), so the source
        never waits. A stop asked for while Redis is away gives these crops up."""
        self.counts.faces += len(crops)
        metrics.FACES.labels(self.spec.name).inc(len(crops))
        if not crops or self.producer is None:
            return
        if not await self.producer.publish_retrying(crops, stop):
            log.warning("crops_given_up", source=self.spec.name, crops=len(crops), reason="stopped")
