"""History filters and CSV export; the log-in dialog and what each role sees."""

from __future__ import annotations

import csv

import pytest

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


def _answer_login(qtbot, answers, seen):
    """Fill the modal log-in dialog when it shows: each answer is (user, password), or None to cancel."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from inspector.gui.dialogs import LoginDialog

    todo = list(answers)
    timer = QTimer()

    def poll():
        dlg = QApplication.activeModalWidget()
        if not isinstance(dlg, LoginDialog) or not todo:
            return
        seen.append({"note": " ".join(w.text() for w in dlg.findChildren(type(dlg.error)) if w is not dlg.error)})
        answer = todo.pop(0)
        if answer is None:
            dlg.reject()
            return
        dlg.user.setText(answer[0])
        dlg.password.setText(answer[1])
        seen[-1]["ok"] = dlg.try_login()
        seen[-1]["error"] = dlg.error.text()

    timer.timeout.connect(poll)
    timer.start(20)
    return timer


def test_log_out_shows_the_log_in_and_the_next_role_gets_its_own_tabs(ctx, sessions, qtbot):
    from PySide6.QtGui import QKeySequence

    from inspector.gui.permissions import can
    from inspector.station import actions

    ctx.session = sessions["engineer"]
    win = MainWindow(ctx, station_factory=lambda: None)
    qtbot.addWidget(win)

    def tabs():
        return [win.tabs.tabText(i) for i in range(win.tabs.count())]

    assert {"Models", "Settings", "Label editor"} <= set(tabs()) and "[eng / engineer]" in win.windowTitle()
    assert win.logout_action.shortcut() == QKeySequence("Ctrl+L") and win.logout_action.isEnabled()
    models = win.pages["models"]
    audit_before = _audit_rows(ctx)

    seen: list[dict] = []
    states: list[tuple] = []
    win.ask_login_orig = win.ask_login

    def watch(note=""):  # what the window looks like while the dialog is up: nobody, Live only
        states.append((ctx.session, tabs(), win.live.start_btn.isEnabled()))
        return win.ask_login_orig(note)

    win.ask_login = watch
    timer = _answer_login(qtbot, [("op", "wrong-password"), ("op", "password-123")], seen)
    win.logout_action.trigger()
    timer.stop()
    assert states == [(None, ["Live"], False)]
    assert "eng logged out" in seen[0]["note"] and seen[0]["ok"] is False and seen[0]["error"]
    assert seen[1]["ok"] is True
    assert (ctx.session.user, ctx.session.role) == ("op", "operator") and "[op / operator]" in win.windowTitle()
    t = tabs()
    assert "Review queue" in t and not {"Models", "Settings", "Label editor"} & set(t)
    assert "models" not in win.pages and win.live.start_btn.isEnabled()
    qtbot.waitUntil(lambda: not _alive(models), timeout=5_000)       # the engineer's views are gone
    assert not can(ctx.session, "models") and not can(ctx.session, "settings")
    with pytest.raises(actions.PermissionDenied):
        actions.models_promote(ctx.session, "wafer-demo@2", ctx.registry_root, runner=lambda a, e: (0, ""))
    conn = ctx.connect()
    try:
        with pytest.raises(actions.PermissionDenied):
            actions.change_settings(conn, ctx.session, ctx.cfg, {}, {})
    finally:
        conn.close()
    # a log-in is recorded as a session row, not audited (nor is its log-out); the refused one is
    assert _audit_rows(ctx) == audit_before + 1
    with pytest.raises(actions.PermissionDenied, match="the session was ended"):  # logged out for good
        actions.models_promote(sessions["engineer"], "wafer-demo@2", ctx.registry_root, runner=lambda a, e: (0, ""))

    # Log out and cancel the log-in: nobody, Live only and watching; "Log in" brings the role back.
    timer = _answer_login(qtbot, [None], seen)
    assert win.log_out()
    timer.stop()
    assert ctx.session is None and tabs() == ["Live"] and not win.live.start_btn.isEnabled()
    assert "nobody" in win.live.note.text() and not win.logout_action.isEnabled() and win.login_action.isEnabled()
    assert not win.log_out()
    timer = _answer_login(qtbot, [("eng", "password-123")], seen)
    win.login_action.trigger()
    timer.stop()
    assert ctx.role == "engineer" and "Models" in tabs() and win.pages["models"] is not models
    win.close()


def _alive(widget) -> bool:
    import shiboken6

    return shiboken6.isValid(widget)


def _audit_rows(ctx) -> int:
    conn = ctx.connect()
    try:
        return conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    finally:
        conn.close()
