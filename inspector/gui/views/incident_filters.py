"""The incidents view's filters: camera (site), zone, kind, state and period (from / to).

Combos change the filter at once; the period fields when edited (Enter or leaving the field).
A date alone means a whole day ('to 2025-03-07' includes the 7th); a time is ISO, UTC unless it
says otherwise. A period that does not parse is shown in red and left out of the filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QWidget

from inspector.core.site.types import INCIDENT_KINDS
from inspector.gui.models.incident_query import STATES, IncidentFilter, parse_when

ALL = "(all)"
UNRESOLVED = "(unresolved)"       # open or acknowledged: what still needs someone
BAD = "QLineEdit { background: #f7c6c6; }"


class IncidentFilterBar(QWidget):
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.camera = QComboBox(self)
        self.zone = QComboBox(self)
        self.kind = QComboBox(self)
        self.state = QComboBox(self)
        self.camera.addItem(ALL)
        self.zone.addItem(ALL)
        self.kind.addItems([ALL, *INCIDENT_KINDS])
        self.state.addItems([ALL, UNRESOLVED, *STATES])
        for label, box in (("camera", self.camera), ("zone", self.zone), ("kind", self.kind), ("state", self.state)):
            lay.addWidget(QLabel(label, self))
            lay.addWidget(box)
            box.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.since = QLineEdit(self)
        self.until = QLineEdit(self)
        for label, e in (("from", self.since), ("to", self.until)):
            e.setPlaceholderText("YYYY-MM-DD")
            e.setClearButtonEnabled(True)
            e.setMaximumWidth(150)
            e.editingFinished.connect(self._period_edited)
            lay.addWidget(QLabel(label, self))
            lay.addWidget(e)
        self.count = QLabel("", self)
        lay.addWidget(self.count)
        lay.addStretch(1)
        self._last_period: tuple[str, str] = ("", "")

    def _period_edited(self) -> None:
        now = (self.since.text().strip(), self.until.text().strip())
        if now != self._last_period:  # editingFinished also fires on a mere focus change
            self._last_period = now
            self.changed.emit()

    @staticmethod
    def _pick(box: QComboBox) -> str | None:
        t = box.currentText()
        return None if t == ALL else t

    def _when(self, e: QLineEdit, end: bool) -> Any:
        try:
            v = parse_when(e.text(), end=end)
        except ValueError:
            e.setStyleSheet(BAD)
            e.setToolTip("expected a date YYYY-MM-DD or an ISO time; left out of the filter")
            return None
        e.setStyleSheet("")
        e.setToolTip("")
        return v

    def value(self) -> IncidentFilter:
        state: Any = self._pick(self.state)
        if state == UNRESOLVED:
            state = ("open", "acknowledged")
        return IncidentFilter(camera=self._pick(self.camera), zone=self._pick(self.zone), kind=self._pick(self.kind),
                              status=state, since=self._when(self.since, False), until=self._when(self.until, True))

    def set_choices(self, found: dict[str, list[str]]) -> None:
        """The cameras and zones the store holds (a changed list is not a changed choice)."""
        for box, items in ((self.camera, found.get("camera", [])), (self.zone, found.get("zone", []))):
            have = [box.itemText(i) for i in range(1, box.count())]
            if have != items:
                cur = box.currentText()
                box.blockSignals(True)
                box.clear()
                box.addItems([ALL, *items])
                box.setCurrentText(cur if cur in items else ALL)
                box.blockSignals(False)

    def describe(self) -> str:
        """The filter in words (for the export announcement)."""
        parts = [f"{n} {self._pick(b)}" for n, b in (("camera", self.camera), ("zone", self.zone),
                                                     ("kind", self.kind), ("state", self.state)) if self._pick(b)]
        if self.since.text().strip() or self.until.text().strip():
            parts.append(f"{self.since.text().strip() or 'start'} to {self.until.text().strip() or 'now'}")
        return ", ".join(parts) or "all incidents"

    def widgets(self) -> Sequence[QWidget]:
        return (self.camera, self.zone, self.kind, self.state, self.since, self.until)
