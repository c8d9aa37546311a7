"""The track ranker: the candidate index gives exactly the list a pass over every track gives,
and every list keeps the diversity rules."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from emotune_common.labels import EMOTIONS
from emotune_recommender.mood import targets
from emotune_recommender.ranking import Adjustments, TrackIndex


def _diverse(picks, per_artist: int = 2) -> bool:
    artists = [p.artist for p in picks]
    return all(a != b for a, b in pairwise(artists)) and max(np.bincount(artists)) <= per_artist


def _synthetic(tracks: int, artists: int, seed: int) -> TrackIndex:
    rng = np.random.default_rng(seed)
    return TrackIndex(rng.integers(0, artists, tracks), rng.uniform(-1, 1, (tracks, 2)), rng.integers(0, 101, tracks),
                      artists)  # fmt: skip


@pytest.mark.parametrize("weight", [0.0, 0.2, 0.5, 1.0])
def test_the_index_ranks_the_real_catalogue_as_brute_force_does(space, weight):
    rng = np.random.default_rng(int(weight * 10))
    index = space.index
    for trial in range(12):
        taste = rng.random(space.artists).astype(np.float32) ** 4  # a few favourites, a long tail
        emotion, policy = EMOTIONS[trial % len(EMOTIONS)], ("match", "uplift")[trial % 2]
        goal = targets(emotion, policy, 10)
        some = rng.choice(len(index), 40, replace=False)
        lifts = {int(t): float(rng.uniform(-0.5, 0.5)) for t in some[20:]} if policy == "uplift" else {}
        adjust = Adjustments({int(t): float(rng.uniform(-1, 1)) for t in some[:20]}, lifts)
        exclude = {int(t) for t in rng.choice(len(index), 30, replace=False)}
        fast = index.rank(taste, goal, weight, 10, adjust, exclude=exclude)
        slow = index.brute_force(taste, goal, weight, 10, adjust, exclude=exclude)
        assert [p.track for p in fast] == [p.track for p in slow]
        assert len(fast) == 10 and _diverse(fast) and not {p.track for p in fast} & exclude


def test_the_index_is_exact_on_a_large_synthetic_catalogue_with_a_genre_filter():
    index = _synthetic(200_000, 5_000, seed=1)
    rng = np.random.default_rng(2)
    for trial in range(6):
        taste = rng.random(5_000).astype(np.float32) ** 8
        allowed = rng.random(200_000) < (0.5 if trial % 2 else 0.002)  # a common genre, a rare one
        goal = targets("sad", "uplift", 10)
        fast = index.rank(taste, goal, 0.3, 10, allowed=allowed)
        assert [p.track for p in fast] == [p.track for p in index.brute_force(taste, goal, 0.3, 10, allowed=allowed)]
        assert all(allowed[p.track] for p in fast) and _diverse(fast)


def test_few_artists_fill_as_much_of_the_list_as_the_rules_allow():
    index = TrackIndex(np.array([0, 0, 0, 0, 1, 1, 1]), np.zeros((7, 2)), np.full(7, 50), 2)
    picks = index.rank(np.array([1.0, 0.5], np.float32), targets("happy", "match", 10), 0.2, 10)
    # at most two per artist, never the same artist twice in a row
    assert [p.artist for p in picks] == [0, 1, 0, 1]
    assert index.rank(np.ones(2, np.float32), targets("happy", "match", 3), 0.2, 3, exclude=set(range(7))) == []


def test_scores_blend_taste_and_the_fit_of_each_position():
    points = np.array([[0.8, 0.5], [-0.7, -0.5]], np.float32)  # happy, sad
    index = TrackIndex(np.array([0, 1]), points, np.array([100, 100]), 2)
    picks = index.rank(np.array([0.5, 0.5], np.float32), targets("sad", "match", 2), 0.5, 2)
    assert picks[0].track == 1 and picks[0].mood_fit == pytest.approx(1.0)
    assert picks[0].score == pytest.approx(0.5 * 0.5 + 0.5 * 1.0)
    lifted = index.rank(np.array([0.5, 0.5], np.float32), targets("sad", "uplift", 2), 0.5, 2,
                        Adjustments({}, {0: 1.0}))  # fmt: skip
    assert lifted[0].track == 0 and lifted[0].score == pytest.approx(lifted[0].mood_fit * 0.5 + 0.25 + 1.0)
