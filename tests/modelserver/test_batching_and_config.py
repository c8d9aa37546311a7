"""The batch scheduler's TF Serving semantics, and the config files, in-process."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from emotune_modelserver.batching import BatchScheduler, QueueFull, TaskTooLarge
from emotune_modelserver.config import BatchingConfig, ConfigError, load_batching_config, load_model_config

from ..conftest import ROOT
from ..processes import PATIENCE_S


class Recorder:
    """A model that doubles its input and records the batch sizes it was called with."""

    def __init__(self, delay: float = 0.0) -> None:
        self.sizes: list[int] = []
        self.delay = delay
        self.release = threading.Event()

    def __call__(self, inputs):
        self.sizes.append(len(inputs["x"]))
        time.sleep(self.delay)
        return {"y": inputs["x"] * 2}


def rows(n: int, start: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.arange(start, start + n, dtype=np.float32)[:, None]}


def test_a_partial_batch_closes_at_the_timeout_and_results_go_back_to_each_task():
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingConfig(max_batch_size=8, batch_timeout_micros=50_000,
                                                     num_batch_threads=1, max_enqueued_batches=4))  # fmt: skip
    started = time.monotonic()
    futures = [scheduler.submit(rows(2, 10 * i), 2) for i in range(3)]
    results = [f.result(5) for f in futures]
    assert time.monotonic() - started >= 0.045
    assert model.sizes == [6]
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"][:, 0], 2 * np.arange(10 * i, 10 * i + 2))
    scheduler.stop()


def test_a_full_batch_runs_without_waiting_and_an_overflowing_task_opens_the_next():
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingConfig(max_batch_size=4, batch_timeout_micros=10_000_000,
                                                     num_batch_threads=1, max_enqueued_batches=4))  # fmt: skip
    started = time.monotonic()
    first = [scheduler.submit(rows(2), 2), scheduler.submit(rows(2), 2)]
    for f in first:
        f.result(5)
    assert time.monotonic() - started < 5  # well before the 10 s timeout
    scheduler.submit(rows(3), 3)
    scheduler.submit(rows(3), 3)  # does not fit beside the first: a new batch
    scheduler.stop()  # runs what is queued
    assert model.sizes == [4, 3, 3]


def test_a_task_whose_caller_gave_up_gets_no_result_and_the_batch_thread_goes_on():
    """A cancelled task (its request's deadline passed) used to end the batch thread with InvalidStateError,
    and with every thread gone the server answered nothing: the load test on one core found it."""
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingConfig(max_batch_size=8, batch_timeout_micros=200_000,
                                                     num_batch_threads=1, max_enqueued_batches=4))  # fmt: skip
    gave_up, kept = scheduler.submit(rows(2), 2), scheduler.submit(rows(2, 10), 2)
    assert gave_up.cancel()  # before the batch closes at its timeout
    np.testing.assert_array_equal(kept.result(PATIENCE_S)["y"][:, 0], [20, 22])
    later = scheduler.submit(rows(1, 5), 1)  # the thread is still there
    np.testing.assert_array_equal(later.result(PATIENCE_S)["y"][:, 0], [10])
    assert gave_up.cancelled()
    scheduler.stop()


def test_batches_are_padded_to_the_allowed_sizes():
    model = Recorder()
    scheduler = BatchScheduler(model, BatchingConfig(max_batch_size=8, batch_timeout_micros=0, num_batch_threads=1,
                                                     max_enqueued_batches=4, allowed_batch_sizes=(4, 8)))  # fmt: skip
    result = scheduler.submit(rows(3), 3).result(5)
    assert model.sizes == [4] and result["y"].shape == (3, 1)
    scheduler.stop()


def test_too_large_a_task_and_a_full_queue_are_refused():
    model = Recorder(delay=0.3)
    scheduler = BatchScheduler(model, BatchingConfig(max_batch_size=2, batch_timeout_micros=0, num_batch_threads=1,
                                                     max_enqueued_batches=1))  # fmt: skip
    with pytest.raises(TaskTooLarge):
        scheduler.submit(rows(3), 3)
    scheduler.submit(rows(2), 2)  # taken by the thread
    time.sleep(0.05)
    scheduler.submit(rows(2), 2)  # the one batch allowed to wait
    with pytest.raises(QueueFull):
        scheduler.submit(rows(2), 2)
    scheduler.stop()


def test_the_shipped_configs_parse():
    [model] = load_model_config(ROOT / "models" / "models.config")
    assert model.name == "emotion_cnn" and model.base_path == ROOT / "models" / "emotion_cnn"
    batching = load_batching_config(ROOT / "models" / "batching.config")
    from emotune_inference.settings import InferenceSettings

    # one worker's batch must fit in the server's batch, or every Predict would be refused
    assert batching.max_batch_size >= InferenceSettings().inference_batch_size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_batch_size { value: 8 } oops", "batching.config"),
        ("max_batch_size { value: 8 } allowed_batch_sizes: 4", "end with max_batch_size"),
        ("num_batch_threads { value: 0 }", ">= 1"),
    ],
)
def test_bad_batching_configs_are_clear_errors(tmp_path, text, message):
    path = tmp_path / "batching.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_batching_config(path)


def test_a_missing_or_empty_model_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_model_config(tmp_path / "missing.config")
    (tmp_path / "empty.config").write_text("")
    with pytest.raises(ConfigError, match="no model_config_list"):
        load_model_config(tmp_path / "empty.config")
