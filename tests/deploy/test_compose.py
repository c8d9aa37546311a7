"""docker-compose.yml must be a valid deployment, checked without a Docker engine."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from ..conftest import ROOT


def compose_config(*args: str) -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (apt-get install docker-compose); .ci/run installs it")
    done = subprocess.run([binary, "-f", str(ROOT / "docker-compose.yml"), *args, "config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_compose_file_is_valid():
    config = yaml.safe_load(compose_config())
    assert "redis" in config["services"]


def test_redis_keeps_its_data_on_a_volume():
    redis = yaml.safe_load(compose_config())["services"]["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert "redis-data:/data:rw" in redis["volumes"]
