"""One stored frame: its image (from the image store) with its kept boxes, and zoom to the defects."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from inspector.gui.widgets.live_view import Box, LiveView
from inspector.store import queries
from inspector.store.images import ImageStore

log = logging.getLogger(__name__)
_ZOOM_MARGIN = 0.5  # zoomed crop = union of boxes grown by half its size on each side


def load_frame(conn: sqlite3.Connection, images: ImageStore, frame_id: str) -> tuple[np.ndarray | None, list[dict]]:
    """The stored image (None when not kept or pruned) and the kept boxes of one frame.

    Die-sized PNGs decode in about a millisecond, so this runs on the GUI thread."""
    row = conn.execute("SELECT image_path, image_pruned, width, height FROM frames WHERE id = ?",
                       (frame_id,)).fetchone()
    if row is None:
        return None, []
    dets = queries.frame_detections(conn, frame_id)
    image = None
    if row["image_path"] and not row["image_pruned"]:
        try:
            image = images.load(row["image_path"])
        except (OSError, ValueError) as e:
            log.warning("frame %s: image not readable: %s", frame_id, e)
    if image is None:  # keep the boxes visible on a grey canvas of the frame's size
        image = np.full((int(row["height"]), int(row["width"])), 96, np.uint8)
    return image, dets


def zoom_rect(dets: list[dict], shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The crop (x0, y0, x1, y1) around every box, with a margin; None without boxes."""
    if not dets:
        return None
    a = np.array([d["xyxy"] for d in dets], np.float64)
    x0, y0 = a[:, 0].min(), a[:, 1].min()
    x1, y1 = a[:, 2].max(), a[:, 3].max()
    mw, mh = max(8.0, (x1 - x0) * _ZOOM_MARGIN), max(8.0, (y1 - y0) * _ZOOM_MARGIN)
    h, w = shape[:2]
    return (int(max(0, x0 - mw)), int(max(0, y0 - mh)), int(min(w, x1 + mw)), int(min(h, y1 + mh)))


class FrameDetail(QWidget):
    def __init__(self, images_root: str | Path, class_names: tuple[str, ...], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images = ImageStore(images_root)
        self.class_names = tuple(class_names)
        self.view = LiveView(self)
        self.info = QLabel("", self)
        self.info.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.info)
        self.frame_id: str | None = None
        self.zoomed = False
        self._image: np.ndarray | None = None
        self._dets: list[dict] = []
        self._row: dict[str, Any] = {}

    def show_frame(self, conn: sqlite3.Connection, row: dict[str, Any]) -> None:
        self.frame_id = row["frame_id"]
        self._row = row
        self._image, self._dets = load_frame(conn, self.images, self.frame_id)
        self.zoomed = False
        self._render()

    def clear(self, message: str = "") -> None:
        self.frame_id, self._image, self._dets = None, None, []
        self.view.clear(message)
        self.info.setText("")

    @property
    def detections(self) -> list[dict]:
        return list(self._dets)

    def toggle_zoom(self) -> None:
        self.zoomed = not self.zoomed
        self._render()

    def _render(self) -> None:
        if self._image is None:
            self.clear("no frame")
            return
        img, dx, dy = self._image, 0.0, 0.0
        if self.zoomed:
            z = zoom_rect(self._dets, img.shape)
            if z is not None:
                x0, y0, x1, y1 = z
                img, dx, dy = img[y0:y1, x0:x1], float(x0), float(y0)
        boxes = []
        for d in self._dets:
            x0, y0, x1, y1 = d["xyxy"]
            name = d.get("class_name") or str(d.get("class_id"))
            cid = self.class_names.index(name) if name in self.class_names else int(d.get("class_id") or 0)
            boxes.append(Box((x0 - dx, y0 - dy, x1 - dx, y1 - dy), cid, name, d.get("score")))
        r = self._row
        verdict = r.get("verdict")
        where = " ".join(f"{k} {r[k]}" for k in ("lot", "wafer") if r.get(k))
        if r.get("die_x") is not None:
            where += f" die {r['die_x']},{r['die_y']}"
        rules = ", ".join(x for x in r.get("rule_ids") or [] if x)
        banner = f"{str(verdict).upper()}  {where}  {('rules: ' + rules) if rules else ''}"
        self.view.set_frame(img, boxes, verdict, banner + ("  [zoom]" if self.zoomed else ""))
        self.info.setText(f"{self.frame_id}  |  {len(self._dets)} box(es)  |  {r.get('t_utc', '')}")
