"""One worker's model calls, shared by the consumers of all its shards.

A worker reads emotune:faces with one consumer per shard (XREADGROUP cannot span cluster slots), and a
session's crops all lie on one shard, so at 10 frames/s a read holds one crop or two. Sent one model call
each, 8 streams made some 80 calls a second, each with its own gRPC round trip and its own wait in the
model server's batch queue, and the crops queued behind them: crop to event took 120 ms at the median.

So each shard's handler hands its crops to the worker's :class:`PredictionBatcher` and waits for their
rows. A call goes out at once while fewer than ``concurrency`` are in flight, carrying every crop waiting
then (up to ``max_rows``); crops that arrive while the calls are busy go together in the next one. Under
load the calls grow instead of multiplying, and an idle worker adds no delay.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import numpy as np

from emotune_inference.model_client import ModelRejected, Prediction, Stopped


class Predictor(Protocol):
    model: str

    async def predict(self, images: np.ndarray, stop: asyncio.Event | None = None) -> Prediction: ...


class PredictionBatcher:
    def __init__(self, client: Predictor, stop: asyncio.Event, concurrency: int = 1, max_rows: int = 32) -> None:
        self.client = client
        self.stop = stop
        self.concurrency = concurrency
        self.max_rows = max_rows
        self._waiting: list[tuple[np.ndarray, asyncio.Future[Prediction]]] = []
        self._calls: set[asyncio.Task] = set()

    @property
    def model(self) -> str:
        return self.client.model

    async def predict(self, images: np.ndarray) -> Prediction:
        """The model's rows for ``images`` (float32 [N,48,48,1]), scored in a call shared with other shards.

        Raises what the call raised (:class:`Stopped`, :class:`ModelRejected`) for every request it carried.
        """
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        self._waiting.append((images, future))
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._waiting and len(self._calls) < self.concurrency:
            taken, rows = [], 0
            while self._waiting and (not taken or rows + len(self._waiting[0][0]) <= self.max_rows):
                images, future = self._waiting.pop(0)
                if not future.cancelled():  # its handler was cancelled (the worker is stopping)
                    taken.append((images, future))
                    rows += len(images)
            if taken:
                call = asyncio.create_task(self._call(taken))
                self._calls.add(call)
                call.add_done_callback(self._finished)

    def _finished(self, call: asyncio.Task) -> None:
        self._calls.discard(call)
        self._dispatch()

    async def _call(self, taken: list[tuple[np.ndarray, asyncio.Future[Prediction]]]) -> None:
        try:
            images = taken[0][0] if len(taken) == 1 else np.concatenate([i for i, _ in taken])
            prediction = await self.client.predict(images, self.stop)
        except asyncio.CancelledError:
            for _, future in taken:
                future.cancel()
            raise
        except Exception as e:
            # Each waiter gets its own exception (Stopped, ModelRejected...: the message is the same).
            for _, future in taken:
                if not future.done():
                    future.set_exception(_copy(e))
            return
        start = 0
        for images, future in taken:
            rows = prediction.probabilities[start : start + len(images)]
            start += len(images)
            if not future.done():
                future.set_result(Prediction(rows, prediction.model_version))


def _copy(error: Exception) -> Exception:
    """A fresh exception like ``error`` for each waiter, so that their tracebacks do not pile up on one object."""
    return type(error)(str(error)) if isinstance(error, Stopped | ModelRejected) else error
