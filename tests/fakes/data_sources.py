"""A local stand-in for the public sources of ``make data``: an HTTP server on loopback that serves zip
archives laid out as GitHub serves the repositories (``/<owner>/<name>/archive/<commit>.zip``, one
``<name>-<commit>/`` folder inside), made from the project's own data folder, so that every checksum holds.

:func:`source_archives` builds them from scripts/fetch_data.py's list of files: each file that is taken
as it is comes from the data folder (uncompressed again where the target is .gz); each file that the fetch
rewrites is put back into the form its repository holds (:data:`REPOSITORY_FORMS`); and each FER-2013 split
holds a few faces from val.npz, with an augmented copy of each that the fetch must skip. :class:`ArchiveServer`
serves them; a test may cut one short (its full Content-Length is sent, then half the body) or leave one
out (a 404). It counts the requests by path.
"""

from __future__ import annotations

import codecs
import gzip
import http.server
import io
import threading
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from scripts import fetch_data

FER_FACES = 14  # faces of val.npz in each FER-2013 split's folder
TAGGINGS_FIRST_PART = 108_469  # rows of rafaelpossas/admusic's data/user_taggedartists.dat


def tagging_parts(file: fetch_data.DataFile, text: bytes) -> dict[str, bytes]:
    """user_taggedartists.dat's rows as rafaelpossas/admusic holds them: the first part's rows, then a blank
    line, in data/user_taggedartists.dat, the rest in data/user_taggedartists_2.dat; each with the header
    and CRLF line ends."""
    header, *rows = text.splitlines()
    first, second = rows[:TAGGINGS_FIRST_PART], rows[TAGGINGS_FIRST_PART:]
    return {file.member: b"\r\n".join([header, *first, b"", b""]),
            file.more[0][0]: b"\r\n".join([header, *second, b""])}  # fmt: skip


#: target -> its repository's files, from the data folder's (uncompressed) copy: what fetch_data rewrites
REPOSITORY_FORMS: dict[str, Callable[[fetch_data.DataFile, bytes], dict[str, bytes]]] = {
    "music/spotify_tracks_5k.csv.gz": lambda file, text: {file.member: text.replace(b"\r\n", b"\n")},  # LF
    "music/spotify_tracks_features_subset.csv.gz": lambda file, text: {file.member: codecs.BOM_UTF8 + text},
    "music/user_taggedartists.dat.gz": tagging_parts,
}


def archive_path(source: fetch_data.Source) -> str:
    return f"/{source.repo}/archive/{source.commit}.zip"


def fer_faces(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The faces that each FER-2013 split's folder holds, and their labels."""
    with np.load(data_dir / "fer2013" / "val.npz") as f:
        return f["x"][:FER_FACES], f["y"][:FER_FACES]


def source_archives(data_dir: Path) -> dict[str, bytes]:
    """Each source's archive by its path on the server, its files taken from ``data_dir``."""
    members: dict[fetch_data.Source, dict[str, bytes]] = {}
    faces, labels = fer_faces(data_dir)
    for file in fetch_data.FILES:
        folder = f"{file.source.repo.split('/')[1]}-{file.source.commit}"
        into = members.setdefault(file.source, {})
        if file.dataset == "fer2013":
            prefix = "Training" if file.target.endswith("train.npz") else "PublicTest"
            for i, (face, label) in enumerate(zip(faces, labels, strict=True)):
                png = cv2.imencode(".png", face)[1].tobytes()  # lossless, so the arrays can be compared
                name = f"{folder}/{file.member}/{fetch_data.LABELS[label]}/{prefix}_{i}"
                into[f"{name}.jpg"] = png
                into[f"{name}_flip.jpg"] = png  # an augmented copy: skipped
            continue
        payload = (data_dir / file.target).read_bytes()
        if file.target.endswith(".gz") and not file.member.endswith(".gz"):
            payload = gzip.decompress(payload)
        form = REPOSITORY_FORMS.get(file.target, lambda file, text: {file.member: text})
        into.update({f"{folder}/{member}": content for member, content in form(file, payload).items()})
    archives = {}
    for source, files in members.items():
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name, payload in files.items():
                archive.writestr(name, payload)
        archives[archive_path(source)] = out.getvalue()
    return archives


@dataclass
class ArchiveServer:
    """The archives over HTTP on 127.0.0.1; ``cut_short`` and ``missing`` hold paths to break."""

    archives: dict[str, bytes]
    cut_short: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests[self.path] += 1
                body = server.archives.get(self.path)
                if body is None or self.path in server.missing:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.cut_short else body)
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="archive-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ArchiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
