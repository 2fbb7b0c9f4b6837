"""One evaluation's figures (:class:`EvalReport`) from per-image predictions and truths
(:func:`evaluate_detections`); the definitions are in :mod:`training.metrics`."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.core.detections import Detections
from inspector.core.geometry import box_iou
from training.metrics.matching import COCO_IOU_THRESHOLDS, RECALL_POINTS, agnostic_match, ap_from_tp, greedy_match

ECE_BINS = 15


def _nan_to_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _ratio(num: np.ndarray, den: np.ndarray, undefined: np.ndarray | None = None) -> np.ndarray:
    """num / den, 0 where den is 0, NaN where ``undefined``."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    if undefined is not None:
        out = np.where(undefined, np.nan, out)
    return out


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    p, r = np.asarray(p, np.float64), np.asarray(r, np.float64)
    s = p + r
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, 2 * p * r / np.where(s > 0, s, 1), np.where(np.isnan(s), np.nan, 0.0))


@dataclass
class EvalReport:
    """Every figure of one evaluation; ``to_json()`` gives plain data."""

    class_names: tuple[str, ...]
    iou_thresholds: np.ndarray  # (T,)
    ap: np.ndarray  # (C, T), NaN for classes without truths
    ap50: np.ndarray  # (C,)
    ap33: np.ndarray  # (C,)
    support: np.ndarray  # (C,) truths per class
    n_predictions: np.ndarray  # (C,) predictions at or above the operating threshold
    thresholds: np.ndarray  # (C,) operating thresholds
    tp: np.ndarray  # (C,) at the operating thresholds, IoU 0.5
    fp: np.ndarray
    fn: np.ndarray
    confusion: np.ndarray  # (C + 1, C + 1): rows true, columns predicted; last = background
    ece: float
    reliability: dict[str, list[float]]  # per bin: lower edge, mean confidence, accuracy, count
    pr_curves: np.ndarray  # (C, 101): envelope precision at the 101 recall points, IoU 0.5
    n_images: int
    n_truths: int
    interpolation: str = "interp101"
    ece_min_score: float = 0.05

    # --- derived figures ------------------------------------------------------------------------
    @property
    def has_truth(self) -> np.ndarray:
        return self.support > 0

    def _map(self, per_class: np.ndarray) -> float:
        sel = per_class[self.has_truth]
        return float(sel.mean()) if sel.size else float("nan")

    @property
    def ap50_95(self) -> np.ndarray:
        return self.ap.mean(axis=1)

    @property
    def map50(self) -> float:
        return self._map(self.ap50)

    @property
    def map50_95(self) -> float:
        return self._map(self.ap50_95)

    @property
    def map33(self) -> float:
        return self._map(self.ap33)

    @property
    def class_precision(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fp, (self.tp + self.fp == 0) & (self.support == 0))

    @property
    def class_recall(self) -> np.ndarray:
        return _ratio(self.tp, self.support, self.support == 0)

    @property
    def class_f1(self) -> np.ndarray:
        return _f1(self.class_precision, self.class_recall)

    @property
    def precision(self) -> float:
        tp, fp = int(self.tp.sum()), int(self.fp.sum())
        return tp / (tp + fp) if tp + fp else (float("nan") if self.n_truths == 0 else 0.0)

    @property
    def recall(self) -> float:
        return int(self.tp.sum()) / self.n_truths if self.n_truths else float("nan")

    @property
    def f1(self) -> float:
        return float(_f1(np.array([self.precision]), np.array([self.recall]))[0])

    def to_json(self) -> dict[str, Any]:
        """Plain dict (JSON-safe: NaN becomes None)."""
        names = self.class_names
        p, r, f = self.class_precision, self.class_recall, self.class_f1
        per_class = {}
        for i, n in enumerate(names):
            per_class[n] = {k: _nan_to_none(float(v)) if isinstance(v, (float, np.floating)) else v for k, v in {
                "ap50": self.ap50[i], "ap50_95": self.ap50_95[i], "ap33": self.ap33[i],
                "precision": p[i], "recall": r[i], "f1": f[i], "support": int(self.support[i]),
                "threshold": self.thresholds[i], "predictions": int(self.n_predictions[i]),
                "tp": int(self.tp[i]), "fp": int(self.fp[i]), "fn": int(self.fn[i]),
            }.items()}
        has = self.has_truth

        def macro(v: np.ndarray) -> float | None:
            sel = v[has]
            sel = sel[~np.isnan(sel)]
            return float(sel.mean()) if sel.size else None

        out = {
            "map50": self.map50, "map50_95": self.map50_95, "map33": self.map33,
            "precision": self.precision, "recall": self.recall, "f1": self.f1, "ece": self.ece,
            "precision_macro": macro(p), "recall_macro": macro(r), "f1_macro": macro(f),
            "per_class": per_class,
            "confusion": {"matrix": self.confusion.astype(int).tolist(), "labels": [*names, "background"],
                          "rows": "true class", "columns": "predicted class", "iou": 0.5,
                          "matching": "class-agnostic, greedy by score, at the operating thresholds"},
            "calibration": {"bins": ECE_BINS, "min_score": self.ece_min_score, **self.reliability},
            "iou_thresholds": [round(float(t), 4) for t in self.iou_thresholds],
            "ap_interpolation": self.interpolation,
            "n_images": self.n_images, "n_truths": self.n_truths,
            "n_predictions": int(self.n_predictions.sum()),
        }
        return {k: _nan_to_none(v) if isinstance(v, float) else v for k, v in out.items()}


def resolve_thresholds(
    operating_thresholds: Mapping[str | int, float] | float | None,
    class_names: Sequence[str],
    default: float = 0.25,
) -> np.ndarray:
    """Per-class operating thresholds (C,) from a float, or a mapping of class name / id -> threshold.

    Classes not in the mapping get ``default`` (the keys ``"default"`` and ``"*"`` also set it).
    """
    c = len(class_names)
    if operating_thresholds is None:
        return np.full(c, float(default))
    if isinstance(operating_thresholds, (int, float, np.floating)) and not isinstance(operating_thresholds, bool):
        return np.full(c, float(operating_thresholds))
    m = dict(operating_thresholds)
    for key in ("default", "*"):
        if key in m and key not in class_names:
            default = float(m.pop(key))
    out = np.full(c, float(default))
    for k, v in m.items():
        if isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            if not 0 <= int(k) < c:
                raise ValueError(f"operating threshold for class id {k}: the model has classes 0..{c - 1}")
            i = int(k)
        elif k in class_names:
            i = list(class_names).index(k)
        else:
            raise ValueError(f"operating threshold for unknown class {k!r}; classes are {list(class_names)}")
        out[i] = float(v)
    if np.any((out < 0) | (out > 1)):
        raise ValueError(f"operating thresholds must be within [0, 1], got {out.tolist()}")
    return out


def evaluate_detections(
    preds: Sequence[Detections],
    truths: Sequence[Detections],
    class_names: Sequence[str],
    *,
    operating_thresholds: Mapping[str | int, float] | float = 0.25,
    default_threshold: float = 0.25,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
    interpolation: str = "interp101",
    ece_min_score: float = 0.05,
) -> EvalReport:
    """Evaluate per-image predictions against per-image truths (boxes in the same pixel frame).

    ``preds`` should hold every prediction down to a low score (0.001) for mAP; the operating
    thresholds select the ones the station would keep for P / R / F1 and the confusion matrix.
    See the module docstring for the exact definitions.
    """
    if len(preds) != len(truths):
        raise ValueError(f"evaluate_detections: {len(preds)} prediction sets for {len(truths)} images")
    if interpolation not in ("interp101", "coco101"):
        raise ValueError(f"interpolation must be 'interp101' or 'coco101', got {interpolation!r}")
    names = tuple(class_names)
    c = len(names)
    if c == 0:
        raise ValueError("evaluate_detections: no class names")
    user_thr = np.round(np.asarray(iou_thresholds, dtype=np.float64).ravel(), 6)
    if user_thr.size == 0 or np.any((user_thr <= 0) | (user_thr > 1)):
        raise ValueError(f"IoU thresholds must be in (0, 1], got {user_thr.tolist()}")
    all_thr = np.unique(np.concatenate([user_thr, [0.5, 0.33]]))
    col_user = np.searchsorted(all_thr, user_thr)
    col50, col33 = int(np.searchsorted(all_thr, 0.5)), int(np.searchsorted(all_thr, 0.33))
    op_thr = resolve_thresholds(operating_thresholds, names, default_threshold)

    confs, classes, corrects, above_list = [], [], [], []
    truth_classes = []
    confusion = np.zeros((c + 1, c + 1), dtype=np.int64)
    for img_i, (p, t) in enumerate(zip(preds, truths)):
        for what, d in (("prediction", p), ("truth", t)):
            if len(d) and (d.class_id.min() < 0 or d.class_id.max() >= c):
                raise ValueError(f"image {img_i}: {what} class id outside 0..{c - 1}")
        p = p.sorted_by_score()
        iou = box_iou(t.xyxy, p.xyxy)  # (truths, preds)
        same = t.class_id[:, None] == p.class_id[None, :]
        corrects.append(greedy_match(np.where(same, iou, 0.0), all_thr))
        confs.append(p.score)
        classes.append(p.class_id)
        truth_classes.append(t.class_id)
        above = p.score >= op_thr[p.class_id]
        above_list.append(above)
        # confusion: class-agnostic matching of the kept predictions
        kept = np.flatnonzero(above)
        taken = agnostic_match(iou[:, kept], 0.5)
        rows = t.class_id[np.maximum(taken, 0)] if len(t) else np.zeros(len(kept), np.int32)
        np.add.at(confusion, (np.where(taken >= 0, rows, c), p.class_id[kept]), 1)  # row c: background
        missed = np.ones(len(t), dtype=bool)
        missed[taken[taken >= 0]] = False
        np.add.at(confusion, (t.class_id[missed], c), 1)

    conf = np.concatenate(confs).astype(np.float64) if confs else np.zeros(0)
    cls = np.concatenate(classes) if classes else np.zeros(0, np.int32)
    correct = np.concatenate(corrects) if corrects else np.zeros((0, len(all_thr)), bool)
    above = np.concatenate(above_list) if above_list else np.zeros(0, bool)
    tcls = np.concatenate(truth_classes) if truth_classes else np.zeros(0, np.int32)
    support = np.bincount(tcls, minlength=c)

    # AP per class, all thresholds at once. Ties in score keep image order (stable sort).
    order = np.argsort(-conf, kind="stable")
    conf, cls, correct, above = conf[order], cls[order], correct[order], above[order]
    ap_all = np.full((c, len(all_thr)), np.nan)
    pr = np.zeros((c, len(RECALL_POINTS)))
    for k in range(c):
        if support[k] == 0:
            continue
        sel = cls == k
        ap_k, sampled = ap_from_tp(correct[sel], int(support[k]), interpolation)
        ap_all[k] = ap_k
        pr[k] = sampled[col50]

    # operating point at IoU 0.5
    tp = np.bincount(cls[above & correct[:, col50]], minlength=c)
    n_pred = np.bincount(cls[above], minlength=c)
    fp = n_pred - tp
    fn = support - tp

    # calibration
    keep = conf >= ece_min_score
    s, ok = conf[keep], correct[keep, col50].astype(np.float64)
    b = np.minimum((s * ECE_BINS).astype(np.int64), ECE_BINS - 1)
    cnt = np.bincount(b, minlength=ECE_BINS).astype(np.float64)
    sum_conf = np.bincount(b, weights=s, minlength=ECE_BINS)
    sum_ok = np.bincount(b, weights=ok, minlength=ECE_BINS)
    ece = float(np.abs(sum_ok - sum_conf).sum() / cnt.sum()) if cnt.sum() else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = {
            "lower_edges": (np.arange(ECE_BINS) / ECE_BINS).round(6).tolist(),
            "confidence": [_nan_to_none(float(v)) for v in sum_conf / cnt],
            "accuracy": [_nan_to_none(float(v)) for v in sum_ok / cnt],
            "count": cnt.astype(int).tolist(),
        }

    ap_user = ap_all[:, col_user]
    return EvalReport(
        class_names=names, iou_thresholds=user_thr, ap=ap_user, ap33=ap_all[:, col33], support=support,
        n_predictions=n_pred, thresholds=op_thr, tp=tp, fp=fp, fn=fn, confusion=confusion, ece=ece,
        reliability=reliability, pr_curves=pr, n_images=len(preds), n_truths=int(support.sum()),
        interpolation=interpolation, ece_min_score=float(ece_min_score),
        ap50=ap_all[:, col50],
    )

