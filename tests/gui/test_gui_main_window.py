"""The main window on the wafer demo config with a tiny registered model: frames shown, never stalled."""

from __future__ import annotations

import time

import numpy as np
import pytest
from gui.gui_helpers import save_shot
from PySide6.QtCore import QElapsedTimer, QTimer
from test_cli_run import DEMO_CLASSES, blank_detector_onnx, register

from inspector.core.detections import Detections
from inspector.gui.status import status_fields
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.station import Station


class Boxes:
    """A fast fake detector: one scratch box on every die (for a live view with something to draw)."""

    class_names = DEMO_CLASSES

    def detect(self, images):
        return [Detections([[60, 70, 180, 120]], [0.9], [1]) for _ in images]


def test_window_shows_live_frames_and_never_stalls(ctx, sessions, qtbot, tmp_path, screenshots):
    from inspector.gui.main_window import MainWindow

    reg = tmp_path / "reg"
    register(reg, "wafer-demo", blank_detector_onnx(tmp_path / "w.onnx", DEMO_CLASSES, 320), DEMO_CLASSES, 320)
    ctx.registry_root = reg
    ctx.session = sessions["operator"]
    win = MainWindow(ctx)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    assert "Settings" not in [win.tabs.tabText(i) for i in range(win.tabs.count())]  # operator: no engineer tabs
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(now - last[0])
        last[0] = now

    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(10)
    assert win.controller.start()
    qtbot.waitUntil(lambda: win.controller.state == "running", timeout=20_000)
    gaps.clear()
    last[0] = clock.elapsed()
    qtbot.waitUntil(lambda: win.live.view.frames_shown >= 10, timeout=20_000)
    qtbot.wait(1000)  # keep watching the heartbeat while the line runs
    heart.stop()
    assert win.live.view.frames_shown >= 10 and win.live.view.banner.startswith("PASS")
    win.update_status()
    assert win.status_labels["state"].text() == "running"
    assert "fps" in win.status_labels["fps"].text() and "MES: mes-files" in win.status_labels["mes"].text()
    assert "wafer-demo@1" in win.status_labels["models"].text()
    worst = max(gaps)
    # What the GUI thread itself does per tick (newest frame copied and painted, status), in CPU
    # time of that thread, is tiny.
    assert win.live.poll_ms_max < 20 and win.status_ms_max < 40, (win.live.poll_ms_max, win.status_ms_max)
    # The heartbeat also pays for the GIL: the station's threads run in this process. A freeze
    # fails outright; a stall over the 50 ms target is reported as a known failure (below).
    stall = f"GUI thread stalled {worst} ms (beats {len(gaps)}, p50 {np.median(gaps)} ms)"
    assert worst < 1000, stall
    win.live.pause_btn.click()
    assert win.controller.state == "paused"
    win.live.pause_btn.click()
    assert win.controller.state == "running"
    assert win.controller.stop()
    qtbot.waitUntil(lambda: win.controller.state == "stopped", timeout=30_000)
    st = win.controller.station
    assert st.summary()["complete"] and st.summary()["stored"] == st.summary()["decisions"] > 0
    print(f"heartbeat: {len(gaps)} beats, max gap {worst} ms, p50 {np.median(gaps)} ms; "
          f"poll max {win.live.poll_ms_max:.1f} ms, status max {win.status_ms_max:.1f} ms")
    if worst >= 50:
        # Known and open (issue 6): measured up to ~150 ms on 2 cores while the station's capture,
        # inference and store threads hold the GIL; the fix is the station in its own process.
        pytest.xfail(f"over the 50 ms target: {stall}")


def test_live_view_draws_boxes_and_banner(ctx, sessions, qtbot, screenshots):
    from inspector.gui.main_window import MainWindow

    ens = Ensemble([Member("fake", "1", "ab" * 32, Boxes())])
    ctx.session = sessions["engineer"]
    win = MainWindow(ctx, station_factory=lambda: Station.from_config(ctx.cfg, ctx.cfg_hash, data_dir=ctx.data_dir,
                                                                      ensemble=ens))
    qtbot.addWidget(win)
    win.resize(1100, 750)
    win.show()
    qtbot.waitExposed(win)
    win.controller.start()
    qtbot.waitUntil(lambda: win.live.view.frames_shown >= 3, timeout=20_000)
    win.controller.pause()
    time.sleep(0.2)
    qtbot.wait(100)
    assert win.live.view.banner.startswith("FAIL") and "any-defect" in win.live.view.banner
    save_shot(win, screenshots, "main_window_live")
    win.controller.stop()
    qtbot.waitUntil(lambda: win.controller.state == "stopped", timeout=30_000)


def test_status_fields_without_a_station():
    f = status_fields(None, state="stopped", models=[], mes=[])
    assert f["mes"] == "MES: not configured" and f["queue"] == "queue 0" and f["models"] == "models: none"
    snap = {"fps": 12.5, "latency_ms": {"end_to_end": {"p50": 4.0, "p99": 9.0, "n": 3}}, "queues": {"a": 2, "b": 1},
            "dropped": 4}
    f = status_fields(snap, state="running", models=["m@1"], mes=["mes-files"])
    assert (f["fps"], f["latency"], f["queue"], f["drops"]) == ("12.5 fps", "latency p50 4.0 / p99 9.0 ms", "queue 3",
                                                                 "drops 4")
