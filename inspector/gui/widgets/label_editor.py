"""The label editor: boxes on the stored image, in original image pixels.

Scene coordinates are image pixels (the pixmap sits at the origin, unscaled; the view zooms), so
what is saved needs no conversion. Drag on empty space draws a box, drag inside one moves it,
drag a corner handle resizes it; Del deletes, 1..9 set the class, Ctrl+Z / Ctrl+Shift+Z undo and
redo. Every edit is one snapshot command on a ``QUndoStack`` (before / after box lists): simple,
and undo can never drift from what was drawn.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QKeyEvent, QKeySequence, QMouseEvent, QPainter, QPen, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView, QWidget

from inspector.gui.images import to_pixmap
from inspector.gui.style import class_color

HANDLE_PX = 7.0   # corner handle size on screen (independent of zoom)
MIN_BOX_PX = 2.0  # a drag shorter than this (image pixels) draws nothing


class _Snapshot(QUndoCommand):
    def __init__(self, editor: LabelEditor, before: list[dict], after: list[dict], text: str) -> None:
        super().__init__(text)
        self.editor, self.before, self.after = editor, before, after

    def redo(self) -> None:
        self.editor._apply(self.after)

    def undo(self) -> None:
        self.editor._apply(self.before)


class LabelEditor(QGraphicsView):
    changed = Signal()

    def __init__(self, class_names: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.class_names = tuple(class_names)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.undo_stack = QUndoStack(self)
        self.boxes: list[dict[str, Any]] = []   # {"class": name, "xyxy": [x0, y0, x1, y1]} in image pixels
        self.selected: int | None = None
        self.current_class = self.class_names[0] if self.class_names else "object"
        self._pixmap: QGraphicsPixmapItem | None = None
        self._size = (0, 0)
        self._drag: dict[str, Any] | None = None

    # --- content ------------------------------------------------------------------------------------
    def load(self, image: np.ndarray, boxes: list[dict[str, Any]]) -> None:
        """A new image and its boxes; clears the undo history."""
        self.scene().clear()
        self._pixmap = self.scene().addPixmap(to_pixmap(image))
        self._size = (int(image.shape[1]), int(image.shape[0]))
        self.scene().setSceneRect(QRectF(0, 0, *self._size))
        self.undo_stack.clear()
        self.selected = None
        self._apply([self._clean(b) for b in boxes])
        self.fit()

    def fit(self) -> None:
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event: Any) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.fit()

    def labels(self) -> list[dict[str, Any]]:
        """The boxes to save: class name and xyxy in original image pixels (rounded to 0.01)."""
        return [{"class": b["class"], "xyxy": [round(float(v), 2) for v in b["xyxy"]]} for b in self.boxes]

    def _clean(self, b: dict[str, Any]) -> dict[str, Any]:
        x0, y0, x1, y1 = (float(v) for v in b["xyxy"])
        w, h = self._size
        x0, x1 = sorted((min(max(x0, 0), w), min(max(x1, 0), w)))
        y0, y1 = sorted((min(max(y0, 0), h), min(max(y1, 0), h)))
        return {"class": str(b.get("class") or b.get("class_name")), "xyxy": [x0, y0, x1, y1]}

    def _apply(self, boxes: list[dict[str, Any]]) -> None:
        self.boxes = copy.deepcopy(boxes)
        if self.selected is not None and self.selected >= len(self.boxes):
            self.selected = len(self.boxes) - 1 if self.boxes else None
        self.viewport().update()
        self.changed.emit()

    def _commit(self, after: list[dict[str, Any]], text: str) -> None:
        before = copy.deepcopy(self.boxes)
        if after != before:
            self.undo_stack.push(_Snapshot(self, before, copy.deepcopy(after), text))

    # --- edits (also the API the tests and buttons use) ---------------------------------------------
    def add_box(self, xyxy: list[float], class_name: str | None = None) -> None:
        box = self._clean({"class": class_name or self.current_class, "xyxy": xyxy})
        self._commit(self.boxes + [box], "draw box")
        self.selected = len(self.boxes) - 1

    def set_box(self, i: int, xyxy: list[float], text: str = "move box") -> None:
        after = copy.deepcopy(self.boxes)
        after[i] = self._clean({"class": after[i]["class"], "xyxy": xyxy})
        self._commit(after, text)

    def delete_selected(self) -> None:
        if self.selected is None:
            return
        after = [b for i, b in enumerate(self.boxes) if i != self.selected]
        self.selected = None
        self._commit(after, "delete box")

    def set_class(self, class_name: str) -> None:
        self.current_class = class_name
        if self.selected is None:
            return
        after = copy.deepcopy(self.boxes)
        after[self.selected]["class"] = class_name
        self._commit(after, f"class {class_name}")

    # --- mouse --------------------------------------------------------------------------------------
    def _handle_tol(self) -> float:
        return HANDLE_PX / max(1e-6, self.transform().m11())

    def hit(self, p: QPointF) -> tuple[int | None, str | None]:
        """(box index, corner 'tl'/'tr'/'bl'/'br' or 'inside') under scene point ``p``."""
        tol = self._handle_tol()
        order = ([self.selected] if self.selected is not None else []) + list(range(len(self.boxes) - 1, -1, -1))
        for i in order:
            x0, y0, x1, y1 = self.boxes[i]["xyxy"]
            for name, (cx, cy) in (("tl", (x0, y0)), ("tr", (x1, y0)), ("bl", (x0, y1)), ("br", (x1, y1))):
                if abs(p.x() - cx) <= tol and abs(p.y() - cy) <= tol:
                    return i, name
        for i in order:
            x0, y0, x1, y1 = self.boxes[i]["xyxy"]
            if x0 <= p.x() <= x1 and y0 <= p.y() <= y1:
                return i, "inside"
        return None, None

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        p = self.mapToScene(event.position().toPoint())
        i, part = self.hit(p)
        if i is None:
            self.selected = None
            self._drag = {"mode": "draw", "start": p, "now": p}
        else:
            self.selected = i
            self._drag = {"mode": part, "start": p, "now": p, "i": i, "orig": list(self.boxes[i]["xyxy"])}
        self.viewport().update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._drag is None:
            return super().mouseMoveEvent(event)
        self._drag["now"] = self.mapToScene(event.position().toPoint())
        self.viewport().update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        d, self._drag = self._drag, None
        if d is None or event.button() != Qt.MouseButton.LeftButton:
            return super().mouseReleaseEvent(event)
        d["now"] = self.mapToScene(event.position().toPoint())
        xyxy = self._dragged(d)
        if d["mode"] == "draw":
            if xyxy[2] - xyxy[0] >= MIN_BOX_PX and xyxy[3] - xyxy[1] >= MIN_BOX_PX:
                self.add_box(xyxy)
        elif xyxy != d["orig"]:
            self.set_box(d["i"], xyxy, "move box" if d["mode"] == "inside" else "resize box")
        self.viewport().update()

    @staticmethod
    def _dragged(d: dict[str, Any]) -> list[float]:
        s, n = d["start"], d["now"]
        if d["mode"] == "draw":
            return [min(s.x(), n.x()), min(s.y(), n.y()), max(s.x(), n.x()), max(s.y(), n.y())]
        x0, y0, x1, y1 = d["orig"]
        dx, dy = n.x() - s.x(), n.y() - s.y()
        mode = d["mode"]
        if mode == "inside":
            return [x0 + dx, y0 + dy, x1 + dx, y1 + dy]
        if "l" in mode:
            x0 += dx
        if "r" in mode:
            x1 += dx
        if "t" in mode:
            y0 += dy
        if "b" in mode:
            y1 += dy
        return [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]

    # --- keys ---------------------------------------------------------------------------------------
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Undo):
            self.undo_stack.undo()
        elif event.matches(QKeySequence.StandardKey.Redo) or (
                event.key() == Qt.Key.Key_Z and event.modifiers() == (Qt.KeyboardModifier.ControlModifier
                                                                      | Qt.KeyboardModifier.ShiftModifier)):
            self.undo_stack.redo()
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
            self.delete_selected()
        elif Qt.Key.Key_1 <= event.key() <= Qt.Key.Key_9:
            k = event.key() - int(Qt.Key.Key_1)
            if k < len(self.class_names):
                self.set_class(self.class_names[k])
        else:
            super().keyPressEvent(event)

    # --- drawing ------------------------------------------------------------------------------------
    def drawForeground(self, painter: QPainter, _rect: QRectF) -> None:  # noqa: N802
        scale = max(1e-6, self.transform().m11())
        live = None
        if self._drag is not None:
            live = (self._drag.get("i"), self._dragged(self._drag))
        for i, b in enumerate(self.boxes):
            xyxy = live[1] if live is not None and live[0] == i else b["xyxy"]
            self._paint_box(painter, xyxy, b["class"], i == self.selected, scale)
        if live is not None and live[0] is None:
            self._paint_box(painter, live[1], self.current_class, True, scale)

    def _paint_box(self, p: QPainter, xyxy: list[float], cls: str, selected: bool, scale: float) -> None:
        cid = self.class_names.index(cls) if cls in self.class_names else 0
        c = class_color(cid)
        pen = QPen(c, (3 if selected else 2) / scale)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        x0, y0, x1, y1 = xyxy
        p.drawRect(QRectF(x0, y0, x1 - x0, y1 - y0))
        p.save()
        p.translate(x0, y0)
        p.scale(1 / scale, 1 / scale)
        p.setPen(QColor("black"))
        tw = p.fontMetrics().horizontalAdvance(cls) + 6
        p.fillRect(QRectF(0, -15, tw, 15), c)
        p.drawText(QRectF(0, -15, tw, 15), Qt.AlignmentFlag.AlignCenter, cls)
        p.restore()
        if selected:
            h = HANDLE_PX / scale
            p.setBrush(QBrush(QColor("white")))
            p.setPen(QPen(c, 1 / scale))
            for cx, cy in ((x0, y0), (x1, y0), (x0, y1), (x1, y1)):
                p.drawRect(QRectF(cx - h / 2, cy - h / 2, h, h))
