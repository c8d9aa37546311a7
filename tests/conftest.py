"""Fixtures shared by all tests: real Redis servers, unique stream names, the repo's paths.

The suite's shared Redis is ``EMOTUNE_TEST_REDIS_URL`` when that is set; otherwise the run starts a
private redis-server on a free port for itself (never the user's own 6379) and stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from emotune_common.settings import default_data_dir

from .cluster import RedisCluster
from .processes import ROOT, RedisServer, free_port

DATA_DIR = default_data_dir()
_OWN_REDIS: list[RedisServer] = []


def pytest_configure(config: pytest.Config) -> None:
    """Start the suite's own Redis unless one is given; its URL reaches the tests' subprocesses too."""
    if os.environ.get("EMOTUNE_TEST_REDIS_URL") or hasattr(config, "workerinput"):
        return
    server = RedisServer(free_port(), Path(tempfile.mkdtemp(prefix="emotune-test-redis-")), appendonly=False)
    server.start()
    _OWN_REDIS.append(server)
    os.environ["EMOTUNE_TEST_REDIS_URL"] = server.url


def pytest_unconfigure(config: pytest.Config) -> None:
    while _OWN_REDIS:
        server = _OWN_REDIS.pop()
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)
        os.environ.pop("EMOTUNE_TEST_REDIS_URL", None)


def shared_redis_url() -> str:
    """The suite's shared Redis (tests keep to their own key names)."""
    return os.environ["EMOTUNE_TEST_REDIS_URL"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis with AOF on, started on a free port (for tests that stop or restart Redis)."""
    server = RedisServer(free_port(), tmp_path, appendonly=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster of 3 masters and 3 replicas for the session, with AOF (so that a master restarted
    without a failover has its data). A test that kills a node starts it again and waits until the cluster
    is whole before it ends; tests keep to their own key names."""
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster"), appendonly=True)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_url() -> str:
    """The suite's shared Redis (tests keep to their own key names)."""
    url = shared_redis_url()
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"no Redis answers at {url}")
    finally:
        client.close()
    return url


@pytest.fixture
def names() -> Iterator[Names]:
    """Unique stream names for one test; every key under the prefix is deleted afterwards."""
    n = Names(f"test:{uuid.uuid4().hex[:10]}")
    yield n
    client = redis.Redis.from_url(shared_redis_url())
    keys = [k for pattern in (f"{n.prefix}*", f"emotune:*{n.prefix}*") for k in client.scan_iter(pattern)]
    if keys:
        client.delete(*keys)
    client.close()


@dataclass
class Names:
    prefix: str

    def __call__(self, name: str) -> str:
        return f"{self.prefix}:{name}"


@pytest.fixture(scope="session")
def model_server(tmp_path_factory):
    """A model server process over a copy of the committed model, shared by the whole session."""
    from .processes import start_model_server

    server = start_model_server(tmp_path_factory.mktemp("modelserver"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def val_faces():
    """The first 256 validation faces of FER-2013, float32 [N,48,48,1] in 0..1, and their labels."""
    import numpy as np

    with np.load(DATA_DIR / "fer2013" / "val.npz") as f:
        x, y = f["x"][:256], f["y"][:256]
    return (x.astype(np.float32) / 255.0)[..., None], y


@pytest.fixture
async def aredis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    from emotune_common.redis_client import connect

    client = connect(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def recommender_models(tmp_path_factory) -> Path:
    """A recommender model trained once for the session (``python -m emotune_recommender train``)."""
    import sys

    models = tmp_path_factory.mktemp("recommender-models")
    env = {**os.environ, "EMOTUNE_RECOMMENDER_MODEL_DIR": str(models), "EMOTUNE_LOG_LEVEL": "WARNING"}
    trained = subprocess.run([sys.executable, "-m", "emotune_recommender", "train"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    return models
