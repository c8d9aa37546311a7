"""Prometheus metrics of the model server."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter("emotune_modelserver_requests_total", "RPCs by method and status code", ["method", "code"])
REQUEST_SECONDS = Histogram(
    "emotune_modelserver_request_seconds", "RPC latency", ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)  # fmt: skip
BATCH_SIZE = Histogram(
    "emotune_modelserver_batch_size", "Rows per model call, before padding", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)  # fmt: skip
PADDED_BATCH_SIZE = Histogram(
    "emotune_modelserver_padded_batch_size", "Rows per model call, after padding to an allowed size", ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)  # fmt: skip
BATCH_SECONDS = Histogram(
    "emotune_modelserver_batch_seconds", "Model call time per batch", ["model"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)  # fmt: skip
QUEUE_FULL = Counter(
    "emotune_modelserver_queue_full_total", "Tasks refused because the batch queue was full", ["model"]
)
VERSIONS = Gauge("emotune_modelserver_available_versions", "Versions AVAILABLE per model", ["model"])
LATEST_VERSION = Gauge("emotune_modelserver_latest_version", "Highest AVAILABLE version per model", ["model"])
