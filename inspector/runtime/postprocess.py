"""Decode raw YOLOv8/YOLO11 detect output, class-aware NMS, and exact mapping back to the image.

The ONNX detect head of ultralytics (exported with ``nms=False``) outputs ``(B, 4 + nc, A)``:
per anchor ``cx, cy, w, h`` in model-input pixels followed by ``nc`` sigmoid class scores (no
objectness). Some converters emit the transposed ``(B, A, 4 + nc)``; both are accepted, anything
else is refused with the expected and the actual shape.

Order of work per image, cheapest filter first: best class score per anchor -> confidence
threshold (strict ``>``, like ultralytics) -> top-``max_candidates`` by score -> class-aware NMS on
the few survivors (OpenCV, C++), stopping once ``max_det`` boxes are kept -> inverse letterbox.

Output values are checked on the way (:class:`ModelOutputError`): a NaN or an infinity in the box
rows, or a best class score that is NaN, infinite or outside [0, 1] (+- ``SCORE_EPS``), means a
broken model (fp16 overflow, a head exported without its sigmoid, a corrupted engine) whose
"nothing found" would pass a unit. Since ``max`` propagates NaN and +inf, the per-anchor best
score (computed anyway) covers every class score; the cost is one pass over the 4 box rows.
The whole batch then fails (the station records ERROR for its units, naming the model).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from inspector.runtime.preprocess import Letterbox

# Like ultralytics' ``max_nms``: a bound on NMS work when a model (or a low threshold) floods candidates.
MAX_CANDIDATES = 30000

PerImage = tuple[np.ndarray, np.ndarray, np.ndarray]  # xyxy float32 (N, 4), score float32, class_id int32


# Sigmoid scores lie in [0, 1]; fp16 rounding may reach a hair past either end.
SCORE_EPS = 1e-3


class OutputShapeError(ValueError):
    """The model output does not have the raw YOLO detect layout for the configured classes."""


class ModelOutputError(ValueError):
    """The model output holds values no working detect head produces (NaN, infinities, scores
    outside [0, 1]); the message names the model and what was wrong."""


def output_value_problem(pred: np.ndarray, best: np.ndarray, channels_first: bool) -> str | None:
    """What is wrong with one image's raw output, or None. ``best``: the per-anchor best class score."""
    if best.size == 0:
        return None
    boxes = pred[:4] if channels_first else pred[:, :4]
    problems = []
    if not np.isfinite(boxes).all():
        problems.append(f"{int(np.count_nonzero(~np.isfinite(boxes)))} box value(s) are NaN or infinite")
    lo, hi = float(best.min()), float(best.max())  # NaN propagates through both
    if not (np.isfinite(lo) and np.isfinite(hi)):
        problems.append(f"class scores of {int(np.count_nonzero(~np.isfinite(best)))} anchor(s) are NaN or infinite")
    elif hi > 1.0 + SCORE_EPS or lo < -SCORE_EPS:
        problems.append(f"class scores range {lo:.4g}..{hi:.4g}, outside [0, 1] (is the sigmoid missing?)")
    return "; ".join(problems) or None


def check_output_layout(shape: Sequence[int | str | None], num_classes: int) -> bool:
    """True for (B, 4+nc, A) (channels first), False for (B, A, 4+nc); raise otherwise.

    Symbolic (dynamic) dimensions are accepted anywhere except the one that must equal 4+nc.
    """
    c = 4 + num_classes
    expected = f"(batch, {c}, anchors) or (batch, anchors, {c}) for {num_classes} classes"
    if len(shape) != 3:
        raise OutputShapeError(f"model output has shape {tuple(shape)}; expected {expected}")
    if shape[1] == c:
        return True
    if shape[2] == c:
        return False
    hint = ""
    if shape[1] == c + 1 or shape[2] == c + 1:
        hint = " (this looks like a YOLOv5-style output with objectness, which is not supported)"
    elif shape[2] in (6, 7) or shape[1] in (6, 7):
        hint = " (this looks like a model exported with NMS inside; export with nms=False)"
    else:
        hint = " (the model's class count does not match the configured class names)"
    raise OutputShapeError(f"model output has shape {tuple(shape)}; expected {expected}{hint}")


def select_candidates(
    pred: np.ndarray, channels_first: bool, conf: float, max_candidates: int = MAX_CANDIDATES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw output -> (cxcywh (K, 4) float32, best score (K,), class id (K,)) above ``conf``;
    :class:`ModelOutputError` when the output holds impossible values."""
    cls = pred[4:] if channels_first else pred[:, 4:]
    axis = 0 if channels_first else 1
    best = cls.max(axis=axis)  # over contiguous rows when channels first: one vectorised pass
    problem = output_value_problem(pred, best, channels_first)
    if problem is not None:  # NaN fails every `> conf`: without this a broken model finds "nothing"
        raise ModelOutputError(problem)
    idx = np.flatnonzero(best > conf)
    if idx.size > max_candidates:  # keep the top-k by score; order among them does not matter here
        idx = idx[np.argpartition(best[idx], idx.size - max_candidates)[idx.size - max_candidates :]]
    sel = pred[:, idx].T if channels_first else pred[idx]  # (K, 4+nc), small
    scores = best[idx]
    class_id = sel[:, 4:].argmax(axis=1).astype(np.int32)
    return np.ascontiguousarray(sel[:, :4], dtype=np.float32), scores.astype(np.float32), class_id


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    half = b[:, 2:4] * 0.5
    out[:, :2] = b[:, :2] - half
    out[:, 2:] = b[:, :2] + half
    return out


def nms(
    xyxy: np.ndarray,
    scores: np.ndarray,
    class_id: np.ndarray,
    iou: float,
    agnostic: bool = False,
    max_det: int | None = None,
) -> np.ndarray:
    """Indices kept by greedy NMS, highest score first; boxes of different classes never suppress each other.

    With ``max_det``, only the first ``max_det`` kept boxes are returned, and work stops early:
    greedy NMS decides each box from higher-scored boxes only, so NMS over the top-K candidates
    keeps exactly the full run's kept boxes among those K. K starts at ``max(1000, 4 * max_det)``
    (every candidate, for a trained model at a normal threshold) and grows only while fewer than
    ``max_det`` survive - this bounds the cost when a model or a low threshold floods candidates.
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, np.int64)
    if max_det is None or max_det <= 0:
        return _nms_all(xyxy, scores, class_id, iou, agnostic)
    k = min(n, max(1000, 4 * max_det))
    # Stable order: ties stay in index order, as in OpenCV's own (stable) sort of the full set.
    order = np.argsort(-scores, kind="stable") if k < n else None
    while True:
        top = order[:k] if order is not None and k < n else np.arange(n)
        keep = top[_nms_all(xyxy[top], scores[top], class_id[top], iou, agnostic)]
        if len(keep) >= max_det or k == n:
            return keep[:max_det]
        k = min(n, int(k * max(2.0, 1.25 * max_det / max(len(keep), 1))))


def _nms_all(xyxy: np.ndarray, scores: np.ndarray, class_id: np.ndarray, iou: float, agnostic: bool) -> np.ndarray:
    """Greedy NMS over every box (OpenCV, C++), indices by descending score.

    Class separation: each class is shifted by ``class * (span + 1)`` after moving all boxes to
    non-negative coordinates, in float64 so the shift costs no precision. (OpenCV's own
    ``NMSBoxesBatched`` offsets by the max coordinate only, which lets boxes with negative
    coordinates - common before clipping - reach into the previous class's range.)
    """
    b = xyxy.astype(np.float64)
    if not agnostic:
        lo = b.min()
        span = b.max() - lo
        b = b - lo + class_id.astype(np.float64)[:, None] * (span + 1.0)
    xywh = np.empty_like(b)
    xywh[:, :2] = b[:, :2]
    xywh[:, 2:] = b[:, 2:] - b[:, :2]
    # score_threshold 0 (OpenCV asserts >= 0): the confidence filter already ran (strict >, like ultralytics).
    keep = cv2.dnn.NMSBoxes(xywh, scores.astype(np.float32), 0.0, float(iou))
    keep = np.asarray(keep, dtype=np.int64).reshape(-1)
    # OpenCV returns them by descending score (stable for ties); make that a guarantee.
    return keep[np.argsort(-scores[keep], kind="stable")]


def postprocess(
    output: np.ndarray,
    letterboxes: Sequence[Letterbox],
    num_classes: int,
    *,
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
    max_candidates: int = MAX_CANDIDATES,
    agnostic: bool = False,
    model: str = "model",
) -> list[PerImage]:
    """Raw batch output -> per image (xyxy in original pixels, score, class id), best first.
    ``model`` names the model in a :class:`ModelOutputError`."""
    if output.dtype != np.float32:
        output = output.astype(np.float32)
    channels_first = check_output_layout(output.shape, num_classes)
    if output.shape[0] < len(letterboxes):
        raise OutputShapeError(f"model output has batch {output.shape[0]} for {len(letterboxes)} images")
    results: list[PerImage] = []
    for b, lb in enumerate(letterboxes):
        try:
            cxcywh, scores, class_id = select_candidates(output[b], channels_first, conf, max_candidates)
        except ModelOutputError as e:
            raise ModelOutputError(f"model {model} output for image {b + 1} of {len(letterboxes)}: {e}") from None
        xyxy = cxcywh_to_xyxy(cxcywh)
        keep = nms(xyxy, scores, class_id, iou, agnostic, max_det)
        results.append((lb.to_original(xyxy[keep]), scores[keep], class_id[keep]))
    return results
