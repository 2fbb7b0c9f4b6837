"""inspector/capture/folder.py: order, context (regex / sidecar), unreadable and oversized files as
units with their reason, pixel types, loop."""

from __future__ import annotations

import logging
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.capture.folder import FolderSource, decode_image, natural_key
from inspector.capture.health import CaptureError, UnreadableFrame
from inspector.core.decision import Verdict
from inspector.core.ports import FrameSource
from helpers.big_images import constant_png


def png(path: Path, value: int = 0, shape: tuple[int, ...] = (6, 8, 3), dtype=np.uint8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, value, dtype))
    return path


def test_natural_order_pattern_ids_and_protocol(tmp_path: Path) -> None:
    for i, name in enumerate(["die_10.png", "die_2.png", "die_1.png", "Die_3.png"]):
        png(tmp_path / name, 10 * i)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "die_4.jpg").write_bytes(cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    src = FolderSource(tmp_path, source_id="replay", station_id="st1")
    assert isinstance(src, FrameSource) and src.name == "replay"
    frames = list(src.frames())
    assert [f.frame_id for f in frames] == ["replay:die_1.png", "replay:die_2.png", "replay:Die_3.png",
                                            "replay:die_10.png"]
    f = frames[0]
    assert f.station_id == "st1" and f.source == "replay" and f.image.shape == (6, 8, 3)
    assert dict(f.context) == {"source": "replay", "file": "die_1.png"}
    assert src.stats()["frames"] == 4 and src.stats()["corrupt"] == 0 and src.stats()["state"] == "ended"
    assert sorted(["a10", "a2", "a1b", "a1"], key=natural_key) == ["a1", "a1b", "a2", "a10"]


def test_recursive_option(tmp_path: Path) -> None:
    png(tmp_path / "top.png")
    png(tmp_path / "sub" / "deep" / "b.png")
    assert [f.context["file"] for f in FolderSource(tmp_path).frames()] == ["top.png"]
    rec = FolderSource(tmp_path, recursive=True, source_id="r")
    assert [f.frame_id for f in rec.frames()] == ["r:sub/deep/b.png", "r:top.png"]


def test_context_from_regex_with_int_positions(tmp_path: Path) -> None:
    png(tmp_path / "LOT7" / "03_-2_5.png")
    png(tmp_path / "LOT7" / "03_10_0.png")
    rx = r"(?P<lot>[^/]+)/(?P<wafer>\d+)_(?P<die_x>-?\d+)_(?P<die_y>-?\d+)"
    frames = list(FolderSource(tmp_path, recursive=True, context_regex=rx, source_id="f").frames())
    assert [dict(f.context) for f in frames] == [
        {"lot": "LOT7", "wafer": 3, "die_x": 10, "die_y": 0, "source": "f", "file": "LOT7/03_10_0.png"},
        {"lot": "LOT7", "wafer": 3, "die_x": -2, "die_y": 5, "source": "f", "file": "LOT7/03_-2_5.png"},
    ]  # natural sort compares digit runs, not signs: "_10" sorts before "_-2"


def test_regex_mismatch_is_named_strict_or_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    png(tmp_path / "w1_3_4.png")
    png(tmp_path / "stray.png")
    rx = r"w(?P<wafer>\d+)_(?P<die_x>\d+)_(?P<die_y>\d+)"
    with pytest.raises(CaptureError, match=r"file 'stray.png': path does not match context_regex"):
        FolderSource(tmp_path, context_regex=rx)
    with caplog.at_level(logging.WARNING, logger="inspector.capture.folder"):
        frames = list(FolderSource(tmp_path, context_regex=rx, strict=False).frames())
    assert "stray.png" in caplog.text
    assert [f.context.get("die_x") for f in frames] == [None, 3]  # the unmatched file is still a unit


def test_sidecar_csv_context(tmp_path: Path) -> None:
    png(tmp_path / "imgs" / "a.png")
    png(tmp_path / "imgs" / "b.png")
    csv_path = tmp_path / "ctx.csv"
    csv_path.write_text("\ufefffile,lot,wafer,die_x,die_y,note\n./a.png,L1,2,-1,0,\nb.png,L1,02,3,4,edge\n")
    frames = list(FolderSource(tmp_path / "imgs", sidecar_csv=csv_path, source_id="s").frames())
    assert dict(frames[0].context) == {"lot": "L1", "wafer": 2, "die_x": -1, "die_y": 0, "source": "s",
                                       "file": "a.png"}
    assert frames[1].context["note"] == "edge" and frames[1].context["wafer"] == 2


def test_sidecar_problems_name_file_and_line(tmp_path: Path) -> None:
    png(tmp_path / "imgs" / "a.png")
    png(tmp_path / "imgs" / "orphan.png")
    csv_path = tmp_path / "ctx.csv"
    csv_path.write_text("file,lot\na.png,L1\nmissing.png,L1\na.png,L2\n")
    with pytest.raises(CaptureError) as e:
        FolderSource(tmp_path / "imgs", sidecar_csv=csv_path)
    msg = str(e.value)
    assert f"{csv_path} line 3: file 'missing.png' not found" in msg
    assert f"{csv_path} line 4: file 'a.png' already listed on line 2" in msg
    assert "file 'orphan.png': no row in sidecar CSV" in msg
    assert "3 context problem(s)" in msg
    bad = tmp_path / "bad.csv"
    bad.write_text("name,lot\na.png,L1\n")
    with pytest.raises(CaptureError, match=r"bad.csv' line 1: no 'file' column \(columns: name, lot\)"):
        FolderSource(tmp_path / "imgs", sidecar_csv=bad)
    with pytest.raises(CaptureError, match="nope.csv' does not exist"):
        FolderSource(tmp_path / "imgs", sidecar_csv=tmp_path / "nope.csv")


def test_corrupt_files_are_counted_logged_and_yielded_as_not_inspected_units(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    good = cv2.imencode(".png", np.full((16, 16, 3), 200, np.uint8))[1].tobytes()
    jpg = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1].tobytes()
    (tmp_path / "01_ok.png").write_bytes(good)
    (tmp_path / "02_empty.png").write_bytes(b"")
    (tmp_path / "03_trunc.png").write_bytes(good[: len(good) - 20])
    (tmp_path / "04_text.png").write_bytes(b"this is not an image at all")
    (tmp_path / "05_trunc.jpg").write_bytes(jpg[: len(jpg) // 2])
    (tmp_path / "06_ok.jpg").write_bytes(jpg)
    src = FolderSource(tmp_path, pattern="*.*", source_id="c")
    with caplog.at_level(logging.WARNING, logger="inspector.capture.folder"):
        frames = list(src.frames())
    # Every file is a unit: the unreadable ones come in their place, never judged, with the reason.
    assert [f.frame_id for f in frames] == ["c:01_ok.png", "c:02_empty.png", "c:03_trunc.png", "c:04_text.png",
                                           "c:05_trunc.jpg", "c:06_ok.jpg"]
    bad = [f for f in frames if isinstance(f, UnreadableFrame)]
    assert [f.frame_id for f in bad] == ["c:02_empty.png", "c:03_trunc.png", "c:04_text.png", "c:05_trunc.jpg"]
    assert {f.verdict for f in bad} == {Verdict.NOT_INSPECTED}
    assert "empty file" in bad[0].reason and "02_empty.png" in bad[0].reason
    assert bad[0].context["file"] == "02_empty.png"
    st = src.stats()
    assert st["corrupt"] == 4 and st["frames"] == 2 and "05_trunc.jpg" in st["last_error"]
    for name, why in [("02_empty.png", "empty file"), ("03_trunc.png", "truncated PNG"),
                      ("04_text.png", "not a decodable image"), ("05_trunc.jpg", "truncated JPEG")]:
        assert any(name in r.getMessage() and why in r.getMessage() for r in caplog.records), name


def test_grey_colour_alpha_and_16_bit(tmp_path: Path) -> None:
    png(tmp_path / "a_grey.png", 77, (5, 7))
    png(tmp_path / "b_bgra.png", 9, (5, 7, 4))
    png(tmp_path / "c_deep.png", 0x1234, (5, 7), np.uint16)
    png(tmp_path / "d_deep_colour.png", 0xFF00, (5, 7, 3), np.uint16)
    a, b, c, d = (f.image for f in FolderSource(tmp_path).frames())
    assert a.shape == (5, 7) and a.dtype == np.uint8 and a[0, 0] == 77
    assert b.shape == (5, 7, 4) and b[0, 0, 3] == 9
    assert c.dtype == np.uint8 and c.shape == (5, 7) and c[0, 0] == 0x12  # v >> 8, same for every image
    assert d.dtype == np.uint8 and d[0, 0, 0] == 0xFF


def test_unsupported_pixel_type_is_refused_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ok, buf = cv2.imencode(".tiff", np.full((4, 4), 0.5, np.float32))
    assert ok
    (tmp_path / "f.tiff").write_bytes(buf.tobytes())
    src = FolderSource(tmp_path, pattern="*.tiff")
    with caplog.at_level(logging.WARNING, logger="inspector.capture.folder"):
        (frame,) = src.frames()
    assert isinstance(frame, UnreadableFrame) and "float32" in frame.reason
    assert src.stats()["unsupported"] == 1 and "float32" in caplog.text and "f.tiff" in caplog.text
    with pytest.raises(ValueError, match="unsupported pixel type float32"):
        decode_image(buf.tobytes())


def test_loop_gives_unique_ids_and_close_stops(tmp_path: Path) -> None:
    png(tmp_path / "1.png")
    png(tmp_path / "2.png")
    src = FolderSource(tmp_path, loop=True, source_id="l")
    ids = []
    for f in src.frames():
        ids.append(f.frame_id)
        if len(ids) == 5:
            src.close()
    assert ids == ["l:1.png", "l:2.png", "l:1.png#2", "l:2.png#2", "l:1.png#3"]
    assert src.stats()["state"] == "closed" and list(src.frames()) == []


def test_loop_over_only_corrupt_files_ends(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"")
    src = FolderSource(tmp_path, loop=True)
    (frame,) = src.frames()  # one pass: the unit is recorded once, then the loop stops
    assert isinstance(frame, UnreadableFrame)
    assert "no readable image" in src.stats()["last_error"]


def test_an_image_above_the_pixel_limit_is_an_error_unit_without_decoding(tmp_path: Path) -> None:
    (tmp_path / "a_huge.png").write_bytes(constant_png(20000, 20000))  # decodes to 400 MB (1.2 GB as BGR)
    png(tmp_path / "b_ok.png")
    src = FolderSource(tmp_path, source_id="c")
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        huge, ok = src.frames()
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(huge, UnreadableFrame) and huge.verdict is Verdict.ERROR
    assert "20000 x 20000 = 400.0 MP" in huge.reason and "limit of 100 MP" in huge.reason
    assert "a_huge.png" in huge.reason
    assert not isinstance(ok, UnreadableFrame) and ok.image.shape == (6, 8, 3)
    assert seconds < 1.0 and peak < 8 * 2**20  # the header was read, not the pixels (numpy allocations are traced)
    assert src.stats()["too_large"] == 1 and src.stats()["frames"] == 1
    # The limit is the source's own.
    (small,) = FolderSource(tmp_path, max_megapixels=0.00001, pattern="b_*").frames()
    assert isinstance(small, UnreadableFrame) and "8 x 6" in small.reason
    with pytest.raises(ValueError, match="max_megapixels must be > 0"):
        FolderSource(tmp_path, max_megapixels=0)


def test_missing_folder_and_no_match_are_clear(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"folder source 'f': folder '.*nowhere' does not exist"):
        FolderSource(tmp_path / "nowhere", source_id="f")
    png(tmp_path / "a.png")
    with pytest.raises(CaptureError, match=r"no file in '.*' matches pattern '\*.bmp'"):
        FolderSource(tmp_path, pattern="*.bmp")
