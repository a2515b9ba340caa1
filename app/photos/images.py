"""Checking and re-encoding uploaded images: pure functions on bytes, no I/O, CPU-bound
(callers run them in a worker thread).

What arrives is untrusted: the declared content type and file name are ignored, the bytes
must open as JPEG, PNG or WebP (only those decoders are tried), the pixel count is checked on
the header *before* anything is decoded (a 50 KB PNG can declare 30000x30000 pixels and ask
for 3.6 GB when loaded), and what is stored is a fresh encoding of the pixels alone: EXIF
orientation applied, then no EXIF (GPS position, camera serial), ICC, XMP or comments.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger("microwish.photos")

# Decoders tried on an upload; everything else (SVG, HTML, GIF, TIFF, PSD, …) is refused.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
OUTPUT_CONTENT_TYPE = "image/jpeg"
FULL_QUALITY = 85
THUMBNAIL_QUALITY = 80
# Transparent pixels land on white: JPEG has no alpha.
BACKGROUND = (255, 255, 255)


class ImageRejected(Exception):
    """Not an image we accept: ``reason`` is ``unsupported`` or ``too_many_pixels``."""

    def __init__(self, reason: str, *, width: int = 0, height: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.width = width
        self.height = height


@dataclass(frozen=True)
class Variant:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ProcessedImage:
    """An upload, checked and re-encoded: the display size and the thumbnail."""

    full: Variant
    thumbnail: Variant
    source_format: str
    content_type: str = OUTPUT_CONTENT_TYPE


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)


def _check_header(data: bytes, max_pixels: int) -> str:
    """The format, after the header passed the type and pixel checks and the file verified."""
    with _open(data) as probe:
        width, height = probe.size
        if width < 1 or height < 1:
            raise ImageRejected("unsupported")
        if width * height > max_pixels:
            raise ImageRejected("too_many_pixels", width=width, height=height)
        image_format = str(probe.format)
        # Walks the data without decoding pixels into memory (PNG: every chunk's CRC).
        probe.verify()
    return image_format


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with transparency composited on white."""
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, BACKGROUND)
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit greyscale (PNG): scale to 8 bits rather than clip.
        image = image.point(lambda value: value / 256).convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def _encode(image: Image.Image, *, quality: int, progressive: bool) -> bytes:
    # A copy of the pixels only: Pillow carries ``info`` (EXIF, ICC profile, XMP, JPEG
    # comments) from image to image and would write some of it back out on save.
    clean = Image.new("RGB", image.size)
    clean.paste(image)
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=quality, optimize=True, progressive=progressive)
    return out.getvalue()


def process_image(
    data: bytes, *, max_pixels: int, max_side: int, thumbnail_side: int
) -> ProcessedImage:
    """Check ``data`` and re-encode it as a JPEG of at most ``max_side`` pixels on its
    longest side, plus a thumbnail of ``thumbnail_side``. Raises ``ImageRejected``."""
    try:
        source_format = _check_header(data, max_pixels)
        # verify() leaves the image unusable: open again to decode.
        with _open(data) as image:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale: far less memory for a big photo that
            # is shrunk anyway. The result still covers max_side in both directions.
            image.draft("RGB", (max_side, max_side))
            image.load()
            upright = ImageOps.exif_transpose(image)
        rgb = _flatten(upright)
        full = rgb.copy()
        full.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        thumb = full.copy()
        thumb.thumbnail((thumbnail_side, thumbnail_side), Image.Resampling.LANCZOS)
        return ProcessedImage(
            full=Variant(_encode(full, quality=FULL_QUALITY, progressive=True), *full.size),
            thumbnail=Variant(
                _encode(thumb, quality=THUMBNAIL_QUALITY, progressive=False), *thumb.size
            ),
            source_format=source_format,
        )
    except ImageRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (MAX_IMAGE_PIXELS), should its limit be below ours.
        raise ImageRejected("too_many_pixels") from exc
    except UnidentifiedImageError as exc:
        raise ImageRejected("unsupported") from exc
    except MemoryError:
        raise
    except Exception as exc:
        # Decoders fail on malformed input in many ways (OSError for truncated data,
        # SyntaxError, ValueError, struct.error, …): all of them mean "not an image we can
        # read", never a server error.
        logger.info("image rejected: %s", type(exc).__name__)
        raise ImageRejected("unsupported") from exc
