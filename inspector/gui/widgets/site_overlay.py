"""Construction-site overlays for the live view: zones by kind, tracked workers with id and PPE state.

Painting only: ``paint_site`` draws a ``SiteFrame`` (image pixels) onto an image drawn at ``rect``
with ``scale`` screen pixels per image pixel. A worker with a violation this frame is drawn red
with the violation named; PPE is shown as two marks (hat, vest): filled green when worn, a red
outline crossed out when missing. Shapes, not glyphs: they read the same with any font.
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QPolygonF

from inspector.core.site.types import SiteFrame, TrackedWorker

#: Zone kind -> (colour, what the label says).
ZONE_STYLE: dict[str, tuple[str, str]] = {
    "restricted": ("#d62f2f", "danger zone"),
    "ppe_required": ("#f0a202", "PPE zone"),
    "exclusion": ("#9a9a9a", "excluded"),
    "inspection": ("#0072b2", "inspection"),
}
ZONE_FILL_ALPHA = 60          # translucent: the workers inside stay visible
OK_COLOR = "#2e9d3a"
VIOLATION_COLOR = "#d62f2f"
VIOLATION_TEXT = {"no_hard_hat": "NO HARD HAT", "no_vest": "NO VEST", "in_danger_zone": "IN DANGER ZONE"}
_TAG_H = 16.0


def zone_color(kind: str) -> QColor:
    return QColor(ZONE_STYLE.get(kind, ("#56b4e9", kind))[0])


def worker_color(w: TrackedWorker) -> QColor:
    return QColor(VIOLATION_COLOR if w.violations else OK_COLOR)


def violation_text(w: TrackedWorker) -> str:
    return ", ".join(VIOLATION_TEXT.get(v, v.upper()) for v in w.violations)


def paint_site(p: QPainter, rect: QRectF, scale: float, site: SiteFrame, font: QFont) -> None:
    """Zones first (under everything), then every worker."""
    small = QFont(font)
    small.setPointSizeF(8.5)
    p.setFont(small)
    for zid, kind, polygon in site.zones:
        _paint_zone(p, rect, scale, zid, kind, polygon)
    for w in site.workers:
        _paint_worker(p, rect, scale, w)


def _to_screen(rect: QRectF, scale: float, x: float, y: float) -> QPointF:
    return QPointF(rect.x() + x * scale, rect.y() + y * scale)


def _paint_zone(p: QPainter, rect: QRectF, scale: float, zid: str, kind: str,
                polygon: tuple[tuple[float, float], ...]) -> None:
    if len(polygon) < 3:
        return
    c = zone_color(kind)
    fill = QColor(c)
    fill.setAlpha(ZONE_FILL_ALPHA)
    poly = QPolygonF([_to_screen(rect, scale, x, y) for x, y in polygon])
    p.setPen(QPen(c, 2, Qt.PenStyle.DashLine))
    p.setBrush(QBrush(fill))
    p.drawPolygon(poly)
    # The label sits at the zone's topmost corner, inside the image.
    top = min(poly, key=lambda q: (q.y(), q.x()))
    text = f"{zid}: {ZONE_STYLE.get(kind, ('', kind))[1]}"
    tw = p.fontMetrics().horizontalAdvance(text) + 8
    x = min(max(rect.x(), top.x()), rect.right() - tw)
    tag = QRectF(x, max(rect.y(), top.y()), tw, _TAG_H)
    p.fillRect(tag, c)
    p.setPen(QColor("white") if kind != "ppe_required" else QColor("black"))
    p.drawText(tag, Qt.AlignmentFlag.AlignCenter, text)


def _paint_worker(p: QPainter, rect: QRectF, scale: float, w: TrackedWorker) -> None:
    x0, y0, x1, y1 = w.xyxy
    c = worker_color(w)
    box = QRectF(_to_screen(rect, scale, x0, y0), _to_screen(rect, scale, x1, y1))
    p.setPen(QPen(c, 3 if w.violations else 2))
    p.setBrush(Qt.BrushStyle.NoBrush)
    p.drawRect(box)
    # Tag above the box: "#id" then the hat and vest marks.
    text = f"#{w.track_id}"
    tw = p.fontMetrics().horizontalAdvance(text) + 8
    mark = _TAG_H - 4
    tag = QRectF(box.x(), max(rect.y(), box.y() - _TAG_H), tw + 2 * (mark + 4) + 2, _TAG_H)
    p.fillRect(tag, c)
    p.setPen(QColor("white"))
    p.drawText(QRectF(tag.x(), tag.y(), tw, _TAG_H), Qt.AlignmentFlag.AlignCenter, text)
    hat_at = QRectF(tag.x() + tw, tag.y() + 2, mark, mark)
    vest_at = QRectF(hat_at.right() + 4, tag.y() + 2, mark, mark)
    for chip in (hat_at, vest_at):  # a dark chip under each mark: green and red read on any tag colour
        p.fillRect(chip.adjusted(-1, -1, 1, 1), QColor("#202020"))
    _paint_hat(p, hat_at, w.hat)
    _paint_vest(p, vest_at, w.vest)
    if w.violations:  # name the violation under the box, where it does not hide the head
        msg = violation_text(w)
        mw = p.fontMetrics().horizontalAdvance(msg) + 8
        below = QRectF(box.x(), min(box.bottom() + 1, rect.bottom() - _TAG_H), mw, _TAG_H)
        p.fillRect(below, c)
        p.setPen(QColor("white"))
        p.drawText(below, Qt.AlignmentFlag.AlignCenter, msg)


def _mark_style(p: QPainter, worn: bool) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("#4cd964" if worn else "#ff4d4d"))


def _cross(p: QPainter, r: QRectF) -> None:
    p.setPen(QPen(QColor("white"), 1.5))
    p.drawLine(r.topLeft(), r.bottomRight())
    p.drawLine(r.topRight(), r.bottomLeft())


def _paint_hat(p: QPainter, r: QRectF, worn: bool) -> None:
    """A hard hat: a dome with a brim."""
    _mark_style(p, worn)
    p.drawChord(QRectF(r.x() + 1, r.y() + 1, r.width() - 2, r.height() * 1.4), 0, 180 * 16)
    p.drawRect(QRectF(r.x(), r.y() + r.height() * 0.7, r.width(), r.height() * 0.2))
    if not worn:
        _cross(p, r)


def _paint_vest(p: QPainter, r: QRectF, worn: bool) -> None:
    """A vest: a torso with a V neck."""
    _mark_style(p, worn)
    w, h = r.width(), r.height()
    poly = QPolygonF([QPointF(r.x() + w * 0.15, r.y()), QPointF(r.x() + w * 0.5, r.y() + h * 0.4),
                      QPointF(r.x() + w * 0.85, r.y()), QPointF(r.right(), r.y() + h * 0.3),
                      QPointF(r.right() - w * 0.1, r.bottom()), QPointF(r.x() + w * 0.1, r.bottom()),
                      QPointF(r.x(), r.y() + h * 0.3)])
    p.drawPolygon(poly)
    if not worn:
        _cross(p, r)
