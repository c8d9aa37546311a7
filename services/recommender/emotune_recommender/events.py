"""The stream side: emotions in, mood changes and fresh recommendations out; feedback in.

Consumer group ``recommender`` on emotune:emotions keeps each session's mood smoothed (see
smoothing.py); when it changes, a MoodChange and a new RecommendationSet for the session go to
emotune:recommendations, written with the acknowledgement. Consumer group ``recommender`` on
emotune:feedback applies feedback in batches and publishes a fresh set for the session.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emotune.v1 import messages_pb2
from emotune_common.consumer import Delivery, Outcome
from emotune_common.ids import derived_header
from emotune_common.labels import EMOTIONS
from emotune_common.producer import StreamProducer
from emotune_recommender import metrics
from emotune_recommender.core import RecommenderCore
from emotune_recommender.mood import EMOTION_POINTS
from emotune_recommender.smoothing import MoodState, Smoothing


class SessionMoods:
    """The smoothed mood of every session seen (in memory; a restart starts each afresh)."""

    def __init__(self, smoothing: Smoothing) -> None:
        self.smoothing = smoothing
        self.sessions: dict[str, MoodState] = {}

    def update(self, event: messages_pb2.EmotionEvent) -> messages_pb2.MoodChange | None:
        state = self.sessions.setdefault(event.header.session_id, MoodState(self.smoothing))
        change = state.update(np.array(event.probabilities), event.header.captured_at_us)
        if change is None:
            return None
        previous, mood = change
        valence, arousal = EMOTION_POINTS[mood]
        metrics.MOOD_CHANGES.labels(mood).inc()
        return messages_pb2.MoodChange(
            header=derived_header(event.header), mood=EMOTIONS.index(mood) + 1,
            previous_mood=EMOTIONS.index(previous) + 1 if previous else 0, smoothed=state.average.tolist(),
            confidence=state.confidence, valence=valence, arousal=arousal,
        )  # fmt: skip

    def mood_of(self, session_id: str) -> int:
        state = self.sessions.get(session_id)
        return EMOTIONS.index(state.mood) + 1 if state and state.mood else messages_pb2.NEUTRAL


def emotions_handler(core: RecommenderCore, moods: SessionMoods, out: StreamProducer, k: int = 10):
    async def handle(batch: Sequence[Delivery]) -> Outcome:
        outcome = Outcome()
        for delivery in batch:
            change = moods.update(delivery.message)
            if change is None:
                continue
            recommendations = await core.recommend(change.header.user_id, change.header.session_id, change.mood, k,
                                                   0, [])  # fmt: skip
            outcome.publish += [(out, change), (out, recommendations)]
        return outcome

    return handle


def feedback_handler(core: RecommenderCore, moods: SessionMoods, out: StreamProducer, k: int = 10):
    async def handle(batch: Sequence[Delivery]) -> Outcome:
        refused = await core.feedback([d.message for d in batch])
        outcome = Outcome(failed={batch[i].entry_id: reason for i, reason in refused.items()})
        sessions = {(d.message.header.user_id, d.message.header.session_id) for i, d in enumerate(batch)
                    if i not in refused}  # fmt: skip
        for user, session in sorted(sessions):
            fresh = await core.recommend(user, session, moods.mood_of(session), k, 0, [])
            outcome.publish.append((out, fresh))
        for i, d in enumerate(batch):
            if i not in refused:
                metrics.FEEDBACK.labels(messages_pb2.FeedbackAction.Name(d.message.action)).inc()
        return outcome

    return handle
