"""`make data` against a server on loopback that serves archives laid out like the real sources: what is
missing is fetched, checked and put in place, what is there is left alone, and a broken source (a 404, a
download cut short, a file missing from its archive or changed in it) is a clear error that names the file
and the URL and leaves nothing half-written."""

from __future__ import annotations

import codecs
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


LASTFM_FILES = "music/user_artists.dat.gz, music/artists.dat.gz, music/user_friends.dat.gz"


@pytest.mark.parametrize(
    ("source", "member", "fault", "says", "names"),
    [
        (fetch_data.LASTFM, "user_friends.dat", "missing", "HTTP 404", LASTFM_FILES),
        (fetch_data.LASTFM, "user_friends.dat", "cut short", "the download was cut short", "music/user_artists.dat.gz"),
        (fetch_data.LASTFM, "user_friends.dat", "file gone", "no user_friends.dat in the archive",
         "music/user_friends.dat.gz"),
        (fetch_data.LASTFM, "user_friends.dat", "file changed", "user_friends.dat in the archive has SHA-256",
         "music/user_friends.dat.gz"),
        (fetch_data.TRACKS_5K, "spotify_songs.csv", "file changed", "spotify_songs.csv in the archive has SHA-256",
         "music/spotify_tracks_5k.csv.gz"),
        (fetch_data.TRACK_FEATURES, "SpotifyFeatures.csv", "file changed",
         "SpotifyFeatures.csv in the archive has SHA-256", "music/spotify_tracks_features_subset.csv.gz"),
        (fetch_data.LASTFM_TAGGINGS, "data/user_taggedartists.dat", "file changed",
         "data/user_taggedartists.dat in the archive has SHA-256", "music/user_taggedartists.dat.gz"),
        (fetch_data.LASTFM_TAGGINGS, "data/user_taggedartists_2.dat", "file changed",
         "data/user_taggedartists_2.dat in the archive has SHA-256", "music/user_taggedartists.dat.gz"),
        (fetch_data.LASTFM_TAGGINGS, "data/user_taggedartists_2.dat", "file gone",
         "no data/user_taggedartists_2.dat in the archive", "music/user_taggedartists.dat.gz"),
    ],
    ids=lambda value: value.repo.split("/")[1] if isinstance(value, fetch_data.Source) else None,
)  # fmt: skip
def test_a_broken_source_is_a_clear_error_and_leaves_nothing_half_written(tmp_path, archives, source, member, fault,
                                                                          says, names):  # fmt: skip
    path = archive_path(source)
    broken = dict(archives)
    if fault == "file gone":
        broken[path] = without(archives[path], member)
    elif fault == "file changed":
        broken[path] = without(archives[path], member, b"userID\tfriendID\n2\t275\n")
    server = ArchiveServer(broken, cut_short={path} if fault == "cut short" else set(),
                           missing={path} if fault == "missing" else set())  # fmt: skip
    data = tmp_path / "data"
    with server, pytest.raises(fetch_data.FetchError) as caught:
        fetch_data.fetch(data, RUN_SETS, server.url)
    message = str(caught.value)
    assert says in message and names in message and f"{server.url}{path}" in message, message
    for target in names.split(", "):
        assert not (data / target).exists(), target
    assert_nothing_half_written(data)


def test_joined_rows_keep_one_header_and_each_row_once_in_order():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("r-1/a.dat", b"id\tx\r\n1\ta\r\n2\tb\r\n\r\n")
        archive.writestr("r-1/b.dat", b"id\tx\n2\tb\n3\tc\n")
    file = fetch_data.DataFile("music/joined.dat", fetch_data.Source("o/r", "1"), "a.dat",
                               build=fetch_data.joined_rows, more=(("b.dat", ""),))  # fmt: skip
    with zipfile.ZipFile(out) as archive:
        assert file.build(archive, file) == b"id\tx\n1\ta\n2\tb\n3\tc\n"


def test_a_csv_is_written_without_its_byte_order_mark_and_with_crlf_line_ends():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("r-1/a.csv", codecs.BOM_UTF8 + b'a,b\n1,"x\r\ny"\n')
    file = fetch_data.DataFile("music/a.csv.gz", fetch_data.Source("o/r", "1"), "a.csv", build=fetch_data.rfc4180)
    with zipfile.ZipFile(out) as archive:
        assert gzip.decompress(file.build(archive, file)) == b'a,b\r\n1,"x\r\ny"\r\n'
