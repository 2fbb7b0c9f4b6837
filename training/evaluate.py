"""Evaluation of a detector on a YOLO dataset split: mAP, operating-point P/R/F1, confusion, calibration.

Metric definitions (all in this file, numpy only; nothing is delegated to ultralytics):

* Matching (mAP, P/R/F1, ECE): per image, predictions in descending score order; each takes the
  not-yet-claimed truth *of its own class* with the highest IoU, and is a true positive at IoU
  threshold t when that IoU >= t. Claims are tracked per threshold, as COCO and ultralytics do.
* AP: per class and IoU threshold, precision = cumTP / (cumTP + cumFP) and recall = cumTP / n_truths
  over the predictions sorted by score (all images pooled). The precision *envelope* (running max from
  the high-recall end, with sentinels (0, 1) and (r_max, 0), (1, 0)) is sampled at the 101 recall points
  0, 0.01, ..., 1 by **linear interpolation** and integrated with the **trapezoidal rule**
  (``interpolation="interp101"``, the default). This is what ultralytics' ``compute_ap`` does, so on
  the same predictions our AP equals its own (pinned by a test against ``ap_per_class``: identical).
  One consequence is kept for comparability with training logs: at recall 1 ``np.interp`` reads the
  (1, 0) sentinel, so a perfect class scores 0.995, not 1. ``interpolation="coco101"`` gives
  pycocotools' rule instead (perfect = 1): the envelope read at the first point whose recall reaches
  each of the 101 recall points (0 beyond the last recall), averaged. The two differ by a fraction of
  a point on real curves.
  ``yolo val`` scores somewhat different *predictions* than ``predict`` and the station do: its NMS is
  multi-label (one box may count for several classes) and its rect batches pad a 320 px image to 352.
  With both turned off it agrees with ``evaluate_model`` within 0.05 mAP50 / 0.5 mAP50-95 points.
* mAP: mean over the classes that have at least one truth in the split (classes that never occur
  are left out, as in COCO and ultralytics); ``map50_95`` averages the IoU thresholds 0.50:0.05:0.95;
  ``map33`` is mAP at IoU 0.33 (DeepPCB's official protocol).
* Operating point: a prediction counts when its score >= the class's operating threshold (the station's
  ``class_threshold`` rule, or ``--thresholds``); TP/FP/FN at IoU 0.5 with the same-class matching above.
  Because matching is greedy by score within a class, the matches of the kept predictions are exactly
  those of the full run. Overall precision / recall / F1 are *micro* averages (pooled counts: what the
  line sees); ``precision_macro`` etc. are the class means. Undefined ratios (no predictions and no
  truths) are NaN, written as ``null`` in JSON; a class with truths and no predictions has precision 0.
* Confusion matrix: predictions above the operating thresholds, IoU 0.5, *class-agnostic* greedy
  matching by score (so a box of the wrong class shows up as a confusion rather than FP + FN).
  Rows are the true class, columns the predicted class; the last row / column is "background"
  (row background = false positives, column background = missed truths).
* ECE: all predictions with score >= ``ece_min_score``, 15 equal-width confidence bins on [0, 1];
  a prediction is correct when it matched a same-class truth at IoU 0.5;
  ECE = sum_b n_b / N * |accuracy_b - mean confidence_b|.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.core.detections import Detections
from inspector.core.geometry import box_iou

log = logging.getLogger(__name__)

COCO_IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 6)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
ECE_BINS = 15
IMAGE_SUFFIXES = (".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic")
MAX_ONNX_DELTA_POINTS = 0.5  # PyTorch vs station runtime: larger gaps mean a pre/post-processing bug


# ================================================================================================
# Matching
# ================================================================================================
def _greedy_match(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``iou`` (truths, preds) with preds in descending score order -> correct (preds, T) bool.

    Each prediction claims the best not-yet-claimed truth (per threshold) and is correct when that
    IoU reaches the threshold. Only predictions that reach the lowest threshold with some truth are
    visited, so the Python loop is short even with thousands of low-score predictions.
    """
    n_t, n_p = iou.shape
    correct = np.zeros((n_p, len(thresholds)), dtype=bool)
    if n_t == 0 or n_p == 0:
        return correct
    claimed = np.zeros((n_t, len(thresholds)), dtype=bool)
    cols = np.arange(len(thresholds))
    for j in np.flatnonzero((iou >= thresholds.min()).any(axis=0)):
        avail = np.where(claimed, 0.0, iou[:, j : j + 1])  # (truths, T)
        best = avail.argmax(axis=0)
        hit = avail[best, cols] >= thresholds
        correct[j] = hit
        claimed[best[hit], cols[hit]] = True
    return correct


def _agnostic_match(iou: np.ndarray, threshold: float) -> np.ndarray:
    """Class-agnostic greedy matching: for each prediction (score order) the truth index it takes, or -1."""
    n_t, n_p = iou.shape
    taken = np.full(n_p, -1, dtype=np.int64)
    if n_t == 0 or n_p == 0:
        return taken
    free = np.ones(n_t, dtype=bool)
    for j in np.flatnonzero((iou >= threshold).any(axis=0)):
        cand = np.where(free, iou[:, j], -1.0)
        k = int(cand.argmax())
        if cand[k] >= threshold:
            taken[j] = k
            free[k] = False
    return taken


# ================================================================================================
# AP
# ================================================================================================
def _ap_from_tp(tp: np.ndarray, n_truth: int, interpolation: str = "interp101") -> tuple[np.ndarray, np.ndarray]:
    """AP for every column of ``tp`` (preds sorted by descending score, (N, T) bool) and one class.

    Returns (ap (T,), precision sampled at the 101 recall points (T, 101)). Cumulative counts and the
    envelope are computed for all thresholds at once; only the 1-D sampling loops over the thresholds.
    """
    n_thr = tp.shape[1]
    if n_truth == 0 or tp.shape[0] == 0:
        return np.zeros(n_thr), np.zeros((n_thr, len(RECALL_POINTS)))
    tpc = np.cumsum(tp, axis=0, dtype=np.float64)
    fpc = np.arange(1, tp.shape[0] + 1, dtype=np.float64)[:, None] - tpc
    recall = tpc / (n_truth + 1e-16)
    precision = tpc / (tpc + fpc)
    ones, zeros = np.ones((1, n_thr)), np.zeros((1, n_thr))
    mrec = np.concatenate([zeros, recall, recall[-1:], ones])  # (N + 3, T)
    mpre = np.concatenate([ones, precision, zeros, zeros])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre, 0), axis=0), 0)  # envelope
    sampled = np.empty((n_thr, len(RECALL_POINTS)))
    if interpolation == "interp101":
        for j in range(n_thr):  # np.interp is 1-D; T is small (10)
            sampled[j] = np.interp(RECALL_POINTS, mrec[:, j], mpre[:, j])
        ap = np.trapezoid(sampled, RECALL_POINTS, axis=1)
    elif interpolation == "coco101":
        env = mpre[1:-2]  # the envelope at the real points (sentinels dropped)
        for j in range(n_thr):
            k = np.searchsorted(recall[:, j], RECALL_POINTS, side="left")
            sampled[j] = np.where(k < len(env), env[np.minimum(k, len(env) - 1), j], 0.0)  # beyond: 0
        ap = sampled.mean(axis=1)
    else:
        raise ValueError(f"interpolation must be 'interp101' or 'coco101', got {interpolation!r}")
    return ap, sampled


# ================================================================================================
# Report
# ================================================================================================
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
        corrects.append(_greedy_match(np.where(same, iou, 0.0), all_thr))
        confs.append(p.score)
        classes.append(p.class_id)
        truth_classes.append(t.class_id)
        above = p.score >= op_thr[p.class_id]
        above_list.append(above)
        # confusion: class-agnostic matching of the kept predictions
        kept = np.flatnonzero(above)
        taken = _agnostic_match(iou[:, kept], 0.5)
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
        ap_k, sampled = _ap_from_tp(correct[sel], int(support[k]), interpolation)
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


# ================================================================================================
# Dataset
# ================================================================================================
class DatasetError(Exception):
    """A dataset or split cannot be read; the message says what was expected."""


@dataclass(frozen=True)
class YoloSplit:
    root: Path  # dataset root (data.yaml's `path`)
    data_yaml: Path | None
    split: str
    images: list[Path]
    labels: list[Path]  # one per image (the file may not exist: a background image)
    class_names: tuple[str, ...]


def _label_path(image: Path) -> Path:
    """ultralytics' convention: the last ``/images/`` folder becomes ``/labels/``, suffix ``.txt``."""
    parts = list(image.parts)
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            break
    return Path(*parts).with_suffix(".txt")


def _names_from(obj: Any, where: str) -> tuple[str, ...]:
    if isinstance(obj, Mapping):
        keys = sorted(int(k) for k in obj)
        if keys != list(range(len(keys))):
            raise DatasetError(f"{where}: class ids must be 0..n-1, got {keys}")
        return tuple(str(obj[k] if k in obj else obj[str(k)]) for k in keys)
    if isinstance(obj, (list, tuple)) and obj:
        return tuple(str(n) for n in obj)
    raise DatasetError(f"{where}: 'names' must be a list or a mapping of id -> name")


def _images_in(entry: Path, root: Path) -> list[Path]:
    if entry.is_dir():
        return sorted(p for p in entry.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if entry.is_file() and entry.suffix == ".txt":  # a list of image paths
        out = []
        for line in entry.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line:
                continue
            p = Path(line)
            if not p.is_absolute():  # "./x.png" is relative to the list (as ultralytics reads it), else to the root
                p = (entry.parent if line.startswith("./") else root) / p
            out.append(p.resolve())
        return out
    raise DatasetError(f"split entry {entry} is neither a folder of images nor a .txt list of images")


def yolo_split(dataset: Path | str, split: str = "val") -> YoloSplit:
    """Locate a split of a YOLO dataset: a ``data.yaml`` file, or a folder holding one (or holding
    ``images/<split>`` with class names in ``manifest.json`` / ``classes.txt``)."""
    import yaml

    ds = Path(dataset)
    data_yaml: Path | None = None
    if ds.is_file():
        data_yaml = ds
    elif ds.is_dir():
        for cand in ("data.yaml", "data.yml", "dataset.yaml"):
            if (ds / cand).is_file():
                data_yaml = ds / cand
                break
    else:
        raise DatasetError(f"dataset {ds} does not exist (give a data.yaml or a YOLO dataset folder)")
    if data_yaml is not None:
        try:
            data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise DatasetError(f"{data_yaml}: not valid YAML: {e}") from e
        if not isinstance(data, Mapping):
            raise DatasetError(f"{data_yaml}: expected a mapping")
        root = Path(data.get("path") or data_yaml.parent)
        if not root.is_absolute():
            root = (data_yaml.parent / root).resolve()
        if "names" not in data:
            raise DatasetError(f"{data_yaml}: no 'names' (class names)")
        names = _names_from(data["names"], str(data_yaml))
        if split not in data or data[split] in (None, ""):
            have = [k for k in ("train", "val", "test") if data.get(k)]
            raise DatasetError(f"{data_yaml}: no '{split}' split (it has: {', '.join(have) or 'none'})")
        entries = data[split] if isinstance(data[split], list) else [data[split]]
        images: list[Path] = []
        for e in entries:
            p = Path(e)
            images += _images_in(p if p.is_absolute() else root / p, root)
    else:
        root = ds.resolve()
        names_src = None
        if (root / "manifest.json").is_file():
            names_src = json.loads((root / "manifest.json").read_text(encoding="utf-8")).get("names")
        if names_src is None and (root / "classes.txt").is_file():
            names_src = [n.strip() for n in (root / "classes.txt").read_text().splitlines() if n.strip()]
        if not names_src:
            raise DatasetError(f"{root}: no data.yaml, and no class names in manifest.json or classes.txt")
        names = _names_from(names_src, str(root))
        if not (root / "images" / split).is_dir():
            raise DatasetError(f"{root}: no data.yaml and no images/{split} folder")
        images = _images_in(root / "images" / split, root)
    if not images:
        raise DatasetError(f"dataset {ds}: split '{split}' has no images")
    return YoloSplit(root, data_yaml, split, images, [_label_path(p) for p in images], names)


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) as decoded (EXIF rotation applied), from the header only."""
    from PIL import Image

    with Image.open(path) as im:
        w, h = im.size
        try:
            if im.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated by 90 degrees when decoded
                w, h = h, w
        except Exception:  # noqa: BLE001  (a broken EXIF block: keep the raw size)
            pass
    return int(w), int(h)


def _read_labels(label: Path, w: int, h: int, nc: int) -> Detections:
    if not label.is_file():
        return Detections.empty()
    boxes, classes = [], []
    for n, line in enumerate(label.read_text(encoding="utf-8").splitlines(), 1):
        vals = line.split()
        if not vals:
            continue
        try:
            c, nums = int(float(vals[0])), [float(v) for v in vals[1:]]
        except ValueError as e:
            raise DatasetError(f"{label}:{n}: not numbers: {line!r}") from e
        if not 0 <= c < nc:
            raise DatasetError(f"{label}:{n}: class {c} outside 0..{nc - 1}")
        if len(nums) == 4:
            cx, cy, bw, bh = nums
            x0, y0, x1, y1 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        elif len(nums) >= 6 and len(nums) % 2 == 0:  # a polygon (segment label): its bounding box
            xs, ys = nums[0::2], nums[1::2]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        else:
            raise DatasetError(f"{label}:{n}: expected 'class cx cy w h' or a polygon, got {len(vals)} values")
        boxes.append([x0 * w, y0 * h, x1 * w, y1 * h])
        classes.append(c)
    if not boxes:
        return Detections.empty()
    return Detections(np.array(boxes, np.float32), np.ones(len(boxes), np.float32), np.array(classes, np.int32))


def read_yolo_split(dataset: Path | str, split: str = "val") -> tuple[list[Path], list[Detections], tuple[str, ...]]:
    """Image paths, truths (pixel xyxy, score 1) and class names of one split of a YOLO dataset."""
    s = yolo_split(dataset, split)
    truths = []
    for img, lab in zip(s.images, s.labels):
        w, h = _image_size(img)
        truths.append(_read_labels(lab, w, h, len(s.class_names)))
    return s.images, truths, s.class_names


def dataset_hash(dataset: Path | str, split: str = "val") -> tuple[str, str]:
    """(hash, source): the dataset manifest's ``content_hash`` / ``hash`` when present, else the sha256
    of the split's label files in sorted order (relative path and bytes; a missing file hashes as empty)."""
    s = yolo_split(dataset, split)
    for cand in (s.root / "manifest.json", Path(dataset) / "manifest.json" if Path(dataset).is_dir() else None):
        if cand is not None and cand.is_file():
            try:
                man = json.loads(cand.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                man = {}
            for key in ("content_hash", "hash"):
                if isinstance(man, dict) and isinstance(man.get(key), str) and man[key]:
                    return man[key], f"manifest.json:{key}"
    h = hashlib.sha256()
    for lab in sorted(s.labels):
        try:
            rel = lab.relative_to(s.root).as_posix()
        except ValueError:
            rel = lab.name
        h.update(rel.encode("utf-8") + b"\0")
        h.update(lab.read_bytes() if lab.is_file() else b"")
        h.update(b"\0")
    return h.hexdigest(), f"sha256 of {len(s.labels)} label files ({split})"


# ================================================================================================
# Operating thresholds
# ================================================================================================
class EvalError(Exception):
    """An evaluation cannot run; the message says what to fix."""


def parse_threshold_args(values: Sequence[str]) -> dict[str, float] | float | None:
    """``["scratch=0.4,particle=0.3", "default=0.3"]`` -> mapping; ``["0.3"]`` -> 0.3; ``[]`` -> None."""
    out: dict[str, float] = {}
    single: float | None = None
    for v in values:
        for item in (s.strip() for s in v.split(",")):
            if not item:
                continue
            key, sep, val = item.partition("=")
            try:
                num = float(val if sep else key)
            except ValueError:
                raise EvalError(f"threshold {item!r}: expected CLASS=VALUE (or one VALUE for every class)") from None
            if not 0.0 <= num <= 1.0:
                raise EvalError(f"threshold {item!r}: the value must be within [0, 1]")
            if sep:
                out[key.strip()] = num
            else:
                single = num
    if single is not None:
        if out:
            out.setdefault("default", single)
            return out
        return single
    return out or None


def thresholds_from_config(
    config: Path | str, class_names: Sequence[str], model_name: str | None = None
) -> tuple[dict[str, float], str]:
    """The station's operating threshold per class: the larger of the model's ``conf`` and every
    ``class_threshold`` rule that applies to the class (a rule's ``classes``, its ``thresholds`` entry,
    else its ``default``). The model is the config's member whose ``registry`` or ``name`` is
    ``model_name``, else the first one. Returns (thresholds, description)."""
    from inspector.config.loader import load_config
    from inspector.config.schema import ClassThresholdRule

    cfg = load_config(config)
    spec = next((m for m in cfg.models if model_name and (m.name == model_name or
                 (m.registry or "").partition("@")[0] == model_name)), cfg.models[0])
    if tuple(spec.class_names) != tuple(class_names):
        raise EvalError(f"station config {config}: model '{spec.name}' lists classes {list(spec.class_names)}, "
                        f"the model under evaluation has {list(class_names)}")
    thr = {n: float(spec.conf) for n in class_names}
    rules = [r for r in cfg.rules if isinstance(r, ClassThresholdRule)]
    for r in rules:
        for n in class_names:
            if r.classes is None or n in r.classes:
                thr[n] = max(thr[n], float(r.thresholds.get(n, r.default)))
    ids = ", ".join(r.id for r in rules) or "none"
    return thr, f"station config {config} (model '{spec.name}' conf {spec.conf:g}; class_threshold rules: {ids})"


# ================================================================================================
# Models
# ================================================================================================
@dataclass
class ModelSource:
    """What a MODEL argument resolved to."""

    spec: str
    label: str  # short name for folders and tables
    pt: Path | None = None
    onnx: Path | None = None
    manifest: Path | None = None
    sha256: str | None = None
    class_names: tuple[str, ...] | None = None
    imgsz: tuple[int, int] | None = None
    registry: dict[str, Any] | None = None  # name, version, stage, root

    @property
    def primary(self) -> str:
        """Which runtime gives the headline figures: the deployed artifact (ONNX) for registry models
        and ONNX files, the checkpoint (PyTorch) for a .pt file."""
        return "pytorch" if self.registry is None and self.onnx is None else "onnx"


def resolve_model(spec: str | Path, registry_root: Path | str | None = None) -> ModelSource:
    """A ``.pt`` / ``.onnx`` file, or a registry ``name`` (its production version) / ``name@version``."""
    from inspector.runtime.model_artifact import load_manifest, manifest_path_for

    text = str(spec)
    p = Path(text)
    if p.suffix in (".pt", ".onnx") or p.exists():
        if not p.is_file():
            raise EvalError(f"model file {p} does not exist")
        if p.suffix == ".pt":
            label = p.parent.parent.name if p.parent.name == "weights" and p.parent.parent.name else p.stem
            return ModelSource(text, label, pt=p)
        if p.suffix != ".onnx":
            raise EvalError(f"model file {p}: expected a .pt checkpoint or an .onnx model")
        src = ModelSource(text, p.stem, onnx=p)
        man = manifest_path_for(p)
        if man.is_file():
            m = load_manifest(man)
            src.manifest, src.sha256, src.class_names, src.imgsz = man, m.sha256, m.class_names, m.imgsz
        for sib in (p.with_suffix(".pt"), p.parent / "weights.pt"):
            if sib.is_file():
                src.pt = sib
                break
        return src
    try:
        from inspector.runtime.registry import RegistryError, RegistryReader
    except ImportError:  # pragma: no cover - the registry ships with the station
        raise EvalError(f"model {text!r} is not a file, and this installation has no model registry") from None
    reader = RegistryReader(registry_root)
    try:
        r = reader.resolve(text)
    except RegistryError as e:
        raise EvalError(str(e)) from None
    src = ModelSource(text, f"{r.name}@{r.version}", onnx=r.onnx_path, manifest=r.manifest_path, sha256=r.sha256,
                      class_names=tuple(r.class_names), imgsz=tuple(r.imgsz),
                      registry={"name": r.name, "version": r.version, "stage": r.stage, "root": str(reader.root)})
    weights = r.onnx_path.parent / "weights.pt"
    if weights.is_file():
        src.pt = weights
    return src


@contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Route ultralytics' console logger and stray prints to stderr (``--json`` owns stdout)."""
    import contextlib

    handlers: list[tuple[logging.StreamHandler, Any]] = []
    if "ultralytics" in sys.modules:
        for h in logging.getLogger("ultralytics").handlers:
            if isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) in (sys.stdout, sys.__stdout__):
                handlers.append((h, h.stream))
                h.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for h, stream in handlers:
            h.setStream(stream)


class _Runtime:
    """One detector under evaluation, with its per-image timings."""

    def __init__(self, name: str, detector: Any) -> None:
        self.name, self.detector = name, detector
        self.preds: list[Detections] = []
        self.ms: list[float] = []

    def run(self, image: np.ndarray) -> None:
        t = time.perf_counter()
        det = self.detector.detect([image])[0]
        self.ms.append((time.perf_counter() - t) * 1e3)
        self.preds.append(det)

    def timing(self) -> dict[str, float | None]:
        if not self.ms:
            return {"ms_per_image_median": None, "ms_per_image_mean": None}
        return {"ms_per_image_median": round(statistics.median(self.ms), 3),
                "ms_per_image_mean": round(statistics.fmean(self.ms), 3)}


def evaluate_model(
    model_spec: str | Path,
    dataset: Path | str,
    split: str = "val",
    *,
    conf: float = 0.001,
    nms_iou: float = 0.7,
    max_det: int = 300,
    thresholds: Mapping[str, float] | float | None = None,
    config: Path | str | None = None,
    onnx: bool = True,
    imgsz: int | None = None,
    registry_root: Path | str | None = None,
    out_dir: Path | str | None = None,
    plots: bool = True,
    max_images: int | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a model on a dataset split; returns one JSON-safe dict with every figure.

    Predictions are taken down to ``conf`` (0.001, for mAP) with NMS IoU ``nms_iou`` (0.7, ultralytics'
    val setting), then scored by ``evaluate_detections`` at the operating thresholds: ``thresholds``
    (a value or a per-class mapping), else the ``config`` station's (``thresholds_from_config``), else
    0.25. A ``.pt`` runs through ultralytics (``UltralyticsDetector``) and, with ``onnx``, is exported to
    ONNX in a temporary folder and run through the station runtime (``OnnxDetector``) as well; the two
    must agree within ``MAX_ONNX_DELTA_POINTS`` mAP50 points (``agree``). Headline figures come from the
    PyTorch side for a ``.pt`` and from the ONNX side for an ``.onnx`` file or a registry model.
    """
    import cv2

    say = progress or (lambda msg: log.info("%s", msg))
    src = resolve_model(model_spec, registry_root)
    primary_kind = src.primary  # decided before a temporary export adds an ONNX side
    split_info = yolo_split(dataset, split)
    images, truths, names = read_yolo_split(dataset, split)
    if max_images:
        images, truths = images[:max_images], truths[:max_images]
    ds_hash, ds_hash_source = dataset_hash(dataset, split)
    if src.class_names is not None and tuple(src.class_names) != tuple(names):
        raise EvalError(f"model {src.label} has classes {list(src.class_names)}, the dataset {list(names)}")

    if thresholds is not None and config is not None:
        raise EvalError("give operating thresholds either with --thresholds or with --config, not both")
    if config is not None:
        thr_map, thr_source = thresholds_from_config(config, names, (src.registry or {}).get("name") or src.label)
        op_thr: Mapping[str, float] | float = thr_map
    elif thresholds is not None:
        op_thr, thr_source = thresholds, "--thresholds"
    else:
        op_thr, thr_source = 0.25, "default 0.25 (no station config given)"
    op_thr_arr = resolve_thresholds(op_thr, names)

    runtimes: dict[str, _Runtime] = {}
    notes: list[str] = []
    temp_onnx = False
    with tempfile.TemporaryDirectory(prefix="inspector-eval-") as tmp, _quiet_stdout():
        run_imgsz = imgsz
        if src.pt is not None:
            from training.export import _checkpoint_info
            from training.pt_detector import UltralyticsDetector

            say(f"loading {src.pt} (PyTorch, through ultralytics)")
            det = UltralyticsDetector(src.pt, names, imgsz=640, conf=conf, iou=nms_iou, max_det=max_det)
            ck_imgsz = _checkpoint_info(det.model)[1]
            run_imgsz = int(imgsz or (src.imgsz[0] if src.imgsz else None) or ck_imgsz or 640)
            det.imgsz = run_imgsz
            runtimes["pytorch"] = _Runtime("pytorch", det)
        if onnx and src.onnx is None and src.pt is not None:
            from training.export import export_onnx

            say(f"exporting {src.pt} to ONNX at imgsz {run_imgsz} (temporary)")
            src.onnx = export_onnx(src.pt, Path(tmp), run_imgsz, name=src.label)
            src.manifest = src.onnx.with_name(src.onnx.stem + ".manifest.json")
            temp_onnx = True
            notes.append("ONNX side: a fresh export of the checkpoint (training/export.py), run by OnnxDetector")
        if onnx and src.onnx is not None:
            from inspector.runtime.onnx_detector import OnnxDetector

            say(f"loading {src.onnx} (station runtime, onnxruntime)")
            kw = {"conf": conf, "iou": nms_iou, "max_det": max_det, "threads": threads}
            if src.manifest is not None and src.manifest.is_file():
                det = OnnxDetector.from_manifest(src.manifest, class_names=names, **kw)
            else:
                det = OnnxDetector(src.onnx, names, imgsz, **kw)
                notes.extend(det.notes)
            runtimes["onnx"] = _Runtime("onnx", det)
            run_imgsz = run_imgsz or det.imgsz[0]
        if not runtimes:
            raise EvalError(f"nothing to evaluate: {src.spec} has no ONNX model and --no-onnx was given")

        say(f"running {', '.join(runtimes)} on {len(images)} {split} images")
        first = True
        for i, path in enumerate(images):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise EvalError(f"cannot read image {path}")
            if first:  # one untimed pass: lazy initialisation is not per-image cost
                for rt in runtimes.values():
                    rt.detector.detect([img])
                first = False
            for rt in (list(runtimes.values()) if i % 2 == 0 else list(runtimes.values())[::-1]):
                rt.run(img)

    reports = {k: evaluate_detections(rt.preds, truths, names, operating_thresholds=op_thr)
               for k, rt in runtimes.items()}
    primary = primary_kind if primary_kind in reports else next(iter(reports))
    main = reports[primary]
    result: dict[str, Any] = {
        "model": src.spec, "model_label": src.label, "runtime": primary,
        "pt_path": str(src.pt) if src.pt else None,
        "onnx_path": None if temp_onnx or src.onnx is None else str(src.onnx),
        "onnx_sha256": runtimes["onnx"].detector.sha256 if "onnx" in runtimes else None,
        "registry": src.registry,
        "dataset": str(dataset), "dataset_hash": ds_hash, "dataset_hash_source": ds_hash_source,
        "split": split, "dataset_root": str(split_info.root), "max_images": max_images,
        "class_names": list(names), "imgsz": run_imgsz, "conf": conf, "nms_iou": nms_iou, "max_det": max_det,
        "operating_thresholds": {n: float(t) for n, t in zip(names, op_thr_arr)},
        "operating_thresholds_source": thr_source,
    }
    result.update(main.to_json())
    for k in ("pytorch", "onnx"):
        rep = reports.get(k)
        result[f"{k}_map50"] = rep.map50 if rep else None
        result[f"{k}_map50_95"] = rep.map50_95 if rep else None
    if "pytorch" in reports and "onnx" in reports:
        d50 = abs(reports["pytorch"].map50 - reports["onnx"].map50) * 100
        d95 = abs(reports["pytorch"].map50_95 - reports["onnx"].map50_95) * 100
        result["onnx_delta_map50"] = round(d50, 4) if math.isfinite(d50) else None
        result["onnx_delta_map50_95"] = round(d95, 4) if math.isfinite(d95) else None
        result["agree"] = bool(d50 <= MAX_ONNX_DELTA_POINTS) if math.isfinite(d50) else None
    else:
        result["onnx_delta_map50"] = result["onnx_delta_map50_95"] = result["agree"] = None
    result["max_onnx_delta_points"] = MAX_ONNX_DELTA_POINTS
    result["timing"] = {k: rt.timing() for k, rt in runtimes.items()}
    result["runtimes"] = {k: rep.to_json() for k, rep in reports.items() if k != primary}
    result["notes"] = notes
    result = _json_safe(result)

    out = Path(out_dir) if out_dir is not None else default_out_dir(src, dataset)
    out.mkdir(parents=True, exist_ok=True)
    result["out_dir"] = str(out)
    title = f"{src.label} on {_dataset_label(dataset)} ({split})"
    result["plots"] = save_plots(main, out, title=title) if plots else {}
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _dataset_label(dataset: Path | str) -> str:
    ds = Path(str(dataset))
    return ds.parent.name if ds.is_file() else ds.name  # data.yaml -> its folder's name


def default_out_dir(src: ModelSource, dataset: Path | str) -> Path:
    """``runs/eval/<model>-<dataset>`` (relative to the working directory, like training runs)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in f"{src.label}-{_dataset_label(dataset)}")
    return Path("runs") / "eval" / safe


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ================================================================================================
# Plots and table
# ================================================================================================
def save_plots(report: EvalReport, out_dir: Path | str, title: str = "") -> dict[str, str]:
    """``pr_curves.png`` (per class, IoU 0.5, with the operating point), ``confusion.png`` and
    ``calibration.png`` (reliability diagram) into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = report.class_names
    paths: dict[str, str] = {}

    fig = Figure(figsize=(7, 6), dpi=100)
    ax = fig.subplots()
    prec, rec = report.class_precision, report.class_recall
    for i, n in enumerate(names):
        if report.support[i] == 0:
            continue
        line, = ax.plot(RECALL_POINTS, report.pr_curves[i], lw=1.2, label=f"{n}  AP50 {report.ap50[i]:.3f}")
        if np.isfinite(prec[i]) and np.isfinite(rec[i]):
            ax.plot([rec[i]], [prec[i]], "o", color=line.get_color(), ms=5)
    valid = report.support > 0
    if valid.any():
        ax.plot(RECALL_POINTS, report.pr_curves[valid].mean(0), color="black", lw=2.5,
                label=f"all classes  mAP50 {report.map50:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"PR curves at IoU 0.5 (dots: operating thresholds)\n{title}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "pr_curves.png")
    paths["pr_curves"] = str(out / "pr_curves.png")

    labels = [*names, "background"]
    m = report.confusion.astype(np.float64)
    side = max(5.0, 0.7 * len(labels) + 2)
    fig = Figure(figsize=(side + 1, side), dpi=100)
    ax = fig.subplots()
    row_sum = m.sum(axis=1, keepdims=True)
    norm = np.divide(m, row_sum, out=np.zeros_like(m), where=row_sum > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class's row")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="Predicted", ylabel="True", title=f"Confusion at the operating thresholds (IoU 0.5)\n{title}")
    for (r, c_), v in np.ndenumerate(m):
        if v:
            ax.text(c_, r, f"{int(v)}", ha="center", va="center", fontsize=8,
                    color="white" if norm[r, c_] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(out / "confusion.png")
    paths["confusion"] = str(out / "confusion.png")

    fig = Figure(figsize=(6, 6), dpi=100)
    ax = fig.subplots()
    rel = report.reliability
    width = 1.0 / ECE_BINS
    lower = np.array(rel["lower_edges"])
    acc = np.array([np.nan if v is None else v for v in rel["accuracy"]], dtype=float)
    cf = np.array([np.nan if v is None else v for v in rel["confidence"]], dtype=float)
    has = np.isfinite(acc)
    ax.bar(lower[has], acc[has], width=width, align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    ax.bar(lower[has], (cf - acc)[has], bottom=acc[has], width=width, align="edge", color="red", alpha=0.25,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ece = "n/a" if not math.isfinite(report.ece) else f"{report.ece:.3f}"
    ax.set(xlabel="Confidence", ylabel="Accuracy (matched a truth at IoU 0.5)", xlim=(0, 1), ylim=(0, 1),
           title=f"Reliability diagram, ECE {ece} (scores >= {report.ece_min_score:g})\n{title}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "calibration.png")
    paths["calibration"] = str(out / "calibration.png")
    return paths


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v * 100:.1f}" if pct else f"{v:.3f}"
    return str(v)


def format_table(result: Mapping[str, Any]) -> str:
    """The readable summary of ``evaluate_model``'s result (figures in percent)."""
    head = (f"{'class':<16}{'truths':>7}{'thr':>6}{'AP50':>7}{'AP50-95':>9}{'P':>7}{'R':>7}{'F1':>7}"
            f"{'TP':>6}{'FP':>6}{'FN':>6}")
    lines = [f"{result['model']} on {result['dataset']} [{result['split']}], {result['n_images']} images, "
             f"{result['n_truths']} truths (runtime: {result['runtime']}, imgsz {result['imgsz']})", "", head,
             "-" * len(head)]
    for n, pc in result["per_class"].items():
        lines.append(f"{n[:15]:<16}{pc['support']:>7}{pc['threshold']:>6.2f}{_fmt(pc['ap50'], True):>7}"
                     f"{_fmt(pc['ap50_95'], True):>9}{_fmt(pc['precision'], True):>7}{_fmt(pc['recall'], True):>7}"
                     f"{_fmt(pc['f1'], True):>7}{pc['tp']:>6}{pc['fp']:>6}{pc['fn']:>6}")
    tp = sum(pc["tp"] for pc in result["per_class"].values())
    fp = sum(pc["fp"] for pc in result["per_class"].values())
    fn = sum(pc["fn"] for pc in result["per_class"].values())
    lines += ["-" * len(head),
              f"{'all':<16}{result['n_truths']:>7}{'':>6}{_fmt(result['map50'], True):>7}"
              f"{_fmt(result['map50_95'], True):>9}{_fmt(result['precision'], True):>7}"
              f"{_fmt(result['recall'], True):>7}"
              f"{_fmt(result['f1'], True):>7}{tp:>6}{fp:>6}{fn:>6}", ""]
    lines.append(f"mAP33 {_fmt(result['map33'], True)}   ECE {_fmt(result['ece'])}   "
                 f"(P / R / F1 at the operating thresholds, IoU 0.5; overall = pooled counts)")
    lines.append(f"operating thresholds: {result['operating_thresholds_source']}")
    if result.get("pytorch_map50") is not None and result.get("onnx_map50") is not None:
        verdict = "agree" if result["agree"] else "DISAGREE: check pre/post-processing"
        lines.append(f"PyTorch mAP50 {_fmt(result['pytorch_map50'], True)} vs station ONNX runtime "
                     f"{_fmt(result['onnx_map50'], True)}: delta {result['onnx_delta_map50']:.2f} points "
                     f"(max {result['max_onnx_delta_points']:g}) -> {verdict}")
    elif result.get("onnx_map50") is not None:
        lines.append(f"station ONNX runtime mAP50 {_fmt(result['onnx_map50'], True)}")
    timing = ", ".join(f"{k} {v['ms_per_image_median']:.1f} ms" for k, v in result["timing"].items()
                       if v.get("ms_per_image_median") is not None)
    lines.append(f"time per image (median, batch 1): {timing}")
    lines.append(f"dataset hash {result['dataset_hash'][:16]}... ({result['dataset_hash_source']})")
    if result.get("plots"):
        lines.append(f"plots: {', '.join(Path(p).name for p in result['plots'].values())} in {result['out_dir']}")
    return "\n".join(lines)
