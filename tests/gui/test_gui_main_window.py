"""The main window on the wafer demo config with a tiny registered model: frames shown, never stalled.

The station runs in its own process (``inspector.station.child_process``); the window only polls it.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from gui.gui_helpers import save_shot
from PySide6.QtCore import QElapsedTimer, QTimer
from test_cli_run import DEMO_CLASSES, blank_detector_onnx, register

from inspector.gui.status import status_fields
from inspector.station.child_process import StationProcess, StationSpec
from inspector.store.audit import verify
from inspector.store.db import open_db


def _run_delay_ms() -> float | None:
    """CPU-queue wait of this thread so far (Linux schedstat): how long it was runnable but had no core."""
    try:
        return int(Path(f"/proc/self/task/{threading.get_native_id()}/schedstat").read_text().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def _spec(ctx, factory: str):
    return lambda: StationSpec(ctx.cfg, ctx.cfg_hash, ctx.data_dir, ensemble_factory=f"helpers.fake_ensembles:{factory}")


def test_window_shows_live_frames_and_never_stalls(ctx, sessions, qtbot, tmp_path, screenshots, request):
    from inspector.gui.main_window import MainWindow

    reg = tmp_path / "reg"
    register(reg, "wafer-demo", blank_detector_onnx(tmp_path / "w.onnx", DEMO_CLASSES, 320), DEMO_CLASSES, 320)
    ctx.registry_root = reg
    ctx.session = sessions["operator"]
    win = MainWindow(ctx)
    qtbot.addWidget(win)  # closed at teardown: closeEvent stops and reaps the station process
    win.show()
    qtbot.waitExposed(win)
    assert "Settings" not in [win.tabs.tabText(i) for i in range(win.tabs.count())]  # operator: no engineer tabs
    gaps: list[float] = []
    waits: list[float] = []  # per beat: ms this thread was runnable but waiting for a CPU
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed(), _run_delay_ms()]

    def beat() -> None:
        now, rq = clock.elapsed(), _run_delay_ms()
        gaps.append(now - last[0])
        waits.append(0.0 if rq is None or last[1] is None else rq - last[1])
        last[:] = [now, rq]

    # As the app does once its window is up (inspector/gui/app.py): what exists now is kept out of
    # the cyclic GC's full passes, which would otherwise scan this whole pytest process.
    gc.collect()
    gc.freeze()
    request.addfinalizer(gc.unfreeze)
    heart = QTimer()
    heart.timeout.connect(beat)
    heart.start(10)
    assert win.controller.start()
    qtbot.waitUntil(lambda: win.controller.state == "running", timeout=60_000)
    st = win.controller.station
    assert isinstance(st, StationProcess) and st.pid not in (None, os.getpid())  # the line runs elsewhere
    gaps.clear()
    waits.clear()
    last[:] = [clock.elapsed(), _run_delay_ms()]
    qtbot.waitUntil(lambda: win.live.view.frames_shown >= 10, timeout=20_000)
    qtbot.wait(1000)  # keep watching the heartbeat while the line runs
    heart.stop()
    assert win.live.view.frames_shown >= 10 and win.live.view.banner.startswith("PASS")
    win.update_status()
    assert win.status_labels["state"].text() == "running"
    assert "fps" in win.status_labels["fps"].text() and "MES: mes-files" in win.status_labels["mes"].text()
    assert "wafer-demo@1" in win.status_labels["models"].text()
    assert win.status_labels["fps"].text() != "0.0 fps"  # metrics snapshots arrive from the child
    worst = max(gaps)
    i = gaps.index(worst)
    # What the GUI thread itself does per tick (newest frame copied and painted, status), in CPU
    # time of that thread, is tiny.
    assert win.live.poll_ms_max < 20 and win.status_ms_max < 40, (win.live.poll_ms_max, win.status_ms_max)
    stall = (f"GUI thread stalled {worst} ms (of which {waits[i]:.1f} ms runnable, waiting for a CPU; "
             f"beats {len(gaps)}, p50 {np.median(gaps)} ms, p99 {np.percentile(gaps, 99):.0f} ms, "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    win.live.pause_btn.click()
    assert win.controller.state == "paused"
    win.live.pause_btn.click()
    assert win.controller.state == "running"
    assert win.controller.stop()
    qtbot.waitUntil(lambda: win.controller.state == "stopped", timeout=60_000)
    s = st.summary()
    assert st.exitcode == 0 and s["complete"] and s["stored"] == s["decisions"] > 0
    conn = open_db(s["db"], create=False)
    try:  # every decision the child reported is in the store, and the chain holds
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == s["decisions"]
        assert verify(conn).ok
    finally:
        conn.close()
    print(f"heartbeat: {stall}; poll max {win.live.poll_ms_max:.1f} ms, status max {win.status_ms_max:.1f} ms")
    assert worst < 1000, stall  # a freeze
    if worst >= 50:
        # The station no longer runs in this process, so nothing holds this thread's GIL and it does
        # a few ms of work per tick. What is left of a stall over 50 ms must be time the thread was
        # runnable while the OS ran something else (this 2-core machine is shared and loaded; the
        # station process sits below us, other users' jobs do not): that is reported as a known
        # failure (issue 6). Anything else (blocked, or busy itself) fails outright.
        own = worst - waits[i]
        assert _run_delay_ms() is not None and own < 50, f"{stall}: {own:.1f} ms not explained by CPU wait"
        pytest.xfail(f"over the 50 ms target, by waiting for a CPU: {stall}")


def test_live_view_draws_boxes_and_banner(ctx, sessions, qtbot, screenshots):
    from inspector.gui.main_window import MainWindow

    ctx.session = sessions["engineer"]
    win = MainWindow(ctx, station_factory=_spec(ctx, "boxes"))
    qtbot.addWidget(win)
    win.resize(1100, 750)
    win.show()
    qtbot.waitExposed(win)
    win.controller.start()
    qtbot.waitUntil(lambda: win.live.view.frames_shown >= 3, timeout=60_000)
    win.controller.pause()
    time.sleep(0.2)
    qtbot.wait(100)
    # Boxes and verdict came through the shared-memory slot with the frame they belong to.
    assert win.live.view.banner.startswith("FAIL") and "any-defect" in win.live.view.banner
    assert [b.label for b in win.live.view._boxes] == ["scratch"]
    save_shot(win, screenshots, "main_window_live")
    win.controller.stop()
    qtbot.waitUntil(lambda: win.controller.state == "stopped", timeout=60_000)


def test_a_dying_station_process_shows_faulted_with_its_exit_code(ctx, sessions, qtbot):
    from inspector.gui.main_window import MainWindow

    ctx.session = sessions["operator"]
    win = MainWindow(ctx, station_factory=_spec(ctx, "dies_after"))
    qtbot.addWidget(win)
    win.show()
    failures: list[str] = []
    win.controller.failed.connect(failures.append)
    assert win.controller.start()
    qtbot.waitUntil(lambda: win.controller.state == "faulted", timeout=60_000)
    assert failures and "exit code 43" in failures[-1] and "exit code 43" in win.live.note.text()
    assert win.live.start_btn.isEnabled() and not win.live.pause_btn.isEnabled()
    win.update_status()
    assert win.status_labels["state"].text().startswith("FAULTED")  # shouted, with the reason when known
    assert not win.controller.stop()  # nothing left to stop; the GUI never waits on a dead child
    # A new start after the fault works (the operator is not stuck).
    win.controller._factory = _spec(ctx, "boxes")
    assert win.controller.start()
    qtbot.waitUntil(lambda: win.controller.state == "running", timeout=60_000)
    win.controller.stop()
    qtbot.waitUntil(lambda: win.controller.state == "stopped", timeout=60_000)


def test_status_fields_without_a_station():
    f = status_fields(None, state="stopped", models=[], mes=[])
    assert f["mes"] == "MES: not configured" and f["queue"] == "queue 0" and f["models"] == "models: none"
    snap = {"fps": 12.5, "latency_ms": {"end_to_end": {"p50": 4.0, "p99": 9.0, "n": 3}}, "queues": {"a": 2, "b": 1},
            "dropped": 4}
    f = status_fields(snap, state="running", models=["m@1"], mes=["mes-files"])
    assert (f["fps"], f["latency"], f["queue"], f["drops"]) == ("12.5 fps", "latency p50 4.0 / p99 9.0 ms", "queue 3",
                                                                 "drops 4")
