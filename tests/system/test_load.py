"""The load benchmark's short version: 8 streams at 10 fps for 15 s through the whole system, asserting
what must hold on any machine: nothing lost, everything drained, memory bounded. Its speed figures
(frame rate held, latency, CPU) are the benchmark's, measured by `make bench`.

Runs bench/load.py's own code (``python -m bench load`` runs it for 60 s) over a private Redis with
AOF on (fsync always; the benchmark's: every second, as deployed) and one for raw frames: model
server, capture, 2 inference workers, recommender, gateway with a WebSocket subscriber per stream's
user, as real processes.
"""

from __future__ import annotations

import pytest

from bench import load

from ..processes import PATIENCE_S

SECONDS = 15.0
WARMUP_S = 5.0


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eight_streams_lose_nothing_and_hold_their_memory(recommender_models, tmp_path):
    # the backlog may take a slow machine minutes to drain: the test waits with its patience
    r = load.measure(recommender_models, tmp_path, seconds=SECONDS, warmup_s=WARMUP_S, drain_s=PATIENCE_S)
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
    # every stream flowed (how fast is the benchmark's figure: `python -m bench load`)
    assert len(r["per_stream"]) == 8 and all(s["processed_fps"] > 0 for s in r["per_stream"]), figures
    # resident memory stayed within the bound, for every process
    assert r["memory_ok"], r["memory"]
