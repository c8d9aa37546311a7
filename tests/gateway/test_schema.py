"""Schemathesis against the gateway's OpenAPI schema: no generated request gets a 5xx.

The gateway runs as a real server (uvicorn, in a thread) over a private Redis, a real recommender and
a fake Spotify. Requests carry a valid key; path user ids are the key's user (else every case would
stop at 403), session ids a real session of theirs, so the generated bodies and queries reach the code
behind the checks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings

from emotune_gateway.app import create_app

from ..conftest import RedisServer, free_port
from ..fakes.spotify import FakeSpotify
from .conftest import Stack, new_user, recommender_process, settings_for


@pytest.fixture(scope="module")
def live_gateway(tmp_path_factory, recommender_models) -> Iterator[dict]:
    with FakeSpotify(generate=True) as fake:
        store = RedisServer(free_port(), tmp_path_factory.mktemp("schema"), appendonly=False)
        store.start()
        spotify = {"SPOTIPY_CLIENT_ID": "id", "SPOTIPY_CLIENT_SECRET": "secret", "spotify_api_url": fake.api_url,
                   "spotify_accounts_url": fake.accounts_url, "spotify_authorize_url": fake.authorize_url}  # fmt: skip
        try:
            with recommender_process(store.url, recommender_models) as address:
                port = free_port()
                app = create_app(settings_for(Stack(store.url, address), **spotify))
                server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
                thread = threading.Thread(target=server.run, daemon=True)
                thread.start()
                while not server.started:
                    time.sleep(0.02)
                base = f"http://127.0.0.1:{port}"
                key = new_user(store.url, "fuzz")
                headers = {"Authorization": f"Bearer {key}"}
                session = requests.post(f"{base}/v1/users/fuzz/sessions", json={"source": "upload"}, headers=headers)
                yield {"base": base, "headers": headers, "session": session.json()["id"]}
                server.should_exit = True
                thread.join(10)
        finally:
            store.stop()


# The schema as the app publishes it (making the app connects nothing: that happens at its start).
# The event stream never ends by itself: tests/gateway/test_events.py covers it.
schema = schemathesis.openapi.from_dict(create_app().openapi()).exclude(path="/v1/users/{user_id}/events")


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_server_error(case, live_gateway):
    if "user_id" in (case.path_parameters or {}) and not case.path.endswith("/users/{user_id}"):
        case.path_parameters["user_id"] = "fuzz"  # deleting the account itself is fuzzed with foreign ids
    if "session_id" in (case.path_parameters or {}):
        case.path_parameters["session_id"] = live_gateway["session"]
    headers = {**(case.headers or {}), **live_gateway["headers"]}
    response = case.call(base_url=live_gateway["base"], headers=headers, timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
    )
