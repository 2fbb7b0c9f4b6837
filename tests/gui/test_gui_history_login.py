"""History filters and CSV export; the log-in dialog and what each role sees."""

from __future__ import annotations

import csv

from gui.gui_helpers import fill_store, save_shot

from inspector.gui.main_window import MainWindow


def test_history_filters_and_exports_the_selection(ctx, sessions, qtbot, tmp_path, screenshots):
    from inspector.gui.views.history_view import HistoryView
    from inspector.station import actions

    ids = fill_store(ctx.db_path, 450, verdicts=("fail", "review", "pass"))
    conn = ctx.connect()
    try:
        actions.review(conn, sessions["operator"], ids[0], "accept", verdict="fail")
    finally:
        conn.close()
    ctx.session = sessions["safety_manager"]
    view = HistoryView(ctx)
    qtbot.addWidget(view)
    view.resize(1100, 600)
    view.show()
    assert view.model.rowCount() == 200 and view.model.canFetchMore()   # paged
    view.filters.fields["reviewer"].setText("op")
    view.filters.fields["reviewer"].editingFinished.emit()
    assert view.model.rowCount() == 1 and view.model.row(0)["frame_id"] == ids[0]
    assert view.model.row(0)["last_review"] == "op accept"
    view.filters.fields["reviewer"].setText("")
    view.filters.verdict.setCurrentText("pass")
    view.filters.since.setText("2025-01-01T00:03:00")
    view.filters.since.editingFinished.emit()
    expected = sum(1 for i in range(450) if i % 3 == 2 and i >= 180)
    save_shot(view, screenshots, "history")
    out = tmp_path / "sel.csv"
    view.export(out).join(30)
    qtbot.waitUntil(lambda: "exported" in view.status.text())
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == expected and {r["verdict"] for r in rows} == {"pass"}
    assert min(r["t_utc"] for r in rows) >= "2025-01-01T00:03:00"


def test_login_dialog_and_role_views(ctx, sessions, qtbot):
    from inspector.gui.dialogs import LoginDialog

    dlg = LoginDialog(ctx.connect)
    qtbot.addWidget(dlg)
    dlg.user.setText("op")
    dlg.password.setText("wrong-password")
    assert not dlg.try_login() and dlg.error.text() and dlg.session is None
    dlg.password.setText("password-123")
    assert dlg.try_login() and dlg.session.role == "operator"

    def tabs(role):
        ctx.session = sessions[role]
        win = MainWindow(ctx, station_factory=lambda: None)
        qtbot.addWidget(win)
        return win, [win.tabs.tabText(i) for i in range(win.tabs.count())]

    win, t = tabs("operator")
    assert "Review queue" in t and "Label editor" not in t and "Settings" not in t and "Models" not in t
    assert win.live.start_btn.isEnabled()
    _, t = tabs("engineer")
    assert {"Review queue", "Label editor", "Wafer map", "History"} <= set(t)
    win, t = tabs("safety_manager")
    assert "Review queue" not in t and "History" in t and "Label editor" not in t
    assert not win.live.start_btn.isEnabled() and "watching only" in win.live.note.text()
