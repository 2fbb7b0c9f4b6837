"""The live tab: start / stop / pause and the newest frame, polled at 30 Hz from the bridge."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from inspector.gui.station_controller import StationController
from inspector.gui.widgets.live_view import Box, LiveView
from inspector.station.bridge import LiveFrame

POLL_MS = 33  # ~30 Hz: the view shows only the newest frame; frames in between are skipped


def live_boxes(lf: LiveFrame, class_names: tuple[str, ...]) -> list[Box]:
    """The fused boxes of a live frame (kept ones if fusion output is not there). None on a site
    frame: its tracked workers carry the boxes, with their PPE state (drawn by the site overlay)."""
    if lf.site is not None:
        return []
    det = lf.fused if lf.fused is not None else lf.decision.detections
    out = []
    for xyxy, score, cid in zip(det.xyxy.tolist(), det.score.tolist(), det.class_id.tolist()):
        name = class_names[cid] if 0 <= cid < len(class_names) else str(cid)
        out.append(Box(tuple(xyxy), int(cid), name, float(score)))
    return out


def live_banner(lf: LiveFrame) -> str:
    d = lf.decision
    ctx = lf.frame.context
    where = " ".join(f"{k} {ctx[k]}" for k in ("lot", "wafer", "camera", "zone") if k in ctx)
    if "die_x" in ctx:
        where += f" die {ctx['die_x']},{ctx['die_y']}"
    rules = ", ".join(d.rule_ids)
    text = f"{d.verdict.value.upper()}  {where}"
    if rules:
        text += f"  rules: {rules}"
    if lf.site is not None:
        violating = sum(1 for w in lf.site.workers if w.violations)
        text += f"  workers {len(lf.site.workers)}"
        if violating:
            text += f", {violating} violating"
    if d.error:
        text += f"  ({d.error[:80]})"
    return text


class LivePage(QWidget):
    def __init__(self, controller: StationController, class_names: tuple[str, ...],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.class_names = class_names
        self.view = LiveView(self)
        self.start_btn = QPushButton("Start", self)
        self.stop_btn = QPushButton("Stop", self)
        self.pause_btn = QPushButton("Pause", self)
        self.start_btn.clicked.connect(controller.start)
        self.stop_btn.clicked.connect(controller.stop)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.note = QLabel("", self)
        bar = QHBoxLayout()
        for b in (self.start_btn, self.pause_btn, self.stop_btn):
            bar.addWidget(b)
        bar.addWidget(self.note, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(bar)
        lay.addWidget(self.view, 1)
        self._seq = -1
        self.poll_ms_max = 0.0  # CPU ms of the slowest frame update on the GUI thread (diagnostics)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self.poll)
        self.timer.start()
        controller.stateChanged.connect(self.on_state)
        controller.failed.connect(self.note.setText)
        self.may_control = True
        self.on_state(controller.state)

    def set_may_control(self, allowed: bool, why: str = "") -> None:
        self.may_control = allowed
        self.on_state(self.controller.state)
        if not allowed:
            self.note.setText(why)

    def toggle_pause(self) -> None:
        if self.controller.state == "paused":
            self.controller.resume()
        else:
            self.controller.pause()

    def on_state(self, state: str) -> None:
        ok = self.may_control
        self.start_btn.setEnabled(ok and state in ("stopped", "faulted"))
        self.stop_btn.setEnabled(ok and state in ("running", "paused", "faulted"))
        self.pause_btn.setEnabled(ok and state in ("running", "paused"))
        self.pause_btn.setText("Resume" if state == "paused" else "Pause")

    def poll(self) -> None:
        """Newest frame only; O(1) read of the bridge's latest slot (never waits on the pipeline)."""
        lf: Any = self.controller.latest()
        if lf is None or lf.seq == self._seq:
            return
        t0 = time.thread_time()
        self._seq = lf.seq
        self.view.set_frame(lf.frame.image, live_boxes(lf, self.class_names), lf.decision.verdict.value,
                            live_banner(lf), getattr(lf, "site", None))
        self.view.repaint()  # paint now, so the cost measured below includes drawing
        self.poll_ms_max = max(self.poll_ms_max, (time.thread_time() - t0) * 1e3)
