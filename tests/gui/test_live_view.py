"""gui/widgets/live_view.py: the newest frame drawn with its boxes and a verdict banner (checked in pixels)."""

from __future__ import annotations

import numpy as np
import pytest
from gui.gui_helpers import save_shot
from PySide6.QtGui import QColor, QImage

from inspector.gui.style import class_color, verdict_color
from inspector.gui.widgets.live_view import Box, LiveView

GREY = (90, 90, 90)


def _pixel(img: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = QColor(img.pixel(int(x), int(y)))
    return c.red(), c.green(), c.blue()


def _rgb(c: QColor) -> tuple[int, int, int]:
    return c.red(), c.green(), c.blue()


def _near(a, b, tol=12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.fixture
def view(qtbot):
    v = LiveView()
    qtbot.addWidget(v)
    v.resize(480, 388)   # 360 px of image area below the 28 px banner
    v.show()
    return v


def test_before_any_frame_the_banner_says_so(view):
    assert view.banner == "no frame yet" and view.frames_shown == 0
    img = view.grab().toImage()
    assert _near(_pixel(img, 3, 3), (0x40, 0x40, 0x40))            # neutral banner: no verdict yet
    assert _near(_pixel(img, 240, 200), (0x20, 0x20, 0x20))        # empty canvas


def test_a_frame_is_drawn_with_its_boxes_and_verdict_colour(view, screenshots):
    image = np.full((180, 240, 3), GREY, np.uint8)                  # 4:3, drawn at scale 2 in 480 x 360
    boxes = [Box((20, 30, 80, 90), 1, "scratch", 0.87), Box((150, 100, 200, 160), 4, "edge_chip")]
    view.set_frame(image, boxes, "fail", "FAIL  lot L1 wafer W1 die 0,1")
    assert view.frames_shown == 1 and view.banner.startswith("FAIL")
    r = view.image_rect()
    assert (r.x(), r.y(), r.width(), r.height()) == (0.0, 28.0, 480.0, 360.0)   # aspect kept, below the banner
    img = view.grab().toImage()
    assert _near(_pixel(img, 3, 3), _rgb(verdict_color("fail")))
    assert _near(_pixel(img, r.x() + 120 * 2, r.y() + 20 * 2), GREY)      # the image itself
    # Each box's left edge in its class colour, at image pixels x 2 (scale) + the banner offset.
    assert _near(_pixel(img, r.x() + 20 * 2, r.y() + 60 * 2), _rgb(class_color(1)))
    assert _near(_pixel(img, r.x() + 150 * 2, r.y() + 130 * 2), _rgb(class_color(4)))
    assert _near(_pixel(img, r.x() + 50 * 2, r.y() + 60 * 2), GREY)       # inside a box: not filled
    save_shot(view, screenshots, "live_view")


def test_a_new_frame_replaces_the_old_and_clear_empties_the_view(view):
    view.set_frame(np.zeros((100, 100), np.uint8), [Box((10, 10, 40, 40), 0, "particle", 0.5)], "pass", "PASS")
    view.set_frame(np.full((100, 100), 200, np.uint8), [], "review", "REVIEW")    # a grey image, no boxes
    assert view.frames_shown == 2 and view.banner == "REVIEW"
    img = view.grab().toImage()
    r = view.image_rect()
    assert r.width() == r.height() == 360.0 and r.x() == 60.0                   # square image, centred
    assert _near(_pixel(img, 3, 3), _rgb(verdict_color("review")))
    assert _near(_pixel(img, r.x() + 25 * 3.6, r.y() + 10 * 3.6), (200, 200, 200))   # the old box is gone
    view.clear("camera lost")
    img = view.grab().toImage()
    assert view.banner == "camera lost" and _near(_pixel(img, 240, 200), (0x20, 0x20, 0x20))
    assert view.frames_shown == 2                                              # clearing is not a frame
