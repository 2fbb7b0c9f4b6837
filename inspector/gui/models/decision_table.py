"""A lazily loaded table of decisions (review queue, history): pages of 200 rows via fetchMore.

``rowCount`` grows one page at a time as the view scrolls (Qt calls ``canFetchMore`` /
``fetchMore`` when the last row becomes visible), so a store with 100,000 flagged frames opens
as fast as one with 200. Reads are one small indexed query per page, on the GUI thread's own
connection.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from inspector.gui.models.decision_query import DecisionFilter, fetch_page
from inspector.gui.style import verdict_color

COLUMNS: tuple[tuple[str, str], ...] = (
    ("t_utc", "time (UTC)"), ("verdict", "verdict"), ("lot", "lot"), ("wafer", "wafer"), ("die", "die"),
    ("source", "source"), ("zone", "camera / zone"), ("classes", "classes"), ("rule_ids", "rules"),
    ("last_review", "review"),
)
FrameIdRole = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


class DecisionTableModel(QAbstractTableModel):
    def __init__(self, conn: sqlite3.Connection, flt: DecisionFilter, page_size: int = 200,
                 parent: Any = None) -> None:
        super().__init__(parent)
        self.conn = conn
        self.flt = flt
        self.page_size = int(page_size)
        self._rows: list[dict[str, Any]] = []
        self._exhausted = False
        self.pages_fetched = 0

    # --- Qt model API -----------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        key = COLUMNS[index.column()][0]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(row, key)
        if role == Qt.ItemDataRole.ForegroundRole and key == "verdict":
            return verdict_color(row["verdict"])
        if role == FrameIdRole:
            return row["frame_id"]
        return None

    @staticmethod
    def _text(row: dict[str, Any], key: str) -> str:
        if key == "die":
            return "" if row.get("die_x") is None else f"{row['die_x']},{row['die_y']}"
        if key == "zone":
            return " / ".join(str(v) for v in (row.get("camera"), row.get("zone")) if v)
        if key == "t_utc":
            return str(row["t_utc"]).replace("T", " ")[:23]
        v = row.get(key)
        if isinstance(v, list):
            return ", ".join(str(x) for x in v)
        return "" if v is None else str(v)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: N802, B008
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: N802, B008
        if parent.isValid() or self._exhausted:
            return
        last = self._rows[-1] if self._rows else None
        rows = fetch_page(self.conn, self.flt, after=None if last is None else (last["t_utc"], last["frame_id"]),
                          limit=self.page_size)
        self.pages_fetched += 1
        if len(rows) < self.page_size:
            self._exhausted = True
        if rows:
            n = len(self._rows)
            self.beginInsertRows(QModelIndex(), n, n + len(rows) - 1)
            self._rows.extend(rows)
            self.endInsertRows()

    # --- ours -------------------------------------------------------------------------------------
    def row(self, i: int) -> dict[str, Any]:
        return self._rows[i]

    def find(self, frame_id: str) -> int:
        return next((i for i, r in enumerate(self._rows) if r["frame_id"] == frame_id), -1)

    def set_filter(self, flt: DecisionFilter) -> None:
        self.beginResetModel()
        self.flt, self._rows, self._exhausted = flt, [], False
        self.endResetModel()
        self.fetchMore()

    def reload(self) -> None:
        self.set_filter(self.flt)

    def remove_frame(self, frame_id: str) -> int:
        """Drop a row (a reviewed frame leaves the queue); returns where it was, or -1."""
        i = self.find(frame_id)
        if i >= 0:
            self.beginRemoveRows(QModelIndex(), i, i)
            del self._rows[i]
            self.endRemoveRows()
            if not self._rows and not self._exhausted:
                self.fetchMore()
        return i

    def refresh_row(self, frame_id: str) -> None:
        i = self.find(frame_id)
        if i < 0:
            return
        fresh = self.conn.execute("SELECT user || ' ' || action FROM reviews WHERE frame_id = ? ORDER BY id DESC"
                                  " LIMIT 1", (frame_id,)).fetchone()
        self._rows[i]["last_review"] = None if fresh is None else fresh[0]
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))

    def prepend_new(self) -> int:
        """Rows that arrived before the first one shown (new decisions); returns how many."""
        if not self.flt.newest_first:  # oldest first: new rows belong at the end, fetchMore reaches them
            n = len(self._rows)
            self._exhausted = False
            self.fetchMore()
            return len(self._rows) - n
        if not self._rows:
            if self._exhausted:
                self._exhausted = False
                self.fetchMore()
                return len(self._rows)
            return 0
        first = self._rows[0]
        rows = fetch_page(self.conn, self.flt.with_(newest_first=not self.flt.newest_first),
                          after=(first["t_utc"], first["frame_id"]), limit=self.page_size)
        if not rows:
            return 0
        rows.reverse()  # fetched nearest-first; the list wants them in its own order
        self.beginInsertRows(QModelIndex(), 0, len(rows) - 1)
        self._rows[:0] = rows
        self.endInsertRows()
        return len(rows)
