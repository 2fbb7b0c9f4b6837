"""A wafer map: every die of the layout coloured by its verdict; hover names it, click opens it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QToolTip, QWidget

from inspector.core.wafer import Die, WaferLayout
from inspector.gui.style import VERDICT_COLORS, verdict_color

EMPTY = QColor("#eeeeee")  # a die of the layout with no result


class WaferMap(QWidget):
    dieClicked = Signal(int, int)  # noqa: N815 - Qt naming

    def __init__(self, layout: WaferLayout, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.layout_ = layout
        self.results: dict[Die, dict[str, Any]] = {}   # die -> {"verdict", "classes", "frame_id"}
        self.highlight: set[Die] = set()                # dies of the found spatial signature
        self.setMouseTracking(True)
        self.setMinimumSize(300, 300)

    def set_results(self, results: Mapping[Die, Mapping[str, Any]], highlight: set[Die] | None = None) -> None:
        self.results = {d: dict(v) for d, v in results.items()}
        self.highlight = set(highlight or ())
        self.update()

    def color_of(self, die: Die) -> QColor:
        r = self.results.get(die)
        return EMPTY if r is None else verdict_color(r["verdict"])

    # --- geometry: wafer mm (y up) -> widget pixels ---------------------------------------------------
    def _scale(self) -> tuple[float, float, float]:
        lay = self.layout_
        side = min(self.width(), self.height() - 24) - 10
        s = side / lay.diameter_mm
        return s, self.width() / 2, 24 + (self.height() - 24) / 2

    def die_rect(self, die: Die) -> QRectF:
        s, cx, cy = self._scale()
        x0, y0, x1, y1 = self.layout_.die_rect_mm(die)
        return QRectF(cx + x0 * s, cy - y1 * s, (x1 - x0) * s, (y1 - y0) * s)

    def die_at(self, p: QPointF) -> Die | None:
        for d in self.layout_.dies + [d for d in self.results if d not in self.layout_]:
            if self.die_rect(d).contains(p):
                return d
        return None

    def paintEvent(self, _e: Any) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        s, cx, cy = self._scale()
        r = self.layout_.radius_mm * s
        p.setPen(QPen(QColor("#606060"), 1.5))
        p.setBrush(QColor("#fafafa"))
        p.drawEllipse(QPointF(cx, cy), r, r)
        for d in set(self.layout_.dies) | set(self.results):
            rect = self.die_rect(d)
            p.setPen(QPen(QColor("#404040"), 2.5) if d in self.highlight else QPen(QColor("#a0a0a0"), 0.5))
            p.setBrush(self.color_of(d))
            p.drawRect(rect.adjusted(0.5, 0.5, -0.5, -0.5))
        # legend
        x = 6.0
        for name, col in VERDICT_COLORS.items():
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(col))
            p.drawRect(QRectF(x, 6, 12, 12))
            p.setPen(QColor("black"))
            p.drawText(QPointF(x + 15, 17), name)
            x += 22 + p.fontMetrics().horizontalAdvance(name)
        p.end()

    def mouseMoveEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        d = self.die_at(e.position())
        if d is None:
            QToolTip.hideText()
            return
        r = self.results.get(d)
        text = f"die {d[0]},{d[1]}: " + ("no result" if r is None else
                                          f"{r['verdict']}" + (f" ({', '.join(r['classes'])})" if r["classes"] else ""))
        QToolTip.showText(e.globalPosition().toPoint(), text, self)

    def mousePressEvent(self, e: QMouseEvent) -> None:  # noqa: N802
        d = self.die_at(e.position())
        if d is not None and d in self.results:
            self.dieClicked.emit(int(d[0]), int(d[1]))
