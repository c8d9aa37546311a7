"""The `fer` package on the sample video: frames per second of FER(mtcnn=False).detect_emotions.

Runs inside bench/.venv-fer (see bench/fer-requirements.txt); prints one JSON line.

    bench/.venv-fer/bin/python bench/fer_baseline.py VIDEO [MAX_FRAMES]
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # fer's model is a Keras 2 HDF5 file
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2
from fer.fer import FER


def main() -> None:
    video, limit = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10**9
    capture = cv2.VideoCapture(video)
    frames = []
    while len(frames) < limit:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    detector = FER(mtcnn=False)
    detector.detect_emotions(frames[0])  # load and warm up the model
    faces, started = 0, time.perf_counter()
    for frame in frames:
        faces += len(detector.detect_emotions(frame))
    elapsed = time.perf_counter() - started
    print(
        json.dumps(
            {
                "frames": len(frames),
                "faces": faces,
                "seconds": round(elapsed, 3),
                "frames_per_s": round(len(frames) / elapsed, 2),
                "faces_per_s": round(faces / elapsed, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
