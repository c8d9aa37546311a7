"""Checks of uploaded frames: a JPEG or PNG of bounded size that decodes completely."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG"}


class ImageError(ValueError):
    """An upload that is not a usable image; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def check_image(data: bytes, content_type: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) of a complete JPEG or PNG; ImageError otherwise.

    The header is read first, so a huge image is refused before its pixels are decoded.
    """
    expected = FORMATS.get(content_type.split(";")[0].strip().lower())
    if expected is None:
        raise ImageError(f"Content-Type must be image/jpeg or image/png, not {content_type or 'missing'!r}", 415)
    if not data:
        raise ImageError("empty body: send the image bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[expected])
            width, height = image.size
            if width * height > max_pixels:
                raise ImageError(f"image of {width}x{height} pixels is over the limit of {max_pixels} pixels", 413)
            image.load()  # a truncated or corrupt image fails here
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image is over the limit of {max_pixels} pixels", 413) from None
    except UnidentifiedImageError as e:
        raise ImageError(f"not a decodable {expected} image: {e}") from None
    except Exception as e:  # OSError, SyntaxError, ValueError; and from hostile bytes IndexError (fuzz/)
        raise ImageError(f"{expected} image does not decode: {type(e).__name__}: {e}") from None
    return width, height
