"""The log-in dialog: name and password checked by ``actions.login`` against the station's users.

A log-in is recorded as a row of the ``sessions`` table (its token's sha256, user, role, expiry),
not in the audit chain; a refused one is audited (``user.login_failed``) and throttled, and the
dialog shows the refusal as it comes (including "try again in N s" while the name is locked).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QWidget

from inspector.station import actions
from inspector.store import users


class LoginDialog(QDialog):
    def __init__(self, connect: Callable[[], Any], parent: QWidget | None = None, note: str = "") -> None:
        super().__init__(parent)
        self.setWindowTitle("Inspector: log in")
        self._connect = connect
        self.session: actions.Session | None = None
        self.user = QLineEdit(self)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.error = QLabel("", self)
        self.error.setStyleSheet("color: #d62f2f")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.try_login)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        if note:  # e.g. who just logged out
            form.addRow(QLabel(note, self))
        form.addRow("user", self.user)
        form.addRow("password", self.password)
        form.addRow(self.error)
        form.addRow(buttons)

    def try_login(self) -> bool:
        conn = self._connect()
        try:
            self.session = actions.login(conn, self.user.text().strip(), self.password.text())
        except users.LoginError as e:  # NoUsersError included: its message says how to add one
            self.error.setText(str(e))
            self.password.clear()
            return False
        finally:
            conn.close()
        self.accept()
        return True


def ask_login(connect: Callable[[], Any], parent: QWidget | None = None, note: str = "") -> actions.Session | None:
    """Show the log-in dialog (modal); the session, or None when it was cancelled."""
    dlg = LoginDialog(connect, parent, note)
    try:
        accepted = dlg.exec() == QDialog.DialogCode.Accepted
        return dlg.session if accepted else None
    finally:
        dlg.deleteLater()
