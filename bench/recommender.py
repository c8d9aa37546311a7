"""Recommend latency, k=10, on one core: the track ranker's candidate index next to numpy brute force.

Requests are Last.fm listeners in random moods, under both policies, at the service's mood weight, as the
service computes them without Redis (a listener with no feedback): the artist taste of the listener
(TrackSpace.artist_taste), then the ranking over the tracks. Each request is ranked by the candidate index
(TrackIndex.rank) and by a pass over every track (TrackIndex.brute_force), side by side in the same run,
and the two lists must be the same: a request whose lists differ is counted, and any fails the benchmark.

Two catalogues: the real one (load_catalogue), and a synthetic one of SYNTHETIC tracks on the same artist
axis, with the same artist tastes: every artist gets a track, the rest go to artists in proportion to their
tracks in the real catalogue (plus one), and each track takes the point and popularity of a random real
track, with noise. A saved taste model (EMOTUNE_RECOMMENDER_MODEL_DIR, else models/recommender) is loaded
when there is one; otherwise one is trained first (minutes, not measured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bench import sizes

if TYPE_CHECKING:  # the service's modules load in the measuring subprocess only
    from emotune_recommender.data import MusicData
    from emotune_recommender.ranking import TrackIndex
    from emotune_recommender.taste import TasteModel

ROOT = Path(__file__).resolve().parents[1]
REQUESTS = sizes.size("BENCH_RECOMMENDER_REQUESTS", 300, 20)
SYNTHETIC = sizes.size("BENCH_RECOMMENDER_SYNTHETIC", 1_000_000, 50_000)  # at least one an artist
#: listeners whose plays train the taste model when none is saved (0: all); a smoke run trains on a few
TRAIN_USERS = sizes.size("BENCH_RECOMMENDER_TRAIN_USERS", 0, 150)
WARMUP = 5  # requests run first and not measured
K = 10
FLOORS_MS = {"catalogue": 10.0, "synthetic": 20.0}  # Recommend p99 at most, on one core
AIM_MS = 5.0  # at the synthetic size
POINT_NOISE, POPULARITY_NOISE = 0.05, 5.0  # standard deviations of a synthetic track's draw from a real one


def _taste_model(music: MusicData, progress: Callable[[str], None]) -> TasteModel:
    """The latest saved TasteModel, or one trained on the plays (of TRAIN_USERS listeners, where set)."""
    from emotune_recommender import store
    from emotune_recommender.settings import RecommenderSettings
    from emotune_recommender.taste import TasteModel

    loaded = store.load_latest(RecommenderSettings().recommender_model_dir)
    if loaded and isinstance(loaded[1], TasteModel):
        progress(f"taste model: saved version {loaded[0]}")
        return loaded[1]
    plays = music.plays
    if TRAIN_USERS:
        users = np.random.default_rng(0).choice(plays["user_id"].unique(), TRAIN_USERS, replace=False)
        plays = plays[plays["user_id"].isin(users)]
    progress(f"taste model: training on {plays['user_id'].nunique():,} listeners' plays")
    return TasteModel.train(music, plays, progress=lambda step: progress(f"  {step}"))


def synthetic_index(real: TrackIndex, popularity: np.ndarray, size: int, rng: np.random.Generator) -> TrackIndex:
    """``size`` tracks over the artist axis of ``real``, drawn from its tracks (``popularity``: theirs)."""
    from emotune_recommender.ranking import TrackIndex

    if size < real.artists:
        raise ValueError(f"a synthetic catalogue of {size:,} tracks cannot give each of {real.artists:,} artists one")
    counts = np.bincount(real.artist, minlength=real.artists) + 1.0
    extra = rng.choice(real.artists, size - real.artists, p=counts / counts.sum())
    artist = np.concatenate([np.arange(real.artists), extra])
    like = rng.integers(0, len(real), size)  # the real track each one is drawn from
    points = np.clip(real.points[like] + rng.normal(0, POINT_NOISE, (size, 2)), -1, 1)
    noisy = np.clip(popularity[like] + rng.normal(0, POPULARITY_NOISE, size), 0, 100)
    return TrackIndex(artist, points, noisy, real.artists)


def _ms(seconds: list[float]) -> dict[str, float]:
    return {f"p{q}_ms": round(float(np.percentile(seconds, q)) * 1000, 2) for q in (50, 99)}


def _figures(tracks: int, taste: list[float], index: list[float], brute: list[float], mismatches: int) -> dict:
    """A catalogue's percentiles: the ranking alone by each method, and the whole request (taste, then rank)."""
    return {
        "tracks": tracks,
        "request": _ms(list(np.add(taste, index))),
        "request_brute_force": _ms(list(np.add(taste, brute))),
        "rank_index": _ms(index),
        "rank_brute_force": _ms(brute),
        "mismatches": mismatches,
    }


def _measure() -> dict:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    from emotune_common.labels import EMOTIONS
    from emotune_recommender.catalogue import load_catalogue
    from emotune_recommender.core import POLICIES, Tuning
    from emotune_recommender.data import load_music
    from emotune_recommender.mood import targets
    from emotune_recommender.settings import RecommenderSettings
    from emotune_recommender.trackspace import TrackSpace

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    data_dir = RecommenderSettings().data_dir
    music = load_music(data_dir)
    taste = _taste_model(music, progress)
    space = TrackSpace.build(load_catalogue(music, data_dir), taste, music.artists)
    rng = np.random.default_rng(0)
    popularity = space.catalogue.tracks["popularity"].to_numpy(float)
    indexes = {"catalogue": space.index, "synthetic": synthetic_index(space.index, popularity, SYNTHETIC, rng)}
    weight = Tuning().mood_weight
    users = rng.integers(0, taste.matrix.shape[0], WARMUP + REQUESTS)
    moods, policies = rng.choice(EMOTIONS, len(users)), rng.choice(POLICIES, len(users))
    times: dict[str, list[float]] = {"taste": [], **{f"{c}_{m}": [] for c in indexes for m in ("index", "brute")}}
    mismatches = dict.fromkeys(indexes, 0)
    progress(f"{len(users)} requests ({WARMUP} of them warm-up) over {[len(i) for i in indexes.values()]} tracks")
    for n, (user, mood, policy) in enumerate(zip(users, moods, policies, strict=True)):
        started = time.perf_counter()
        artist_taste = space.artist_taste(taste, taste.matrix[int(user)], int(user))
        goal = targets(str(mood), str(policy), K)
        measured = {"taste": time.perf_counter() - started}
        for name, index in indexes.items():
            started = time.perf_counter()
            ours = index.rank(artist_taste, goal, weight, K)
            measured[f"{name}_index"] = time.perf_counter() - started
            started = time.perf_counter()
            theirs = index.brute_force(artist_taste, goal, weight, K)
            measured[f"{name}_brute"] = time.perf_counter() - started
            mismatches[name] += [p.track for p in ours] != [p.track for p in theirs]
        if n >= WARMUP:
            for key, value in measured.items():
                times[key].append(value)
    if any(mismatches.values()):
        raise AssertionError(f"the index's lists differ from brute force's in {mismatches} of {len(users)} requests")
    return {
        "requests": REQUESTS,
        "checked": len(users),
        "k": K,
        "mood_weight": weight,
        "artists": space.artists,
        "floors_ms": FLOORS_MS,
        "aim_ms": AIM_MS,
        "taste": _ms(times["taste"]),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # at the end: others' work shows in the p99s
        **{name: _figures(len(index), times["taste"], times[f"{name}_index"], times[f"{name}_brute"],
                          mismatches[name]) for name, index in indexes.items()},
    }  # fmt: skip


def run(redis_url: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "bench.recommender"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _pair(figures: dict[str, float]) -> str:
    return f"{figures['p50_ms']} / {figures['p99_ms']} ms"


def markdown(r: dict) -> str:
    def row(name: str, label: str) -> str:
        c, floor = r[name], r["floors_ms"][name]
        verdict = "within" if c["request"]["p99_ms"] <= floor else "**over**"
        ratio = c["rank_brute_force"]["p99_ms"] / max(c["rank_index"]["p99_ms"], 1e-9)
        return (f"| {label}, {c['tracks']:,} tracks | {_pair(c['request'])} ({verdict} {floor:g} ms) "
                f"| {_pair(c['request_brute_force'])} | {_pair(c['rank_index'])} | {_pair(c['rank_brute_force'])} "
                f"| {ratio:.1f}x | {c['mismatches']} of {r['checked']} |")  # fmt: skip

    return "\n".join([
        f"## Recommender: Recommend latency, k={r['k']}, one core",
        "",
        f"{r['requests']} requests of Last.fm listeners in random moods, both policies, mood weight "
        f"{r['mood_weight']}, in-process without Redis, over {r['artists']:,} artists. A request is the listener's "
        f"artist taste (p50 / p99 {_pair(r['taste'])}), then the ranking: by the candidate index (TrackIndex.rank) "
        "and, side by side in the same run, by numpy brute force over every track (TrackIndex.brute_force), "
        "which must give the same list.",
        "",
        "| catalogue | Recommend p50 / p99, index | Recommend, brute force | ranking, index | ranking, brute force "
        "| brute force / index, ranking p99 | lists that differ |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("catalogue", "real"),
        row("synthetic", "synthetic"),
        "",
        f"Floors: Recommend p99 at most {r['floors_ms']['catalogue']:g} ms over the catalogue and "
        f"{r['floors_ms']['synthetic']:g} ms over a synthetic catalogue of 1,000,000 tracks, on one core "
        f"(aim: {r['aim_ms']:g} ms at 1M). The synthetic tracks lie on the same artist axis, with the same "
        "artist tastes: every artist has one, the rest go to artists in proportion to their real tracks (plus "
        "one), each with the point and popularity of a random real track, plus noise.",
        "",
        f"Load average at the end of the run (1 / 5 / 15 min): {' / '.join(map(str, r['load_average']))}: "
        "above 1, other work shared the machine, and the p99s show it.",
    ])  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(_measure()))
