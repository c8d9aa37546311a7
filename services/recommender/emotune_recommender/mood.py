"""Mood on the valence-arousal plane (Russell's circumplex): where each emotion sits, where each
artist sits, and how well an artist fits a target.

Emotions are placed after Russell (1980) and the FER literature's usual reading of it; artists by
their Spotify means, valence -> valence and energy -> arousal, both mapped from 0..1 to -1..1.
"""

from __future__ import annotations

import numpy as np

#: (valence, arousal) of each emotion, -1..1
EMOTION_POINTS: dict[str, tuple[float, float]] = {
    "angry": (-0.6, 0.7),
    "disgust": (-0.7, 0.2),
    "fear": (-0.6, 0.6),
    "happy": (0.8, 0.5),
    "sad": (-0.7, -0.5),
    "surprise": (0.4, 0.8),
    "neutral": (0.0, 0.0),
}
#: where `uplift` leads: pleasant and calm-to-moderate energy
UPLIFT_GOAL = (0.7, 0.2)
#: inside this distance of the target an artist fits fully
REGION_RADIUS = 0.35


def track_points(valence: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """[N, 2] points of tracks (or artists) from Spotify valence and energy in 0..1 (NaN stays NaN)."""
    return np.stack([2 * np.asarray(valence, float) - 1, 2 * np.asarray(energy, float) - 1], axis=1)


def quadrant(valence: float, energy: float) -> str:
    """The mood quadrant of an artist: a feature token for the model."""
    positive, active = valence >= 0.5, energy >= 0.5
    return {(True, True): "excited", (True, False): "calm", (False, True): "tense", (False, False): "gloomy"}[
        (positive, active)
    ]


def targets(emotion: str, policy: str, k: int) -> np.ndarray:
    """[k, 2] target points for the positions of a list of k.

    ``match``: every position at the emotion's point. ``uplift``: the iso principle of music
    therapy: the first position meets the listener where they are, and each next one moves a step
    toward pleasant valence, the last reaching UPLIFT_GOAL.
    """
    start = np.array(EMOTION_POINTS[emotion])
    if policy == "match" or k == 1:
        return np.repeat(start[None], k, axis=0)
    if policy != "uplift":
        raise ValueError(f"unknown policy {policy!r}: match or uplift")
    steps = np.linspace(0.0, 1.0, k)[:, None]
    return start + steps * (np.array(UPLIFT_GOAL) - start)


def fit(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """0..1: 1 inside REGION_RADIUS of the target, falling off with distance; 0.5 for unknown points.
    (Inside the radius the fall-off formula exceeds 1, and the clip makes it 1.)"""
    delta = np.asarray(points) - np.asarray(target)
    distance = np.hypot(delta[..., 0], delta[..., 1])
    score = np.clip(1 - (distance - REGION_RADIUS) / (2 * np.sqrt(2) - REGION_RADIUS), 0, 1)
    return np.where(np.isnan(distance), 0.5, score)


def distance(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    return np.linalg.norm(points - target, axis=-1)
