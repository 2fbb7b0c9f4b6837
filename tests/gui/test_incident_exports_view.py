"""The incidents view's safety-manager side: zone and period filters, exports in the background with
progress (keys R / T / E / U), the unredacted export asking for a reason, roles; a screenshot while
exporting. Exports run through a stand-in of ``run_export`` here (the real reports are tested in
tests/gui/test_incident_exports.py and tests/reports/)."""

from __future__ import annotations

import threading

from gui.gui_helpers import save_shot
from gui.incident_helpers import add_site_incidents
from PySide6.QtCore import Qt

from inspector.gui.views import incidents_view

SPECS = [
    {"camera": "cam-a", "kind": "no_hard_hat", "track_id": 3, "ended": True},
    {"camera": "cam-a", "kind": "in_danger_zone", "track_id": 5, "zone": "pit"},
    {"camera": "cam-b", "kind": "no_vest", "track_id": 8, "zone": "deck"},
]


class SlowExport:
    """Stands in for run_export: reports two stages, waits for the test's go, writes the file."""

    def __init__(self, fail: bool = False) -> None:
        self.go = threading.Event()
        self.requests = []
        self.fail = fail
        self.thread = None

    def __call__(self, req, progress):
        self.requests.append(req)
        self.thread = threading.current_thread()
        with progress.stage("gather", total=3, unit="incident") as s:
            for _ in range(3):
                s.advance()
        with progress.stage("render", total=4, unit="page") as s:
            s.advance(2)
            assert self.go.wait(10), "the test never let the export finish"
            if self.fail:
                raise OSError("disk full")
            s.advance(2)
        req.out.parent.mkdir(parents=True, exist_ok=True)
        req.out.write_bytes(b"%PDF-1.4 stand-in")
        return {"out": str(req.out), "sha256": "0" * 64}


def _view(ctx, qtbot, session, monkeypatch, export):
    monkeypatch.setattr(incidents_view, "run_export", export)
    ctx.session = session
    view = incidents_view.IncidentsView(ctx, auto_refresh_ms=0)
    qtbot.addWidget(view)
    view.resize(1280, 760)
    view.show()
    qtbot.waitExposed(view)
    qtbot.waitUntil(lambda: view.loads >= 1 and view.evidence_loads >= 1, timeout=5000)
    return view


def _ids(view):
    return sorted(view.model.row(i)["id"] for i in range(view.model.rowCount()))


def test_zone_and_period_filters(ctx, qtbot, sessions, monkeypatch):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS)
    view = _view(ctx, qtbot, sessions["safety_manager"], monkeypatch, SlowExport())
    assert [view.zone.itemText(i) for i in range(view.zone.count())] == ["(all)", "deck", "pit"]

    def change(fn):
        n = view.loads
        fn()
        qtbot.waitUntil(lambda: view.loads > n, timeout=5000)
        return _ids(view)

    assert change(lambda: view.zone.setCurrentText("pit")) == [ids[1]]
    assert change(lambda: view.zone.setCurrentText("(all)")) == ids

    def typed(edit, text):
        edit.setText(text)
        edit.editingFinished.emit()

    # The incidents open on 2025-03-01 at 08:00, 08:01, 08:02 (UTC); 'to' a date includes that day.
    assert change(lambda: typed(view.since, "2025-03-02")) == []
    assert change(lambda: typed(view.since, "2025-03-01T08:01:00Z")) == ids[1:]
    assert change(lambda: typed(view.until, "2025-03-01")) == ids[1:]
    assert change(lambda: typed(view.until, "2025-03-01T08:02")) == [ids[1]]
    # Nonsense is shown, left out of the filter, and does not break the list.
    assert change(lambda: typed(view.since, "last tuesday")) == ids[:2]
    assert "background" in view.since.styleSheet()
    view.shutdown()


def test_a_period_export_runs_in_the_background_with_progress(ctx, qtbot, sessions, monkeypatch, screenshots):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS)
    export = SlowExport()
    view = _view(ctx, qtbot, sessions["safety_manager"], monkeypatch, export)
    view.kind.setCurrentText("no_vest")
    qtbot.waitUntil(lambda: view.model.rowCount() == 1, timeout=5000)
    qtbot.keyClick(view.table, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: view.exports.bar.maximum() == 4 and view.exports.bar.value() == 2, timeout=5000)
    assert view.exports.running == "period_pdf" and view.exports.bar.isVisible()
    assert export.thread is not threading.main_thread()  # off the GUI thread
    assert "exporting period report PDF of kind no_vest" in view.status.text()
    assert not view.exports.buttons["period_csv"].isEnabled()
    # The window stays usable meanwhile: the keyboard still moves, a second export is refused.
    view.kind.setCurrentText("(all)")
    qtbot.waitUntil(lambda: view.model.rowCount() == 3, timeout=5000)
    qtbot.keyClick(view.table, Qt.Key.Key_N)
    assert view.current()["id"] == ids[1]
    qtbot.keyClick(view.table, Qt.Key.Key_T)
    assert len(export.requests) == 1 and "an export is running" in view.exports.line.text()
    qtbot.wait(30)
    save_shot(view, screenshots, "incidents_exporting")
    export.go.set()
    qtbot.waitUntil(lambda: view.exports.running is None, timeout=5000)
    (req,) = export.requests
    assert req.kind == "period_pdf" and req.filter.kind == "no_vest" and req.session.user == "safety"
    assert req.out.parent == ctx.data_dir / "reports" / "exports" and req.out.suffix == ".pdf"
    assert req.out.exists() and f"written: {req.out}" in view.status.text()
    assert not view.exports.bar.isVisible() and view.exports.buttons["period_csv"].isEnabled()
    view.shutdown()


def test_incident_pdf_and_csv_keys(ctx, qtbot, sessions, monkeypatch):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS)
    export = SlowExport()
    export.go.set()
    view = _view(ctx, qtbot, sessions["safety_manager"], monkeypatch, export)
    qtbot.keyClick(view.table, Qt.Key.Key_E)
    qtbot.waitUntil(lambda: view.exports.running is None and len(view.exports.results) == 1, timeout=5000)
    qtbot.keyClick(view.table, Qt.Key.Key_T)
    qtbot.waitUntil(lambda: len(view.exports.results) == 2, timeout=5000)
    single, table = export.requests
    assert (single.kind, single.incident_id, single.filter) == ("incident_pdf", ids[2], None)  # newest first
    assert table.kind == "period_csv" and table.out.suffix == ".csv" and table.incident_id is None
    view.shutdown()


def test_an_unredacted_export_needs_a_reason(ctx, qtbot, sessions, monkeypatch):
    ids = add_site_incidents(ctx.data_dir, ctx.db_path, SPECS[:1])
    export = SlowExport()
    export.go.set()
    view = _view(ctx, qtbot, sessions["safety_manager"], monkeypatch, export)
    qtbot.keyClick(view.table, Qt.Key.Key_U)
    assert view.note_edit.isVisible() and "UNREDACTED" in view.note_edit.placeholderText()
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Return)
    assert "needs a reason" in view.status.text() and export.requests == []
    qtbot.keyClicks(view.note_edit, "because")  # too short to say why
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Return)
    assert "needs a reason" in view.status.text() and export.requests == []
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Escape)
    assert not view.note_edit.isVisible()
    qtbot.keyClick(view.table, Qt.Key.Key_U)
    qtbot.keyClicks(view.note_edit, "police request 2025-114")
    qtbot.keyClick(view.note_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: len(view.exports.results) == 1, timeout=5000)
    (req,) = export.requests
    assert (req.kind, req.incident_id, req.reason) == ("unredacted", ids[0], "police request 2025-114")
    assert "UNREDACTED" in req.out.name and req.out.suffix == ""  # a folder: files and a manifest
    view.shutdown()


def test_a_failed_export_is_announced(ctx, qtbot, sessions, monkeypatch):
    add_site_incidents(ctx.data_dir, ctx.db_path, SPECS[:1])
    export = SlowExport(fail=True)
    export.go.set()
    view = _view(ctx, qtbot, sessions["safety_manager"], monkeypatch, export)
    qtbot.keyClick(view.table, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: view.exports.running is None and bool(view.exports.results), timeout=5000)
    assert "failed: OSError: disk full" in view.status.text() and not view.exports.bar.isVisible()
    view.shutdown()


def test_an_engineer_may_not_export(ctx, qtbot, sessions, monkeypatch):
    add_site_incidents(ctx.data_dir, ctx.db_path, SPECS[:1])
    export = SlowExport()
    view = _view(ctx, qtbot, sessions["engineer"], monkeypatch, export)
    assert not view.may_export and not any(b.isEnabled() for b in view.exports.buttons.values())
    for key in (Qt.Key.Key_R, Qt.Key.Key_T, Qt.Key.Key_E, Qt.Key.Key_U):
        qtbot.keyClick(view.table, key)
        assert "may not export" in view.status.text()
    assert export.requests == [] and not view.note_edit.isVisible()
    view.shutdown()
