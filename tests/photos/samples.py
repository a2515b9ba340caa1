"""Images for the photo tests, made here with Pillow (and by hand where Pillow would refuse)."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image, ImageCms

# Somewhere in Yaohai District: what a phone writes into a photo's EXIF.
GPS_LATITUDE = (31.0, 52.0, 30.5)
GPS_LONGITUDE = (117.0, 19.0, 12.25)
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-'
    b'syntax-ns#"><rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" '
    b'exif:GPSLatitude="31,52.5N"/></rdf:RDF></x:xmpmeta>'
)


def halves(size: tuple[int, int] = (80, 60)) -> Image.Image:
    """Left half red, right half blue: shows which way an image was turned."""
    image = Image.new("RGB", size, (220, 0, 0))
    image.paste((0, 0, 220), (size[0] // 2, 0, size[0], size[1]))
    return image


def encode(image: Image.Image, image_format: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, image_format, **options)
    return out.getvalue()


def png(size: tuple[int, int] = (80, 60), mode: str = "RGB") -> bytes:
    return encode(halves(size).convert(mode), "PNG")


def jpeg(size: tuple[int, int] = (80, 60)) -> bytes:
    return encode(halves(size), "JPEG", quality=90)


def jpeg_with_location(orientation: int = 6) -> bytes:
    """A JPEG as a phone writes it: EXIF with GPS position, camera and orientation (6: turn
    90° clockwise to view), an ICC profile, XMP (with the position again) and a comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Phone 12"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: GPS_LATITUDE,
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: GPS_LONGITUDE,
    }
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encode(
        halves((80, 60)),
        "JPEG",
        quality=90,
        exif=exif.tobytes(),
        icc_profile=icc,
        xmp=XMP,
        comment=b"home: 3-201",
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_declaring(width: int, height: int) -> bytes:
    """A few hundred bytes whose header declares ``width`` x ``height`` 8-bit grey pixels:
    decoding it would allocate width*height bytes before finding out the data is missing."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    data = zlib.compress(b"\0" * 4096, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", data)
        + _chunk(b"IEND", b"")
    )


NOT_IMAGES = {
    "text": b"just some text, certainly not a photo\n" * 10,
    "html": b"<!doctype html><html><body><script>alert(1)</script></body></html>",
    "svg": (
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
        b'<script>alert(1)</script><rect width="10" height="10"/></svg>'
    ),
    "gif": encode(halves((10, 10)).convert("P"), "GIF"),
    "truncated_jpeg": jpeg((200, 150))[:400],
    "empty": b"",
}
