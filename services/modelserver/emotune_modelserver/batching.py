"""Server-side batching with TensorFlow Serving's semantics (BasicBatchScheduler).

Requests are tasks of N rows. A task joins the open batch when it fits (``max_batch_size``); a batch
closes when it is full or ``batch_timeout_micros`` after its first task arrived. ``num_batch_threads``
threads run closed batches, one model call each, and split the results back to the tasks. At most
``max_enqueued_batches`` batches wait (the open one included); past that a task is refused at once
(RESOURCE_EXHAUSTED), so a server under overload answers fast instead of queueing without bound.
With ``allowed_batch_sizes`` a batch is padded up to the next allowed size (the rows are dropped
from the result), so the model sees a few fixed shapes.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from emotune_modelserver import metrics
from emotune_modelserver.config import BatchingConfig

Inputs = dict[str, np.ndarray]
RunBatch = Callable[[Inputs], dict[str, np.ndarray]]


class QueueFull(Exception):
    """No room for another batch: the caller should back off."""


class TaskTooLarge(ValueError):
    """A single request has more rows than max_batch_size."""


@dataclass
class _Batch:
    opened: float
    tasks: list[tuple[Inputs, int, Future]] = field(default_factory=list)
    size: int = 0


class BatchScheduler:
    def __init__(self, run: RunBatch, config: BatchingConfig, name: str = "model") -> None:
        self._run = run
        self.config = config
        self.name = name
        self._timeout = config.batch_timeout_micros / 1e6
        self._cond = threading.Condition()
        self._open: _Batch | None = None
        self._closed: deque[_Batch] = deque()
        self._stopping = False
        self._threads = [
            threading.Thread(target=self._work, name=f"batch-{name}-{i}", daemon=True)
            for i in range(config.num_batch_threads)
        ]
        for t in self._threads:
            t.start()

    def submit(self, inputs: Inputs, n: int) -> Future:
        """Queue a task of ``n`` rows (the first axis of every input); the future resolves to its
        slice of the outputs."""
        if n > self.config.max_batch_size:
            raise TaskTooLarge(f"Task size {n} is larger than maximum input batch size {self.config.max_batch_size}")
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise QueueFull("the server is shutting down")
            if self._open is not None and self._open.size + n > self.config.max_batch_size:
                self._close_open()
            if self._open is None:
                if len(self._closed) + 1 > self.config.max_enqueued_batches:
                    metrics.QUEUE_FULL.labels(self.name).inc()
                    raise QueueFull("The batch scheduling queue to which this task was submitted is full")
                self._open = _Batch(opened=time.monotonic())
            self._open.tasks.append((inputs, n, future))
            self._open.size += n
            if self._open.size == self.config.max_batch_size:
                self._close_open()
            self._cond.notify()
        return future

    def _close_open(self) -> None:
        self._closed.append(self._open)
        self._open = None

    def _next_batch(self) -> _Batch | None:
        with self._cond:
            while True:
                if self._closed:
                    return self._closed.popleft()
                if self._open is not None:
                    wait = self._open.opened + self._timeout - time.monotonic()
                    if wait <= 0:
                        batch, self._open = self._open, None
                        return batch
                elif self._stopping:
                    return None
                else:
                    wait = None
                self._cond.wait(wait)

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._execute(batch)

    def _execute(self, batch: _Batch) -> None:
        # A task whose caller gave up (its request's deadline passed, its client went away) was cancelled
        # and gets no result; the others from now on can no longer be cancelled, so setting theirs is safe.
        # Setting a result on a cancelled future raises, which used to end this batch thread for good: on
        # a slow machine, deadlines passed, every thread died and the server answered nothing any more.
        wanted = [future.set_running_or_notify_cancel() for _, _, future in batch.tasks]
        padded = self._padded_size(batch.size)
        inputs = {}
        for key in batch.tasks[0][0]:
            parts = [task[key] for task, _, _ in batch.tasks]
            if padded > batch.size:
                parts.append(np.zeros((padded - batch.size, *parts[0].shape[1:]), parts[0].dtype))
            inputs[key] = np.concatenate(parts) if len(parts) > 1 else parts[0]
        metrics.BATCH_SIZE.labels(self.name).observe(batch.size)
        metrics.PADDED_BATCH_SIZE.labels(self.name).observe(padded)
        started = time.perf_counter()
        try:
            outputs = self._run(inputs)
        except Exception as e:  # every task of the batch gets the model's error
            for (_, _, future), wants in zip(batch.tasks, wanted, strict=True):
                if wants:
                    future.set_exception(e)
            return
        finally:
            metrics.BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        start = 0
        for (_, n, future), wants in zip(batch.tasks, wanted, strict=True):
            if wants:
                future.set_result({k: v[start : start + n] for k, v in outputs.items()})
            start += n

    def _padded_size(self, size: int) -> int:
        return next((s for s in self.config.allowed_batch_sizes if s >= size), size)

    def queued_batches(self) -> int:
        with self._cond:
            return len(self._closed) + (self._open is not None)

    def stop(self) -> None:
        """Run what is queued, then end the threads."""
        with self._cond:
            self._stopping = True
            if self._open is not None:
                self._close_open()
            self._cond.notify_all()
        for t in self._threads:
            t.join()
