"""The format and dimensions of a JPEG or PNG from its header, without decoding a pixel.

OpenCV has no header-only read (``cv2.imdecode`` allocates and decodes the whole image, and its own
pixel limit is 2^30), and PIL is not a dependency of capture. Both formats state their size near
the start: PNG in its first chunk (IHDR, fixed position), JPEG in its frame header (SOFn), found by
walking the marker segments that come before it. That is a few dozen lines, reads at most the
header, and lets the caller refuse a 10000x10000 frame before anything is allocated. For a PNG the
lengths of its chunks are checked against the data too, and its pixels (IDAT) must come
before its end (see :func:`_check_png_chunks`).
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
#: Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic): all but DHT (C4),
#: JPG (C8) and DAC (CC) in C0..CF.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length: TEM, RSTn, SOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})


class HeaderError(ValueError):
    """Not a JPEG or PNG, or one whose header is broken; the text says why."""


class UnknownFormat(HeaderError):
    """Neither the JPEG nor the PNG signature: some other format, or no image at all."""


def image_size(data: bytes) -> tuple[str, int, int]:
    """("jpeg" | "png", width, height) from the header of ``data``; :class:`HeaderError` otherwise."""
    if data.startswith(PNG_SIGNATURE):
        return ("png", *_png_size(data))
    if data.startswith(JPEG_SOI):
        return ("jpeg", *_jpeg_size(data))
    raise UnknownFormat("neither a JPEG nor a PNG signature")


def _png_size(data: bytes) -> tuple[int, int]:
    # signature (8), then the IHDR chunk: length (4) = 13, type (4), width (4), height (4), ...
    if len(data) < 24:
        raise HeaderError("PNG shorter than its header")
    length, kind, width, height = struct.unpack(">I4sII", data[8:24])
    if kind != b"IHDR" or length != 13:
        raise HeaderError("PNG does not start with its IHDR chunk")
    _check_png_chunks(data)
    return _checked(width, height)


def _check_png_chunks(data: bytes) -> None:
    """Every chunk OpenCV reads must fit in the data: its PNG reader allocates a chunk's stated length
    before reading it, so 53 bytes stating a 2.6 GB chunk cost 4 GB of memory (found by fuzz/fuzz_frames.py).

    OpenCV reads the chunks up to the first IDAT, and does not stop at IEND: an IEND before any IDAT
    would let it read the bytes after IEND as chunks, which are not checked here (trailing bytes after
    IEND are tolerated), so that PNG is refused. Reads the 8-byte chunk headers only, up to IEND."""
    at = len(PNG_SIGNATURE)
    seen_idat = False
    while at < len(data):
        if at + 8 > len(data):
            raise HeaderError("PNG ends inside a chunk header")
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 12 + length  # length, type, data, CRC
        if end > len(data):
            raise HeaderError(f"PNG chunk {kind!r} of {length} bytes runs past the end of the image")
        if kind == b"IEND":
            if not seen_idat:
                raise HeaderError("PNG ends (IEND) before its image data (IDAT)")
            return
        seen_idat = seen_idat or kind == b"IDAT"
        at = end


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """The size in the first SOFn, found the way libjpeg finds it (jdmarker.c: next_marker, skip_variable)."""
    at = len(JPEG_SOI)
    while True:
        while at < len(data) and data[at] != 0xFF:  # bytes between segments: tolerated, as libjpeg does
            at += 1
        while at < len(data) and data[at] == 0xFF:  # fill bytes
            at += 1
        if at >= len(data):
            raise HeaderError("JPEG ends before its frame header")
        marker = data[at]
        at += 1
        if marker == 0x00 or marker in _STANDALONE:  # FF 00 is a stuffed byte, not a marker: scan on, as libjpeg
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            raise HeaderError("JPEG without a frame header")
        if at + 2 > len(data):
            raise HeaderError("JPEG ends inside a segment")
        (length,) = struct.unpack(">H", data[at : at + 2])
        if length < 2:
            raise HeaderError("JPEG segment of an impossible length")
        if marker in _SOF:
            if at + 7 > len(data):
                raise HeaderError("JPEG ends inside its frame header")
            height, width = struct.unpack(">HH", data[at + 3 : at + 7])
            return _checked(width, height)
        at += length


def _checked(width: int, height: int) -> tuple[int, int]:
    if width == 0 or height == 0 or width > 2**31 - 1 or height > 2**31 - 1:
        raise HeaderError(f"image header gives an impossible size of {width}x{height}")
    return width, height
