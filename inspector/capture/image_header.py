"""Image dimensions from the file header, without decoding a pixel.

A small file can decode to gigabytes (a 1 MB PNG of 20000 x 20000 pixels is 1.2 GB as BGR), and
OpenCV has no header-only read (its own guard, ``CV_IO_MAX_IMAGE_PIXELS``, is process-wide and
allows a gigapixel). Pillow's lazy ``Image.open`` would do, but Pillow is not a station
dependency; the headers of the formats a line writes are a few fixed fields, read here:

- PNG: the IHDR chunk right after the signature;
- JPEG: the first SOFn segment (after any APPn / EXIF segments, skipped by their lengths);
- TIFF (classic and BigTIFF, either byte order): tags 256 / 257 of the first IFD;
- BMP, WebP (VP8 / VP8L / VP8X), PNM (P1..P6).

Anything else returns None: the caller decides (the folder source refuses it, since its size
cannot be bounded before decoding). A header that is cut short raises ``HeaderError``.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_PNG = b"\x89PNG\r\n\x1a\n"
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # DHT, JPG, DAC share the range


class HeaderError(ValueError):
    """The file starts like a known format but its header is cut short or malformed."""


def _read(fh: BinaryIO, n: int, what: str) -> bytes:
    b = fh.read(n)
    if len(b) != n:
        raise HeaderError(f"{what} header cut short")
    return b


def image_size(fh: BinaryIO) -> tuple[int, int] | None:
    """(width, height) from the header of the image in ``fh`` (at its start); None when the format
    is not one read here."""
    head = fh.read(32)
    if head.startswith(_PNG):
        if len(head) < 24 or head[12:16] != b"IHDR":
            raise HeaderError("PNG header cut short (no IHDR chunk)")
        return struct.unpack(">II", head[16:24])
    if head.startswith(b"\xff\xd8"):
        return _jpeg(fh)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff(fh, head)
    if head.startswith(b"BM") and len(head) >= 26:
        w, h = struct.unpack("<ii", head[18:26])
        return abs(w), abs(h)  # a negative height is a top-down bitmap
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp(fh, head)
    if len(head) >= 2 and head[0:1] == b"P" and head[1:2] in b"123456":
        return _pnm(head + fh.read(224))
    return None


def _jpeg(fh: BinaryIO) -> tuple[int, int]:
    fh.seek(2)
    while True:
        b = _read(fh, 1, "JPEG")
        if b != b"\xff":
            continue  # not a marker yet (fill bytes or a stray byte): keep scanning
        marker = _read(fh, 1, "JPEG")[0]
        while marker == 0xFF:  # padding before the marker code
            marker = _read(fh, 1, "JPEG")[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        if marker == 0xD9:
            raise HeaderError("JPEG ends before any frame header (SOF)")
        (length,) = struct.unpack(">H", _read(fh, 2, "JPEG"))
        if marker in _SOF:
            _precision, h, w = struct.unpack(">BHH", _read(fh, 5, "JPEG"))
            return w, h
        if length < 2:
            raise HeaderError("JPEG segment with a length below 2")
        fh.seek(length - 2, 1)


def _tiff(fh: BinaryIO, head: bytes) -> tuple[int, int]:
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")
    if big:
        (ifd,) = struct.unpack(order + "Q", head[8:16])
        fh.seek(ifd)
        (n,) = struct.unpack(order + "Q", _read(fh, 8, "TIFF"))
        entry, count_fmt = 20, "Q"
    else:
        (ifd,) = struct.unpack(order + "I", head[4:8])
        fh.seek(ifd)
        (n,) = struct.unpack(order + "H", _read(fh, 2, "TIFF"))
        entry, count_fmt = 12, "I"
    dims: dict[int, int] = {}
    table = _read(fh, entry * min(n, 4096), "TIFF")
    for i in range(min(n, 4096)):
        e = table[i * entry:(i + 1) * entry]
        tag, typ = struct.unpack(order + "HH", e[:4])
        if tag in (256, 257):
            value = e[4 + struct.calcsize(count_fmt):]
            fmt = {3: "H", 4: "I", 16: "Q"}.get(typ)
            if fmt is None:
                raise HeaderError(f"TIFF tag {tag} has type {typ}, not an integer")
            dims[tag] = struct.unpack(order + fmt, value[:struct.calcsize(fmt)])[0]
    if 256 not in dims or 257 not in dims:
        raise HeaderError("TIFF first directory has no ImageWidth / ImageLength")
    return dims[256], dims[257]


def _webp(fh: BinaryIO, head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    body = head[20:32] + fh.read(8)
    if chunk == b"VP8 " and len(body) >= 10:
        w, h = struct.unpack("<HH", body[6:10])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L" and len(body) >= 5:
        (bits,) = struct.unpack("<I", body[1:5])
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(body) >= 10:
        w = int.from_bytes(body[4:7], "little") + 1
        h = int.from_bytes(body[7:10], "little") + 1
        return w, h
    raise HeaderError("WebP header cut short or of an unknown kind")


def _pnm(head: bytes) -> tuple[int, int]:
    # Magic, then width and height as decimal text, with whitespace and '#' comments in between.
    tokens: list[int] = []
    text = head[2:].decode("latin-1")
    i = 0
    while len(tokens) < 2 and i < len(text):
        c = text[i]
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                break
        elif c.isdigit():
            j = i
            while j < len(text) and text[j].isdigit():
                j += 1
            tokens.append(int(text[i:j]))
            i = j
            continue
        elif not c.isspace():
            raise HeaderError("PNM header is not numeric")
        i += 1
    if len(tokens) < 2:
        raise HeaderError("PNM header cut short")
    return tokens[0], tokens[1]


__all__ = ["HeaderError", "image_size"]
