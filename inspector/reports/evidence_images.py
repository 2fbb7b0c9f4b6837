"""Evidence images as a report shows them: every worker's head redacted (:mod:`inspector.reports.anonymise`),
the worker the incident is about outlined, shrunk and encoded as JPEG for the PDF.

No image leaves here unredacted: a frame with no stored person or hard-hat box (so nowhere known
to look for heads) is blurred whole rather than shown as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inspector.reports.anonymise import anonymise_frame, redact
from inspector.reports.incident_data import EvidenceRef

OUTLINE_BGR = (0, 0, 230)       # the incident's worker: red
MAX_SIDE = 960                  # pixels: sharp at the PDF's image sizes, small files
JPEG_QUALITY = 85


@dataclass(frozen=True)
class ShownImage:
    role: str
    frame_id: str | None
    jpeg: bytes | None          # None: nothing to show (see ``note``)
    size: tuple[int, int]       # (width, height) of the encoded image
    redacted: int               # head regions redacted
    note: str = ""              # what the reader should know (not stored, blurred whole, ...)


def _scaled(boxes: np.ndarray, sx: float, sy: float) -> np.ndarray:
    return boxes * np.array([sx, sy, sx, sy]) if len(boxes) else boxes


def prepare(ref: EvidenceRef, *, method: str = "pixelate", max_side: int = MAX_SIDE) -> ShownImage:
    """The evidence frame ``ref`` ready for a report (see the module doc)."""
    import cv2

    image = None if ref.path is None else cv2.imread(str(ref.path), cv2.IMREAD_COLOR)
    if image is None:
        return ShownImage(ref.role, ref.frame_id, None, (0, 0), 0, "image not stored (or pruned)")
    h, w = image.shape[:2]
    fw, fh = ref.frame_size or (w, h)
    sx, sy = w / fw, h / fh  # boxes are in the frame's pixels; a stored image may be smaller
    workers, hats = _scaled(ref.worker_boxes, sx, sy), _scaled(ref.hat_boxes, sx, sy)
    note = ""
    if len(workers) == 0 and len(hats) == 0:
        shown, boxes = redact(image, [(0, 0, w, h)], "blur"), np.zeros((1, 4))
        note = "no person boxes stored for this frame: blurred whole"
    else:
        shown, boxes = anonymise_frame(image, workers, hat_boxes=hats, method=method)  # type: ignore[arg-type]
    if ref.incident_box is not None:
        x0, y0, x1, y1 = (int(round(v)) for v in _scaled(np.array([ref.incident_box]), sx, sy)[0])
        cv2.rectangle(shown, (x0, y0), (x1, y1), OUTLINE_BGR, max(2, round(max(w, h) / 320)))
    s = min(1.0, max_side / max(w, h))
    if s < 1.0:
        shown = cv2.resize(shown, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", shown, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return ShownImage(ref.role, ref.frame_id, None, (0, 0), 0, "image could not be encoded")
    return ShownImage(ref.role, ref.frame_id, buf.tobytes(), (shown.shape[1], shown.shape[0]), len(boxes), note)


__all__ = ["ShownImage", "prepare"]
