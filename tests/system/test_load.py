"""The load benchmark's short version: 8 streams at 10 fps for 15 s through the whole system.

Runs bench/load.py's own code (``python -m bench load`` runs it for 60 s) over a private Redis with
AOF on (fsync always; the benchmark's: every second, as deployed) and one for raw frames: model
server, capture, 2 inference workers, recommender, gateway with a WebSocket subscriber per stream's
user, as real processes.
"""

from __future__ import annotations

import pytest

from bench import load

SECONDS = 15.0
WARMUP_S = 5.0
#: Frames processed per stream per second, of the 10 asked. Capture is the heaviest process (1.2 cores
#: at this load, most of it Haar detection): on this 2-core machine, otherwise idle, the slowest stream
#: held 8.9-9.1 fps over 60 s (a 15 s run is noisier: 8.0); with other jobs taking 0.4-0.7 of a core beside it (another
#: test suite), 6.4-8.0. The bound follows what the machine had to give over the same window.
QUIET_MIN_FPS = 8.0  # other jobs took at most load.QUIET_OTHERS_PCT of a core
BUSY_MIN_FPS = 5.0  # otherwise: the streams still flow, at what the remaining CPU allows


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_eight_streams_lose_nothing_hold_their_frame_rate_and_memory(recommender_models, tmp_path):
    r = load.measure(recommender_models, tmp_path, seconds=SECONDS, warmup_s=WARMUP_S)
    figures = {k: r[k] for k in ("frame_rate", "lag", "latency", "drops", "delivery", "cpu", "drain_s")}
    print(load.markdown(r))  # shown with -rP, and on a failure

    # nothing lost: every crop got exactly one event (after dedupe), every event reached its subscriber
    drops, delivery = r["drops"], r["delivery"]
    assert drops["crops"] > 0, figures
    assert drops["faces_stream_dropped"] == 0, figures
    assert drops["crops_without_event"] == 0, figures
    assert drops["events"] == drops["crops"], figures
    assert sum(drops["dead_letters"].values()) == 0, figures
    assert delivery["missing"] == 0 and delivery["emotion_delivered"] >= delivery["emotion_entries"], figures
    assert delivery["closed_by_gateway"] == 0, figures
    # both consumer groups drained once capture stopped
    assert r["drain_s"] is not None, figures
    assert all(g["after_drain"]["backlog"] == 0 for g in r["lag"].values()), figures
    assert r["complete"], figures
    # every stream held its frame rate within the tolerance
    assert len(r["per_stream"]) == 8
    quiet = r["cpu"]["others_pct"] <= load.QUIET_OTHERS_PCT
    assert r["frame_rate"]["min_fps"] >= (QUIET_MIN_FPS if quiet else BUSY_MIN_FPS), figures
    # resident memory stayed within the bound, for every process
    assert r["memory_ok"], r["memory"]
