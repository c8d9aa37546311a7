"""Fetch the data sets into EMOTUNE_DATA_DIR (``make data``), from their public sources.

Only what is missing is fetched; files already there are left alone. Each source is a public GitHub
repository, read as its default branch's zip archive:

- fer2013/train.npz, val.npz: RecepTahirGunlu/Duygu-Tanima, train/<label>/Training_*.jpg and
  validation/<label>/PublicTest_*.jpg
- music/user_artists.dat.gz, artists.dat.gz, user_friends.dat.gz: PPjamies/MusicApp-RecommenderSystem-FriendNetwork
- music/tags.dat.gz: Fxhj0501/Posioning-Attack-on-Recommendation-System, tags.dat
- music/spotify_artists.csv.gz: swarupa29/Data-science-project-Song-Genre, data_w_genres.csv
- video/short_hamilton_clip.mp4, images/*.jpg: ageitgey/face_recognition, examples/ and tests/test_images/

FER-2013 images are decoded to grayscale 48x48 and stored as arrays ``x`` uint8 [N,48,48] and
``y`` uint8 [N] (0 angry ... 6 neutral); augmented copies (names with an extra suffix) are skipped.
"""

from __future__ import annotations

import gzip
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotune_common.settings import default_data_dir

ROOT = Path(__file__).resolve().parents[1]
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER_REPO = "RecepTahirGunlu/Duygu-Tanima"
FER_SPLITS = {"train.npz": ("train", "Training"), "val.npz": ("validation", "PublicTest")}


@dataclass(frozen=True)
class Member:
    """``target`` (relative to the data dir) is the file named ``name`` somewhere in ``repo``."""

    target: str
    repo: str
    name: str
    gzip: bool = False


MEMBERS = [
    Member("music/user_artists.dat.gz", "PPjamies/MusicApp-RecommenderSystem-FriendNetwork", "user_artists.dat", True),
    Member("music/artists.dat.gz", "PPjamies/MusicApp-RecommenderSystem-FriendNetwork", "artists.dat", True),
    Member("music/user_friends.dat.gz", "PPjamies/MusicApp-RecommenderSystem-FriendNetwork", "user_friends.dat", True),
    Member("music/tags.dat.gz", "Fxhj0501/Posioning-Attack-on-Recommendation-System", "tags.dat", True),
    Member("music/spotify_artists.csv.gz", "swarupa29/Data-science-project-Song-Genre", "data_w_genres.csv", True),
    Member("video/short_hamilton_clip.mp4", "ageitgey/face_recognition", "examples/short_hamilton_clip.mp4"),
    Member("images/biden.jpg", "ageitgey/face_recognition", "examples/biden.jpg"),
    Member("images/obama.jpg", "ageitgey/face_recognition", "examples/obama.jpg"),
    Member("images/two_people.jpg", "ageitgey/face_recognition", "examples/two_people.jpg"),
    Member("images/obama_and_biden.jpg", "ageitgey/face_recognition", "examples/knn_examples/test/obama_and_biden.jpg"),
    Member("images/obama_partial_face.jpg", "ageitgey/face_recognition", "tests/test_images/obama_partial_face.jpg"),
]


def download_repo(repo: str, cache: Path) -> zipfile.ZipFile:
    path = cache / (repo.replace("/", "__") + ".zip")
    if not path.exists():
        url = f"https://github.com/{repo}/archive/HEAD.zip"
        print(f"downloading {url}", flush=True)
        with urllib.request.urlopen(url, timeout=600) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
    return zipfile.ZipFile(path)


def find_member(archive: zipfile.ZipFile, name: str) -> str:
    """The archive member whose path ends with ``name`` (archives start with a <repo>-<branch>/ folder)."""
    matches = [m for m in archive.namelist() if m.endswith("/" + name)]
    if not matches:
        raise SystemExit(f"{archive.filename}: no member {name}; the repository may have changed")
    return min(matches, key=len)


def fer_arrays(archive: zipfile.ZipFile, folder: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``<folder>/<label>/<prefix>_<n>.jpg`` members (originals only) to arrays."""
    import cv2

    pattern = re.compile(rf"(?:^|/){folder}/([^/]+)/{prefix}_\d+\.jpg$")
    images, labels = [], []
    for member in sorted(archive.namelist()):
        match = pattern.search(member)
        if not match:
            continue
        label = match.group(1).lower()
        if label not in LABELS:
            raise SystemExit(f"{member}: unknown label folder {label!r}; expected one of {LABELS}")
        pixels = cv2.imdecode(np.frombuffer(archive.read(member), np.uint8), cv2.IMREAD_GRAYSCALE)
        if pixels is None or pixels.shape != (48, 48):
            raise SystemExit(f"{member}: not a 48x48 image")
        images.append(pixels)
        labels.append(LABELS.index(label))
    if not images:
        raise SystemExit(f"{archive.filename}: no {folder}/<label>/{prefix}_*.jpg images")
    return np.stack(images).astype(np.uint8), np.array(labels, np.uint8)


def fetch(data_dir: Path, cache: Path) -> list[str]:
    """Fetch every missing file into ``data_dir``; returns what was written."""
    written = []
    for filename, (folder, prefix) in FER_SPLITS.items():
        target = data_dir / "fer2013" / filename
        if not target.exists():
            x, y = fer_arrays(download_repo(FER_REPO, cache), folder, prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(target, x=x, y=y)
            written.append(f"{target} ({len(y)} faces)")
    for member in MEMBERS:
        target = data_dir / member.target
        if target.exists():
            continue
        archive = download_repo(member.repo, cache)
        payload = archive.read(find_member(archive, member.name))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress(payload) if member.gzip else payload)
        written.append(str(target))
    return written


def main() -> int:
    data_dir = default_data_dir()
    with tempfile.TemporaryDirectory() as cache:
        written = fetch(data_dir, Path(cache))
    print("\n".join(written) if written else f"nothing to fetch: {data_dir} has every file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
