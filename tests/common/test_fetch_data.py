"""`make data` on an archive already in its cache (no network here): FER images become arrays."""

from __future__ import annotations

import importlib.util
import sys
import zipfile

import cv2
import numpy as np

from ..conftest import DATA_DIR, ROOT

spec = importlib.util.spec_from_file_location("fetch_data", ROOT / "scripts" / "fetch_data.py")
fetch_data = importlib.util.module_from_spec(spec)
sys.modules["fetch_data"] = fetch_data  # dataclasses look their module up there
spec.loader.exec_module(fetch_data)


def test_fer_folders_become_the_arrays_the_model_reads(tmp_path):
    with np.load(DATA_DIR / "fer2013" / "val.npz") as f:
        faces, labels = f["x"][:14], f["y"][:14]
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / "RecepTahirGunlu__Duygu-Tanima.zip", "w") as archive:
        for i, (face, label) in enumerate(zip(faces, labels, strict=True)):
            _, encoded = cv2.imencode(".png", face)  # lossless, so the arrays can be compared
            name = fetch_data.LABELS[label]
            split = ("train", "Training") if i % 2 else ("validation", "PublicTest")
            archive.writestr(f"Duygu-Tanima-main/{split[0]}/{name}/{split[1]}_{i}.jpg", encoded.tobytes())
            archive.writestr(f"Duygu-Tanima-main/{split[0]}/{name}/{split[1]}_{i}_flip.jpg", encoded.tobytes())
    data = tmp_path / "data"
    for member in fetch_data.MEMBERS:  # everything else is already there and must be left alone
        (data / member.target).parent.mkdir(parents=True, exist_ok=True)
        (data / member.target).write_bytes(b"kept")
    written = fetch_data.fetch(data, cache)
    assert len(written) == 2
    with np.load(data / "fer2013" / "val.npz") as f:
        assert f["x"].dtype == np.uint8 and f["x"].shape == (7, 48, 48)  # augmented copies skipped
        by_label = sorted(zip(f["y"].tolist(), f["x"].sum(axis=(1, 2)).tolist(), strict=True))
    expected = sorted(zip(labels[::2].tolist(), faces[::2].astype(np.int64).sum(axis=(1, 2)).tolist(), strict=True))
    assert by_label == expected
    assert all((data / m.target).read_bytes() == b"kept" for m in fetch_data.MEMBERS)
    assert fetch_data.fetch(data, cache) == []  # nothing missing, nothing fetched
