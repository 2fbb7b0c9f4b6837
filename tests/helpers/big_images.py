"""Images that are small on disk and huge once decoded (decompression bombs), for size-limit tests."""

from __future__ import annotations

import struct
import zlib


def constant_png(w: int, h: int) -> bytes:
    """A valid 1-bit grey PNG of w x h black pixels: a few hundred KB that decode to w*h bytes
    (OpenCV expands it to 8 bits), built in well under a second."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (w + 7) // 8)
    z = zlib.compressobj(9)
    block = row * 1000
    idat = b"".join(z.compress(block) for _ in range(h // 1000)) + z.compress(row * (h % 1000)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
