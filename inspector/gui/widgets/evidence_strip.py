"""An incident's evidence frames side by side: first, worst and last (thumbnails, loaded elsewhere)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from inspector.gui.images import to_pixmap

ROLES = ("first", "worst", "last")


class EvidenceStrip(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        self.pictures: dict[str, QLabel] = {}
        self.captions: dict[str, QLabel] = {}
        self._pixmaps: dict[str, QPixmap | None] = {}
        for col, role in enumerate(ROLES):
            pic = QLabel("", self)
            pic.setAlignment(Qt.AlignmentFlag.AlignCenter)
            pic.setMinimumSize(160, 90)
            pic.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # a pixmap must not grow it
            pic.setStyleSheet("background: #202020; color: #c8c8c8;")
            cap = QLabel(role, self)
            cap.setAlignment(Qt.AlignmentFlag.AlignCenter)
            grid.addWidget(pic, 0, col)
            grid.addWidget(cap, 1, col)
            self.pictures[role], self.captions[role] = pic, cap
        grid.setRowStretch(0, 1)  # the pictures take the height, the captions keep one line
        self.clear()

    def clear(self, message: str = "") -> None:
        self._pixmaps = dict.fromkeys(ROLES)
        for role in ROLES:
            self.pictures[role].clear()
            self.pictures[role].setText(message)
            self.captions[role].setText(role)

    def set_images(self, images: Mapping[str, np.ndarray | None], frame_ids: Mapping[str, str | None]) -> None:
        for role in ROLES:
            img = images.get(role)
            pic = self.pictures[role]
            fid = frame_ids.get(role)
            self.captions[role].setText(f"{role}: {fid.rsplit('/', 1)[-1]}" if fid else role)
            if img is None:
                self._pixmaps[role] = None
                pic.clear()
                pic.setText("not stored")
                continue
            self._pixmaps[role] = to_pixmap(img)
            self._fit(role)

    def shown(self, role: str) -> bool:
        return self._pixmaps.get(role) is not None

    def _fit(self, role: str) -> None:
        pm = self._pixmaps.get(role)
        if pm is not None:
            pic = self.pictures[role]
            pic.setPixmap(pm.scaled(pic.size(), Qt.AspectRatioMode.KeepAspectRatio,
                                    Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        for role in ROLES:
            self._fit(role)
