"""Service processes for tests: a real model server over the committed emotion CNN."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from .conftest import ROOT, free_port

MODELS = ROOT / "models"
MODEL = "emotion_cnn"


def committed_versions() -> list[int]:
    return sorted(int(p.name) for p in (MODELS / MODEL).iterdir() if p.name.isdigit())


def latest_model_dir() -> Path:
    versions = committed_versions()
    assert versions, "no SavedModel version committed under models/emotion_cnn/"
    return MODELS / MODEL / str(versions[-1])


@dataclass
class ModelServer:
    port: int
    metrics_port: int
    base: Path
    process: subprocess.Popen

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def start_model_server(workdir: Path, batching: str | None = None, poll_seconds: float = 0.2,
                       versions: tuple[int, ...] = (1,), port: int | None = None) -> ModelServer:  # fmt: skip
    """A model server over a private copy of models/ (so a test may add versions to it)."""
    base = workdir / "models"
    (base / MODEL).mkdir(parents=True)
    shutil.copy(MODELS / "models.config", base / "models.config")
    (base / "batching.config").write_text(batching or (MODELS / "batching.config").read_text())
    for version in versions:
        shutil.copytree(latest_model_dir(), base / MODEL / str(version))
    port, metrics_port = port or free_port(), free_port()
    env = {
        **os.environ,
        "EMOTUNE_MODEL_CONFIG_FILE": str(base / "models.config"),
        "EMOTUNE_BATCHING_PARAMETERS_FILE": str(base / "batching.config"),
        "EMOTUNE_MODELSERVER_PORT": str(port),
        "EMOTUNE_METRICS_PORT": str(metrics_port),
        "EMOTUNE_POLL_SECONDS": str(poll_seconds),
    }
    log = open(workdir / "modelserver.log", "w")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen([sys.executable, "-m", "emotune_modelserver"], env=env, stdout=log, stderr=log)
    server = ModelServer(port, metrics_port, base, process)
    deadline = time.monotonic() + 120  # loading TensorFlow takes 15 s here, over 40 s beside another heavy job
    while True:
        # a fresh channel each try: one channel's reconnect backoff grows to tens of seconds while the
        # server loads, and would see it up that much later (or past the deadline)
        with server.channel() as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                break
            except grpc.FutureTimeoutError as e:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"model server did not start: {(workdir / 'modelserver.log').read_text()[-3000:]}"
                    ) from e
    return server
