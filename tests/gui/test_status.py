"""inspector/gui/status.py: a faulted station says why; station events show in the status bar."""

from __future__ import annotations

from pathlib import Path

from inspector.gui.status import events_text, fault_reason, status_fields

FAULTED = {"errors": ["mes: late", "faulted: the store refused the record of frame run/cam:d9 (frame 'run/cam:d9' "
                      "could not be stored: OperationalError: database or disk is full)"],
           "events": {"counts": {"store_gap": 1, "freeze": 2, "stall": 1},
                      "open": [{"kind": "freeze", "source": "gate", "since": "2026-05-04T08:00:01+00:00"}]},
           "dropped": 3}


def test_a_faulted_state_names_its_reason():
    assert fault_reason(FAULTED) == "store full"
    f = status_fields(FAULTED, state="faulted", models=[], mes=[])
    assert f["state"] == "FAULTED: store full"
    assert status_fields({}, state="faulted", models=[], mes=[])["state"] == "FAULTED"
    assert status_fields(FAULTED, state="running", models=[], mes=[])["state"] == "running"


def test_station_events_are_counted_and_open_ones_shown():
    assert events_text(FAULTED) == "freeze 2, stall 1, store gap 1; FREEZE gate since 08:00:01"
    f = status_fields(FAULTED, state="faulted", models=[], mes=[])
    assert f["drops"] == "drops 3 | events: freeze 2, stall 1, store gap 1; FREEZE gate since 08:00:01"
    assert status_fields({"dropped": 0}, state="running", models=[], mes=[])["drops"] == "drops 0"


def test_screenshot_of_the_status_bar_of_a_faulted_station(qtbot):
    """Saved under artifacts/screenshots/ for a person to look at (the fields as the main window shows them)."""
    from PySide6.QtWidgets import QLabel, QStatusBar

    bar = QStatusBar()
    qtbot.addWidget(bar)
    for text in status_fields(FAULTED, state="faulted", models=["m@1"], mes=["files"]).values():
        bar.addPermanentWidget(QLabel(text, bar))
    bar.resize(1500, 28)
    bar.show()
    out = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    assert bar.grab().save(str(out / "status_bar_faulted_with_events.png"))
