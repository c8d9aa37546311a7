"""The model server's settings (environment variables)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from emotune_common.settings import ServiceSettings

MODELS_DIR = Path(__file__).resolve().parents[3] / "models"


class ModelServerSettings(ServiceSettings):
    port: int = Field(8500, ge=1, le=65535, validation_alias="EMOTUNE_MODELSERVER_PORT")
    host: str = Field("0.0.0.0", validation_alias="EMOTUNE_MODELSERVER_HOST")
    model_config_file: Path = MODELS_DIR / "models.config"
    batching_parameters_file: Path = MODELS_DIR / "batching.config"
    enable_batching: bool = True
    # TF Serving's --tensorflow_intra_op_parallelism and --tensorflow_inter_op_parallelism (0: TensorFlow's
    # choice, a thread per core). One thread per op costs 25-30% less CPU an image at the small batches of
    # live video, and gives 15% more images/s at batch 32 from 2 batch threads: they keep the cores busy
    # already, and spare op threads only spin. One inter-op thread would run the batch threads' calls one at
    # a time (half the images/s), so that stays TensorFlow's choice.
    tensorflow_intra_op_parallelism: int = Field(1, ge=0, description="Threads one TensorFlow op may use")
    tensorflow_inter_op_parallelism: int = Field(0, ge=0, description="TensorFlow ops run at once")
    poll_seconds: float = Field(1.0, gt=0, description="How often model folders are checked for new versions")
