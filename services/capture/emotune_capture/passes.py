"""Threads for the full Haar passes, at a lower priority than the rest of capture.

Tracking a face into a frame takes a millisecond or two, and its crop is on the latency path to an
emotion event; a full pass takes 50 ms on an idle core and is needed only now and then (tracker.py).
So the passes run on threads of their own, their niceness raised by ``nice`` (Linux gives each thread
its own): on a busy machine tracking, publishing, inference and the model server go first, and the
passes come back later rather than every frame waiting; the faces they find new are given late, in
the frames they missed them in (tracker.py).

Measured in the load bench (8 streams on 2 cores, 200% busy): with the passes at the process's
priority, crop-to-event p50 was 497 ms (the scoring starved); at nice 10, 65 ms. Running the passes
with no face followed (after a cut, in an empty scene) at the process's priority and only the others
niced starved the scoring too (167 ms).

OpenCV's own thread pool would run a pass's work on threads of its own, at the process's priority, so
a pool with a lower priority sets OpenCV to one thread a call: the passes of several sources still run
side by side, one a thread of the pool, but one pass is on one core. A file read as fast as it goes
then runs at half its former speed (the pipeline bench: 28 frames/s, 53 before); ``nice`` 0 leaves
OpenCV its threads.

When the passes asked for outrun the threads (8 sources on 2 cores), they queue. A pass asked because
the tracker lost its faces (one was lost, or the scene cut) will find faces that are missing meanwhile,
each frame it waits adding to them and to their lateness; a pass on the regular cadence, or in an empty
scene, mostly finds what is already followed, or nothing. So the urgent go first, each kind in the
order asked, and a pass made stale before it started (its source cut) is cancelled, never run. In the
load bench (8 streams, 2 cores, late faces bounded at 500 ms) this published 4,215 and 4,699 crops in
two runs against 3,549 in the order asked, at the same p99 (530-560 ms); a bound of 100 ms
(``EMOTUNE_DETECT_LATE_MAX_MS``) then kept 3,763 with capture-to-event p99 at 114 ms.
"""

from __future__ import annotations

import heapq
import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import cv2

from emotune_capture import metrics
from emotune_capture.tracker import FullPass
from emotune_common.logs import get_logger

log = get_logger("emotune.capture")
T = TypeVar("T")


class PassPool:
    """Threads for full passes, ``nice`` lower in priority than the process, the urgent passes first."""

    def __init__(self, threads: int = 0, nice: int = 10) -> None:
        """``threads``: how many (0: one a core); ``nice``: added to their niceness (0: the process's)."""
        if nice:
            cv2.setNumThreads(1)  # see the module's text
        self._queue: list[tuple[int, int, float, Future, Callable[[], object]]] = []
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, args=(nice,), name=f"full-pass-{i}", daemon=True)
                         for i in range(threads or os.cpu_count() or 1)]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def submit(self, urgent: bool, fn: Callable[..., T], *args: object) -> Future[T]:
        """Run ``fn(*args)`` on a thread of the pool, before every waiting call that is not ``urgent``.
        Cancelling the future before a thread takes the call means it never runs."""
        future: Future[T] = Future()
        with self._ready:
            if self._closed:
                raise RuntimeError("the pass pool is shut down")
            heapq.heappush(self._queue, (0 if urgent else 1, next(self._order), time.perf_counter(), future,
                                         lambda: fn(*args)))  # fmt: skip
            self._ready.notify()
        return future

    def shutdown(self) -> None:
        """Run what is queued, then end the threads (the calls after this are refused)."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self, nice: int) -> None:
        _lower_priority(nice)
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                _, _, asked_at, future, call = heapq.heappop(self._queue)
            if not future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            metrics.FULL_PASS_WAIT_SECONDS.observe(time.perf_counter() - asked_at)
            try:
                future.set_result(call())
            except BaseException as e:  # the caller's to handle, as an executor's would be
                future.set_exception(e)


def run_timed(full_pass: FullPass, source: str) -> FullPass:
    """Run ``full_pass``, timing it for the metrics."""
    started = time.perf_counter()
    full_pass.run()
    metrics.FULL_PASS_SECONDS.labels(source).observe(time.perf_counter() - started)
    return full_pass


def _lower_priority(nice: int) -> None:
    if not nice:
        return
    if not sys.platform.startswith("linux"):  # elsewhere a thread has no niceness of its own
        log.warning("full_pass_priority_unchanged", reason=f"threads have no niceness of their own on {sys.platform}")
        return
    thread = threading.get_native_id()
    os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
