"""Reading models.config (ModelServerConfig) and batching.config (BatchingParameters), text protos."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from emotune.v1 import batching_pb2

CONTAINER_MODELS_DIR = Path("/models")


class ConfigError(ValueError):
    """A config file is missing or malformed; the text says which and why."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    base_path: Path
    policy: str = "latest"  # latest | all | specific
    num_versions: int = 1
    versions: frozenset[int] = frozenset()
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchingConfig:
    """TensorFlow Serving's batching options with its defaults."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    num_batch_threads: int = 4
    max_enqueued_batches: int = 10
    allowed_batch_sizes: tuple[int, ...] = ()


def _parse(path: Path, message):
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    try:
        return text_format.Parse(text, message)
    except text_format.ParseError as e:
        raise ConfigError(f"{path}: {e}") from e


def resolve_base_path(base_path: str, config_dir: Path) -> Path:
    """``base_path`` as written; a container path under /models/ that does not exist here is read
    relative to the folder of models.config instead (models/ is what the container mounts at /models)."""
    path = Path(base_path)
    if not path.is_absolute():
        return (config_dir / path).resolve()
    if not path.exists() and path.is_relative_to(CONTAINER_MODELS_DIR):
        return config_dir / path.relative_to(CONTAINER_MODELS_DIR)
    return path


def load_model_config(path: Path) -> list[ModelConfig]:
    config = _parse(path, model_server_config_pb2.ModelServerConfig())
    if not config.HasField("model_config_list") or not config.model_config_list.config:
        raise ConfigError(f"{path}: no model_config_list with at least one model")
    models = []
    for c in config.model_config_list.config:
        if not c.name or not c.base_path:
            raise ConfigError(f"{path}: every model needs a name and a base_path")
        if c.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"{path}: model {c.name}: platform {c.model_platform!r} is not served here")
        policy = c.model_version_policy.WhichOneof("policy_choice") or "latest"
        models.append(
            ModelConfig(
                name=c.name,
                base_path=resolve_base_path(c.base_path, Path(path).resolve().parent),
                policy=policy,
                num_versions=max(1, c.model_version_policy.latest.num_versions) if policy == "latest" else 1,
                versions=frozenset(c.model_version_policy.specific.versions),
                labels=dict(c.version_labels),
            )
        )
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: model names must be unique, got {names}")
    return models


def load_batching_config(path: Path) -> BatchingConfig:
    p = _parse(path, batching_pb2.BatchingParameters())
    defaults = BatchingConfig()
    config = BatchingConfig(
        max_batch_size=p.max_batch_size.value if p.HasField("max_batch_size") else defaults.max_batch_size,
        batch_timeout_micros=p.batch_timeout_micros.value
        if p.HasField("batch_timeout_micros")
        else defaults.batch_timeout_micros,
        num_batch_threads=p.num_batch_threads.value if p.HasField("num_batch_threads") else defaults.num_batch_threads,
        max_enqueued_batches=p.max_enqueued_batches.value
        if p.HasField("max_enqueued_batches")
        else defaults.max_enqueued_batches,
        allowed_batch_sizes=tuple(p.allowed_batch_sizes),
    )
    if min(config.max_batch_size, config.num_batch_threads, config.max_enqueued_batches) < 1:
        raise ConfigError(f"{path}: max_batch_size, num_batch_threads and max_enqueued_batches must be >= 1")
    sizes = config.allowed_batch_sizes
    if sizes and (list(sizes) != sorted(set(sizes)) or sizes[-1] != config.max_batch_size):
        raise ConfigError(f"{path}: allowed_batch_sizes must increase and end with max_batch_size")
    return config
