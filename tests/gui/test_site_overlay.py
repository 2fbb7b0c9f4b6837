"""gui/widgets/site_overlay.py through the live view: zones by kind, workers with id and PPE state
(checked in pixels), and a screenshot of a site frame."""

from __future__ import annotations

import numpy as np
import pytest
from gui.gui_helpers import save_shot
from PySide6.QtGui import QColor, QImage

from inspector.core.site.types import SiteFrame, TrackedWorker
from inspector.gui.widgets.live_view import Box, LiveView
from inspector.gui.widgets.site_overlay import OK_COLOR, VIOLATION_COLOR, ZONE_FILL_ALPHA, violation_text, zone_color

GREY = (90, 90, 90)


def _px(img: QImage, x: float, y: float) -> tuple[int, int, int]:
    c = QColor(img.pixel(int(x), int(y)))
    return c.red(), c.green(), c.blue()


def _rgb(c: QColor | str) -> tuple[int, int, int]:
    c = QColor(c)
    return c.red(), c.green(), c.blue()


def _near(a, b, tol=14) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def _blend(under, over, alpha=ZONE_FILL_ALPHA):
    return tuple(round(u + (o - u) * alpha / 255) for u, o in zip(under, over))


def site_frame() -> SiteFrame:
    ok = TrackedWorker(4, (20.0, 60.0, 50.0, 150.0), 0.9, True, True, 0.9, 0.8)
    bad = TrackedWorker(11, (170.0, 70.0, 200.0, 160.0), 0.85, False, True, 0.0, 0.7, ("pit",),
                        ("no_hard_hat", "in_danger_zone"))
    zones = (("pit", "restricted", ((140.0, 40.0), (236.0, 40.0), (236.0, 176.0), (140.0, 176.0))),
             ("deck", "ppe_required", ((4.0, 40.0), (120.0, 40.0), (120.0, 176.0))))
    return SiteFrame("cam-a", (ok, bad), (), zones)


@pytest.fixture
def view(qtbot):
    v = LiveView()
    qtbot.addWidget(v)
    v.resize(480, 388)  # 180 x 240 image drawn at scale 2 in 480 x 360 below the banner
    v.show()
    return v


def test_zones_are_filled_by_kind_and_workers_drawn_red_when_violating(view):
    view.set_frame(np.full((180, 240, 3), GREY, np.uint8), [], "fail", "FAIL  camera cam-a", site_frame())
    assert view.site is not None and len(view.site.workers) == 2
    img = view.grab().toImage()
    r = view.image_rect()
    at = lambda x, y: _px(img, r.x() + x * 2, r.y() + y * 2)  # noqa: E731 - image pixels -> screen
    assert _near(at(220, 120), _blend(GREY, _rgb(zone_color("restricted"))))      # inside the danger zone only
    assert _near(at(100, 150), _blend(GREY, _rgb(zone_color("ppe_required"))))   # inside the PPE zone only
    assert _near(at(130, 20), GREY)                                               # outside every zone
    assert _near(at(20, 110), _rgb(OK_COLOR))                # compliant worker: left edge green
    assert _near(at(170, 110), _rgb(VIOLATION_COLOR))        # violating worker: left edge red
    assert _near(at(185, 110), _blend(GREY, _rgb(zone_color("restricted"))))  # boxes are not filled


def test_violations_are_named_and_a_cleared_view_forgets_the_site(view):
    w = site_frame().workers[1]
    assert violation_text(w) == "NO HARD HAT, IN DANGER ZONE"
    view.set_frame(np.full((180, 240, 3), GREY, np.uint8), [], "fail", "FAIL", site_frame())
    img = view.grab().toImage()
    r = view.image_rect()
    # The name tag under the violating worker's box is red; nothing is drawn under the compliant one.
    assert _near(_px(img, r.x() + 170 * 2 + 2, r.y() + 160 * 2 + 8), _rgb(VIOLATION_COLOR))
    assert not _near(_px(img, r.x() + 20 * 2 + 2, r.y() + 150 * 2 + 8), _rgb(VIOLATION_COLOR))
    view.set_frame(np.full((180, 240, 3), GREY, np.uint8), [Box((20, 60, 50, 150), 2, "worker", 0.9)], "pass", "P")
    assert view.site is None
    img = view.grab().toImage()
    assert _near(_px(img, r.x() + 220 * 2, r.y() + 120 * 2), GREY)  # no zone without a site frame
    view.clear()
    assert view.site is None


def test_screenshot_of_a_site_frame(qtbot, screenshots):
    v = LiveView()
    qtbot.addWidget(v)
    v.resize(960, 568)
    v.show()
    image, site = _rendered_site_frame()

    v.set_frame(image, [], "fail", "FAIL  camera cam-a  rules: site-no-hat, site-danger  workers 3, 2 violating", site)
    save_shot(v, screenshots, "live_view_site")


def _rendered_site_frame() -> tuple[np.ndarray, SiteFrame]:
    """A frame of the synthetic site camera when it is there, else a drawn stand-in of the same size."""
    image = np.zeros((540, 960, 3), np.uint8)
    image[:] = (70, 110, 140)                      # earth
    image[:200] = (200, 170, 120)                  # sky-ish background
    image[300:420, 600:900] = (40, 40, 160)        # the pit
    site = SiteFrame("cam-a", (
        TrackedWorker(3, (120.0, 220.0, 190.0, 420.0), 0.92, True, True, 0.9, 0.85, ("deck",)),
        TrackedWorker(8, (640.0, 240.0, 710.0, 430.0), 0.88, False, False, 0.0, 0.0, ("pit",),
                      ("no_hard_hat", "in_danger_zone")),
        TrackedWorker(12, (380.0, 230.0, 440.0, 400.0), 0.81, True, False, 0.85, 0.1, ("deck",), ("no_vest",)),
    ), (), (
        ("pit", "restricted", ((580.0, 280.0), (930.0, 280.0), (930.0, 470.0), (580.0, 470.0))),
        ("deck", "ppe_required", ((40.0, 200.0), (520.0, 200.0), (520.0, 500.0), (40.0, 500.0))),
    ))
    return image, site
