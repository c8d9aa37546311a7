"""The batch handler: crops in, one EmotionEvent per crop out, written with the acknowledgement."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import numpy as np

from emotune.v1 import messages_pb2
from emotune_common.consumer import Delivery, Outcome
from emotune_common.ids import derived_header
from emotune_common.labels import CROP_SIZE, EMOTIONS
from emotune_common.producer import StreamProducer
from emotune_inference import metrics
from emotune_inference.batcher import PredictionBatcher
from emotune_inference.model_client import ModelRejected, Stopped


def event_id(crop_id: str) -> str:
    """The event of a crop has an id derived from the crop's, so a crop scored twice (after a worker
    died mid-batch) yields the same event twice, which subscribers drop as a duplicate."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"emotion/{crop_id}").hex


def crop_pixels(crop: messages_pb2.FaceCrop) -> np.ndarray:
    """float32 [48,48,1] in 0..1; ValueError for a crop of the wrong size."""
    if crop.width != CROP_SIZE or crop.height != CROP_SIZE or len(crop.pixels) != CROP_SIZE * CROP_SIZE:
        raise ValueError(f"crop is {crop.width}x{crop.height} with {len(crop.pixels)} bytes, expected 48x48")
    return (np.frombuffer(crop.pixels, np.uint8).astype(np.float32) / 255.0).reshape(CROP_SIZE, CROP_SIZE, 1)


def emotion_event(crop: messages_pb2.FaceCrop, probabilities: np.ndarray, model: str, version: int):
    top = int(probabilities.argmax())
    return messages_pb2.EmotionEvent(
        header=derived_header(crop.header, event_id(crop.header.id)),
        crop_id=crop.header.id,
        probabilities=probabilities.tolist(),
        label=top + 1,  # Emotion enum: 0 is UNSPECIFIED
        confidence=float(probabilities[top]),
        model_name=model,
        model_version=version,
        box=crop.box,
        frame_number=crop.frame_number,
    )


def inference_handler(batcher: PredictionBatcher, emotions: StreamProducer):
    """The handler of one shard of emotune:faces; its events go to ``emotions``, the same shard of emotune:emotions.

    ``batcher`` is the worker's, shared by the handlers of every shard: their crops go to the model together.
    """

    async def handle(batch: Sequence[Delivery]) -> Outcome:
        outcome = Outcome()
        good: list[Delivery] = []
        pixels = []
        for delivery in batch:
            try:
                pixels.append(crop_pixels(delivery.message))
                good.append(delivery)
            except ValueError as e:
                metrics.INVALID_CROPS.inc()
                outcome.failed[delivery.entry_id] = str(e)
        if not good:
            return outcome
        try:
            prediction = await batcher.predict(np.stack(pixels))
        except Stopped as e:
            outcome.failed.update({d.entry_id: str(e) for d in good})
            return outcome
        except ModelRejected as e:
            outcome.failed.update({d.entry_id: f"model server rejected the batch: {e}" for d in good})
            return outcome
        metrics.BATCH_SIZE.observe(len(good))
        now = time.time()
        for delivery, probabilities in zip(good, prediction.probabilities, strict=True):
            event = emotion_event(delivery.message, probabilities, batcher.model, prediction.model_version)
            outcome.publish.append((emotions, event))
            metrics.EVENTS.labels(EMOTIONS[event.label - 1]).inc()
            metrics.END_TO_END_SECONDS.observe(max(0.0, now - delivery.message.header.captured_at_us / 1e6))
        metrics.CROPS.inc(len(good))
        return outcome

    return handle
