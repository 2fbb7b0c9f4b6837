"""Filter controls shared by the review queue and the history: lot, wafer, class, verdict, time..."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QWidget

from inspector.gui.models.decision_query import DecisionFilter

ALL = "(all)"


class FilterBar(QWidget):
    changed = Signal()

    def __init__(self, class_names: Sequence[str], verdict_choices: Sequence[str], *, history: bool = False,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.fields: dict[str, QLineEdit] = {}
        names = ["lot", "wafer"] + (["camera", "zone", "reviewer"] if history else [])
        for name in names:
            e = QLineEdit(self)
            e.setPlaceholderText(name)
            e.setClearButtonEnabled(True)
            e.setMaximumWidth(110)
            e.editingFinished.connect(self.changed)
            self.fields[name] = e
            lay.addWidget(e)
        self.klass = QComboBox(self)
        self.klass.addItems([ALL, *class_names])
        self.klass.currentIndexChanged.connect(lambda _i: self.changed.emit())
        lay.addWidget(QLabel("class", self))
        lay.addWidget(self.klass)
        self.verdict = QComboBox(self)
        self.verdict.addItems(list(verdict_choices))
        self.verdict.currentIndexChanged.connect(lambda _i: self.changed.emit())
        lay.addWidget(QLabel("verdict", self))
        lay.addWidget(self.verdict)
        self.since = QLineEdit(self)
        self.since.setPlaceholderText("since (ISO UTC)")
        self.until = QLineEdit(self)
        self.until.setPlaceholderText("until (ISO UTC)")
        for e in (self.since, self.until):
            e.setMaximumWidth(150)
            e.setClearButtonEnabled(True)
            e.editingFinished.connect(self.changed)
            lay.addWidget(e)
        self.order = QComboBox(self)
        self.order.addItems(["newest first", "oldest first"])
        self.order.currentIndexChanged.connect(lambda _i: self.changed.emit())
        lay.addWidget(self.order)
        lay.addStretch(1)

    def apply(self, base: DecisionFilter) -> DecisionFilter:
        """``base`` with the values typed here (empty fields leave it unfiltered)."""
        def text(e: QLineEdit) -> str | None:
            return e.text().strip() or None

        kw = {name: text(e) for name, e in self.fields.items()}
        v = self.verdict.currentText()
        verdicts = base.verdicts if v.startswith("(") else (v,)
        k = self.klass.currentText()
        return base.with_(verdicts=verdicts, class_name=None if k == ALL else k, since=text(self.since),
                          until=text(self.until), newest_first=self.order.currentIndex() == 0, **kw)
