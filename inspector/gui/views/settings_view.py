"""Run-time settings (engineer): rule thresholds and model confidence floors, within limits.

One row per tunable setting of the *baseline* config (the file the app started from): its
baseline value, the current value, the allowed range from ``actions.tunable_limits`` and a spin
box held to that range. Apply goes through ``actions.change_settings`` with the logged-in session,
which checks the role again, validates the result, stores the new config by hash and writes the
``settings.change`` audit row. The running station keeps the config it was started with (its
decisions carry that hash); the new config is what the next start uses, and "Restart station now"
stops the line cleanly (every accepted frame is still judged and stored) and starts it again.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDoubleSpinBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.config import config_hash
from inspector.gui.context import AppContext
from inspector.station import actions

COLUMNS = ("setting", "baseline", "current", "allowed range", "new value")
DECIMALS = 3
ERROR_STYLE = "color: #d62f2f"
OK_STYLE = "color: #2e9d3a"
RESTART_RETRY_MS = 50
RESTART_RETRIES = 200  # 10 s for the stop worker to let go before the start is given up


def _fmt(v: float) -> str:
    return f"{v:g}"


class SettingsView(QWidget):
    def __init__(self, ctx: AppContext, controller: Any = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.controller = controller
        # The baseline is the config the app started from: limits never walk with the changes.
        self.baseline = ctx.extra.setdefault("baseline_cfg", ctx.cfg)
        self.baseline_hash = ctx.extra.setdefault("baseline_hash", ctx.cfg_hash)
        self.limits = actions.tunable_limits(self.baseline)
        self.paths = list(self.limits)
        self.spins: dict[str, QDoubleSpinBox] = {}
        self.last_hash: str | None = None
        self.pending_restart = False   # a change was applied that the running station does not use yet
        self._restarting: str | bool = False  # False, or the phase of a restart: "stop", then "start"
        self._retries = 0

        self.header = QLabel("", self)
        self.header.setWordWrap(True)
        self.table = QTableWidget(len(self.paths), len(COLUMNS), self)
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(COLUMNS)):
            hh.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        for row, path in enumerate(self.paths):
            lim = self.limits[path]
            self.table.setItem(row, 0, QTableWidgetItem(path))
            self.table.setItem(row, 1, QTableWidgetItem(_fmt(lim.baseline)))
            self.table.setItem(row, 2, QTableWidgetItem(""))
            self.table.setItem(row, 3, QTableWidgetItem(f"[{_fmt(lim.lo)}, {_fmt(lim.hi)}]"))
            spin = QDoubleSpinBox(self.table)
            spin.setDecimals(DECIMALS)
            spin.setSingleStep(0.01)
            # The baseline value is always allowed (Limit.allows), even where an override excludes it.
            spin.setRange(min(lim.lo, lim.baseline), max(lim.hi, lim.baseline))
            spin.setToolTip(f"{path}: allowed {lim.describe()}")
            spin.valueChanged.connect(lambda _v, p=path: self._mark(p))
            self.spins[path] = spin
            self.table.setCellWidget(row, 4, spin)

        self.apply_btn = QPushButton("Apply", self)
        self.apply_btn.clicked.connect(self.apply)
        self.reset_btn = QPushButton("Reset to current", self)
        self.reset_btn.clicked.connect(self.load_current)
        self.baseline_btn = QPushButton("Back to baseline", self)
        self.baseline_btn.clicked.connect(self.load_baseline)
        self.restart_btn = QPushButton("Restart station now", self)
        self.restart_btn.setToolTip("Stop the line cleanly (every accepted frame is judged and stored) and start "
                                    "it again with the current settings")
        self.restart_btn.clicked.connect(self.restart_station)
        self.message = QLabel("", self)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QHBoxLayout()
        for b in (self.apply_btn, self.reset_btn, self.baseline_btn):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.restart_btn)
        lay = QVBoxLayout(self)
        lay.addWidget(self.header)
        lay.addWidget(self.table, 1)
        lay.addLayout(buttons)
        lay.addWidget(self.message)
        if controller is not None and hasattr(controller, "stateChanged"):
            controller.stateChanged.connect(self._on_state)
        self.load_current()

    # --- values ---------------------------------------------------------------------------------
    def current_values(self) -> dict[str, float]:
        return {p: v for p, (v, _loc) in actions._tunables(self.ctx.cfg).items()}

    def load_current(self) -> None:
        cur = self.current_values()
        for row, path in enumerate(self.paths):
            v = cur.get(path, self.limits[path].baseline)
            self.table.item(row, 2).setText(_fmt(v))
            self.spins[path].blockSignals(True)
            self.spins[path].setValue(v)
            self.spins[path].blockSignals(False)
            self._mark(path)
        self._update_header()

    def load_baseline(self) -> None:
        for path in self.paths:
            self.spins[path].setValue(self.limits[path].baseline)

    def changes(self) -> dict[str, float]:
        """The settings whose spin box differs from the current config."""
        cur = self.current_values()
        return {p: round(s.value(), DECIMALS) for p, s in self.spins.items()
                if abs(s.value() - cur.get(p, s.value())) > 0.5 * 10 ** -DECIMALS}

    def _mark(self, path: str) -> None:
        row = self.paths.index(path)
        cur = self.current_values().get(path)
        changed = cur is not None and abs(self.spins[path].value() - cur) > 0.5 * 10 ** -DECIMALS
        item = self.table.item(row, 0)
        item.setForeground(QColor("#0072B2") if changed else self.palette().text().color())
        f = item.font()
        f.setBold(changed)
        item.setFont(f)

    def _update_header(self) -> None:
        station = self.ctx.cfg.station
        text = (f"Station {station.name or station.id}: baseline config {self.baseline_hash[:12]}, "
                f"current config {self.ctx.cfg_hash[:12]}. Each setting may move within its range "
                f"(from the baseline file); a change is stored as a new config version and audited.")
        self.header.setText(text)
        self._update_restart()

    def _update_restart(self) -> None:
        state = getattr(self.controller, "state", None)
        self.restart_btn.setEnabled(bool(self.pending_restart and not self._restarting
                                         and state in ("running", "paused")))

    def _say(self, text: str, ok: bool) -> None:
        self.message.setStyleSheet(OK_STYLE if ok else ERROR_STYLE)
        self.message.setText(text)

    # --- apply ----------------------------------------------------------------------------------
    def apply(self, changes: dict[str, float] | None = None) -> bool:
        """Apply the spin boxes' changes (or ``changes``); returns whether a new config was stored."""
        changes = self.changes() if changes is None or isinstance(changes, bool) else changes
        for row in range(self.table.rowCount()):
            self.table.item(row, 3).setBackground(QColor(0, 0, 0, 0))
        if not changes:
            self._say("Nothing to apply: every value equals the current config.", True)
            return False
        if self.ctx.session is None:
            self._say("Refused: nobody is logged in.", False)
            return False
        old_hash = self.ctx.cfg_hash
        conn = self.ctx.connect()
        try:
            new_cfg, new_hash = actions.change_settings(conn, self.ctx.session, self.ctx.cfg, changes, self.limits)
        except actions.PermissionDenied as e:
            self._say(f"Refused: {e}", False)
            return False
        except actions.SettingsError as e:
            self._say("Refused, nothing was changed:\n" + "\n".join(e.errors), False)
            for row, path in enumerate(self.paths):
                if any(err.startswith(f"{path}:") for err in e.errors):
                    self.table.item(row, 3).setBackground(QColor("#f6c9c9"))
            return False
        finally:
            conn.close()
        if new_hash == old_hash:
            self._say("Nothing changed.", True)
            return False
        self.ctx.cfg, self.ctx.cfg_hash = new_cfg, new_hash
        assert config_hash(new_cfg) == new_hash
        self.last_hash = new_hash
        state = getattr(self.controller, "state", "stopped")
        running = state in ("running", "paused", "faulted", "starting")
        self.pending_restart = running
        listed = ", ".join(f"{p} {_fmt(v)}" for p, v in changes.items())
        note = (f"The running station keeps config {old_hash[:12]}; the change applies from the next station start "
                "(or press \"Restart station now\")." if running else
                "The change applies from the next station start.")
        self._say(f"Applied {len(changes)} change(s) as user {self.ctx.user}: {listed}.\n"
                  f"New config {new_hash}\n{note}", True)
        self.load_current()
        return True

    # --- restart --------------------------------------------------------------------------------
    def restart_station(self) -> bool:
        """Stop the line cleanly, then start it again with the current settings (never blocks)."""
        c = self.controller
        if c is None or c.state not in ("running", "paused") or self._restarting:
            return False
        self._restarting = "stop"
        self._retries = 0
        self._update_restart()
        self._say("Restarting the station: stopping (every accepted frame is judged and stored)...", True)
        if not c.stop():
            self._restarting = False
            self._say("Cannot restart now: a start or stop is already under way.", False)
            self._update_restart()
            return False
        return True

    @Slot(str)
    def _on_state(self, _state: str) -> None:
        # Queued signals can arrive late (a "running" from the previous start): act on the
        # controller's state now, and on the phase of the restart, never on the signal's value.
        state = self.controller.state
        if self._restarting == "stop":
            if state == "stopped":
                self._start_again()
            elif state == "faulted":
                self._restarting = False
                self._say("The station faulted while stopping; start it from the Live tab.", False)
        elif self._restarting == "start":
            if state == "running" and self.controller.station is not None:
                self._restarting = False
                self.pending_restart = False
                self._say(f"Station restarted with config {self.ctx.cfg_hash[:12]}.", True)
            elif state == "faulted":
                self._restarting = False
                self._say("The station did not start again; see the Live tab.", False)
        self._update_restart()

    def _start_again(self) -> None:
        if self._restarting != "stop":
            return
        if self.controller.start():
            self._restarting = "start"
            self._say("Restarting the station: starting with the new settings...", True)
            return
        # The stop worker emits "stopped" just before it lets go of the controller: try again shortly.
        self._retries += 1
        if self._retries > RESTART_RETRIES or self.controller.state != "stopped":
            self._restarting = False
            self._say("The station stopped but could not be started again; start it from the Live tab.", False)
            self._update_restart()
            return
        QTimer.singleShot(RESTART_RETRY_MS, self._start_again)
