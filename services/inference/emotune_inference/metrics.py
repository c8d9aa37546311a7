"""Prometheus metrics of the inference workers."""

from prometheus_client import Counter, Gauge, Histogram

CROPS = Counter("emotune_inference_crops_total", "Crops scored")
EVENTS = Counter("emotune_inference_events_total", "Emotion events published", ["label"])
BATCH_SIZE = Histogram("emotune_inference_batch_size", "Crops per Predict", buckets=(1, 2, 4, 8, 16, 32, 64))
MODEL_SECONDS = Histogram(
    "emotune_inference_model_seconds", "Predict latency (successful calls)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)  # fmt: skip
END_TO_END_SECONDS = Histogram(
    "emotune_inference_end_to_end_seconds", "From the frame's capture to its emotion event",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5),
)  # fmt: skip
MODEL_ERRORS = Counter("emotune_inference_model_errors_total", "Failed Predict calls by status code", ["code"])
BREAKER_OPEN = Gauge("emotune_inference_circuit_open", "1 while the circuit to the model server is open")
INVALID_CROPS = Counter("emotune_inference_invalid_crops_total", "Crops refused before the model (wrong size)")
