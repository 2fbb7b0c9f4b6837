"""gui/views/incidents_view.py: the incidents list for the safety manager and the engineer,
keyboard steps that reach the store (and its audit), filters, evidence and the clip; screenshots
of each state."""

from __future__ import annotations

import pytest
from gui.gui_helpers import save_shot
from gui.incident_helpers import add_site_incidents
from PySide6.QtCore import Qt

from inspector.store import incidents as store_incidents
from inspector.store.audit import verify

SPECS = [
    {"camera": "cam-a", "kind": "no_hard_hat", "track_id": 3, "ended": True},
    {"camera": "cam-a", "kind": "in_danger_zone", "track_id": 5, "zone": "pit"},
    {"camera": "cam-b", "kind": "no_vest", "track_id": 8, "zone": "deck"},
]


def _view(ctx, qtbot, session):
    from inspector.gui.views.incidents_view import IncidentsView

    ctx.session = session
    view = IncidentsView(ctx, auto_refresh_ms=0)
    qtbot.addWidget(view)
    view.resize(1280, 720)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: view.loads >= 1 and view.evidence_loads >= 1, timeout=5000)
    return view


def _shot(view, qtbot, screenshots, name):
    qtbot.waitUntil(lambda: view.player.frames_shown >= 1, timeout=5000)  # the clip's poster frame
    qtbot.wait(30)  # let the layout settle before the grab
    save_shot(view, screenshots, name)


def _status(ctx, incident_id):
    conn = ctx.connect()
    try:
        return store_incidents.incident(conn, incident_id)
    finally:
        conn.close()


def test_safety_manager_steps_by_keys_reach_the_store(ctx, qtbot, sessions, screenshots):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS)
    view = _view(ctx, qtbot, sessions["safety_manager"])
    assert view.model.rowCount() == 3 and view.current()["id"] == ids[-1]  # newest first, selected
    assert all(view.evidence.shown(r) for r in ("first", "worst", "last"))
    assert view.player.state == "paused" and view.player.path is not None
    _shot(view, qtbot, screenshots, "incidents_open")
    qtbot.keyClick(view.table, Qt.Key.Key_A)
    row = _status(ctx, ids[-1])
    assert row["status"] == "acknowledged" and row["acknowledged_by"] == "safety"
    assert view.current()["status"] == "acknowledged" and "acknowledged by safety" in view.header.text()
    _shot(view, qtbot, screenshots, "incidents_acknowledged")
    # C asks for a note; Enter without one is refused, with one it closes the incident.
    qtbot.keyClick(view.table, Qt.Key.Key_C)
    assert view.pending_step == "close" and view.note_edit.isVisible()
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Return)
    assert _status(ctx, ids[-1])["status"] == "acknowledged" and "needs a note" in view.status.text()
    qtbot.keyClicks(view.note_edit, "worker sent to get a vest")
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Return)
    row = _status(ctx, ids[-1])
    assert row["status"] == "closed" and row["resolved_by"] == "safety"
    assert row["resolution_note"] == "worker sent to get a vest" and not view.note_edit.isVisible()
    assert "note: worker sent to get a vest" in view.header.text()
    _shot(view, qtbot, screenshots, "incidents_closed")
    # N to the next one; F then Esc cancels; F then Enter marks a false alarm (the note is optional).
    qtbot.keyClick(view.table, Qt.Key.Key_N)
    assert view.current()["id"] == ids[1]
    qtbot.waitUntil(lambda: view.evidence_loads >= 2, timeout=5000)
    qtbot.keyClick(view.table, Qt.Key.Key_F)
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Escape)
    assert view.pending_step is None and _status(ctx, ids[1])["status"] == "open"
    qtbot.keyClick(view.table, Qt.Key.Key_F)
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Return)
    assert _status(ctx, ids[1])["status"] == "false_alarm"
    _shot(view, qtbot, screenshots, "incidents_false_alarm")
    # A closed incident cannot be acknowledged again: refused with the store's reason, nothing written.
    qtbot.keyClick(view.table, Qt.Key.Key_P)
    qtbot.keyClick(view.table, Qt.Key.Key_A)
    assert "not recorded" in view.status.text() and _status(ctx, ids[-1])["status"] == "closed"
    conn = ctx.connect()
    try:
        assert verify(conn).ok
    finally:
        conn.close()
    view.shutdown()


def test_space_plays_the_clip_in_the_view(ctx, qtbot, sessions, screenshots):
    add_site_incidents(ctx.data_dir, ctx.db_path, SPECS[:1], clip_frames=30)
    view = _view(ctx, qtbot, sessions["safety_manager"])
    qtbot.keyClick(view.table, Qt.Key.Key_Space)
    assert view.player.state == "playing"
    qtbot.waitUntil(lambda: view.player.frames_shown >= 8, timeout=5000)
    assert view.player.picture.pixmap() is not None and not view.player.picture.pixmap().isNull()
    save_shot(view, screenshots, "incidents_clip_playing")
    qtbot.keyClick(view.table, Qt.Key.Key_Space)
    assert view.player.state == "paused"
    shown = view.player.frames_shown
    qtbot.wait(300)
    assert view.player.frames_shown == shown  # paused: no frame advances
    view.shutdown()


def test_filters_by_camera_kind_and_state(ctx, qtbot, sessions):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS)
    conn = ctx.connect()
    store_incidents.acknowledge(conn, ids[0], session=sessions["safety_manager"])
    conn.close()
    view = _view(ctx, qtbot, sessions["safety_manager"])
    assert [view.camera.itemText(i) for i in range(view.camera.count())] == ["(all)", "cam-a", "cam-b"]

    def pick(box, text):
        n = view.loads
        box.setCurrentText(text)
        qtbot.waitUntil(lambda: view.loads > n, timeout=5000)
        return sorted(view.model.row(i)["id"] for i in range(view.model.rowCount()))

    assert pick(view.camera, "cam-b") == [ids[2]]
    assert pick(view.camera, "(all)") == sorted(ids)
    assert pick(view.kind, "in_danger_zone") == [ids[1]]
    assert pick(view.kind, "(all)") == sorted(ids)
    assert pick(view.state, "acknowledged") == [ids[0]]
    assert pick(view.state, "closed") == [] and "no incidents" in view.header.text()
    assert pick(view.state, "(unresolved)") == sorted(ids)
    view.shutdown()


@pytest.mark.parametrize("role", ["engineer"])
def test_an_engineer_sees_incidents_but_may_not_act(ctx, qtbot, sessions, role):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS[:1])
    view = _view(ctx, qtbot, sessions[role])
    assert not view.may_act and "view only" in view.hint.text()
    qtbot.keyClick(view.table, Qt.Key.Key_A)
    qtbot.keyClick(view.table, Qt.Key.Key_C)
    assert "may not" in view.status.text() and not view.note_edit.isVisible()
    assert _status(ctx, ids[0])["status"] == "open"
    # The control hidden by mistake still cannot act: the actions refuse the role underneath.
    view.may_act = True
    assert view.act("acknowledge") is False and "refused" in view.status.text()
    assert _status(ctx, ids[0])["status"] == "open"
    view.shutdown()


def test_new_incidents_appear_on_refresh_and_the_selection_stays(ctx, qtbot, sessions):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS[:2])
    view = _view(ctx, qtbot, sessions["safety_manager"])
    qtbot.keyClick(view.table, Qt.Key.Key_N)
    assert view.current()["id"] == ids[0]
    add_site_incidents(ctx.data_dir, ctx.db_path, [{"camera": "cam-c", "track_id": 42}])
    n = view.loads
    view.refresh()
    qtbot.waitUntil(lambda: view.loads > n, timeout=5000)
    assert view.model.rowCount() == 3 and view.current()["id"] == ids[0]
    view.shutdown()
