"""Mood targets on the valence-arousal plane, and the LightFM features built from the real data."""

from __future__ import annotations

import numpy as np
import pytest

from emotune_recommender.data import load_music
from emotune_recommender.features import build_inputs, item_tokens
from emotune_recommender.mood import EMOTION_POINTS, UPLIFT_GOAL, fit, quadrant, targets, track_points

from ..conftest import DATA_DIR


def test_match_stays_on_the_mood_and_uplift_walks_toward_pleasant_valence():
    assert np.allclose(targets("sad", "match", 5), EMOTION_POINTS["sad"])
    walk = targets("sad", "uplift", 5)
    assert np.allclose(walk[0], EMOTION_POINTS["sad"]) and np.allclose(walk[-1], UPLIFT_GOAL)
    assert np.all(np.diff(walk[:, 0]) > 0)  # valence rises step by step
    with pytest.raises(ValueError, match="unknown policy"):
        targets("sad", "shuffle", 3)


def test_fit_is_full_inside_the_region_and_falls_with_distance():
    points = track_points(np.array([0.9, 0.5, 0.1, np.nan]), np.array([0.75, 0.5, 0.2, 0.5]))
    scores = fit(points, np.array(EMOTION_POINTS["happy"]))
    assert scores[0] == 1.0 and scores[0] > scores[1] > scores[2] >= 0
    assert scores[3] == 0.5  # an artist without audio features is neither close nor far


def test_quadrants():
    assert [quadrant(0.9, 0.9), quadrant(0.9, 0.1), quadrant(0.1, 0.9), quadrant(0.1, 0.1)] == [
        "excited", "calm", "tense", "gloomy"]  # fmt: skip


@pytest.fixture(scope="module")
def music():
    return load_music(DATA_DIR)


def test_matched_artists_carry_genres_audio_buckets_and_a_quadrant(music):
    tokens = item_tokens(music.artists)
    assert len(tokens) == int(music.artists["matched"].sum())
    some = next(iter(tokens.values()))
    assert any(t.startswith("valence:") for t in some) and any(t.startswith("quadrant:") for t in some)
    buckets = [int(t.split(":")[1]) for ts in tokens.values() for t in ts if t.startswith("energy:")]
    assert set(buckets) == {0, 1, 2, 3, 4} and abs(np.bincount(buckets).std()) < 0.01 * len(buckets)


def test_inputs_cover_every_user_and_artist_and_friends_as_user_features(music):
    inputs = build_inputs(music, use_friends=True)
    users, items = inputs.dataset.interactions_shape()
    assert items == len(music.artists) and users >= music.plays["user_id"].nunique()
    user_features = {k for k in inputs.dataset.mapping()[1] if isinstance(k, str)}  # besides the identities
    assert user_features and all(k.startswith("friend:") for k in user_features)
    assert inputs.item_features.shape[0] == items and inputs.item_features.shape[1] > items  # identity + features
    interactions, weights = inputs.interactions(music.plays.head(100))
    assert interactions.nnz == 100 and weights.data.min() > 0
