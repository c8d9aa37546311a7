"""The pool that runs the trackers' full passes: the urgent first, a cancelled one never, at a lower priority."""

from __future__ import annotations

import os
import sys
import threading

import cv2
import pytest

from emotune_capture.detector import FaceDetector
from emotune_capture.passes import PassPool
from emotune_capture.tracker import FaceTracker

from ..processes import PATIENCE_S
from .shots import two_shots


@pytest.fixture
def opencv_threads():
    """A pool with a niceness sets OpenCV to one thread a call for the whole process: set it back after."""
    threads = cv2.getNumThreads()
    yield
    cv2.setNumThreads(threads)


def test_urgent_calls_go_before_the_waiting_ones_and_a_cancelled_one_never_runs():
    pool = PassPool(threads=1, nice=0)
    busy, ran = threading.Event(), []
    blocker = pool.submit(False, busy.wait, PATIENCE_S)  # holds the one thread while the rest queue
    cadence = pool.submit(False, ran.append, "cadence")
    lost = pool.submit(True, ran.append, "lost")
    empty = pool.submit(False, ran.append, "empty")
    stale = pool.submit(False, ran.append, "stale")
    assert stale.cancel()
    cut = pool.submit(True, ran.append, "cut")
    busy.set()
    for future in (blocker, cadence, lost, empty, cut):
        future.result(timeout=PATIENCE_S)
    assert ran == ["lost", "cut", "cadence", "empty"]
    assert stale.cancelled()
    failing = pool.submit(True, int, "not a number")
    with pytest.raises(ValueError):
        failing.result(timeout=PATIENCE_S)  # the caller's error, the thread goes on
    assert pool.submit(False, len, "four").result(timeout=PATIENCE_S) == 4
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(True, len, "")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="threads have their own niceness on Linux")
def test_the_passes_run_at_a_lower_priority_than_the_rest_of_capture(opencv_threads):
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    pool = PassPool(threads=2, nice=5)
    theirs = [pool.submit(False, lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
              for _ in range(4)]  # fmt: skip
    assert {f.result(timeout=PATIENCE_S) for f in theirs} == {min(19, mine + 5)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
    assert cv2.getNumThreads() == 1
    pool.shutdown()


def test_a_pass_asked_at_a_cut_or_for_a_lost_face_is_urgent_and_one_on_the_cadence_is_not():
    obama, biden, _ = two_shots()
    tracker = FaceTracker(FaceDetector(), every=2)
    first = tracker.follow(obama).asked
    assert first is not None and not first.urgent  # nothing was followed before
    assert tracker.follow(obama, first.run()).faces
    cadence = tracker.follow(obama).asked
    assert cadence is not None and not cadence.urgent
    assert tracker.follow(obama, cadence.run()).asked is None
    cut = tracker.follow(biden).asked
    assert cut is not None and cut.urgent
    [face] = tracker.follow(biden, cut.run()).faces
    gone = biden.copy()  # the same shot, the face covered: lost where it was followed, and no cut
    gone[face.y : face.y + face.height, face.x : face.x + face.width] = 128
    lost = tracker.follow(gone).asked  # at once, on the frame it was lost in
    assert lost is not None and lost.urgent and lost.cuts == cut.cuts
