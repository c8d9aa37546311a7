"""Prometheus metrics of the capture service, by source."""

from prometheus_client import Counter, Gauge, Histogram

FRAMES_READ = Counter("emotune_capture_frames_read_total", "Frames read from a source", ["source"])
FRAMES_SKIPPED = Counter(
    "emotune_capture_frames_skipped_total", "Frames left out by the source's frame-rate cap", ["source"]
)
FRAMES_DROPPED = Counter(
    "emotune_capture_frames_dropped_total",
    "Frames replaced by a newer one before detection got to them (the camera never waits)", ["source"],
)  # fmt: skip
FRAMES_PROCESSED = Counter("emotune_capture_frames_processed_total", "Frames run through detection", ["source"])
FACES = Counter("emotune_capture_faces_total", "Faces detected and published", ["source"])
DETECT_SECONDS = Histogram(
    "emotune_capture_detect_seconds", "Face detection time per frame (a tracker's: following, full passes aside)",
    ["source"], buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
)  # fmt: skip
FULL_PASS_SECONDS = Histogram(
    "emotune_capture_full_pass_seconds", "A tracker's full Haar pass, run beside the frames", ["source"],
    buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
)  # fmt: skip
FULL_PASS_WAIT_SECONDS = Histogram(
    "emotune_capture_full_pass_wait_seconds", "How long a full pass waited for a thread of the pass pool",
    buckets=(0.001, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28),
)  # fmt: skip
STREAMS_LOST = Counter(
    "emotune_capture_streams_lost_total", "Times a stream stopped giving frames after it had played", ["source"]
)
STREAM_RECONNECTS = Counter(
    "emotune_capture_stream_reconnects_total", "Lost streams opened again, giving frames again", ["source"]
)
SHEDDING = Gauge(
    "emotune_capture_detection_shedding", "1 while a source sheds optional full passes (detection behind)", ["source"]
)
BAD_UPLOADS = Counter("emotune_capture_bad_uploads_total", "Uploaded frames that could not be decoded")
LATE_FACES_DROPPED = Counter(
    "emotune_capture_late_faces_dropped_total",
    "Faces a full pass found new in frames older than EMOTUNE_DETECT_LATE_MAX_MS when it came back: not published",
    ["source"],
)
