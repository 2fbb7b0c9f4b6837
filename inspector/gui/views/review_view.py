"""The review queue: flagged frames nobody has reviewed yet, driven from the keyboard.

A accept, R reject as false alarm, C change class (then 1..9 picks the class), N / Down next,
P / Up previous, Z zoom to the defect. Each action is one ``actions.review`` call with the
logged-in session (the store records who and when, and audits it); the reviewed frame leaves
the queue and the next one is selected.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QAbstractItemView, QHBoxLayout, QLabel, QSplitter, QTableView, QVBoxLayout, QWidget

from inspector.gui.context import AppContext
from inspector.gui.models.decision_query import NEEDS_HUMAN, REVIEW_QUEUE
from inspector.gui.models.decision_table import DecisionTableModel
from inspector.gui.permissions import can
from inspector.gui.views.filter_bar import FilterBar
from inspector.gui.widgets.frame_detail import FrameDetail

log = logging.getLogger(__name__)


class ReviewView(QWidget):
    reviewed = Signal(str, str)  # frame id, action
    message = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None, *, auto_refresh_ms: int = 2000) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.conn = ctx.connect()
        self.model = DecisionTableModel(self.conn, REVIEW_QUEUE, parent=self)
        self.filters = FilterBar(ctx.class_names, ["(fail, review, error)", *NEEDS_HUMAN], parent=self)
        self.filters.changed.connect(self.apply_filters)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(20)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _prev: self._show(cur.row()))
        self.detail = FrameDetail(ctx.images_root, ctx.class_names, self)
        self.hint = QLabel("A accept   R reject (false alarm)   C change class   N/P next/previous   Z zoom", self)
        self.status = QLabel("", self)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setSizes([560, 440])
        lay = QVBoxLayout(self)
        lay.addWidget(self.filters)
        lay.addWidget(split, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.hint, 1)
        bottom.addWidget(self.status)
        lay.addLayout(bottom)
        self.picking = False
        self._keys()
        self.model.fetchMore()
        self.select(0)
        # New flagged frames appear at the top while the station runs (one small query).
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.model.prepend_new)
        if auto_refresh_ms:
            self.timer.start(auto_refresh_ms)

    # --- keyboard -----------------------------------------------------------------------------------
    def _keys(self) -> None:
        # An event filter rather than QShortcuts: the table would otherwise eat letters for its
        # keyboard search, and shortcuts need an active window (not given in every session).
        self.keymap: dict[int, Any] = {
            Qt.Key.Key_A: lambda: self.act("accept"),
            Qt.Key.Key_R: lambda: self.act("reject_false_alarm"),
            Qt.Key.Key_C: self.start_pick,
            Qt.Key.Key_N: self.next,
            Qt.Key.Key_P: self.previous,
            Qt.Key.Key_Z: self.detail.toggle_zoom,
            Qt.Key.Key_Escape: self.cancel_pick,
        }
        for i in range(1, 10):
            self.keymap[int(Qt.Key.Key_0) + i] = lambda i=i: self.pick(i)
        for w in (self, self.table, self.detail, self.detail.view):
            w.installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
            fn = self.keymap.get(event.key()) if mods == Qt.KeyboardModifier.NoModifier else None
            if fn is not None and (self.picking or not Qt.Key.Key_1 <= event.key() <= Qt.Key.Key_9):
                fn()
                return True
            if self.picking and event.key() not in (Qt.Key.Key_Up, Qt.Key.Key_Down):
                return True  # while picking a class, other keys do nothing
        return super().eventFilter(obj, event)

    def start_pick(self) -> None:
        if self.current() is None:
            return
        self.picking = True
        choices = "   ".join(f"{i + 1} {n}" for i, n in enumerate(self.ctx.class_names[:9]))
        self.hint.setText(f"change class to:   {choices}   (Esc cancels)")

    def cancel_pick(self) -> None:
        self.picking = False
        self.hint.setText("A accept   R reject (false alarm)   C change class   N/P next/previous   Z zoom")

    def pick(self, number: int) -> None:
        if not self.picking or not 1 <= number <= len(self.ctx.class_names):
            return
        self.cancel_pick()
        self.change_class(self.ctx.class_names[number - 1])

    # --- navigation ---------------------------------------------------------------------------------
    def current_row(self) -> int:
        idx = self.table.currentIndex()
        return idx.row() if idx.isValid() else -1

    def current(self) -> dict[str, Any] | None:
        r = self.current_row()
        return self.model.row(r) if 0 <= r < self.model.rowCount() else None

    def select(self, row: int) -> None:
        n = self.model.rowCount()
        if n == 0:
            self.detail.clear("queue empty")
            return
        row = max(0, min(row, n - 1))
        idx = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(idx)
        self._show(row)

    def next(self) -> None:
        r = self.current_row()
        if r + 1 >= self.model.rowCount() and self.model.canFetchMore():
            self.model.fetchMore()
        self.select(r + 1)

    def previous(self) -> None:
        self.select(self.current_row() - 1)

    def _show(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            r = self.model.row(row)
            if self.detail.frame_id != r["frame_id"]:
                self.detail.show_frame(self.conn, r)

    def apply_filters(self) -> None:
        self.model.set_filter(self.filters.apply(REVIEW_QUEUE))
        self.select(0)

    # --- actions ------------------------------------------------------------------------------------
    def act(self, action: str, *, labels: list[dict] | None = None, verdict: str | None = None) -> int | None:
        """One review of the current frame through ``actions.review``; moves to the next frame."""
        from inspector.station import actions

        row = self.current()
        if row is None:
            return None
        if not can(self.ctx.session, "review"):
            self._say(f"your role ({self.ctx.role}) may not review frames")
            return None
        if verdict is None:
            verdict = "pass" if action == "reject_false_alarm" else row["verdict"]
        if verdict not in ("pass", "fail", "review"):
            verdict = None  # an error frame has no judgement to confirm
        try:
            rid = actions.review(self.conn, self.ctx.session, row["frame_id"], action, verdict=verdict, labels=labels)
        except actions.PermissionDenied as e:
            self._say(f"refused: {e}")
            return None
        except Exception as e:  # noqa: BLE001 - a store error must be shown, not crash the queue
            log.exception("review failed")
            self._say(f"review not recorded: {e}")
            return None
        pos = self.current_row()
        self.model.remove_frame(row["frame_id"])
        self._say(f"{action} recorded for {row['frame_id']} (review {rid})")
        self.reviewed.emit(row["frame_id"], action)
        self.detail.frame_id = None
        self.select(pos)
        return rid

    def change_class(self, class_name: str) -> int | None:
        row = self.current()
        if row is None:
            return None
        boxes = self.detail.detections if self.detail.frame_id == row["frame_id"] else []
        labels = [{"class": class_name, "xyxy": [round(float(v), 2) for v in d["xyxy"]]} for d in boxes]
        return self.act("change_class", labels=labels)

    def _say(self, text: str) -> None:
        self.status.setText(text)
        self.message.emit(text)

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.timer.stop()
        super().closeEvent(event)
