"""numpy image -> QImage / QPixmap (frames are OpenCV BGR or grey, 8 or 16 bit)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage, QPixmap


def to_qimage(image: np.ndarray) -> QImage:
    """A QImage that owns a copy of the pixels (the frame's buffer may be reused or freed)."""
    a = np.ascontiguousarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = np.ascontiguousarray(a[:, :, 0])
    if a.dtype == np.uint16 and a.ndim == 2:
        fmt = QImage.Format.Format_Grayscale16
    else:
        if a.dtype != np.uint8:  # float or other: scale into 8 bit for display only
            lo, hi = float(np.min(a)), float(np.max(a))
            a = np.ascontiguousarray(((a - lo) / (hi - lo or 1.0) * 255).astype(np.uint8))
        if a.ndim == 2:
            fmt = QImage.Format.Format_Grayscale8
        elif a.shape[2] == 3:
            fmt = QImage.Format.Format_BGR888
        else:  # BGRA
            fmt = QImage.Format.Format_ARGB32
    h, w = a.shape[:2]
    return QImage(a.data, w, h, a.strides[0], fmt).copy()


def to_pixmap(image: np.ndarray) -> QPixmap:
    return QPixmap.fromImage(to_qimage(image))
