"""Settings from the environment, and the ops endpoints every service serves."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from emotune_common.settings import ServiceSettings, StreamSettings


def test_defaults_work_on_one_machine(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    s = ServiceSettings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert s.stream.maxlen > 0 and s.stream.max_deliveries >= 1


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/1")
    monkeypatch.setenv("EMOTUNE_STREAM_BATCH_SIZE", "64")
    monkeypatch.setenv("EMOTUNE_METRICS_PORT", "9101")
    s = ServiceSettings()
    assert (s.redis_url, s.stream.batch_size, s.metrics_port) == ("redis://redis:6379/1", 64, 9101)


def test_a_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("EMOTUNE_STREAM_MAX_DELIVERIES", "zero")
    with pytest.raises(ValueError, match="max_deliveries"):
        StreamSettings()


def test_ops_endpoints():
    from emotune_common import metrics
    from emotune_common.lifecycle import ops_app

    state = {"ready": True}

    async def ready() -> bool:
        if state["ready"] is None:
            raise ConnectionError("redis down")
        return state["ready"]

    metrics.PUBLISHED.labels("ops-test").inc()
    client = TestClient(ops_app(ready))
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    state["ready"] = False
    assert client.get("/readyz").status_code == 503
    state["ready"] = None
    response = client.get("/readyz")
    assert response.status_code == 503 and "redis down" in response.json()["error"]
    body = client.get("/metrics/").text
    assert 'emotune_stream_published_total{stream="ops-test"} 1.0' in body
