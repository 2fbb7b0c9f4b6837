"""The incidents view: site incidents filtered by camera, zone, kind, state and period, with their
evidence frames and clip, and the safety manager's exports; driven from the keyboard.

A acknowledge, C close (asks for a note), F mark false alarm (note optional), Enter confirms the
note and Esc cancels it, N / Down next, P / Up previous, Space plays or pauses the clip;
R period report PDF and T period table CSV (of the current filter), E the selected incident's
PDF, U the selected incident unredacted (asks for the reason; safety manager only).
Each step is one role-checked call in ``inspector.station.actions`` with the logged-in session
(the store keeps who and when, and audits it). The list, the evidence images and the clip are read
off the GUI thread (:mod:`inspector.gui.background`, :mod:`inspector.gui.widgets.clip_player`), and
exports run on a worker with a progress bar (:mod:`inspector.gui.widgets.export_panel`): a slow
disk or a long report never freezes the window.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QLabel, QLineEdit, QSplitter, QTableView, QVBoxLayout, QWidget

from inspector.gui.background import Background
from inspector.gui.context import AppContext
from inspector.gui.models.incident_exports import ExportRequest, out_path, run_export
from inspector.gui.models.incident_query import (
    IncidentFilter, choices, clip_file, load_evidence, load_incident, load_incidents,
)
from inspector.gui.models.incident_table import KIND_TEXT, IncidentTableModel
from inspector.gui.permissions import can
from inspector.gui.views.incident_filters import ALL, UNRESOLVED, IncidentFilterBar
from inspector.gui.widgets.clip_player import ClipPlayer
from inspector.gui.widgets.evidence_strip import ROLES, EvidenceStrip
from inspector.gui.widgets.export_panel import ExportPanel

log = logging.getLogger(__name__)

__all__ = ["ALL", "UNRESOLVED", "IncidentsView", "describe", "incident_step"]
STEP_STATUS = {"acknowledge": "acknowledged", "close": "closed", "false_alarm": "false_alarm"}
HINT = "A acknowledge   C close (note)   F false alarm   N/P next/previous   Space clip play/pause"
EXPORT_HINT = "R period PDF   T period CSV   E incident PDF   U unredacted (reason)"
MIN_REASON_CHARS = 10  # as inspector.station.actions.reports asks (which checks it again)
EXPORT_LABELS = {"period_pdf": "period report PDF", "period_csv": "period table CSV",
                 "incident_pdf": "incident PDF", "unredacted": "UNREDACTED incident evidence"}


def incident_step(conn: Any, session: Any, incident_id: int, step: str, note: str = "") -> None:
    """One human step through the role-checked actions (raises ``actions.PermissionDenied``)."""
    from inspector.station.actions import reviews

    if step == "acknowledge":
        reviews.acknowledge_incident(conn, session, incident_id)
    elif step == "close":
        reviews.close_incident(conn, session, incident_id, note)
    else:
        reviews.mark_false_alarm(conn, session, incident_id, note)


def describe(row: dict[str, Any]) -> str:
    """The selected incident in a few lines (what, where, when, who did what)."""
    kind = KIND_TEXT.get(str(row.get("kind")), str(row.get("kind")))
    where = [f"camera {row['camera']}" if row.get("camera") else "",
             f"track {row['track_id']}" if row.get("track_id") is not None else "",
             f"zone {row['zone']}" if row.get("zone") else "",
             f"rule {row['rule_id']}" if row.get("rule_id") else "", f"severity {row.get('severity')}"]
    lines = [f"<b>#{row['id']} {kind.upper()}</b> &nbsp; {', '.join(w for w in where if w)}",
             f"opened {str(row.get('t'))[:19]}"
             + (f", ended {str(row['ended'])[:19]} ({row.get('end_reason') or 'cleared'})" if row.get("ended") else
                ", still going" if row.get("key") else "")]
    status = str(row.get("status"))
    steps = [f"state <b>{status.replace('_', ' ')}</b>"]
    if row.get("acknowledged_by"):
        steps.append(f"acknowledged by {row['acknowledged_by']} at {str(row.get('acknowledged_at'))[:19]}")
    if row.get("resolved_by") and status in ("closed", "false_alarm"):
        what = "closed" if status == "closed" else "marked false alarm"
        steps.append(f"{what} by {row['resolved_by']} at {str(row.get('resolved_at'))[:19]}")
    lines.append("; ".join(steps))
    note = row.get("resolution_note") or row.get("note")
    if note:
        lines.append(f"note: {note}")
    return "<br>".join(lines)


class IncidentsView(QWidget):
    stepped = Signal(int, str)  # incident id, step
    message = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, *, auto_refresh_ms: int = 3000) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.conn = ctx.connect()  # the GUI thread's: the human steps (small, one row each)
        self.may_act = can(ctx.session, "incidents")
        self.may_export = can(ctx.session, "reports")
        self.bg = Background(self)
        self.model = IncidentTableModel(self)
        self.filters = IncidentFilterBar(self)
        self.filters.changed.connect(self.refresh)
        f = self.filters  # the controls by name (tests and the keyboard reach them here)
        self.camera, self.zone, self.kind, self.state, self.since, self.until, self.count = (
            f.camera, f.zone, f.kind, f.state, f.since, f.until, f.count)
        self.exports = ExportPanel([
            ("period_pdf", "Period PDF  [R]", lambda: self.export("period_pdf")),
            ("period_csv", "Period CSV  [T]", lambda: self.export("period_csv")),
            ("incident_pdf", "Incident PDF  [E]", lambda: self.export("incident_pdf")),
            ("unredacted", "Unredacted...  [U]", lambda: self.ask_note("unredacted")),
        ], self)
        self.exports.set_allowed({k: self.may_export for k in EXPORT_LABELS})
        self.exports.finished.connect(lambda name, r: self._say(self.exports.line.text()))
        self.exports.failed.connect(lambda name, msg: self._say(f"{EXPORT_LABELS.get(name, name)} failed: {msg}"))
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._show(cur.row()))
        self.header = QLabel("no incident selected", self)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.evidence = EvidenceStrip(self)
        self.player = ClipPlayer(self)
        self.note_edit = QLineEdit(self)
        self.note_edit.setPlaceholderText("note (Enter records, Esc cancels)")
        self.note_edit.returnPressed.connect(self.confirm_note)
        self.note_edit.hide()
        detail = QWidget(self)
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.header)
        dl.addWidget(self.evidence, 2)
        dl.addWidget(self.player, 3)
        dl.addWidget(self.note_edit)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.table)
        split.addWidget(detail)
        split.setSizes([560, 720])
        self.hint = QLabel((HINT if self.may_act else
                            f"view only: role {ctx.role} may not act on incidents   N/P next/previous   Space clip")
                           + (f"   |   {EXPORT_HINT}" if self.may_export else ""), self)
        self.status = QLabel("", self)
        bottom = QHBoxLayout()
        self.status.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        bottom.addWidget(self.hint)
        bottom.addWidget(self.status, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.filters)
        lay.addWidget(split, 1)
        lay.addWidget(self.exports)
        lay.addLayout(bottom)
        self.pending_step: str | None = None
        self.selected_id: int | None = None
        self.loads = 0            # lists loaded (tests wait on it)
        self.evidence_loads = 0
        self._keys()
        self.refresh()
        # New incidents appear while the station runs (one small query, off the GUI thread).
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.refresh)
        if auto_refresh_ms:
            self.timer.start(auto_refresh_ms)

    # --- loading (off the GUI thread) ------------------------------------------------------------
    def current_filter(self) -> IncidentFilter:
        return self.filters.value()

    def refresh(self) -> None:
        flt, connect = self.current_filter(), self.ctx.connect

        def read() -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
            conn = connect()
            try:
                return load_incidents(conn, flt), choices(conn)
            finally:
                conn.close()
        self.bg.submit("list", read, self._on_list, self._on_error)

    def _on_list(self, result: tuple[list[dict[str, Any]], dict[str, list[str]]]) -> None:
        rows, found = result
        keep = self.selected_id
        self.filters.set_choices(found)
        self.model.set_rows(rows)
        if self.loads == 0:
            self.table.resizeColumnsToContents()
        self.loads += 1
        self.count.setText(f"{len(rows)} incident{'s' if len(rows) != 1 else ''}")
        row = self.model.find(keep)
        self.select(row if row >= 0 else 0, force=row < 0)

    def _on_error(self, e: Exception) -> None:
        self._say(f"could not read incidents: {e}")

    # --- keyboard --------------------------------------------------------------------------------
    def _keys(self) -> None:
        # An event filter (as in the review queue): the table would eat letters for its search.
        self.keymap: dict[int, Any] = {
            Qt.Key.Key_A: lambda: self.act("acknowledge"),
            Qt.Key.Key_C: lambda: self.ask_note("close"),
            Qt.Key.Key_F: lambda: self.ask_note("false_alarm"),
            Qt.Key.Key_N: self.next, Qt.Key.Key_P: self.previous,
            Qt.Key.Key_Space: self.player.toggle,
            Qt.Key.Key_R: lambda: self.export("period_pdf"), Qt.Key.Key_T: lambda: self.export("period_csv"),
            Qt.Key.Key_E: lambda: self.export("incident_pdf"), Qt.Key.Key_U: lambda: self.ask_note("unredacted"),
        }
        for w in (self, self.table, self.evidence, self.player, self.player.picture, *self.exports.buttons.values()):
            w.installEventFilter(self)
        self.note_edit.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            if obj is self.note_edit:
                if event.key() == Qt.Key.Key_Escape:
                    self.cancel_note()
                    return True
                return super().eventFilter(obj, event)  # typing the note
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            fn = self.keymap.get(event.key()) if mods == Qt.KeyboardModifier.NoModifier else None
            if fn is not None:
                fn()
                return True
        return super().eventFilter(obj, event)

    # --- navigation ------------------------------------------------------------------------------
    def current_row(self) -> int:
        idx = self.table.currentIndex()
        return idx.row() if idx.isValid() else -1

    def current(self) -> dict[str, Any] | None:
        r = self.current_row()
        return self.model.row(r) if 0 <= r < self.model.rowCount() else None

    def select(self, row: int, force: bool = False) -> None:
        n = self.model.rowCount()
        if n == 0:
            self.selected_id = None
            self.header.setText("no incidents" + ("" if self.state.currentText() == ALL else " in this state"))
            self.evidence.clear()
            self.player.load(None)
            return
        row = max(0, min(row, n - 1))
        idx = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(idx)
        self._show(row, force)

    def next(self) -> None:
        self.select(self.current_row() + 1)

    def previous(self) -> None:
        self.select(max(0, self.current_row() - 1))

    def _show(self, row: int, force: bool = False) -> None:
        if not 0 <= row < self.model.rowCount():
            return
        r = self.model.row(row)
        self.header.setText(describe(r))
        if r["id"] == self.selected_id and not force:
            return  # a refresh of the same incident: keep its evidence and the clip playing
        self.selected_id = r["id"]
        self.cancel_note()
        self.evidence.clear("loading...")
        self.player.load(clip_file(r, self.ctx.data_dir))
        connect, root = self.ctx.connect, self.ctx.images_root

        def read() -> Any:
            conn = connect()
            try:
                return load_evidence(conn, r, root)
            finally:
                conn.close()
        stored = r.get("evidence") if isinstance(r.get("evidence"), dict) else {}
        ids = {role: (stored.get(role) or {}).get("frame_id") or r.get(f"{role}_frame_id") for role in ROLES}
        self.bg.submit("evidence", read, lambda imgs: self._on_evidence(imgs, ids), self._on_error)

    def _on_evidence(self, images: dict[str, Any], ids: dict[str, str | None]) -> None:
        self.evidence.set_images(images, ids)
        self.evidence_loads += 1

    # --- the human steps -------------------------------------------------------------------------
    def ask_note(self, step: str) -> None:
        if self.current() is None or not (self._may_export(step) if step == "unredacted" else self._may(step)):
            return
        self.pending_step = step
        ask = {"close": "what was done", "false_alarm": "why it is no violation (optional)",
               "unredacted": "why this incident must leave UNREDACTED (faces visible; audited)"}[step]
        self.note_edit.setPlaceholderText(ask + "   Enter records, Esc cancels")
        self.note_edit.clear()
        self.note_edit.show()
        self.note_edit.setFocus()

    def cancel_note(self) -> None:
        self.pending_step = None
        if self.note_edit.isVisible():
            self.note_edit.hide()
            self.table.setFocus()

    def confirm_note(self) -> None:
        step, note = self.pending_step, self.note_edit.text().strip()
        if step is None:
            return
        if step == "close" and not note:
            self._say("closing needs a note: what was done")
            return
        if step == "unredacted" and len(note) < MIN_REASON_CHARS:
            self._say(f"an unredacted export needs a reason (at least {MIN_REASON_CHARS} characters)")
            return
        self.cancel_note()
        if step == "unredacted":
            self.export("unredacted", note)
        else:
            self.act(step, note)

    def _may(self, step: str) -> bool:
        if not self.may_act:
            self._say(f"your role ({self.ctx.role}) may not {step.replace('_', ' ')} incidents")
            return False
        return True

    def act(self, step: str, note: str = "") -> bool:
        """One step on the selected incident; the row shows its new state at once."""
        row = self.current()
        if row is None or not self._may(step):
            return False
        from inspector.station import actions

        try:
            incident_step(self.conn, self.ctx.session, row["id"], step, note)
        except actions.PermissionDenied as e:
            self._say(f"refused: {e}")
            return False
        except Exception as e:  # noqa: BLE001 - a refused step (e.g. already closed) is shown, not fatal
            log.info("incident step %s on %s refused: %s", step, row["id"], e)
            self._say(f"not recorded: {e}")
            return False
        fresh = load_incident(self.conn, row["id"])
        if fresh is not None:
            self.model.replace_row(fresh)
            self.header.setText(describe(fresh))
        self._say(f"incident #{row['id']}: {STEP_STATUS[step].replace('_', ' ')}")
        self.stepped.emit(int(row["id"]), step)
        return True

    # --- exports (off the GUI thread) -------------------------------------------------------------
    def _may_export(self, kind: str) -> bool:
        if not self.may_export:
            self._say(f"your role ({self.ctx.role}) may not export incident reports")
            return False
        return True

    def export(self, kind: str, reason: str = "") -> bool:
        """Start one export in the background; the panel shows its progress and announces the file."""
        if not self._may_export(kind):
            return False
        row = self.current()
        single = kind in ("incident_pdf", "unredacted")
        if single and row is None:
            self._say("select an incident first")
            return False
        flt = self.current_filter()
        iid = int(row["id"]) if single and row is not None else None
        req = ExportRequest(kind, self.ctx.db_path, self.ctx.data_dir, self.ctx.session,
                            out_path(self.ctx.data_dir, kind, flt=flt, incident_id=iid),
                            filter=None if single else flt, incident_id=iid, reason=reason)
        what = f"{EXPORT_LABELS[kind]} of " + (f"incident #{iid}" if single else self.filters.describe())
        started = self.exports.start(kind, lambda progress: run_export(req, progress), what)
        if started:
            self._say(f"exporting {what}...")
        return started

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)

    def shutdown(self) -> None:
        self.timer.stop()
        self.player.stop()
        # A report being written is left to finish on its (daemon) thread: its file is written atomically.

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)
