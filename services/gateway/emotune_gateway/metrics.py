"""The gateway's Prometheus metrics (the stream library's own are in emotune_common.metrics)."""

from prometheus_client import Counter, Gauge, Histogram

FRAMES = Counter("emotune_gateway_frames_total", "Frames uploaded, by outcome", ["outcome"])
SUBSCRIBERS = Gauge("emotune_gateway_subscribers", "Live WebSocket and SSE subscribers")
SUBSCRIBER_OVERFLOWS = Counter("emotune_gateway_subscriber_overflows_total", "Subscribers cut off for being slow")
EVENTS_DISPATCHED = Counter("emotune_gateway_events_dispatched_total", "Events offered to subscribers", ["type"])
EVENTS_SENT = Counter("emotune_gateway_events_sent_total", "Events sent to subscribers", ["transport"])
DELIVERY_SECONDS = Histogram(
    "emotune_gateway_delivery_seconds",
    "From an event's creation to its sending to a subscriber",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
RECOMMEND_SECONDS = Histogram(
    "emotune_gateway_recommend_seconds",
    "Recommend calls to the recommender, as the gateway sees them",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
