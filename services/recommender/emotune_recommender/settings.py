"""The recommender's settings (environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from emotune_common.settings import ServiceSettings
from emotune_recommender.core import Tuning
from emotune_recommender.data import DEFAULT_DATA_DIR
from emotune_recommender.tracks import SpotifyConfig

REPO = Path(__file__).resolve().parents[3]


class RecommenderSettings(ServiceSettings):
    recommender_port: int = Field(50052, ge=1, le=65535)
    data_dir: Path = DEFAULT_DATA_DIR
    recommender_model_dir: Path = REPO / "models" / "recommender"
    mood_weight: float = Field(0.2, ge=0, le=1, description="Share of mood fit in the ranking (taste: the rest)")
    default_policy: str = Field("match", pattern="^(match|uplift)$")
    default_k: int = Field(10, ge=1, le=100)
    mood_time_constant_s: float = Field(2.0, gt=0)
    mood_margin: float = Field(0.1, ge=0, le=1)
    mood_hold: int = Field(3, ge=1)
    session_ttl_s: int = Field(86400, ge=1, description="A session's mood and timeline in Redis expire after this "
                               "long without events; sessions idle this long leave memory")  # fmt: skip
    session_history: int = Field(600, ge=1, description="Points of a session's mood timeline kept in Redis")
    skip_memory_s: int = Field(3600, ge=0, description="How long a skipped track stays out of a user's lists")
    replay_after_s: int = Field(3600, ge=0, description="How long a track played to the end stays out of them")
    lift_min_plays: int = Field(3, ge=1, description="Plays measured before a track's mood lift is used")
    lift_weight: float = Field(1.0, ge=0, le=2, description="Share of a measured lift added to the score (uplift)")
    recommendations_maxlen: int = Field(10_000, ge=1)
    spotipy_client_id: str = Field("", validation_alias="SPOTIPY_CLIENT_ID")
    spotipy_client_secret: str = Field("", validation_alias="SPOTIPY_CLIENT_SECRET")
    spotify_api_url: str = "https://api.spotify.com/v1/"
    spotify_accounts_url: str = "https://accounts.spotify.com/api/token"
    spotify_market: str = "US"

    def tuning(self) -> Tuning:
        return Tuning(self.mood_weight, self.default_policy, self.skip_memory_s, self.replay_after_s,
                      self.lift_min_plays, self.lift_weight)  # fmt: skip

    def spotify(self) -> SpotifyConfig:
        return SpotifyConfig(self.spotipy_client_id, self.spotipy_client_secret, self.spotify_api_url,
                             self.spotify_accounts_url, self.spotify_market)  # fmt: skip
