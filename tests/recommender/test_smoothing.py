"""Mood smoothing: a stable mood from noisy per-frame emotions."""

from __future__ import annotations

import numpy as np
import pytest

from emotune_common.labels import EMOTIONS
from emotune_recommender.smoothing import MoodState, Smoothing


def one_hot(label: str, strength: float = 0.9) -> np.ndarray:
    p = np.full(len(EMOTIONS), (1 - strength) / (len(EMOTIONS) - 1))
    p[EMOTIONS.index(label)] = strength
    return p


def feed(state: MoodState, labels: list[str], fps: float = 10, start_us: int = 0) -> list[tuple]:
    return [c for i, label in enumerate(labels)
            if (c := state.update(one_hot(label), start_us + int(i * 1e6 / fps))) is not None]  # fmt: skip


def test_the_first_event_sets_the_mood():
    state = MoodState()
    assert feed(state, ["sad"]) == [(None, "sad")]


def test_one_odd_frame_never_flips_the_mood():
    state = MoodState()
    frames = ["happy"] * 20 + ["angry"] + ["happy"] * 20 + ["surprise"] * 2 + ["happy"] * 10
    assert feed(state, frames) == [(None, "happy")]


def test_a_lasting_change_flips_it_once():
    state = MoodState()
    changes = feed(state, ["happy"] * 30 + ["sad"] * 40)
    assert changes == [(None, "happy"), ("happy", "sad")]
    assert state.confidence > 0.6


def test_the_pace_is_the_same_at_any_frame_rate():
    slow, fast = MoodState(), MoodState()
    feed(slow, ["neutral"] * 10, fps=2)
    feed(fast, ["neutral"] * 50, fps=10)
    # two seconds of "sad" at 2 fps and at 10 fps move the average about as far
    for state, fps, n in ((slow, 2, 4), (fast, 10, 20)):
        feed(state, ["sad"] * n, fps=fps, start_us=int(state.last_us + 1e6 / fps))
    gap = abs(slow.average[EMOTIONS.index("sad")] - fast.average[EMOTIONS.index("sad")])
    assert gap < 0.1


def test_hysteresis_settings_and_bad_input():
    eager = MoodState(Smoothing(time_constant_s=0.1, margin=0.0, hold=1))
    assert feed(eager, ["happy", "sad"])[-1] == ("happy", "sad")
    with pytest.raises(ValueError, match="7 finite probabilities"):
        MoodState().update(np.ones(3), 0)
