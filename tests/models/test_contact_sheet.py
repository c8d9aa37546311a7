"""The contact sheet: real faces through the capture path, read by every served version."""

from __future__ import annotations

import numpy as np
from PIL import Image

from models.emotion_cnn import LABELS
from models.emotion_cnn.contact_sheet import capture_crops, draw
from models.emotion_cnn.evaluate import predict, served_versions

from ..conftest import DATA_DIR


def test_the_capture_paths_crops_of_real_faces_are_read_and_drawn(tmp_path):
    crops = capture_crops(DATA_DIR, video_frames=4)
    sources = [s for s, _ in crops]
    assert {"biden", "obama", "two_people"} <= set(sources)  # the photos' faces are found
    assert any(s.startswith("short_hamilton") for s in sources)  # and the video's
    assert all(p.shape == (48, 48) and p.dtype == np.uint8 for _, p in crops)
    images = np.stack([p for _, p in crops]).astype(np.float32)[..., None] / 255.0
    scores = {v.name: predict(v, images) for v in served_versions()}
    assert "1" in scores and all(np.allclose(p.sum(axis=1), 1, atol=1e-4) for p in scores.values())
    obama = sources.index("obama")
    assert LABELS[scores["1"][obama].argmax()] == "happy"  # the smiling photo
    draw(crops, scores, tmp_path / "sheet.png")
    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.width > 800 and sheet.height > 200
