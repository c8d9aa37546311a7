"""The capture service's settings (environment variables)."""

from __future__ import annotations

from pydantic import Field

from emotune_capture.detector import DetectorOptions, Equalize
from emotune_common.settings import SourceSettings


class CaptureSettings(SourceSettings):
    capture_sources: str = Field("", description="Sources to read, separated by spaces (see sources.py)")
    capture_uploads: bool = Field(True, description="Read browser-uploaded frames from emotune:frames")
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
    detect_min_size: int = Field(30, ge=1)
    detect_largest_only: bool = False
    detect_width: int = Field(0, ge=0, description="Downscale wider frames to this before detecting (0: never)")
    detect_every: int = Field(5, ge=1, description="Full detection every N frames of a source, tracking between")
    track_min_score: float = Field(0.6, gt=0, le=1, description="Template match below this: the face is lost")
    crop_margin: float = Field(0.0, ge=0, le=1)
    crop_equalize: Equalize = "none"
    faces_maxlen: int = Field(2_000, ge=1, description="Bound of emotune:faces: older crops are dropped")
    max_frame_pixels: int = Field(
        16_777_216, ge=1, description="Uploaded frames larger than this are refused from their header, undecoded"
    )

    def detector_options(self) -> DetectorOptions:
        return DetectorOptions(
            scale_factor=self.detect_scale_factor,
            min_neighbors=self.detect_min_neighbors,
            min_size=self.detect_min_size,
            largest_only=self.detect_largest_only,
            margin=self.crop_margin,
            detect_width=self.detect_width,
            equalize=self.crop_equalize,
        )
