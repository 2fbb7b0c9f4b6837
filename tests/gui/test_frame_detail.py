"""gui/widgets/frame_detail.py: one stored frame with its kept boxes, zoom to the defects, missing images."""

from __future__ import annotations

import numpy as np
import pytest
from gui.gui_helpers import DEMO_CLASSES, fill_store, put_image, save_shot

from inspector.gui.widgets.frame_detail import FrameDetail, load_frame, zoom_rect


@pytest.fixture
def stored(ctx):
    """Two fail frames of lot L1 / W1 with their images (a red block where the kept box is)."""
    images = {i: put_image(ctx.images_root, seed=i) for i in range(2)}
    ids = fill_store(ctx.db_path, 2, verdicts=("fail",), images=images)
    conn = ctx.connect()
    yield conn, ids
    conn.close()


@pytest.fixture
def detail(ctx, qtbot):
    w = FrameDetail(ctx.images_root, DEMO_CLASSES)
    qtbot.addWidget(w)
    w.resize(420, 460)
    w.show()
    return w


def _row(fid: str, **kw):
    return {"frame_id": fid, "verdict": "fail", "lot": "L1", "wafer": "W1", "die_x": -4, "die_y": -4,
            "rule_ids": ["any-defect"], "t_utc": "2025-01-01T00:00:00Z", **kw}


def test_zoom_rect_grows_the_union_of_boxes_and_stays_in_the_image():
    assert zoom_rect([], (320, 320)) is None
    assert zoom_rect([{"xyxy": [100, 120, 140, 150]}], (320, 320, 3)) == (80, 105, 160, 165)
    # Margins are at least 8 px, and the crop never leaves the image.
    assert zoom_rect([{"xyxy": [2, 3, 4, 5]}, {"xyxy": [310, 300, 318, 319]}], (320, 320)) == (0, 0, 320, 320)
    assert zoom_rect([{"xyxy": [5, 5, 6, 6]}], (320, 320)) == (0, 0, 14, 14)


def test_a_stored_frame_shows_its_image_boxes_and_banner(detail, stored, screenshots):
    conn, ids = stored
    detail.show_frame(conn, _row(ids[0]))
    assert detail.frame_id == ids[0] and not detail.zoomed
    assert [d["xyxy"] for d in detail.detections] == [[100.0, 120.0, 140.0, 150.0]]
    view = detail.view
    assert view.frames_shown == 1 and view._image.width() == 320
    assert view.banner.startswith("FAIL") and "lot L1 wafer W1 die -4,-4" in view.banner
    assert "rules: any-defect" in view.banner
    assert ids[0] in detail.info.text() and "1 box(es)" in detail.info.text()
    box = view._boxes[0]
    assert box.xyxy == (100.0, 120.0, 140.0, 150.0) and box.label == "particle" and box.class_id == 0
    save_shot(detail, screenshots, "frame_detail")


def test_zoom_crops_to_the_boxes_and_shifts_them(detail, stored, screenshots):
    conn, ids = stored
    detail.show_frame(conn, _row(ids[1]))
    detail.toggle_zoom()
    view = detail.view
    assert detail.zoomed and view.banner.endswith("[zoom]")
    assert (view._image.width(), view._image.height()) == (80, 60)          # crop (80, 105) - (160, 165)
    assert view._boxes[0].xyxy == (20.0, 15.0, 60.0, 45.0)
    assert view._boxes[0].label == "scratch"                                 # class of frame 1 in fill_store
    save_shot(detail, screenshots, "frame_detail_zoomed")
    detail.toggle_zoom()
    assert not detail.zoomed and view._image.width() == 320 and not view.banner.endswith("[zoom]")


def test_a_pruned_image_keeps_the_boxes_on_a_grey_canvas(detail, stored):
    conn, ids = stored
    with conn:
        conn.execute("UPDATE frames SET image_pruned = 1 WHERE id = ?", (ids[0],))
    image, dets = load_frame(conn, detail.images, ids[0])
    assert image.shape == (320, 320) and np.all(image == 96) and len(dets) == 1
    detail.show_frame(conn, _row(ids[0]))
    assert detail.view._image.width() == 320 and len(detail.view._boxes) == 1


def test_an_unknown_frame_clears_the_view(detail, stored):
    conn, ids = stored
    detail.show_frame(conn, _row(ids[0]))
    detail.show_frame(conn, _row("no-such-frame"))
    assert detail.view.banner == "no frame" and detail.view._image is None
    assert detail.info.text() == "" and detail.detections == []
