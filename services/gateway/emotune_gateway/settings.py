"""The gateway's settings (environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from emotune_common.settings import SourceSettings, default_data_dir


class GatewaySettings(SourceSettings):
    gateway_host: str = "0.0.0.0"
    gateway_port: int = Field(8000, ge=1, le=65535)
    public_url: str = Field("http://127.0.0.1:8000", description="Where browsers reach the gateway (OAuth redirect)")
    recommender_addr: str = Field("127.0.0.1:50052", description="host:port of the recommender's gRPC API")
    recommender_timeout_s: float = Field(5.0, gt=0)
    max_frame_bytes: int = Field(2_000_000, ge=1, description="Uploads past this are refused with 413")
    max_frame_pixels: int = Field(4096 * 4096, ge=1, description="Images with more pixels are refused with 413")
    frames_maxlen: int = Field(
        200, ge=1, description="Bound of emotune:frames: with EMOTUNE_MAX_FRAME_BYTES, the frames Redis's memory"
    )
    feedback_maxlen: int = Field(10_000, ge=1, description="Bound of emotune:feedback")
    cors_origins: str = Field("", description="Origins allowed by CORS, separated by commas ('*': any)")
    rate_limit: str = Field("1200/minute", description="Requests per API key (or client address), limits syntax")
    frame_rate_limit: str = Field("20/second", description="Frame uploads per API key")
    subscriber_queue: int = Field(1_000, ge=1, description="Events held for a slow subscriber before it is cut off")
    session_sources: str = Field(
        "upload webcam video stream",
        description="Source kinds a session may use on this gateway; each user beyond upload only as granted",
    )
    media_dir: Path = Field(default_factory=lambda: default_data_dir() / "video",
                            description="The only folder video: and images: sessions may read")  # fmt: skip
    spotipy_client_id: str = Field("", validation_alias="SPOTIPY_CLIENT_ID")
    spotipy_client_secret: str = Field("", validation_alias="SPOTIPY_CLIENT_SECRET")
    spotify_api_url: str = "https://api.spotify.com/v1/"
    spotify_accounts_url: str = "https://accounts.spotify.com/api/token"
    spotify_authorize_url: str = "https://accounts.spotify.com/authorize"
    spotify_market: str = "US"

    def origins(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]
