"""gui/views/live_page.py: the buttons follow the station's state, the view shows the newest frame only."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from gui.gui_helpers import DEMO_CLASSES, save_shot
from PySide6.QtCore import QObject, Signal

from inspector.core.decision import Decision, Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.gui.views.live_page import LivePage, live_banner, live_boxes
from inspector.station.bridge import LiveFrame

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


class FakeController(QObject):
    """What LivePage uses of a StationController: state, its signals, the commands, the newest frame."""

    stateChanged = Signal(str)   # noqa: N815 - Qt naming
    failed = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.state = "stopped"
        self.frame: LiveFrame | None = None
        self.reads = 0
        self.calls: list[str] = []

    def set_state(self, state: str) -> None:
        self.state = state
        self.stateChanged.emit(state)

    def start(self) -> None:
        self.calls.append("start")

    def stop(self) -> None:
        self.calls.append("stop")

    def pause(self) -> None:
        self.calls.append("pause")

    def resume(self) -> None:
        self.calls.append("resume")

    def latest(self) -> LiveFrame | None:
        self.reads += 1
        return self.frame


def live_frame(seq: int, verdict: Verdict = Verdict.FAIL, boxes=((40, 50, 90, 100, 0.9, 1),), fused=True,
               error: str | None = None) -> LiveFrame:
    image = np.full((160, 160, 3), 70, np.uint8)
    frame = Frame(f"f{seq}", "wafer-demo", "synthetic", float(seq), T0, image,
                  {"lot": "L7", "wafer": "W2", "die_x": 3, "die_y": -1})
    a = np.array(boxes, np.float32).reshape(-1, 6)
    det = Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int32), model_index=-1)
    reasons = (Reason("any-defect", verdict, "a defect"),) if verdict == Verdict.FAIL else ()
    decision = Decision(f"f{seq}", verdict, reasons, Detections.empty() if fused else det, "ms", "cfg", T0, error)
    return LiveFrame(seq, frame, decision, det if fused else None)


@pytest.fixture
def page(qtbot):
    ctl = FakeController()
    p = LivePage(ctl, DEMO_CLASSES)
    qtbot.addWidget(p)
    p.resize(520, 460)
    p.show()
    return p, ctl


def _enabled(p) -> tuple[bool, bool, bool]:
    return p.start_btn.isEnabled(), p.pause_btn.isEnabled(), p.stop_btn.isEnabled()


def test_buttons_follow_the_station_state(page):
    p, ctl = page
    assert _enabled(p) == (True, False, False)
    ctl.set_state("running")
    assert _enabled(p) == (False, True, True) and p.pause_btn.text() == "Pause"
    p.pause_btn.click()
    ctl.set_state("paused")
    assert p.pause_btn.text() == "Resume" and _enabled(p) == (False, True, True)
    p.pause_btn.click()
    ctl.set_state("faulted")
    assert _enabled(p) == (True, False, True)
    p.start_btn.click()
    p.stop_btn.click()
    assert ctl.calls == ["pause", "resume", "start", "stop"]
    ctl.failed.emit("camera 1: no frames for 5 s")
    assert p.note.text() == "camera 1: no frames for 5 s"


def test_an_operator_without_the_right_sees_why_and_cannot_press(page):
    p, ctl = page
    p.set_may_control(False, "starting the station needs role engineer")
    assert _enabled(p) == (False, False, False) and "needs role engineer" in p.note.text()
    ctl.set_state("running")
    assert _enabled(p) == (False, False, False)
    p.set_may_control(True)
    assert _enabled(p) == (False, True, True)


def test_poll_draws_the_newest_frame_once(page, qtbot, screenshots):
    p, ctl = page
    p.timer.stop()                     # polled by hand here
    p.poll()
    assert p.view.frames_shown == 0 and p.view.banner == "no frame yet"
    ctl.frame = live_frame(1)
    p.poll()
    p.poll()                           # the same frame again: not drawn twice
    assert p.view.frames_shown == 1 and ctl.reads == 3
    assert p.view.banner == "FAIL  lot L7 wafer W2 die 3,-1  rules: any-defect"
    assert [(b.label, b.score) for b in p.view._boxes] == [("scratch", pytest.approx(0.9))]
    assert p.poll_ms_max > 0
    save_shot(p, screenshots, "live_page")
    ctl.frame = live_frame(5, Verdict.PASS, boxes=())   # frames 2..4 were skipped: only the newest counts
    p.poll()
    assert p.view.frames_shown == 2 and p.view.banner.startswith("PASS") and p.view._boxes == []


def test_the_timer_polls_the_controller(page, qtbot):
    p, ctl = page
    ctl.frame = live_frame(1)
    qtbot.waitUntil(lambda: p.view.frames_shown == 1, timeout=2_000)


def test_boxes_and_banner_of_a_live_frame():
    lf = live_frame(2, boxes=((1, 2, 3, 4, 0.5, 4), (5, 6, 7, 8, 0.25, 9)))
    boxes = live_boxes(lf, DEMO_CLASSES)
    assert [(b.xyxy, b.class_id, b.label) for b in boxes] == [((1, 2, 3, 4), 4, "edge_chip"), ((5, 6, 7, 8), 9, "9")]
    # Without fusion output the decision's kept boxes are drawn.
    kept = live_frame(3, fused=False, boxes=((10, 10, 20, 20, 0.7, 2),))
    assert [b.label for b in live_boxes(kept, DEMO_CLASSES)] == ["residue"]
    err = live_frame(4, Verdict.ERROR, boxes=(), error="model timed out " + "x" * 200)
    text = live_banner(err)
    assert text.startswith("ERROR  lot L7 wafer W2 die 3,-1") and "(model timed out" in text
    assert len(text) < 140                                               # long errors are cut


def test_a_site_frame_draws_workers_not_fused_boxes_and_the_banner_counts_them():
    import dataclasses

    from inspector.core.site.types import SiteFrame, TrackedWorker
    from inspector.gui.views.live_page import live_banner, live_boxes

    lf = live_frame(1)
    site = SiteFrame("cam-a", (TrackedWorker(1, (0, 0, 5, 5), 0.9, False, True, 0, 0.9, (), ("no_hard_hat",)),
                               TrackedWorker(2, (5, 5, 9, 9), 0.9, True, True, 0.9, 0.9)))
    assert len(live_boxes(lf, ("a", "b"))) == 1
    site_lf = dataclasses.replace(lf, site=site)
    assert live_boxes(site_lf, ("a", "b")) == []
    assert live_banner(site_lf).endswith("workers 2, 1 violating")
