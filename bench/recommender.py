"""Recommend latency, k=10: the full catalogue and one scaled to 200k artists, on one core,
next to a brute-force numpy baseline (dot product and argpartition, taste only) in the same run.

The scaled catalogue replicates the trained item representations (with a little noise) and their
mood positions and genres, as a catalogue of that size would present them to the ranking.
A request is what the service computes: the user's scores over every artist, the mood blend over
the taste head, position by position, and the diversity rules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench import sizes

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = sizes.size("BENCH_RECOMMENDER_REQUESTS", 300, 20)
LARGE = sizes.size("BENCH_RECOMMENDER_LARGE", 200_000, 20_000)  # more than the catalogue holds


def _measure() -> dict:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    from emotune_common.labels import EMOTIONS
    from emotune_recommender.data import load_music
    from emotune_recommender.model import Recommender

    music = load_music()
    trained = Recommender.train(music, music.plays)
    rng = np.random.default_rng(0)
    users = rng.choice(sorted(trained.seen), REQUESTS)
    result = {"requests": REQUESTS}
    for label, size in (("full", len(trained.points)), ("large", LARGE)):
        model = trained if size == len(trained.points) else _scaled(trained, size, rng)
        biases, vectors = model.item_representations()
        ours, baseline = [], []
        for i, user in enumerate(users):
            emotion = EMOTIONS[i % len(EMOTIONS)]
            started = time.perf_counter()
            model.rank(model.taste(int(user), emotion), emotion, "uplift", 10, 0.2, model.seen.get(int(user), set()))
            ours.append(time.perf_counter() - started)
            u = vectors[int(user) % len(vectors)]
            started = time.perf_counter()
            scores = vectors @ u + biases
            top = np.argpartition(-scores, 10)[:10]
            top[np.argsort(-scores[top])]
            baseline.append(time.perf_counter() - started)
        result[label] = {
            "items": size,
            "p50_ms": round(float(np.percentile(ours, 50)) * 1000, 2),
            "p99_ms": round(float(np.percentile(ours, 99)) * 1000, 2),
            "baseline_p50_ms": round(float(np.percentile(baseline, 50)) * 1000, 2),
            "baseline_p99_ms": round(float(np.percentile(baseline, 99)) * 1000, 2),
        }
    return result


def _scaled(model, size: int, rng):
    biases, vectors = model.item_representations()
    index = np.arange(size) % len(vectors)
    noisy = vectors[index] + rng.normal(0, 0.01, (size, vectors.shape[1])).astype(np.float32)
    genres = [model.genres[i] for i in index]
    return replace(model, points=model.points[index], popularity=model.popularity[index], genres=genres,
                   _items=(biases[index], noisy), _genre_index=None)  # fmt: skip


def run(redis_url: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "bench.recommender"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def markdown(r: dict) -> str:
    rows = [f"| {r[k]['items']:,} artists | {r[k]['p50_ms']} / {r[k]['p99_ms']} ms | "
            f"{r[k]['baseline_p50_ms']} / {r[k]['baseline_p99_ms']} ms |" for k in ("full", "large")]  # fmt: skip
    return "\n".join([
        "## Recommender: Recommend latency, k=10, one core",
        "",
        f"{r['requests']} requests of known listeners in rotating moods (policy uplift, mood weight 0.2), in-process.",
        "",
        "| catalogue | emotune rank p50 / p99 | brute-force numpy top-10 (taste only) p50 / p99 |",
        "| --- | ---: | ---: |",
        *rows,
        "",
        "Floor: p99 at most 10 ms at 200k artists on one core.",
    ])  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(_measure()))
