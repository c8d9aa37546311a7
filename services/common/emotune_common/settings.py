"""Settings shared by every service, read from environment variables.

Each service subclasses :class:`ServiceSettings` with its own fields; all defaults work on one machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from emotune_common.egress import StreamAllow


def default_data_dir() -> Path:
    """The data sets: ``EMOTUNE_DATA_DIR``, else ../shared/data beside the repository."""
    repository = Path(__file__).resolve().parents[3]
    return Path(os.environ.get("EMOTUNE_DATA_DIR", repository.parent / "shared" / "data"))


class StreamSettings(BaseSettings):
    """How a service reads and writes Redis streams (``EMOTUNE_STREAM_*``)."""

    model_config = SettingsConfigDict(env_prefix="EMOTUNE_STREAM_", extra="ignore")

    shards: int = Field(
        16, ge=1, description="Logical shards of every stream (emotune:{sN}:faces...); the same in every service"
    )
    maxlen: int = Field(10_000, ge=1, description="Approximate bound of every stream (each shard) this service writes")
    batch_size: int = Field(32, ge=1, description="Entries read from a stream at once")
    block_ms: int = Field(500, ge=1, description="How long one read waits for new entries")
    claim_idle_ms: int = Field(30_000, ge=1, description="Pending this long, an entry is claimed from its consumer")
    max_deliveries: int = Field(5, ge=1, description="Deliveries before an entry goes to the dead-letter stream")
    dlq_maxlen: int = Field(100_000, ge=1, description="Approximate bound of each dead-letter stream")
    dedupe_ttl_s: int = Field(600, ge=0, description="How long handled message ids are remembered (0: off)")
    # The largest real entry is a Frame: an upload of at most EMOTUNE_MAX_FRAME_BYTES (2 MB) plus its header.
    # Four times that leaves room for larger uploads while a batch of the biggest entries stays bounded.
    max_entry_bytes: int = Field(
        8_000_000, ge=1, description="Entries larger than this go to the dead-letter stream unparsed"
    )
    wait_replicas: int = Field(
        -1,
        ge=-1,
        description="Replicas a publish waits for (WAIT) before it counts as written; -1: 1 on a Redis "
        "Cluster, 0 on one Redis. See RELIABILITY.md, failover",
    )
    wait_timeout_ms: int = Field(100, ge=1, description="How long a publish waits for its replicas at most")
    retention_s: int = Field(
        86_400, ge=0, description="Entries older than this leave the streams (and dead-letter streams); 0: kept"
    )


class ServiceSettings(BaseSettings):
    """Settings every service has. ``REDIS_URL`` has no prefix, as DESIGN.md says."""

    model_config = SettingsConfigDict(env_prefix="EMOTUNE_", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    log_level: str = "INFO"
    log_json: bool = True
    metrics_port: int = Field(0, ge=0, le=65535, description="Port of /metrics, /healthz, /readyz (0: none)")
    consumer_name: str = Field("", description="Name in the consumer group (default: host and pid)")
    stream: StreamSettings = Field(default_factory=StreamSettings)


class FramesSettings(ServiceSettings):
    """Settings of the services that handle raw uploaded frames (the gateway writes them, capture reads them).

    Raw frames go through a Redis of their own, which should keep nothing on disk (``--save ""
    --appendonly no``): the main Redis persists its streams, and a camera frame must never reach a disk.
    """

    frames_redis_url: str = Field(
        "", description="The Redis of emotune:frames, one that keeps nothing on disk (empty: REDIS_URL)"
    )

    def frames_url(self) -> str:
        return self.frames_redis_url or self.redis_url


class SourceSettings(FramesSettings):
    """Settings of the services that handle capture sources: the gateway checks them, capture opens them."""

    stream_allow: str = Field(
        "public",
        description="Where stream sources may connect, separated by spaces: host names, addresses, CIDR networks, "
        "and 'public' (any public address). Loopback, private, link-local and metadata addresses only when named",
    )

    @field_validator("stream_allow")
    @classmethod
    def _parses(cls, text: str) -> str:
        StreamAllow.parse(text)  # a wrong entry stops the service at start, with its reason
        return text

    def stream_policy(self) -> StreamAllow:
        return StreamAllow.parse(self.stream_allow)
