"""Anonymised evidence: the heads of every person box are pixelated (or blurred) before an image or
a clip leaves the station.

Where faces are: the head part of each worker box (:func:`head_regions`: the top ``head_fraction``
of the box over its whole width, padded, reaching above the box), plus the region under each hard hat when hat boxes are
given (:func:`hat_head_regions`: a head is under a hat even where the worker box was missed).
OpenCV's Haar face cascades are not used: opencv-python-headless 5 ships neither the cascade
files (``cv2.data`` holds none) nor ``cv2.CascadeClassifier``; :func:`find_faces` says so with
:class:`FaceFinderUnavailable` where that is the case, and uses them where they exist.

Redaction works on pixel ranges ``[floor(x0), ceil(x1))``: a box's partly covered pixels count as
covered, so rounding never leaves a sliver of a face. :func:`head_coverage` measures, per head box
(e.g. the synthetic site's exact heads), which share of its pixels a set of redacted boxes covers;
it is how the tests and ``bench/bench_anonymise.py`` prove that no head leaves in the clear.

Nothing here touches the store: the caller gives the worker boxes of each image (the station
reads them from the stored detections of that frame).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Method = Literal["pixelate", "blur"]
METHODS: tuple[str, ...] = ("pixelate", "blur")
HEAD_FRACTION = 0.3   # the same default as the site's PPE association (site.ppe.head_fraction)
PAD = 0.15
BLOCKS = 8            # pixelation cells along a region's longer side: a head spans about 3 of them
FOURCC = "mp4v"       # what the station's evidence clips use (inspector.store.clips)

#: Per clip frame (index, decoded BGR image) -> the worker boxes to anonymise in it.
BoxesFor = Callable[[int, np.ndarray], np.ndarray]


class FaceFinderUnavailable(RuntimeError):
    """This OpenCV build has no Haar face cascade (files or classifier)."""


class ClipMismatch(ValueError):
    """The boxes given for a clip do not match its frames; nothing was written."""


def _xyxy(boxes: object) -> np.ndarray:
    a = np.asarray(boxes, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 4), np.float64)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"boxes must be an (n, 4) array of x0, y0, x1, y1, got shape {a.shape}")
    return a


def _clip_to(regions: np.ndarray, image_size: tuple[int, int] | None) -> np.ndarray:
    if image_size is None or len(regions) == 0:
        return regions
    w, h = image_size
    regions[:, [0, 2]] = regions[:, [0, 2]].clip(0, w)
    regions[:, [1, 3]] = regions[:, [1, 3]].clip(0, h)
    return regions


def head_regions(worker_xyxy: object, head_fraction: float = HEAD_FRACTION, pad: float = PAD,
                 image_size: tuple[int, int] | None = None) -> np.ndarray:
    """The head part of person boxes: the top ``head_fraction`` of each box over its whole width,
    grown by ``pad`` times the box width on each side and ``pad`` times the box height above and
    below; clipped to ``image_size`` (width, height) when given. float64[n, 4].

    The pad above is relative to the whole box because a detector's box of a partly hidden worker
    can start at the neck (measured on the shipped model: bench/bench_anonymise.py)."""
    if not 0 < head_fraction <= 1 or pad < 0:
        raise ValueError(f"head_fraction must be in (0, 1] and pad >= 0, got {head_fraction}, {pad}")
    b = _xyxy(worker_xyxy)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    out = np.stack([b[:, 0] - pad * w, b[:, 1] - pad * h, b[:, 2] + pad * w, b[:, 1] + (head_fraction + pad) * h],
                   axis=1)
    return _clip_to(out, image_size)


def hat_head_regions(hat_xyxy: object, pad: float = PAD, image_size: tuple[int, int] | None = None) -> np.ndarray:
    """The head under each hard-hat box: the hat's width grown by ``pad`` each side, from the hat's
    top down to 1.6 hat heights below its brim (a face is about as tall as a hat is wide)."""
    b = _xyxy(hat_xyxy)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    out = np.stack([b[:, 0] - pad * w, b[:, 1], b[:, 2] + pad * w, b[:, 3] + np.maximum(1.6 * h, 0.9 * w)], axis=1)
    return _clip_to(out, image_size)


def _pixel_ranges(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    """Integer [x0, y0, x1, y1) pixel ranges that contain each box (partial pixels included)."""
    if len(boxes) == 0:
        return np.zeros((0, 4), np.int64)
    r = np.concatenate([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])], axis=1)
    r[:, [0, 2]] = r[:, [0, 2]].clip(0, w)
    r[:, [1, 3]] = r[:, [1, 3]].clip(0, h)
    return r.astype(np.int64)


def redact(image: np.ndarray, boxes: object, method: Method = "pixelate", blocks: int = BLOCKS) -> np.ndarray:
    """A copy of ``image`` with each box pixelated (cells of about 1/``blocks`` of the box's longer
    side, at least 4 pixels) or blurred (a Gaussian as wide as a third of the box); never in place."""
    import cv2

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    out = np.array(image, copy=True)
    h, w = out.shape[:2]
    for x0, y0, x1, y1 in _pixel_ranges(_xyxy(boxes), w, h):
        bw, bh = int(x1 - x0), int(y1 - y0)
        if bw <= 0 or bh <= 0:
            continue
        roi = out[y0:y1, x0:x1]
        if method == "pixelate":
            cell = max(4, math.ceil(max(bw, bh) / blocks))
            small = cv2.resize(roi, (max(1, math.ceil(bw / cell)), max(1, math.ceil(bh / cell))),
                               interpolation=cv2.INTER_AREA)
            roi[...] = cv2.resize(small, (bw, bh), interpolation=cv2.INTER_NEAREST).reshape(roi.shape)
        else:
            k = max(3, (max(bw, bh) // 3) | 1)
            roi[...] = cv2.GaussianBlur(roi, (k, k), 0).reshape(roi.shape)
    return out


def _cascade():
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    path = Path(folder or "") / "haarcascade_frontalface_default.xml"
    if not hasattr(cv2, "CascadeClassifier") or not folder or not path.is_file():
        raise FaceFinderUnavailable(f"OpenCV {cv2.__version__} ships no Haar face cascade"
                                    " (opencv-python-headless 5 has neither the files nor CascadeClassifier)")
    return cv2.CascadeClassifier(str(path))


def faces_available() -> bool:
    """Whether :func:`find_faces` can run with this OpenCV."""
    try:
        _cascade()
    except FaceFinderUnavailable:
        return False
    return True


def find_faces(image: np.ndarray, min_size: int = 12) -> np.ndarray:
    """Frontal faces found by OpenCV's Haar cascade, float64[n, 4] xyxy; raises
    :class:`FaceFinderUnavailable` where the cascade is not shipped (the default build)."""
    import cv2

    cascade = _cascade()
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=4, minSize=(min_size, min_size))
    f = np.asarray(found, np.float64).reshape(-1, 4)
    return np.concatenate([f[:, :2], f[:, :2] + f[:, 2:]], axis=1)


def anonymise_frame(image: np.ndarray, worker_boxes: object, *, hat_boxes: object = (),
                    head_fraction: float = HEAD_FRACTION, pad: float = PAD, method: Method = "pixelate",
                    faces: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``image`` with the heads of its workers redacted (a new image) and the boxes redacted
    (float64[n, 4]: worker head regions, then regions under hats, then faces when ``faces`` and
    the cascade exists)."""
    size = (image.shape[1], image.shape[0])
    parts = [head_regions(worker_boxes, head_fraction, pad, size), hat_head_regions(hat_boxes, pad, size)]
    if faces and faces_available():
        parts.append(find_faces(image))
    boxes = np.concatenate(parts, axis=0)
    return redact(image, boxes, method), boxes


def covered_mask(boxes: object, image_size: tuple[int, int]) -> np.ndarray:
    """bool[h, w]: the pixels :func:`redact` changes for ``boxes``."""
    w, h = image_size
    mask = np.zeros((h, w), bool)
    for x0, y0, x1, y1 in _pixel_ranges(_xyxy(boxes), w, h):
        mask[y0:y1, x0:x1] = True
    return mask


def head_coverage(head_xyxy: object, covered_boxes: object, image_size: tuple[int, int]) -> np.ndarray:
    """Per head box: the share of its pixels (partial pixels included) that ``covered_boxes``
    redact, float64[n] (1.0 = fully covered; a head of no pixels counts as covered). Vectorised
    with a summed-area table of the covered mask."""
    w, h = image_size
    heads = _pixel_ranges(_xyxy(head_xyxy), w, h)
    if len(heads) == 0:
        return np.zeros(0, np.float64)
    sat = np.zeros((h + 1, w + 1), np.int64)
    sat[1:, 1:] = covered_mask(covered_boxes, image_size).cumsum(0).cumsum(1)
    x0, y0, x1, y1 = heads.T
    inside = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
    area = (x1 - x0) * (y1 - y0)
    return np.where(area > 0, inside / np.maximum(area, 1), 1.0)


@dataclass(frozen=True)
class ClipResult:
    """What :func:`anonymise_clip` wrote."""

    path: str
    frames: int
    fps: float
    size: tuple[int, int]          # width, height
    boxes: tuple[np.ndarray, ...]  # the redacted boxes of each frame
    seconds: float


def anonymise_clip(src_mp4: str | Path, dst_mp4: str | Path, boxes_per_frame: Sequence[object] | BoxesFor, *,
                   hat_boxes_per_frame: Sequence[object] | None = None, head_fraction: float = HEAD_FRACTION,
                   pad: float = PAD, method: Method = "pixelate", faces: bool = False) -> ClipResult:
    """Decode ``src_mp4``, anonymise every frame with its worker boxes (a sequence, one entry per
    frame, or a callback ``(index, image) -> boxes``; hard-hat boxes likewise in
    ``hat_boxes_per_frame``) and write ``dst_mp4`` (same fps and size,
    'mp4v'). ``dst_mp4`` appears whole or not at all (a temporary file renamed into place); a
    sequence whose length is not the clip's frame count raises :class:`ClipMismatch` and writes
    nothing: a frame without boxes must never leave unredacted."""
    import cv2

    t0 = time.perf_counter()
    dst = Path(dst_mp4)
    cap = cv2.VideoCapture(str(src_mp4))
    if not cap.isOpened():
        raise OSError(f"{src_mp4}: OpenCV cannot open it")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 10.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.{uuid.uuid4().hex}.mp4"
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*FOURCC), fps, size)
    done: list[np.ndarray] = []
    try:
        if not writer.isOpened():
            raise OSError(f"OpenCV cannot open an {FOURCC} writer for {tmp}")
        while True:
            ok, image = cap.read()
            if not ok:
                break
            i = len(done)
            if callable(boxes_per_frame):
                workers = boxes_per_frame(i, image)
            elif i < len(boxes_per_frame):
                workers = boxes_per_frame[i]
            else:
                raise ClipMismatch(f"{src_mp4}: boxes for {len(boxes_per_frame)} frames, but the clip has more")
            hats = hat_boxes_per_frame[i] if hat_boxes_per_frame is not None and i < len(hat_boxes_per_frame) else ()
            out, boxes = anonymise_frame(image, workers, hat_boxes=hats, head_fraction=head_fraction, pad=pad,
                                         method=method, faces=faces)
            writer.write(out)
            done.append(boxes)
        if not callable(boxes_per_frame) and len(boxes_per_frame) != len(done):
            raise ClipMismatch(f"{src_mp4}: boxes for {len(boxes_per_frame)} frames, the clip has {len(done)}")
        if not done:
            raise ClipMismatch(f"{src_mp4}: no frame could be decoded")
        writer.release()
        os.replace(tmp, dst)
    except BaseException:
        writer.release()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        cap.release()
    return ClipResult(str(dst), len(done), fps, size, tuple(done), round(time.perf_counter() - t0, 3))


__all__ = ["BLOCKS", "HEAD_FRACTION", "METHODS", "PAD", "BoxesFor", "ClipMismatch", "ClipResult",
           "FaceFinderUnavailable", "anonymise_clip", "anonymise_frame", "covered_mask", "faces_available",
           "find_faces", "hat_head_regions", "head_coverage", "head_regions", "redact"]
