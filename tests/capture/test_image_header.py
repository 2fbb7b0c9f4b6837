"""inspector/capture/image_header.py: dimensions of every format a line writes, from the header only."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from inspector.capture.image_header import HeaderError, image_size

IMG = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("ext, image, params", [
    (".png", IMG, []), (".png", IMG[:, :, 0].astype(np.uint16), []), (".jpg", IMG, []),
    (".jpg", IMG, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]), (".tiff", IMG, []), (".tiff", IMG[:, :, 0], []),
    (".bmp", IMG, []), (".webp", IMG, []), (".webp", IMG, [cv2.IMWRITE_WEBP_QUALITY, 101]),
    (".ppm", IMG, []), (".pgm", IMG[:, :, 0], []),
])
def test_width_and_height_of_every_format_opencv_writes(ext, image, params):
    ok, buf = cv2.imencode(ext, image, params)
    assert ok
    assert image_size(io.BytesIO(buf.tobytes())) == (53, 37)


def test_jpeg_size_after_a_large_exif_segment():
    jpg = cv2.imencode(".jpg", IMG)[1].tobytes()
    app1 = b"\xff\xe1" + (2 + 60000).to_bytes(2, "big") + b"\x00" * 60000
    assert image_size(io.BytesIO(jpg[:2] + app1 + jpg[2:])) == (53, 37)


def test_big_endian_tiff_with_its_directory_at_the_end():
    # MM, IFD at offset 8 + pixel data: width 70000 x height 3 as LONG tags
    entries = [(256, 4, 1, 70000), (257, 4, 1, 3)]
    ifd = len(entries).to_bytes(2, "big") + b"".join(
        t.to_bytes(2, "big") + ty.to_bytes(2, "big") + n.to_bytes(4, "big") + v.to_bytes(4, "big")
        for t, ty, n, v in entries) + b"\x00" * 4
    data = b"MM\x00*" + (8 + 100).to_bytes(4, "big") + b"\x00" * 100 + ifd
    assert image_size(io.BytesIO(data)) == (70000, 3)


@pytest.mark.parametrize("data", [b"not an image", b"", b"GIF89a\x01\x00\x01\x00"])
def test_unknown_formats_are_none(data):
    assert image_size(io.BytesIO(data)) is None


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xd8\xff\xe0\x00\x10JFIF",
                                  b"II*\x00\x08\x00\x00\x00"])
def test_a_header_cut_short_is_an_error(data):
    with pytest.raises(HeaderError, match="cut short"):
        image_size(io.BytesIO(data))
