"""What every fusion method starts from: all models' valid boxes in one pool, and the split of a
class's boxes into independent groups (no box of one group can reach a fused box of another)."""

from __future__ import annotations

import numpy as np

from inspector.core.detections import Detections

_F64 = np.float64


class Pool:
    """All models' valid boxes, concatenated in (model, box) order, as float64 columns."""

    __slots__ = ("xyxy", "area", "score", "label", "model", "n_models")

    def __init__(self, models: list[Detections], skip_box_thr: float) -> None:
        self.n_models = len(models)
        lens = [len(d) for d in models]
        raw = np.concatenate([d.xyxy for d in models]).astype(_F64) if models else np.zeros((0, 4))
        score = np.concatenate([d.score for d in models]).astype(_F64) if models else np.zeros(0)
        label = np.concatenate([d.class_id for d in models]) if models else np.zeros(0, np.int32)
        model = np.repeat(np.arange(len(models)), lens)
        xyxy = np.empty_like(raw)
        np.minimum(raw[:, 0:2], raw[:, 2:4], out=xyxy[:, 0:2])  # swap reversed corners, as the reference
        np.maximum(raw[:, 0:2], raw[:, 2:4], out=xyxy[:, 2:4])
        area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
        keep = (score >= skip_box_thr) & (score < np.inf) & (area > 0) & (area < np.inf)  # and NaN
        if np.count_nonzero(keep) < len(keep):
            xyxy, area, score, label, model = xyxy[keep], area[keep], score[keep], label[keep], model[keep]
        self.xyxy, self.area, self.score, self.label, self.model = xyxy, area, score, label, model


def touch_pairs(xyxy: np.ndarray, group: np.ndarray, tol: float, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) of boxes in the same group that overlap by more than ``-tol`` in x and y.

    ``group``: small non-negative ints; ``reach``: an upper bound of ``abs`` of every coordinate.
    The x test is exact up to the rounding of ``group * stride + x`` (about 1e-16 of that sum), so
    callers that need exact pairs pass a small positive ``tol`` and check the pairs themselves.
    Sweep along x: sort by (group, x1); the candidates of box i are the following boxes whose x1
    is below x2_i + tol, a contiguous run found with one ``searchsorted``; then the y test.
    """
    n = len(xyxy)
    base = group * (4.0 * (reach + tol) + 8.0)  # groups never mix in the sweep
    key = base + xyxy[:, 0]
    o = key.argsort(kind="stable")
    ks = key.take(o)
    end = ks.searchsorted(base.take(o) + (xyxy[:, 2].take(o) + tol), side="left")
    ar = np.arange(1, n + 1)
    counts = end - ar
    np.maximum(counts, 0, out=counts)  # a box narrower than the rounding of its key
    total = int(counts.sum())
    if total == 0:
        e = np.zeros(0, np.intp)
        return e, e
    ii = (ar - 1).repeat(counts)
    jj = np.arange(total) - (counts.cumsum() - end).repeat(counts)
    y1 = xyxy[:, 1].take(o)
    y2 = xyxy[:, 3].take(o) + tol
    ok = ((y1.take(jj) < y2.take(ii)) & (y1.take(ii) < y2.take(jj))).nonzero()[0]
    return o.take(ii.take(ok)), o.take(jj.take(ok))


def _connected(n: int, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    """Compact component id (0..k-1, by smallest member) of n nodes given undirected edges, and k."""
    comp = np.arange(n)
    while True:
        ca, cb = comp[a], comp[b]
        differ = ca != cb
        if not np.count_nonzero(differ):
            break
        a, b, ca, cb = a[differ], b[differ], ca[differ], cb[differ]
        np.minimum.at(comp, np.maximum(ca, cb), np.minimum(ca, cb))  # hook the larger root under the smaller
        while True:  # pointer jumping until every node points at its root
            nxt = comp[comp]
            if not np.count_nonzero(nxt != comp):
                break
            comp = nxt
    ids = (comp == np.arange(n)).cumsum()
    return (ids - 1)[comp], int(ids[-1])


def independent_groups(xyxy: np.ndarray, group: np.ndarray, iou_thr: float) -> np.ndarray:
    """Group id (0..G-1) of each box, such that no box can ever match a cluster of another group.

    Groups are connected components of the boxes of a class, merged until their bounding hulls do
    not overlap. A fused box is a weighted mean of its members, so it lies inside their hull up to
    ``delta``, the float32 rounding of the reference's arithmetic (about one float32 ulp of the
    coordinates per member). A box that does not overlap that hull can meet the fused box only in
    a sliver of width ``delta``: IoU <= delta / its shorter side. The few boxes for which that could
    exceed ``iou_thr`` are padded by ``delta``; all others are tested exactly (positive overlap), so
    boxes that merely touch, e.g. a grid of adjacent dies, stay apart.
    """
    n = len(xyxy)
    reach = float(max(-xyxy.min(), xyxy.max()))
    if reach > 1e12:  # the grouping is scale-free; keep its sort keys far from overflow
        xyxy = xyxy / reach
        reach = 1.0
    delta = (int(np.bincount(group).max()) + 2) * 2.4e-7 * reach
    boxes = xyxy
    tiny = (np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]) * iou_thr <= delta).nonzero()[0]
    if len(tiny):
        boxes = xyxy.copy()
        boxes[tiny, :2] -= delta
        boxes[tiny, 2:] += delta
        reach += delta
    a, b = touch_pairs(boxes, group, 0.0, reach)
    if len(a) == 0:
        return np.arange(n)  # no box overlaps another: every box is its own group
    comp, k = _connected(n, a, b)
    # Close under overlapping hulls: merge groups whose hulls overlap until none do.
    hull, hg = _hulls(boxes, group, comp, k)
    a, b = touch_pairs(hull, hg, 0.0, reach)
    while len(a) > 256:  # many merges: vectorised rounds
        merged, k = _connected(k, a, b)
        comp = merged[comp]
        hull, hg = _hulls(hull, hg, merged, k)
        a, b = touch_pairs(hull, hg, 0.0, reach)
    if len(a) == 0:
        return comp
    # A few merges: union them in Python, grow the merged hulls, and test only the grown hulls again.
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while x in parent:
            x = parent[x]
        return x

    alive = np.ones(k, bool)
    while True:
        absorbed = []
        for x, y in zip(a.tolist(), b.tolist()):
            rx, ry = find(x), find(y)
            if rx != ry:
                r, o = (rx, ry) if rx < ry else (ry, rx)
                parent[o] = r
                absorbed.append(o)
        if not absorbed:
            break
        gone = np.array(absorbed)
        into = np.array([find(o) for o in absorbed])
        alive[gone] = False
        for c in range(4):
            (np.minimum if c < 2 else np.maximum).at(hull[:, c], into, hull[gone, c])
        grown = np.unique(into)
        if len(grown) * k <= 16384:
            d = hull[grown]
            hit = (hg[grown][:, None] == hg) & alive & (hull[:, 0] < d[:, 2:3]) & (d[:, 0:1] < hull[:, 2]) \
                & (hull[:, 1] < d[:, 3:4]) & (d[:, 1:2] < hull[:, 3])
            hit[np.arange(len(grown)), grown] = False
            ii, b = np.nonzero(hit)
            a = grown[ii]
        else:
            live = alive.nonzero()[0]
            a, b = touch_pairs(hull[live], hg[live], 0.0, reach)
            a, b = live[a], live[b]
    root = np.arange(k)
    root[list(parent)] = list(parent.values())
    while True:
        nxt = root[root]
        if not np.count_nonzero(nxt != root):
            break
        root = nxt
    ids = (root == np.arange(k)).cumsum() - 1
    return ids[root][comp]


def _hulls(xyxy: np.ndarray, group: np.ndarray, comp: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounding box and group of each of k components."""
    hull = np.empty((4, k))
    hull[:2] = np.inf
    hull[2:] = -np.inf
    for c in range(4):
        (np.minimum if c < 2 else np.maximum).at(hull[c], comp, xyxy[:, c])
    hg = np.empty(k, group.dtype)
    hg[comp] = group
    return np.ascontiguousarray(hull.T), hg
