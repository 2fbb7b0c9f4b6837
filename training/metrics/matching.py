"""Matching predictions to truths and the AP integral (see :mod:`training.metrics` for the definitions)."""

from __future__ import annotations

import numpy as np

COCO_IOU_THRESHOLDS = np.round(np.arange(0.5, 0.96, 0.05), 6)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def greedy_match(iou: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
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


def agnostic_match(iou: np.ndarray, threshold: float) -> np.ndarray:
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



def ap_from_tp(tp: np.ndarray, n_truth: int, interpolation: str = "interp101") -> tuple[np.ndarray, np.ndarray]:
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

