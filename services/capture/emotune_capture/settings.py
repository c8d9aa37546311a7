"""The capture service's settings (environment variables)."""

from __future__ import annotations

from pydantic import Field

from emotune_capture.detector import DetectorOptions, Equalize
from emotune_common.settings import SourceSettings


class CaptureSettings(SourceSettings):
    capture_sources: str = Field("", description="Sources to read, separated by spaces (see sources.py)")
    capture_uploads: bool = Field(True, description="Read browser-uploaded frames from emotune:frames")
    capture_uploads_min_face: float = Field(
        0.15, gt=0, lt=1, description="Smallest face in an uploaded frame (a laptop camera's face is big)"
    )
    capture_fps: float = Field(10.0, ge=0, description="Default frame-rate cap of a source (0: none)")
    capture_session: str = Field("default", description="Session of a source that names none")
    capture_user: str = Field("default", description="User of a source that names none")
    capture_sessions: bool = Field(True, description="Run the sessions of the capture registry (sessions.py)")
    capture_poll_s: float = Field(1.0, gt=0, description="How often the registry is read and leases renewed")
    capture_lease_ms: int = Field(10_000, ge=100, description="A session's lease: another instance takes it after")
    capture_max_sessions: int = Field(8, ge=1, description="Sessions of the registry one instance runs at most")
    capture_retry_s: float = Field(60.0, ge=0, description="A session whose source failed here is retried after")
    capture_reconnect_s: float = Field(
        30.0, ge=0, description="A stream that stops is opened again, backing off, for up to this long (0: never)"
    )
    detect_scale_factor: float = Field(1.1, gt=1.0)
    detect_min_neighbors: int = Field(5, ge=0)
    detect_min_face: float = Field(
        0.083, gt=0, lt=1, description="Smallest face, a share of the frame's shorter side (a source may set min_face)"
    )
    detect_largest_only: bool = False
    detect_width: int = Field(0, ge=0, description="Downscale wider frames to this before detecting (0: never)")
    detect_every: int = Field(3, ge=1, description="Full detection every N frames of a source, tracking between")
    detect_every_empty: int = Field(1, ge=1, description="Full detection every N frames while no face is tracked")
    track_keep_missed: int = Field(1, ge=0, description="Full passes that may miss a tracked face before it is dropped")
    detect_threads: int = Field(
        0, ge=0, description="Threads for trackers' full passes, run beside the frames (0: one a core)"
    )
    detect_nice: int = Field(
        10, ge=0, le=19, description="Niceness added to the full passes' threads, so tracking and publishing go first"
    )
    detect_late_max_ms: float = Field(
        100.0, ge=0, description="A face a full pass finds late is published for frames at most this old (0: any)"
    )
    detect_shed_at: float = Field(
        0.05, ge=0, le=1, description="Shed optional full passes while this share of frames is dropped (0: never)"
    )
    track_min_score: float = Field(0.6, gt=0, le=1, description="Template match below this: the face is lost")
    crop_margin: float = Field(0.0, ge=0, le=1)
    crop_equalize: Equalize = "none"
    faces_maxlen: int = Field(2_000, ge=1, description="Bound of emotune:faces: older crops are dropped")
    max_frame_pixels: int = Field(
        16_777_216, ge=1, description="Uploaded frames larger than this are refused from their header, undecoded"
    )

    @property
    def detect_late_max_s(self) -> float:
        """``detect_late_max_ms`` in seconds, as the runners take it."""
        return self.detect_late_max_ms / 1000

    def detector_options(self, min_face: float = 0.0) -> DetectorOptions:
        """The detector's options; ``min_face`` (a source's own, when it names one) overrides the default."""
        return DetectorOptions(
            scale_factor=self.detect_scale_factor,
            min_neighbors=self.detect_min_neighbors,
            min_face=min_face or self.detect_min_face,
            largest_only=self.detect_largest_only,
            margin=self.crop_margin,
            detect_width=self.detect_width,
            equalize=self.crop_equalize,
        )
