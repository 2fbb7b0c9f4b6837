"""Class-aware greedy NMS across models, resolved as a vectorised fixed point."""

from __future__ import annotations

import numpy as np

from inspector.core.detections import Detections
from inspector.core.fusion.pool import Pool, touch_pairs

_F32 = np.float32


def _class_groups(label: np.ndarray) -> np.ndarray:
    """Small non-negative ints, equal for equal labels (the labels themselves when they are)."""
    if len(label) and 0 <= int(label.min()) and int(label.max()) < 100_000:
        return label
    return np.unique(label, return_inverse=True)[1]


def nms_core(pool: Pool, w: np.ndarray | None, iou_thr: float) -> Detections:
    score = pool.score if w is None else pool.score * w[pool.model] / w.sum()  # as ensemble_boxes.nms
    prio = (-score).argsort(kind="stable")  # best first; ties by input order
    n = len(prio)
    xyxy = pool.xyxy.take(prio, 0)
    score = score.take(prio)
    label = pool.label.take(prio)
    model = pool.model.take(prio)
    bit = np.left_shift(np.uint32(1), model.astype(np.uint32))
    reach = float(max(-xyxy.min(), xyxy.max()))
    # Candidate pairs: IoU > t needs an overlap of more than t * (the larger width) in x, and the
    # same in y, so the boxes' right and bottom edges can be pulled in by (almost) t * their size.
    pts = xyxy.copy()
    pts[:, 2:] -= (iou_thr * (1.0 - 1e-6)) * (xyxy[:, 2:] - xyxy[:, :2])
    if reach > 1e12:  # only to find candidate pairs (IoU uses the boxes): keep the sort keys finite
        pts, reach = pts / reach, 1.0
    a, b = touch_pairs(pts, _class_groups(label), 1e-9 * reach, reach)
    if len(a):
        a, b = np.minimum(a, b), np.maximum(a, b)  # edges from the better box to the worse one
        p, q = xyxy.take(a, 0), xyxy.take(b, 0)
        lt = np.maximum(p[:, :2], q[:, :2])
        wh = np.minimum(p[:, 2:], q[:, 2:])
        wh -= lt
        np.maximum(wh, 0.0, out=wh)
        inter = wh[:, 0] * wh[:, 1]
        area = pool.area.take(prio)
        iou = inter / ((area.take(a) + area.take(b)) - inter)  # as the reference's formula
        hit = (iou > iou_thr).nonzero()[0]
        a, b = a.take(hit), b.take(hit)
    # 0 undecided, 1 kept, 2 suppressed. A box is suppressed once a better neighbour is kept, and
    # kept once all its better neighbours are suppressed: greedy NMS, resolved wave by wave.
    state = np.zeros(n, np.int8)
    undecided = np.ones(n, bool)
    ea, eb = a, b
    while True:
        sa = state.take(ea)
        killed = np.zeros(n, bool)
        killed[eb[sa == 1]] = True
        waiting = np.zeros(n, bool)
        waiting[eb[sa == 0]] = True
        state[undecided & killed] = 2
        state[undecided & ~(killed | waiting)] = 1
        undecided = state == 0
        if not np.count_nonzero(undecided):
            break
        live = undecided.take(eb).nonzero()[0]
        ea, eb = ea.take(live), eb.take(live)
    kept = state == 1
    support = bit.copy()
    by_kept = kept.take(a).nonzero()[0]
    np.bitwise_or.at(support, a.take(by_kept), bit.take(b.take(by_kept)))
    return Detections._trusted(xyxy[kept].astype(_F32), score[kept].astype(_F32), label[kept].astype(np.int32),
                               model[kept].astype(np.int32), support[kept])
