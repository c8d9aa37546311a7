"""Fuzz the checks of uploaded images, on arbitrary bytes.

    python fuzz/fuzz_frames.py CORPUS_DIR [-atheris_runs=N | -max_total_time=S]   (libFuzzer options)

- capture's upload path, ``emotune_capture.uploads.decode_image``: only ValueError may escape, and an
  image it returns is a BGR uint8 array within the pixel bound, of the size its header states
  (turned a quarter when an EXIF orientation says so);
- its header reader, ``emotune_capture.headers.image_size``: only HeaderError;
- the gateway's ``emotune_gateway.images.check_image``, as image/jpeg and as image/png: only
  ImageError, with an HTTP status of 413 or 422 (415 is for the Content-Type, which is fixed here);
- and no input may take the process's peak resident memory over MAX_RSS_MB.
Seeds: small real photos (fuzz/seeds.py).
"""

from __future__ import annotations

import sys
import warnings

import atheris

# PIL's JPEG and PNG readers are Python: instrumented, they guide the fuzzer too (OpenCV's are C: blind).
with atheris.instrument_imports(
    include=["emotune_capture.headers", "emotune_capture.uploads", "emotune_gateway.images", "PIL"]
):
    from PIL import JpegImagePlugin, PngImagePlugin, TiffImagePlugin  # noqa: F401  (loaded lazily otherwise)

    from emotune_capture.headers import HeaderError, image_size
    from emotune_capture.uploads import decode_image
    from emotune_gateway.images import ImageError, check_image

MAX_PIXELS = 1 << 20  # 1 megapixel: an input may not make an iteration slow or large
#: The process's own peak resident memory (VmHWM): about 130 MB measured over 150,000 runs. Checked after
#: every input, so that the input that raised it over the limit is the one reported: libFuzzer's
#: -rss_limit_mb is checked by a thread once a second, names whichever input runs then, and reads
#: getrusage's ru_maxrss, which a process started by vfork (Python's subprocess) inherits from its
#: parent: started from a pytest that had imported TensorFlow, it "used" 764 MB before its first input.
MAX_RSS_MB = 512
_STATUS = open("/proc/self/status", "rb")  # noqa: SIM115  (re-read after every input)


def peak_rss_mb() -> int:
    """VmHWM: the peak resident memory of this process's own address space (not inherited across exec)."""
    _STATUS.seek(0)
    line = next(line for line in _STATUS.read().splitlines() if line.startswith(b"VmHWM:"))
    return int(line.split()[1]) // 1024  # kB


def test_one_input(data: bytes) -> None:
    check(data)
    peak = peak_rss_mb()
    assert peak <= MAX_RSS_MB, f"this input took the peak resident memory to {peak} MB (limit {MAX_RSS_MB} MB)"


def check(data: bytes) -> None:
    """Only the documented errors escape, and what decodes is within the bounds."""
    try:
        kind, width, height = image_size(data)
    except HeaderError:
        kind = None
    try:
        frame = decode_image(data, MAX_PIXELS)
    except ValueError as e:
        assert str(e), "a ValueError without a reason"
    else:
        assert kind is not None, "decoded an image whose header was refused"
        assert frame.dtype.name == "uint8" and frame.ndim == 3 and frame.shape[2] == 3, frame.shape
        assert frame.shape[0] * frame.shape[1] <= MAX_PIXELS
        assert sorted(frame.shape[:2]) == sorted((width, height)), (frame.shape, width, height)
    for content_type in ("image/jpeg", "image/png"):
        try:
            size = check_image(data, content_type, MAX_PIXELS)
        except ImageError as e:
            assert e.status in (413, 422) and str(e), (e.status, str(e))
        else:
            assert size[0] * size[1] <= MAX_PIXELS


def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)  # PIL's notes on corrupt EXIF, by the thousand
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
