"""Does histogram equalisation or CLAHE of the crops help the served model? Measured on FER-2013.

    python -m models.emotion_cnn.equalization [--data ../shared/data/fer2013/val.npz]

Applies each of the capture service's ``EMOTUNE_CROP_EQUALIZE`` options to the validation faces
(as the service would to its 48x48 crops), scores them with the latest SavedModel, and writes
services/capture/EQUALIZATION.md. The capture default follows the result.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from emotune_common.settings import default_data_dir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = default_data_dir()
OUT = ROOT / "services" / "capture" / "EQUALIZATION.md"


def main() -> None:
    import tensorflow as tf

    from emotune_capture.detector import equalize
    from models.emotion_cnn.evaluate import latest_version_dir

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DATA_DIR / "fer2013" / "val.npz")
    args = parser.parse_args()
    with np.load(args.data) as f:
        faces, labels = f["x"], f["y"]
    model_dir = latest_version_dir()
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    rows = []
    for how in ("none", "hist", "clahe"):
        x = np.stack([equalize(face, how) for face in faces]).astype(np.float32)[..., None] / 255.0
        predicted = np.concatenate([serve(images=tf.constant(x[i : i + 512]))["probabilities"].numpy().argmax(1)
                                    for i in range(0, len(x), 512)])  # fmt: skip
        accuracy = float((predicted == labels).mean())
        rows.append((how, accuracy))
        print(f"{how}: accuracy {accuracy:.4f}", flush=True)
    best = max(rows, key=lambda r: r[1])[0]
    OUT.write_text("\n".join([
        "# Crop equalisation: measured, not assumed",
        "",
        f"Model `{model_dir.relative_to(ROOT)}` on `{args.data.name}` ({len(labels):,} faces), each face "
        "equalised as the capture service would equalise its crops (`EMOTUNE_CROP_EQUALIZE`). Written by "
        "`python -m models.emotion_cnn.equalization`.",
        "",
        "| EMOTUNE_CROP_EQUALIZE | accuracy |",
        "| --- | ---: |",
        *[f"| {how} | {accuracy:.2%} |" for how, accuracy in rows],
        "",
        f"Best: `{best}`. The network standardises every face itself (zero mean, unit variance), which "
        "already removes global brightness and contrast; the capture default is the best option here.",
        "",
    ]))  # fmt: skip
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
