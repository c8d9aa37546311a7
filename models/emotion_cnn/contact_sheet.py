"""A contact sheet of the project's own capture path on real faces.

    python -m models.emotion_cnn.contact_sheet [--data ../shared/data] [--out contact_sheet.png]

The photos in ``<data>/images`` and frames of the sample video go through the capture service's
face detector with its default settings (emotune_capture.detector, CaptureSettings), and every
crop is scored by each served version (every numbered SavedModel here): each tile shows the crop
as the model sees it, and each version's label and confidence under it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import typer

from emotune_common.settings import default_data_dir
from models.emotion_cnn import LABELS
from models.emotion_cnn.evaluate import predict, served_versions

HERE = Path(__file__).resolve().parent
DATA = default_data_dir()
app = typer.Typer(add_completion=False)


def capture_crops(data: Path, video_frames: int = 12) -> list[tuple[str, np.ndarray]]:
    """(where it came from, uint8 [48,48] crop) for every face the capture path finds."""
    import cv2

    from emotune_capture.detector import FaceDetector
    from emotune_capture.settings import CaptureSettings

    detector = FaceDetector(CaptureSettings().detector_options())
    found: list[tuple[str, np.ndarray]] = []
    for path in sorted((data / "images").glob("*.jpg")):
        frame = cv2.imread(str(path))
        if frame is None:
            typer.echo(f"{path}: not an image, left out", err=True)
            continue
        found += [(path.stem, face.pixels) for face in detector.detect(frame)]
    video = next(iter(sorted((data / "video").glob("*.mp4"))), None)
    if video is not None:
        capture = cv2.VideoCapture(str(video))
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 1
        for index in np.linspace(0, total - 1, video_frames).astype(int):
            capture.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = capture.read()
            if ok:
                found += [(f"{video.stem[:14]} #{index}", face.pixels) for face in detector.detect(frame)[:1]]
        capture.release()
    return found


def draw(crops: list[tuple[str, np.ndarray]], scores: dict[str, np.ndarray], path: Path, columns: int = 8) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(crops) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.9, rows * (2.0 + 0.25 * len(scores))), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (source, pixels) in enumerate(crops):
        ax = axes.ravel()[i]
        ax.imshow(pixels, cmap="gray", vmin=0, vmax=255)
        ax.set_title(source, fontsize=7)
        caption = "\n".join(f"v{v}: {LABELS[int(p[i].argmax())]} {p[i].max():.0%}" for v, p in scores.items())
        ax.text(0.5, -0.04, caption, transform=ax.transAxes, ha="center", va="top", fontsize=8)
    fig.suptitle("capture path on real faces: each crop as the model sees it, each version's reading", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@app.command()
def main(data: Path = typer.Option(DATA, help="The data folder (images/ and video/)"),
         out: Path = typer.Option(HERE / "contact_sheet.png", help="The PNG to write")) -> None:  # fmt: skip
    """Detect, crop and score real faces as the running system would, and draw them."""
    crops = capture_crops(data)
    if not crops:
        raise typer.BadParameter(f"no face found in {data}/images or {data}/video", param_hint="--data")
    images = np.stack([p for _, p in crops]).astype(np.float32)[..., None] / 255.0
    scores = {model.name: predict(model, images) for model in served_versions()}
    draw(crops, scores, out)
    typer.echo(f"{len(crops)} crops, versions {', '.join(scores)}; wrote {out}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    app()
