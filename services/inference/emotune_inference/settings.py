"""The inference workers' settings (environment variables)."""

from __future__ import annotations

from pydantic import Field

from emotune_common.settings import ServiceSettings


class InferenceSettings(ServiceSettings):
    model_server: str = Field("127.0.0.1:8500", validation_alias="MODEL_SERVER")
    model_name: str = "emotion_cnn"
    model_deadline_ms: int = Field(2_000, ge=1, description="Deadline of one Predict")
    inference_batch_size: int = Field(
        32, ge=1, description="Crops read at once from a shard, and the most one model call carries"
    )
    inference_concurrency: int = Field(
        2, ge=1, description="Model calls at once per worker process, shared by its shards' consumers"
    )
    breaker_failures: int = Field(3, ge=1, description="Consecutive failures that open the circuit")
    breaker_reset_s: float = Field(2.0, gt=0, description="How long an open circuit waits before one trial call")
    emotions_maxlen: int = Field(10_000, ge=1)
