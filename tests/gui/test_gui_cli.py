"""`inspector run` / `inspector demo` open the operator app when a display and PySide6 are there
(offscreen Qt counts: that is how these tests see it), else run headless with a one-line note."""

from __future__ import annotations

import json
import os
from pathlib import Path

from click.testing import CliRunner
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from test_cli_run import DEMO_CLASSES, blank_detector_onnx, register

from inspector.cli import _gui_possible, main
from inspector.config import default_config_path
from inspector.store import users
from inspector.store.db import open_db


def _no_station_children() -> bool:
    me = os.getpid()
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == me and \
                    b"spawn_main" in (d / "cmdline").read_bytes():
                return False
        except OSError:
            continue
    return True


def _log_in_when_asked(user: str, password: str, seen: list[str]) -> None:
    """Play the operator at the log-in dialog the command opens (it runs its own modal loop)."""
    from inspector.gui.dialogs import LoginDialog

    def attempt() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(50, attempt)
            return
        seen.append(dialogs[0].windowTitle())
        dialogs[0].user.setText(user)
        dialogs[0].password.setText(password)
        dialogs[0].try_login()

    QTimer.singleShot(50, attempt)


def _operator(data: Path) -> None:
    conn = open_db(data / "inspector.sqlite")
    try:
        users.add_user(conn, "op", "operator", "password-123", actor="test")
    finally:
        conn.close()


def test_gui_possible_says_why_not(monkeypatch):
    r = CliRunner().invoke(main, ["gui", "--help"])
    assert r.exit_code == 0 and "--config" in r.output and "--registry" in r.output
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    ok, why = _gui_possible()
    assert not ok and why.startswith("no display")
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")  # draws nowhere: a window would wait for nobody
    ok, why = _gui_possible()
    assert not ok and "'offscreen' draws nowhere visible" in why
    assert _gui_possible(force=True) == (True, "")  # --gui
    monkeypatch.setenv("QT_QPA_PLATFORM", "eglfs")  # a panel PC's screen
    assert _gui_possible() == (True, "")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "PySide6" else real(name, *a))
    ok, why = _gui_possible()
    assert not ok and "PySide6 is not installed" in why


def test_demo_headless_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    r = CliRunner().invoke(main, ["demo", "--headless", "--max-frames", "2", "--json", "--data-dir",
                                  str(tmp_path / "d"), "--registry", str(tmp_path / "none")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["frames"] == 2 and r.stderr == ""
    # offscreen Qt (what installers/env.sh sets without a display) is no reason to open the app
    r = CliRunner().invoke(main, ["demo", "--max-frames", "2", "--data-dir", str(tmp_path / "d"),
                                  "--registry", str(tmp_path / "none")])
    assert r.exit_code == 0, r.output
    assert "running headless: no display (Qt platform 'offscreen'" in r.stderr and "verdicts:" in r.stdout
    r = CliRunner().invoke(main, ["demo", "--gui", "--headless"])
    assert r.exit_code == 2 and "--gui cannot be combined" in r.output
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    r = CliRunner().invoke(main, ["demo", "--max-frames", "2", "--data-dir", str(tmp_path / "d"),
                                  "--registry", str(tmp_path / "none")])
    assert r.exit_code == 0, r.output
    assert r.stderr == "inspector: running headless: no display (DISPLAY / WAYLAND_DISPLAY / QT_QPA_PLATFORM not set)\n"
    assert "NOT INSPECTED" in r.stdout and "verdicts:" in r.stdout


def test_run_opens_the_gui_and_ends_with_the_bounded_run(qapp, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    reg = tmp_path / "reg"
    register(reg, "wafer-demo", blank_detector_onnx(tmp_path / "w.onnx", DEMO_CLASSES, 320), DEMO_CLASSES, 320)
    data = tmp_path / "data"
    _operator(data)
    seen: list[str] = []
    _log_in_when_asked("op", "password-123", seen)
    r = CliRunner().invoke(main, ["run", "--gui", "--config", str(default_config_path()), "--max-frames", "6",
                                  "--data-dir", str(data), "--registry", str(reg)])
    assert r.exit_code == 0, (r.output, r.stderr)
    assert seen == ["Inspector: log in"] and "running headless" not in r.stderr
    assert "verdicts: pass 6" in r.stdout and "wafer-demo" in r.stdout  # the summary of the GUI's run
    conn = open_db(data / "inspector.sqlite", create=False)
    try:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 6
    finally:
        conn.close()
    assert _no_station_children()


def test_demo_opens_the_gui_and_a_cancelled_login_fails(qapp, tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    data = tmp_path / "data"
    _operator(data)
    seen: list[str] = []
    _log_in_when_asked("op", "password-123", seen)
    r = CliRunner().invoke(main, ["demo", "--gui", "--max-frames", "3", "--data-dir", str(data),
                                  "--registry", str(tmp_path / "none")])
    assert r.exit_code == 0, (r.output, r.stderr, seen, r.exc_info)
    assert seen and "NOT INSPECTED" in r.stdout and "verdicts:" in r.stdout
    from inspector.gui.dialogs import LoginDialog

    def cancel() -> None:
        dialogs = [w for w in QApplication.topLevelWidgets() if isinstance(w, LoginDialog) and w.isVisible()]
        if dialogs:
            dialogs[0].reject()
        else:
            QTimer.singleShot(50, cancel)

    QTimer.singleShot(50, cancel)
    r = CliRunner().invoke(main, ["demo", "--gui", "--max-frames", "3", "--data-dir", str(data)])
    assert r.exit_code == 1 and r.stdout == ""
    assert _no_station_children()


def test_demo_on_a_new_station_opens_watching_only_without_a_log_in(qapp, tmp_path, monkeypatch):
    # A fresh clone on a desktop: no account exists yet (none is made by default), so there is no
    # log-in to show; the demo still runs, in a window that says how to create the first user.
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    from inspector.gui import main_window
    from inspector.gui.dialogs import LoginDialog

    notes: list[str] = []

    class Spy(main_window.MainWindow):
        def show(self) -> None:
            super().show()
            QTimer.singleShot(0, lambda: notes.append(self.live.note.text()))

    monkeypatch.setattr(main_window, "MainWindow", Spy)
    asked: list[str] = []
    monkeypatch.setattr(LoginDialog, "exec", lambda self: asked.append("login") or 0)
    data = tmp_path / "data"
    r = CliRunner().invoke(main, ["demo", "--gui", "--max-frames", "3", "--data-dir", str(data),
                                  "--registry", str(tmp_path / "none")])
    assert r.exit_code == 0, (r.output, r.stderr, r.exc_info)
    assert asked == [] and "verdicts:" in r.stdout and "running headless" not in r.stderr
    assert notes and "No users yet" in notes[0] and "inspector users add" in notes[0]
    conn = open_db(data / "inspector.sqlite", create=False)
    try:
        assert conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 3
        assert users.count_users(conn) == 0  # nothing was created behind the operator's back
    finally:
        conn.close()
    assert _no_station_children()
