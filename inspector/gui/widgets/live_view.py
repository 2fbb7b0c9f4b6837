"""The live view: the newest frame with its fused boxes (class colours, scores) and a verdict banner;
on a site camera, its zones and tracked workers (:mod:`inspector.gui.widgets.site_overlay`).

Only paints what it was given: it never reads the pipeline or runs a model. ``set_frame`` is
called by the main window's poll timer with the newest frame only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from inspector.core.site.types import SiteFrame
from inspector.gui.images import to_qimage
from inspector.gui.style import class_color, verdict_color
from inspector.gui.widgets.site_overlay import paint_site


@dataclass(frozen=True)
class Box:
    xyxy: tuple[float, float, float, float]
    class_id: int
    label: str
    score: float | None = None


class LiveView(QWidget):
    """Paints an image scaled to fit, boxes in image pixels mapped onto it, and a banner on top."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._boxes: list[Box] = []
        self._banner = "no frame yet"
        self._verdict: str | None = None
        self._site: SiteFrame | None = None
        self.frames_shown = 0

    def set_frame(self, image: np.ndarray, boxes: Sequence[Box], verdict: str | None, banner: str,
                  site: SiteFrame | None = None) -> None:
        self._image = to_qimage(image)
        self._boxes = list(boxes)
        self._site = site
        self._verdict = verdict
        self._banner = banner
        self.frames_shown += 1
        self.update()

    def clear(self, message: str = "no frame yet") -> None:
        self._image, self._boxes, self._verdict, self._banner, self._site = None, [], None, message, None
        self.update()

    @property
    def banner(self) -> str:
        return self._banner

    @property
    def site(self) -> SiteFrame | None:
        return self._site

    def image_rect(self) -> QRectF:
        """Where the image is drawn (aspect kept, centred below the banner)."""
        top = 28.0
        if self._image is None:
            return QRectF(0, top, self.width(), self.height() - top)
        w, h = self._image.width(), self._image.height()
        avail_w, avail_h = float(self.width()), float(self.height()) - top
        s = min(avail_w / w, avail_h / h) if w and h else 1.0
        return QRectF((avail_w - w * s) / 2, top + (avail_h - h * s) / 2, w * s, h * s)

    def paintEvent(self, _event) -> None:  # noqa: N802 - Qt name
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("#202020"))
        r = self.image_rect()
        if self._image is not None:
            p.drawImage(r, self._image)
            s = r.width() / max(1, self._image.width())
            if self._site is not None:
                paint_site(p, r, s, self._site, self.font())
            font = QFont(self.font())
            font.setPointSizeF(8.5)
            p.setFont(font)
            for b in self._boxes:
                x0, y0, x1, y1 = b.xyxy
                c = class_color(b.class_id)
                p.setPen(QPen(c, 2))
                p.setBrush(Qt.BrushStyle.NoBrush)
                box = QRectF(r.x() + x0 * s, r.y() + y0 * s, (x1 - x0) * s, (y1 - y0) * s)
                p.drawRect(box)
                text = b.label if b.score is None else f"{b.label} {b.score:.2f}"
                tw = p.fontMetrics().horizontalAdvance(text) + 6
                tag = QRectF(box.x(), max(r.y(), box.y() - 15), tw, 15)
                p.fillRect(tag, c)
                p.setPen(QColor("black"))
                p.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)
        banner = QRectF(0, 0, self.width(), 26)
        p.fillRect(banner, verdict_color(self._verdict) if self._verdict else QColor("#404040"))
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        p.setPen(QColor("white"))
        p.drawText(banner.adjusted(8, 0, -8, 0), Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                   self._banner)
        p.end()
