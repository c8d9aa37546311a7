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
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2

from emotune_capture import metrics
from emotune_capture.tracker import FullPass
from emotune_common.logs import get_logger

log = get_logger("emotune.capture")


def pass_pool(threads: int = 0, nice: int = 10) -> ThreadPoolExecutor:
    """``threads`` threads for full passes (0: one a core), ``nice`` lower in priority (0: the same)."""
    if nice:
        cv2.setNumThreads(1)  # see the module's text
    return ThreadPoolExecutor(threads or os.cpu_count() or 1, "full-pass", initializer=_lower_priority,
                              initargs=(nice,))  # fmt: skip


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
