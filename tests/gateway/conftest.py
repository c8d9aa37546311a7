"""The gateway through its real client, over a private Redis and a real recommender process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from fastapi.testclient import TestClient

from emotune_common.redis_client import connect
from emotune_gateway import accounts
from emotune_gateway.app import create_app
from emotune_gateway.settings import GatewaySettings

from ..conftest import DATA_DIR, ROOT, RedisServer, free_port
from ..processes import PATIENCE_S, wait_until


@dataclass
class Stack:
    redis_url: str
    recommender_addr: str


@contextlib.contextmanager
def recommender_process(redis_url: str, models: Path, **env: str) -> Iterator[str]:
    """A recommender serving ``models`` over ``redis_url``; yields its gRPC address."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "EMOTUNE_RECOMMENDER_PORT": str(port),
           "EMOTUNE_RECOMMENDER_MODEL_DIR": str(models), "EMOTUNE_STREAM_BLOCK_MS": "50",
           "EMOTUNE_LOG_LEVEL": "WARNING", **env}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "emotune_recommender", "serve"], env=env, cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, recommender_models) -> Iterator[Stack]:
    """A private Redis and a recommender serving the session's trained model."""
    store = RedisServer(free_port(), tmp_path_factory.mktemp("gateway"), appendonly=False)
    store.start()
    try:
        with recommender_process(store.url, recommender_models) as address:
            yield Stack(store.url, address)
    finally:
        store.stop()


def settings_for(stack: Stack, **overrides) -> GatewaySettings:
    return GatewaySettings.model_validate({
        "REDIS_URL": stack.redis_url, "recommender_addr": stack.recommender_addr, "media_dir": DATA_DIR / "video",
        "rate_limit": "100000/minute", "frame_rate_limit": "1000/second", "log_json": False,
        "stream": {"block_ms": 50}, **overrides,
    })  # fmt: skip


def new_user(redis_url: str, user_id: str, sources: tuple[str, ...] = ()) -> str:
    """Create ``user_id``, granted ``sources`` besides upload as an operator grants them, and return an API key."""

    async def go() -> str:
        redis = connect(redis_url)
        try:
            await accounts.create_user(redis, user_id, sources=sources)
            return await accounts.create_key(redis, user_id)
        finally:
            await redis.aclose()

    with ThreadPoolExecutor(1) as pool:  # works from async tests too
        return pool.submit(asyncio.run, go()).result()


@dataclass
class User:
    id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def client(stack) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(stack))) as c:
        # ready: both Redis servers answer and the event hub reads from the streams' ends
        wait_until(lambda: c.get("/readyz").status_code == 200, PATIENCE_S, "the gateway to be ready")
        yield c


@pytest.fixture
def users(stack):
    """A factory of fresh users (unique ids) with their keys, granted ``sources`` besides upload."""
    import uuid

    def make(prefix: str = "u", sources: tuple[str, ...] = ()) -> User:
        user_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        return User(user_id, new_user(stack.redis_url, user_id, sources))

    return make
