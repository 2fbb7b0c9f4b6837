"""The engineer's label editor page: pick a flagged frame, correct its boxes, save a ``relabel`` review."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.context import AppContext
from inspector.gui.models.decision_query import NEEDS_HUMAN, DecisionFilter
from inspector.gui.models.decision_table import DecisionTableModel
from inspector.gui.permissions import can
from inspector.gui.widgets.frame_detail import load_frame
from inspector.gui.widgets.label_editor import LabelEditor
from inspector.station import actions
from inspector.store import queries
from inspector.store.images import ImageStore

log = logging.getLogger(__name__)


def starting_boxes(conn: Any, frame_id: str, dets: list[dict]) -> list[dict]:
    """The latest corrected labels of a frame when it has some, else its kept detections."""
    for r in reversed(queries.reviews(conn, frame_id)):
        if r["labels"] is not None and r["action"] in ("relabel", "change_class"):
            return [{"class": x["class"], "xyxy": x["xyxy"]} for x in r["labels"]]
    return [{"class": d.get("class_name") or str(d.get("class_id")), "xyxy": d["xyxy"]} for d in dets]


class LabelPage(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.conn = ctx.connect()
        self.images = ImageStore(ctx.images_root)
        self.model = DecisionTableModel(self.conn, DecisionFilter(verdicts=NEEDS_HUMAN), parent=self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _p: self.open_row(cur.row()))
        self.editor = LabelEditor(ctx.class_names, self)
        self.klass = QComboBox(self)
        self.klass.addItems(list(ctx.class_names))
        self.klass.currentTextChanged.connect(self.editor.set_class)
        self.undo_btn = QPushButton("Undo", self)
        self.redo_btn = QPushButton("Redo", self)
        self.undo_btn.clicked.connect(self.editor.undo_stack.undo)
        self.redo_btn.clicked.connect(self.editor.undo_stack.redo)
        self.editor.undo_stack.canUndoChanged.connect(self.undo_btn.setEnabled)
        self.editor.undo_stack.canRedoChanged.connect(self.redo_btn.setEnabled)
        self.save_btn = QPushButton("Save labels", self)
        self.save_btn.clicked.connect(self.save)
        self.status = QLabel("drag: draw / move / resize   Del: delete   1..9: class   Ctrl+Z / Ctrl+Shift+Z", self)
        tools = QHBoxLayout()
        for w in (QLabel("class", self), self.klass, self.undo_btn, self.redo_btn, self.save_btn):
            tools.addWidget(w)
        tools.addWidget(self.status, 1)
        right = QWidget(self)
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addLayout(tools)
        rl.addWidget(self.editor, 1)
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.table)
        split.addWidget(right)
        split.setSizes([420, 700])
        QVBoxLayout(self).addWidget(split)
        self.frame_id: str | None = None
        allowed = can(ctx.session, "relabel")
        self.save_btn.setEnabled(allowed)
        if not allowed:
            self.save_btn.setToolTip(f"role {ctx.role} may not relabel (engineer only)")
        self.model.fetchMore()
        if self.model.rowCount():
            self.table.selectRow(0)

    def open_frame(self, frame_id: str) -> None:
        image, dets = load_frame(self.conn, self.images, frame_id)
        if image is None:
            self.status.setText(f"frame {frame_id} is not in the store")
            return
        self.frame_id = frame_id
        self.editor.load(image, starting_boxes(self.conn, frame_id, dets))

    def open_row(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.open_frame(self.model.row(row)["frame_id"])

    def save(self) -> int | None:
        """Write the edited boxes as one ``relabel`` review (engineer); the undo history stays."""
        if self.frame_id is None:
            return None
        try:
            rid = actions.review(self.conn, self.ctx.session, self.frame_id, "relabel", labels=self.editor.labels())
        except actions.PermissionDenied as e:
            self.status.setText(f"refused: {e}")
            return None
        except Exception as e:  # noqa: BLE001
            log.exception("relabel failed")
            self.status.setText(f"labels not saved: {e}")
            return None
        self.editor.undo_stack.setClean()
        self.model.refresh_row(self.frame_id)
        self.status.setText(f"saved {len(self.editor.boxes)} box(es) for {self.frame_id} (review {rid})")
        return rid
