"""History and search: decisions by time, lot, wafer, camera, zone, class, verdict, reviewer; CSV export.

The export walks the whole selection page by page on a worker thread with its own connection
(a selection can be 100,000 rows; the GUI thread only learns when it is done).
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from inspector.gui.context import AppContext
from inspector.gui.models.decision_query import CSV_COLUMNS, DecisionFilter, iter_all
from inspector.gui.models.decision_table import DecisionTableModel
from inspector.gui.permissions import can
from inspector.gui.views.filter_bar import FilterBar
from inspector.gui.widgets.frame_detail import FrameDetail

VERDICTS = ("pass", "fail", "review", "error", "not_inspected")


def export_csv(ctx: AppContext, flt: DecisionFilter, path: Path) -> int:
    """Write every row of the selection to ``path``; returns how many (any thread: own connection)."""
    conn = ctx.connect()
    n = 0
    try:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(CSV_COLUMNS)
            for row in iter_all(conn, flt):
                w.writerow(["; ".join(map(str, row[c])) if isinstance(row.get(c), list) else
                            ("" if row.get(c) is None else row[c]) for c in CSV_COLUMNS])
                n += 1
    finally:
        conn.close()
    return n


class HistoryView(QWidget):
    exported = Signal(str, int)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.conn = ctx.connect()
        self.model = DecisionTableModel(self.conn, DecisionFilter(), parent=self)
        self.filters = FilterBar(ctx.class_names, ["(any verdict)", *VERDICTS], history=True, parent=self)
        self.filters.changed.connect(self.apply_filters)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _p: self._show(cur.row()))
        self.detail = FrameDetail(ctx.images_root, ctx.class_names, self)
        self.export_btn = QPushButton("Export CSV...", self)
        self.export_btn.clicked.connect(self.ask_export)
        self.export_btn.setEnabled(can(ctx.session, "export"))
        self.status = QLabel("", self)
        self.exported.connect(lambda p, n: self.status.setText(f"exported {n} row(s) to {p}"))
        split = QSplitter(Qt.Orientation.Horizontal, self)
        split.addWidget(self.table)
        split.addWidget(self.detail)
        split.setSizes([700, 400])
        bottom = QHBoxLayout()
        bottom.addWidget(self.export_btn)
        bottom.addWidget(self.status, 1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.filters)
        lay.addWidget(split, 1)
        lay.addLayout(bottom)
        self._export: threading.Thread | None = None
        self.model.fetchMore()

    def apply_filters(self) -> None:
        self.model.set_filter(self.filters.apply(DecisionFilter()))

    def _show(self, row: int) -> None:
        if 0 <= row < self.model.rowCount():
            self.detail.show_frame(self.conn, self.model.row(row))

    def ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export decisions", str(self.ctx.data_dir / "decisions.csv"),
                                              "CSV (*.csv)")
        if path:
            self.export(Path(path))

    def export(self, path: Path) -> threading.Thread:
        """Export the current selection on a worker thread; ``exported`` fires when written."""
        flt = self.model.flt
        self.status.setText(f"exporting to {path} ...")

        def run() -> None:
            try:
                n = export_csv(self.ctx, flt, path)
            except Exception as e:  # noqa: BLE001
                self.exported.emit(f"{path} FAILED: {e}", 0)
                return
            self.exported.emit(str(path), n)

        self._export = threading.Thread(target=run, name="gui-export", daemon=True)
        self._export.start()
        return self._export
