"""Prometheus metrics of the stream library, labelled by stream (and consumer group)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("emotune_stream_published_total", "Entries added to a stream", ["stream"])
TRIMMED = Counter("emotune_stream_trimmed_total", "Entries evicted by the stream's length bound", ["stream"])
DROPPED = Counter(
    "emotune_stream_dropped_total", "Entries evicted before the slowest consumer group read them", ["stream"]
)
CONSUMED = Counter("emotune_stream_consumed_total", "Entries delivered to this consumer", ["stream", "group"])
ACKED = Counter("emotune_stream_acked_total", "Entries acknowledged", ["stream", "group"])
RETRIED = Counter(
    "emotune_stream_retried_total",
    "Entries delivered again (claimed or re-read from the pending list)",
    ["stream", "group"],
)
FAILED = Counter(
    "emotune_stream_failed_total", "Entries whose handling failed (left pending for retry)", ["stream", "group"]
)
DEAD_LETTERED = Counter(
    "emotune_stream_dead_lettered_total", "Entries moved to the dead-letter stream", ["stream", "group"]
)
DUPLICATES = Counter(
    "emotune_stream_duplicates_total",
    "Entries skipped because their message id was already handled",
    ["stream", "group"],
)
LOST_PENDING = Counter(
    "emotune_stream_pending_trimmed_total",
    "Pending entries evicted by trimming before they were acknowledged",
    ["stream", "group"],
)
UNREPLICATED = Counter(
    "emotune_stream_unreplicated_total",
    "Entries published whose replicas had not all confirmed them within EMOTUNE_STREAM_WAIT_TIMEOUT_MS",
    ["stream"],
)
RECONNECTS = Counter("emotune_redis_reconnects_total", "Times a Redis connection error was backed off from", ["stream"])
PENDING = Gauge(
    "emotune_stream_pending", "Entries delivered to the group and not yet acknowledged", ["stream", "group"]
)
LAG = Gauge("emotune_stream_consumer_lag", "Entries in the stream not yet delivered to the group", ["stream", "group"])
BATCH_SIZE = Histogram(
    "emotune_stream_batch_size",
    "Entries per handled batch",
    ["stream", "group"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
HANDLE_SECONDS = Histogram(
    "emotune_stream_handle_seconds",
    "Time to handle and commit one batch",
    ["stream", "group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
