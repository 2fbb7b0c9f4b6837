"""The incidents list as a Qt table model over rows loaded elsewhere (off the GUI thread)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor

COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "#"), ("t", "opened (UTC)"), ("camera", "camera"), ("kind", "kind"), ("track_id", "track"),
    ("zone", "zone"), ("severity", "severity"), ("status", "state"),
)
STATUS_COLORS = {"open": "#f4b6b6", "acknowledged": "#fde2a7", "closed": "#c9e7c9", "false_alarm": "#d9d9d9"}
KIND_TEXT = {"no_hard_hat": "no hard hat", "no_vest": "no vest", "in_danger_zone": "in danger zone"}

Index = QModelIndex | QPersistentModelIndex


def cell_text(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None:
        return ""
    if key == "t":
        return str(v)[:19].replace("T", " ")
    if key == "kind":
        return KIND_TEXT.get(str(v), str(v))
    if key == "status":
        return str(v).replace("_", " ")
    return str(v)


class IncidentTableModel(QAbstractTableModel):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[dict[str, Any]] = []

    def set_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def row(self, i: int) -> dict[str, Any]:
        return self._rows[i]

    def find(self, incident_id: int | None) -> int:
        """Row index of the incident, or -1."""
        for i, r in enumerate(self._rows):
            if r["id"] == incident_id:
                return i
        return -1

    def replace_row(self, row: dict[str, Any]) -> None:
        """Show a changed incident in place (after an action), without reloading the list."""
        i = self.find(row["id"])
        if i >= 0:
            self._rows[i] = row
            self.dataChanged.emit(self.index(i, 0), self.index(i, len(COLUMNS) - 1))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self._rows[index.row()]
        key = COLUMNS[index.column()][0]
        if role == Qt.ItemDataRole.DisplayRole:
            return cell_text(row, key)
        if role == Qt.ItemDataRole.BackgroundRole and key == "status":
            return QColor(STATUS_COLORS.get(str(row.get("status")), "#ffffff"))
        if role == Qt.ItemDataRole.ForegroundRole and key == "status":
            return QColor("black")
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section][1]
        return None
