"""A worker's shards share its model calls: the PredictionBatcher against the real model server."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from emotune_inference.batcher import PredictionBatcher
from emotune_inference.model_client import CircuitBreaker, ModelClient, ModelRejected

from ..processes import PATIENCE_S


class Recording:
    """The real client, noting the rows of each call it makes."""

    def __init__(self, client: ModelClient) -> None:
        self.client = client
        self.model = client.model
        self.calls: list[int] = []

    async def predict(self, images, stop=None):
        self.calls.append(len(images))
        return await self.client.predict(images, stop)


def client_for(model_server, model: str = "emotion_cnn") -> ModelClient:
    return ModelClient(model_server.target, model, PATIENCE_S, CircuitBreaker(3, 0.5))


async def test_requests_that_wait_for_a_busy_call_share_the_next_and_each_gets_its_own_rows(model_server, val_faces):
    images = val_faces[0][:15]
    client = client_for(model_server)
    expected = (await client.predict(images)).probabilities
    recording = Recording(client)
    batcher = PredictionBatcher(recording, asyncio.Event(), concurrency=1, max_rows=8)
    # Five shards hand in 3 crops each at once: the first goes out alone, the four others wait for it and
    # then go two by two (6 rows; a third request would pass max_rows).
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.predict(images[i : i + 3]) for i in range(0, 15, 3))), PATIENCE_S
    )
    assert recording.calls == [3, 6, 6]
    for i, result in enumerate(results):
        np.testing.assert_allclose(result.probabilities, expected[3 * i : 3 * i + 3], atol=1e-5)
        assert result.model_version >= 1
    await client.close()


async def test_with_room_for_more_calls_a_request_goes_out_at_once(model_server, val_faces):
    images = val_faces[0][:4]
    client = client_for(model_server)
    recording = Recording(client)
    batcher = PredictionBatcher(recording, asyncio.Event(), concurrency=2, max_rows=32)
    await asyncio.wait_for(asyncio.gather(batcher.predict(images[:2]), batcher.predict(images[2:])), PATIENCE_S)
    assert recording.calls == [2, 2]
    await client.close()


async def test_a_call_the_server_rejects_fails_every_request_it_carried_and_the_next_goes_out(model_server, val_faces):
    images = val_faces[0][:6]
    missing = client_for(model_server, "no_such_model")
    batcher = PredictionBatcher(missing, asyncio.Event(), concurrency=1, max_rows=32)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.predict(images[i : i + 2]) for i in range(0, 6, 2)), return_exceptions=True),
        PATIENCE_S,
    )
    assert all(isinstance(r, ModelRejected) and "NOT_FOUND" in str(r) for r in results)
    assert len({id(r) for r in results}) == 3  # one exception each
    with pytest.raises(ModelRejected):  # the next request is not stuck behind the failed call
        await asyncio.wait_for(batcher.predict(images[:2]), PATIENCE_S)
    await missing.close()


@pytest.mark.parametrize("rows", [33, 40])
async def test_a_request_larger_than_max_rows_still_goes_out_alone(model_server, val_faces, rows):
    images = val_faces[0][:rows]
    client = client_for(model_server)
    recording = Recording(client)
    batcher = PredictionBatcher(recording, asyncio.Event(), concurrency=1, max_rows=32)
    result = await asyncio.wait_for(batcher.predict(images), PATIENCE_S)
    assert recording.calls == [rows] and result.probabilities.shape == (rows, 7)
    await client.close()
