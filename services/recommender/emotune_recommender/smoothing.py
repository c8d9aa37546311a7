"""A stable mood from noisy per-frame emotions: a time-weighted moving average plus hysteresis.

Each emotion event moves the session's average toward its probabilities by
``alpha = 1 - exp(-dt / time_constant_s)``, so the average forgets at the same pace whatever the
frame rate. The mood changes only when another label leads the current one in the average by
``margin`` for ``hold`` events in a row: one odd frame never flips the playlist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from emotune_common.labels import EMOTIONS


@dataclass(frozen=True)
class Smoothing:
    time_constant_s: float = 2.0
    margin: float = 0.1
    hold: int = 3


@dataclass
class MoodState:
    """The smoothed mood of one session."""

    settings: Smoothing = field(default_factory=Smoothing)
    average: np.ndarray | None = None
    mood: str | None = None
    last_us: int = 0
    _challenger: str | None = None
    _streak: int = 0

    def update(self, probabilities: np.ndarray, captured_at_us: int) -> tuple[str | None, str] | None:
        """Fold in one event; returns (previous, new) when the mood changes, else None.

        Events older than the last one (redelivered, or out of order across workers) still count,
        with the smallest weight, rather than moving time backwards.
        """
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != (len(EMOTIONS),) or not np.isfinite(p).all():
            raise ValueError(f"expected {len(EMOTIONS)} finite probabilities, got {p.shape}")
        if self.average is None:
            self.average, self.last_us = p.copy(), captured_at_us
            self.mood = EMOTIONS[int(p.argmax())]
            return (None, self.mood)
        dt = max(0.0, (captured_at_us - self.last_us) / 1e6)
        alpha = 1 - math.exp(-dt / self.settings.time_constant_s) if dt else 0.05
        self.average = (1 - alpha) * self.average + alpha * p
        self.last_us = max(self.last_us, captured_at_us)
        leader = EMOTIONS[int(self.average.argmax())]
        current = self.average[EMOTIONS.index(self.mood)]
        if leader == self.mood or self.average.max() - current < self.settings.margin:
            self._challenger, self._streak = None, 0
            return None
        self._streak = self._streak + 1 if leader == self._challenger else 1
        self._challenger = leader
        if self._streak < self.settings.hold:
            return None
        previous, self.mood = self.mood, leader
        self._challenger, self._streak = None, 0
        return (previous, leader)

    @property
    def confidence(self) -> float:
        return 0.0 if self.average is None else float(self.average.max())
