"""`make data` against a server on loopback that serves archives laid out like the real sources: what is
missing is fetched, checked and put in place, what is there is left alone, and a broken source (a 404, a
download cut short, a file missing from its archive or changed in it) is a clear error that names the file
and the URL and leaves nothing half-written."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from scripts import fetch_data

from ..conftest import DATA_DIR
from ..fakes.data_sources import ArchiveServer, archive_path, fer_faces, source_archives

RUN_SETS = ("music", "video")  # what `make run` fetches


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    return source_archives(DATA_DIR)


def contents(path: Path) -> bytes:
    """A data file's content (uncompressed: gzip output differs with its settings)."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def assert_nothing_half_written(data: Path, kept: frozenset[Path] = frozenset()) -> None:
    """Every file in ``data`` but those ``kept`` is a whole data file, and no temporary file or folder is left."""
    for path in data.rglob("*"):
        assert not path.name.startswith("."), f"left behind: {path}"
        if path.is_file() and path.suffix != ".npz" and path not in kept:
            assert contents(path) == contents(DATA_DIR / path.relative_to(data)), f"not whole: {path}"


def test_the_missing_files_of_the_sets_asked_for_are_fetched_checked_and_put_in_place(tmp_path, archives):
    data = tmp_path / "data"
    kept = data / "video" / "short_hamilton_clip.mp4"
    kept.parent.mkdir(parents=True)
    kept.write_bytes(b"kept")
    with ArchiveServer(archives) as server:
        written = fetch_data.fetch(data, RUN_SETS, server.url)
        music = [f for f in fetch_data.FILES if f.dataset == "music"]
        assert sorted(written) == sorted(str(data / f.target) for f in music)  # the video was there already
        assert set(server.requests) == {archive_path(f.source) for f in music}, "an archive nobody needed"
        for file in music:
            assert contents(data / file.target) == contents(DATA_DIR / file.target), file.target
        assert kept.read_bytes() == b"kept"

        rest = fetch_data.fetch(data, base=server.url)  # every set: FER-2013 and the photographs are left
        assert {Path(p).parent.name for p in rest} == {"fer2013", "images"}
        assert all(count == 1 for count in server.requests.values()), server.requests
        assert fetch_data.fetch(data, base=server.url) == []  # nothing missing, nothing fetched
        assert sum(server.requests.values()) == len(archives)
    faces, labels = fer_faces(DATA_DIR)
    for split in ("train.npz", "val.npz"):
        with np.load(data / "fer2013" / split) as f:
            assert f["x"].dtype == np.uint8 and f["x"].shape == faces.shape  # augmented copies skipped
            got = sorted((int(y), x.tobytes()) for x, y in zip(f["x"], f["y"], strict=True))
        assert got == sorted((int(y), x.tobytes()) for x, y in zip(faces, labels, strict=True))
    assert_nothing_half_written(data, kept=frozenset({kept}))


def without(archive: bytes, member: str, replacement: bytes | None = None) -> bytes:
    """The archive with ``member`` left out, or with ``replacement`` as its content."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(archive)) as source, zipfile.ZipFile(out, "w") as copy:
        for name in source.namelist():
            if name.partition("/")[2] != member:
                copy.writestr(name, source.read(name))
            elif replacement is not None:
                copy.writestr(name, replacement)
    return out.getvalue()


@pytest.mark.parametrize(
    ("fault", "says", "names"),
    [
        ("missing", "HTTP 404", "music/user_artists.dat.gz, music/artists.dat.gz, music/user_friends.dat.gz"),
        ("cut short", "the download was cut short", "music/user_artists.dat.gz"),
        ("file gone", "no user_friends.dat in the archive", "music/user_friends.dat.gz"),
        ("file changed", "user_friends.dat in the archive has SHA-256", "music/user_friends.dat.gz"),
    ],
)
def test_a_broken_source_is_a_clear_error_and_leaves_nothing_half_written(tmp_path, archives, fault, says, names):
    path = archive_path(fetch_data.LASTFM)
    broken = dict(archives)
    if fault == "file gone":
        broken[path] = without(archives[path], "user_friends.dat")
    elif fault == "file changed":
        broken[path] = without(archives[path], "user_friends.dat", b"userID\tfriendID\n2\t275\n")
    server = ArchiveServer(broken, cut_short={path} if fault == "cut short" else set(),
                           missing={path} if fault == "missing" else set())  # fmt: skip
    data = tmp_path / "data"
    with server, pytest.raises(fetch_data.FetchError) as caught:
        fetch_data.fetch(data, RUN_SETS, server.url)
    message = str(caught.value)
    assert says in message and names in message and f"{server.url}{path}" in message, message
    assert not (data / "music" / "user_friends.dat.gz").exists()
    assert_nothing_half_written(data)
