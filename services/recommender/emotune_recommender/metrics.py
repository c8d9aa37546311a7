"""Prometheus metrics of the recommender."""

from prometheus_client import Counter, Gauge, Histogram

RECOMMEND_SECONDS = Histogram(
    "emotune_recommender_recommend_seconds", "Time to rank and enrich one recommendation set",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)  # fmt: skip
MODEL_VERSION = Gauge("emotune_recommender_model_version", "Version of the model being served")
FEEDBACK = Counter("emotune_recommender_feedback_total", "Feedback applied, by action", ["action"])
MOOD_CHANGES = Counter("emotune_recommender_mood_changes_total", "Session moods that changed", ["mood"])
