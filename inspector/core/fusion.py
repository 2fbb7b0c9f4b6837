"""Ensemble fusion: weighted boxes fusion (WBF), NMS across models and k-of-n consensus voting.

Pure numpy. Results match the reference implementation ``ensemble-boxes`` 1.0.9
(``weighted_boxes_fusion`` and ``nms``) on valid boxes, down to its floating-point details: the
float32 rounding of merged boxes, the order in which tied scores are visited, and the order of the
output. The algorithms are reorganised to be fast:

* WBF is greedy and sequential *within* a class: boxes are visited by descending weighted score and
  each joins the existing cluster whose current fused box overlaps it most (IoU > ``iou_thr``), or
  opens a new cluster. A fused box is a weighted mean of its members, so it lies inside their
  bounding hull. Each class is therefore split into *independent groups* (connected components of
  overlapping boxes, merged until their hulls do not overlap, see ``_independent_groups``): no box
  can reach a cluster of another group. All groups are clustered at once, in lock-step (step ``s``
  visits the ``s``-th box of every group still active), with running sums per cluster instead of
  recomputing a fused box from its member list. The number of numpy steps is the size of the
  largest group (a handful in a realistic scene), not the number of boxes; the last few boxes of
  a few long groups are visited in Python with the same arithmetic.
* NMS is class-aware greedy NMS on the sparse graph of same-class pairs with IoU > ``iou_thr``,
  resolved by a vectorised fixed-point iteration (a box is kept when every better-scored neighbour
  is suppressed, suppressed as soon as one of them is kept).
* Voting is WBF, keeping the fused boxes that at least ``k`` distinct models contributed to.

Ensemble member ``t`` is the position of its ``Detections`` in ``per_model``; bit ``t`` of
``support`` says that member backed a fused box (the input ``model_index`` / ``support`` columns are
not read). Differences from ``ensemble-boxes``, which expects boxes normalised to [0, 1]:

* boxes are absolute pixels and are not clipped to [0, 1]; reversed corners are swapped (as there),
  boxes of zero area are dropped (as there), and so are boxes with a non-finite coordinate or score;
* invalid parameters raise ``ValueError`` (the reference prints a warning and falls back, or exits);
  weights must be > 0, ``iou_thr`` in [0, 1], ``skip_box_thr`` >= 0;
* a WBF cluster whose members all score 0 keeps its first box (the reference divides by zero);
* NMS ties between equal scores are broken by input order (model, then box), where the
  reference's numba quicksort breaks them arbitrarily; NMS output is sorted by score (the
  reference lists it class by class) and kept boxes keep their ``model_index``.
"""

from __future__ import annotations

import math
import numbers
import struct
from collections.abc import Sequence

import numpy as np

from inspector.core.detections import Detections

__all__ = [
    "CONF_TYPES",
    "METHODS",
    "consensus_vote",
    "fuse",
    "nms_fusion",
    "weighted_boxes_fusion",
]

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
METHODS = ("wbf", "nms", "vote")
MAX_MODELS = 32  # ``support`` is a uint32 bitmask

_F32 = np.float32
_F64 = np.float64


# ----------------------------------------------------------------------------------------------
# parameter checks
# ----------------------------------------------------------------------------------------------


def _check_models(per_model: Sequence[Detections], fn: str) -> list[Detections]:
    if isinstance(per_model, Detections) or not isinstance(per_model, Sequence):
        raise TypeError(f"{fn}: per_model must be a sequence of Detections (one per model), "
                        f"got {type(per_model).__name__}")
    models = list(per_model)
    for i, d in enumerate(models):
        if not isinstance(d, Detections):
            raise TypeError(f"{fn}: per_model[{i}] must be Detections, got {type(d).__name__}")
    if len(models) > MAX_MODELS:
        raise ValueError(f"{fn}: at most {MAX_MODELS} models can be fused (support is a uint32 bitmask), "
                         f"got {len(models)}")
    return models


def _check_weights(weights: Sequence[float] | None, n_models: int, fn: str) -> np.ndarray | None:
    if weights is None:
        return None
    try:
        w = np.asarray(weights, dtype=_F64)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: weights must be a sequence of {n_models} positive numbers, got {weights!r}") from None
    if w.shape != (n_models,):
        raise ValueError(f"{fn}: weights must have one entry per model ({n_models}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"{fn}: weights must be finite and > 0, got {w.tolist()}")
    return w


def _check_fraction(value: float, name: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{fn}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def _check_skip(value: float, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) < 0.0:
        raise ValueError(f"{fn}: skip_box_thr must be a finite number >= 0, got {value!r}")
    return float(value)


def _check_conf_type(conf_type: str, fn: str) -> str:
    if conf_type not in CONF_TYPES:
        raise ValueError(f"{fn}: conf_type must be one of {', '.join(map(repr, CONF_TYPES))}, got {conf_type!r}")
    return conf_type


def _check_bool(value: bool, name: str, fn: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{fn}: {name} must be True or False, got {value!r}")
    return bool(value)


# ----------------------------------------------------------------------------------------------
# shared preparation
# ----------------------------------------------------------------------------------------------


class _Pool:
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


def _dense(sorted_labels: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... per run of equal values in a sorted label array."""
    out = np.zeros(len(sorted_labels), np.intp)
    (sorted_labels[1:] != sorted_labels[:-1]).cumsum(out=out[1:])
    return out


def _touch_pairs(xyxy: np.ndarray, group: np.ndarray, tol: float, reach: float) -> tuple[np.ndarray, np.ndarray]:
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


def _independent_groups(xyxy: np.ndarray, group: np.ndarray, iou_thr: float) -> np.ndarray:
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
    a, b = _touch_pairs(boxes, group, 0.0, reach)
    if len(a) == 0:
        return np.arange(n)  # no box overlaps another: every box is its own group
    comp, k = _connected(n, a, b)
    # Close under overlapping hulls: merge groups whose hulls overlap until none do.
    hull, hg = _hulls(boxes, group, comp, k)
    a, b = _touch_pairs(hull, hg, 0.0, reach)
    while len(a) > 256:  # many merges: vectorised rounds
        merged, k = _connected(k, a, b)
        comp = merged[comp]
        hull, hg = _hulls(hull, hg, merged, k)
        a, b = _touch_pairs(hull, hg, 0.0, reach)
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
            a, b = _touch_pairs(hull[live], hg[live], 0.0, reach)
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


# ----------------------------------------------------------------------------------------------
# weighted boxes fusion
# ----------------------------------------------------------------------------------------------


def _visit_order(label: np.ndarray, ws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's visiting order inside each class, and the dense class rank of each box.

    Inside a class the reference visits boxes by ``argsort(weighted score)[::-1]``. For distinct
    scores that is descending order; a class with tied scores replays numpy's (unstable) argsort
    on the same values in the same (model, box) order, so ties are visited exactly as there.
    Classes are independent; here they come by class id (the reference takes them in order of first
    appearance, which only matters for the final order of equal scores, see ``_wbf_core``).
    """
    order = np.lexsort((-ws, label))
    lab = label[order]
    w_o = ws[order]
    dense = _dense(lab)
    same = w_o[1:] == w_o[:-1]
    if np.count_nonzero(same):
        tied = same & (lab[1:] == lab[:-1])
        if np.count_nonzero(tied):
            starts = np.searchsorted(lab, lab[1:][tied])
            for s0 in np.unique(starts).tolist():
                idx = np.flatnonzero(label == lab[s0])  # the class's boxes in input order, as the reference lists them
                order[s0:s0 + len(idx)] = idx[np.argsort(ws[idx])[::-1]]
    return order, dense


class _Clusters:
    """WBF clustering of all independent groups at once, mirroring the reference's arithmetic.

    The reference recomputes a merged box from its member list in float32
    (``box[4:] += score * coords`` then ``box[4:] /= sum(score)``); the running float32 sum below
    performs the same roundings in the same order. A one-member cluster keeps the raw float64 box,
    as in the reference.

    Groups are sorted by size, largest first, so the groups still active at step s are a prefix;
    boxes are stored group by group (``q`` maps that layout to visiting positions). Group g owns
    cluster slots start[g] .. start[g] + sizes[g] - 1, filled in creation order.
    """

    def __init__(self, xyxy: np.ndarray, area: np.ndarray, ws: np.ndarray, group: np.ndarray,
                 iou_thr: float) -> None:
        n = len(xyxy)
        size = np.bincount(group)
        by_size = (-size).argsort(kind="stable")
        rank = np.empty_like(by_size)
        rank[by_size] = np.arange(len(by_size))
        key = rank[group]
        q = (key.astype(np.int16) if len(size) < 32768 else key).argsort(kind="stable")  # radix sort
        sizes = size[by_size]
        self.start = sizes.cumsum() - sizes
        self.sizes = sizes
        self.q = q
        box = np.empty((n, 5))  # x1 y1 x2 y2 area
        box[:, :4] = xyxy.take(q, 0)
        box[:, 4] = area.take(q)
        self.box = box
        self.ws = ws.take(q)
        self.iou_thr = iou_thr
        # state per slot: the box a cluster is matched against (x1 y1 x2 y2 area; empty slots never
        # overlap anything), then the float32 running sum of score * coords and the float64 sum of
        # scores (conf).
        self.state = np.zeros((n, 10))
        self.state[:, :4] = -np.inf
        self.slot = np.empty(n, np.intp)  # the cluster slot each box joined

    def run(self) -> None:
        start, sizes, box, ws = self.start, self.sizes, self.box, self.ws
        state, slot_of = self.state, self.slot
        # step 0: the first box of every group opens a cluster
        state[start, :5] = box[start]
        state[start, 5:9] = (ws[start, None] * box[start, :4]).astype(_F32)
        state[start, 9] = ws[start]
        slot_of[start] = start
        n_steps = int(sizes[0])
        if n_steps == 1:
            return
        used = np.ones(len(sizes), np.intp)  # clusters per group
        active = (-sizes).searchsorted(-np.arange(n_steps), side="left")  # groups with size > s
        boxes_in = sizes.cumsum()
        thr = self.iou_thr
        ar = np.arange(n_steps)
        check_zero = np.count_nonzero(ws <= 0) > 0
        for s in range(1, n_steps):
            m = int(active[s])
            # A numpy step costs about as much as a few boxes visited in Python: finish the tail of
            # few, long groups in Python (same arithmetic, same results).
            if (int(boxes_in[m - 1]) - s * m) * _PY_BOX_COST < (n_steps - s) * _NP_STEP_COST:
                self._python_tail(m, s, used)
                return
            st = start[:m]
            bi = st + s
            b = box.take(bi, 0)
            u = used[:m]
            f = state.take(st[:, None] + ar[:int(u.max())], 0)  # (m, clusters): every cluster so far
            lt = np.maximum(f[:, :, :2], b[:, None, :2])
            iou = np.minimum(f[:, :, 2:4], b[:, None, 2:4])
            iou -= lt
            np.maximum(iou, 0.0, out=iou)
            inter = iou[:, :, 0] * iou[:, :, 1]
            union = f[:, :, 4] + b[:, 4:5]
            union -= inter
            inter /= union
            best = inter.argmax(axis=1)
            matched = inter.max(axis=1) > thr
            slot = st + np.where(matched, best, u)
            u += ~matched
            slot_of[bi] = slot
            # running sums, as the reference's float32 box and float64 score sum
            new = state.take(slot, 0)
            w = ws.take(bi)
            acc = new[:, 5:9]
            acc += w[:, None] * b[:, :4]
            acc[...] = acc.astype(_F32)
            new[:, 9] += w
            # merged clusters: float32(sum / conf); new ones: the raw box (already float32 values)
            merge = (matched & (new[:, 9] > 0)) if check_zero else matched
            np.divide(acc, new[:, 9:10], out=b[:, :4], where=merge[:, None])
            if check_zero:
                zero = matched & ~merge  # an all-zero-score cluster keeps its first box
                b[zero, :4] = new[zero, :4]
            new[:, :4] = b[:, :4].astype(_F32)
            new[:, 4] = (new[:, 2] - new[:, 0]) * (new[:, 3] - new[:, 1])
            state[slot] = new

    def _python_tail(self, m: int, s0: int, used: np.ndarray) -> None:
        """Boxes s0.. of groups 0..m-1, visited in Python with the numpy steps' exact arithmetic.

        The groups' rows are read into lists once and written back once: per-group numpy calls
        cost more than the few boxes most groups have left.
        """
        thr = self.iou_thr
        starts = self.start[:m].tolist()
        sizes = self.sizes[:m].tolist()
        n_used = used[:m].tolist()
        end = starts[-1] + sizes[-1]  # groups are stored contiguously, largest first
        rows = self.state[:end].tolist()
        boxes = self.box[:end].tolist()
        weights = self.ws[:end].tolist()
        slot_at: list[int] = []
        slot_to: list[int] = []
        in_numpy: list[tuple[int, int]] = []  # groups finished by _numpy_tail (their rows are current there)
        for st, size, nc in zip(starts, sizes, n_used):
            top = st + nc  # one past the group's last cluster
            for i in range(st + s0, st + size):
                if top - st > _PY_MAX_CLUSTERS:  # a large group: vectorise over its clusters
                    self.state[st:top] = rows[st:top]
                    self._numpy_tail(st, size, i - st, top - st)
                    in_numpy.append((st, size))
                    break
                bx1, by1, bx2, by2, ba = boxes[i]
                best, best_iou = -1, thr
                for k in range(st, top):
                    c = rows[k]
                    iw = min(c[2], bx2) - max(c[0], bx1)
                    if iw <= 0.0:
                        continue
                    ih = min(c[3], by2) - max(c[1], by1)
                    if ih <= 0.0:
                        continue
                    inter = iw * ih
                    iou = inter / ((c[4] + ba) - inter)
                    if iou > best_iou:  # strict: the first of equal maxima, as argmax
                        best, best_iou = k, iou
                w = weights[i]
                slot_at.append(i)
                if best < 0:
                    slot_to.append(top)
                    rows[top] = [bx1, by1, bx2, by2, ba, *_round_f32(w * bx1, w * by1, w * bx2, w * by2), w]
                    top += 1
                else:
                    slot_to.append(best)
                    rows[best] = _merged(rows[best], bx1, by1, bx2, by2, w)
        if in_numpy:  # write back only the groups finished here
            done = {st for st, _ in in_numpy}
            for st, size in zip(starts, sizes):
                if st not in done:
                    self.state[st:st + size] = rows[st:st + size]
        else:
            self.state[:end] = rows
        if slot_at:
            self.slot[slot_at] = slot_to

    def _numpy_tail(self, st: int, size: int, s0: int, nc: int) -> None:
        """Boxes s0.. of the group at ``st``, one at a time, IoU vectorised over its nc clusters."""
        thr = self.iou_thr
        state = self.state[st:st + size]  # a view: the group's slots
        x1, y1, x2, y2, area = (state[:, c] for c in range(5))
        slots = []
        for bx1, by1, bx2, by2, ba in self.box[st + s0:st + size].tolist():
            iw = np.minimum(x2[:nc], bx2)
            iw -= np.maximum(x1[:nc], bx1)
            ih = np.minimum(y2[:nc], by2)
            ih -= np.maximum(y1[:nc], by1)
            np.maximum(iw, 0.0, out=iw)
            np.maximum(ih, 0.0, out=ih)
            iw *= ih
            iou = iw / ((area[:nc] + ba) - iw)
            k = int(iou.argmax())
            w = float(self.ws[st + s0 + len(slots)])
            if iou[k] > thr:
                slots.append(k)
                state[k] = _merged(state[k].tolist(), bx1, by1, bx2, by2, w)
            else:
                slots.append(nc)
                state[nc] = [bx1, by1, bx2, by2, ba, *_round_f32(w * bx1, w * by1, w * bx2, w * by2), w]
                nc += 1
        self.slot[st + s0:st + size] = np.asarray(slots, np.intp) + st


def _merged(c: list[float], bx1: float, by1: float, bx2: float, by2: float, w: float) -> list[float]:
    """A cluster's state row after box (bx1, by1, bx2, by2) with weighted score w joins it."""
    a0, a1, a2, a3 = _round_f32(c[5] + w * bx1, c[6] + w * by1, c[7] + w * bx2, c[8] + w * by2)
    conf = c[9] + w
    if conf > 0.0:
        x1, y1, x2, y2 = _round_f32(a0 / conf, a1 / conf, a2 / conf, a3 / conf)
        return [x1, y1, x2, y2, (x2 - x1) * (y2 - y1), a0, a1, a2, a3, conf]
    return [*c[:5], a0, a1, a2, a3, conf]  # an all-zero-score cluster keeps its first box


_PY_BOX_COST = 4.0  # rough cost of one box visited in Python, in microseconds ...
_NP_STEP_COST = 40.0  # ... and of one vectorised step over all active groups
_PY_MAX_CLUSTERS = 48  # beyond this many clusters in a group, IoU is vectorised over them
_F32X4 = struct.Struct("4f")


def _round_f32(a: float, b: float, c: float, d: float) -> tuple[float, ...]:
    """Round four Python floats to float32 (round to nearest, as numpy's astype)."""
    try:
        return _F32X4.unpack(_F32X4.pack(a, b, c, d))
    except OverflowError:  # beyond float32 range: numpy rounds to inf
        return tuple(np.array([a, b, c, d]).astype(_F32).astype(_F64).tolist())


def _wbf_core(pool: _Pool, w: np.ndarray, iou_thr: float, conf_type: str, allows_overflow: bool) -> Detections:
    ws = pool.score * w[pool.model]
    visit, dense = _visit_order(pool.label, ws)
    xyxy = pool.xyxy.take(visit, 0)
    group = _independent_groups(xyxy, dense, iou_thr)
    cl = _Clusters(xyxy, pool.area.take(visit), ws.take(visit), group, iou_thr)
    cl.run()

    n = len(visit)
    slot, q = cl.slot, cl.q
    model = pool.model.take(visit.take(q))  # model of each box, in cluster layout
    count = np.bincount(slot, minlength=n)
    bits = np.zeros(n, np.uint32)
    np.bitwise_or.at(bits, slot, np.left_shift(np.uint32(1), model.astype(np.uint32)))
    creator = np.full(n, n)
    np.minimum.at(creator, slot, q)  # visiting position of each cluster's first box
    # clusters in order of creation (creators are distinct positions: no sort needed)
    by_creator = np.full(n, -1)
    live = count.nonzero()[0]
    by_creator[creator[live]] = live
    live = by_creator[by_creator >= 0]

    count_l = count[live]
    single = count_l == 1
    if conf_type == "max":
        smax = np.full(n, -np.inf)
        np.maximum.at(smax, slot, cl.ws)
        smax = smax[live]
        score = np.where(single, smax, smax.astype(_F32))
    else:
        conf = cl.state[live, 9]
        score = np.where(single, conf, (conf / count_l).astype(_F32))  # merged boxes are float32 there
    total = w.sum()
    if conf_type in ("box_and_model_avg", "absent_model_aware_avg"):
        wsum = np.zeros(n)
        np.add.at(wsum, slot, w[model])  # members in visiting order, as the reference sums them
        wsum = wsum[live]
        wsum = np.where(single, wsum, wsum.astype(_F32))
        if conf_type == "box_and_model_avg":
            score = score * count_l / wsum
            score = score * _weights_of(bits[live], w, present=True) / total
        else:
            score = score * count_l / (wsum + _weights_of(bits[live], w, present=False))
    elif conf_type == "max":
        score = score / w.max()
    elif not allows_overflow:
        score = score * np.minimum(pool.n_models, count_l) / total
    else:
        score = score * count_l / total
    label = pool.label.take(visit.take(creator[live]))
    out = score.argsort()[::-1]
    ranked = score[out]
    if np.count_nonzero(ranked[1:] == ranked[:-1]):
        # Equal scores: replay the reference's final argsort on its exact concatenation order,
        # classes by first appearance in the input, each class's clusters in creation order.
        uniq, first = np.unique(pool.label, return_index=True)
        appear = np.empty(len(uniq), np.intp)
        appear[np.argsort(first)] = np.arange(len(uniq))
        cat = np.lexsort((creator[live], appear[np.searchsorted(uniq, label)]))
        live, score, label = live[cat], score[cat], label[cat]
        out = score.argsort()[::-1]
    live = live[out]
    # every column is built here with its final dtype and length: skip the constructor's checks
    return Detections._trusted(cl.state[live, :4].astype(_F32), score[out].astype(_F32), label[out].astype(np.int32),
                               np.full(len(live), -1, np.int32), bits[live])


def _weights_of(bits: np.ndarray, w: np.ndarray, present: bool) -> np.ndarray:
    """Sum of the weights of the models present (or absent) in each cluster, in model order."""
    out = np.zeros(len(bits))
    for t in range(len(w)):
        has = (bits >> np.uint32(t)) & np.uint32(1)
        out += np.where(has.astype(bool) == present, w[t], 0.0)
    return out


# ----------------------------------------------------------------------------------------------
# NMS across models
# ----------------------------------------------------------------------------------------------


def _class_groups(label: np.ndarray) -> np.ndarray:
    """Small non-negative ints, equal for equal labels (the labels themselves when they are)."""
    if len(label) and 0 <= int(label.min()) and int(label.max()) < 100_000:
        return label
    return np.unique(label, return_inverse=True)[1]


def _nms_core(pool: _Pool, w: np.ndarray | None, iou_thr: float) -> Detections:
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
    a, b = _touch_pairs(pts, _class_groups(label), 1e-9 * reach, reach)
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


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def weighted_boxes_fusion(
    per_model: Sequence[Detections],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
    conf_type: str = "avg",
    allows_overflow: bool = False,
) -> Detections:
    """Weighted boxes fusion of one ``Detections`` per model (same results as ``ensemble_boxes``).

    Boxes scoring below ``skip_box_thr`` are ignored; each remaining box (visited per class by
    descending ``score * weight``) joins the fused box it overlaps most with IoU > ``iou_thr``, or
    starts a new one. A fused box is the score-weighted mean of its members; its score follows
    ``conf_type`` and is rescaled by the number of boxes and models as the reference does.
    Output: sorted by score, ``model_index`` -1, ``support`` = OR of the members' model bits.
    """
    fn = "weighted_boxes_fusion"
    models = _check_models(per_model, fn)
    w = _check_weights(weights, len(models), fn)
    iou_thr = _check_fraction(iou_thr, "iou_thr", fn)
    skip_box_thr = _check_skip(skip_box_thr, fn)
    conf_type = _check_conf_type(conf_type, fn)
    allows_overflow = _check_bool(allows_overflow, "allows_overflow", fn)
    pool = _Pool(models, skip_box_thr)
    if len(pool.score) == 0:
        return Detections.empty()
    if w is None:
        w = np.ones(len(models))
    return _wbf_core(pool, w, iou_thr, conf_type, allows_overflow)


def nms_fusion(
    per_model: Sequence[Detections],
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.5,
    skip_box_thr: float = 0.0,
) -> Detections:
    """Class-aware greedy NMS over all models' boxes (same results as ``ensemble_boxes.nms``).

    With ``weights``, scores become ``score * weight / sum(weights)`` (as the reference does; note
    that weights of all ones therefore divide scores by the number of models, while ``None`` keeps
    them). Kept boxes keep their ``model_index``; ``support`` ORs the model bits of the boxes each
    kept box suppressed (same class, IoU > ``iou_thr``) with its own. Sorted by score.
    """
    fn = "nms_fusion"
    models = _check_models(per_model, fn)
    w = _check_weights(weights, len(models), fn)
    iou_thr = _check_fraction(iou_thr, "iou_thr", fn)
    skip_box_thr = _check_skip(skip_box_thr, fn)
    pool = _Pool(models, skip_box_thr)
    if len(pool.score) == 0:
        return Detections.empty()
    return _nms_core(pool, w, iou_thr)


def consensus_vote(
    per_model: Sequence[Detections],
    k: int,
    weights: Sequence[float] | None = None,
    iou_thr: float = 0.55,
    skip_box_thr: float = 0.0,
    conf_type: str = "avg",
    allows_overflow: bool = False,
) -> Detections:
    """k-of-n voting: the WBF boxes that at least ``k`` distinct models contributed to."""
    fn = "consensus_vote"
    models = _check_models(per_model, fn)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= int(k) <= max(len(models), 1):
        raise ValueError(f"consensus_vote: k must be an integer in [1, number of models = {len(models)}], got {k!r}")
    fused = weighted_boxes_fusion(models, weights, iou_thr, skip_box_thr, conf_type, allows_overflow)
    return fused[np.bitwise_count(fused.support) >= int(k)]


_PARAMS = {
    "wbf": ("weights", "iou_thr", "skip_box_thr", "conf_type", "allows_overflow"),
    "nms": ("weights", "iou_thr", "skip_box_thr"),
    "vote": ("k", "weights", "iou_thr", "skip_box_thr", "conf_type", "allows_overflow"),
}


def fuse(per_model: Sequence[Detections], method: str, **params: object) -> Detections:
    """Fuse with ``method`` "wbf" (weighted_boxes_fusion), "nms" (nms_fusion) or "vote" (consensus_vote).

    ``params`` are that function's keyword arguments; an unknown method or parameter raises
    ``ValueError`` naming it.
    """
    if not isinstance(method, str) or method not in _PARAMS:
        raise ValueError(f"fuse: unknown method {method!r}; expected one of {', '.join(map(repr, METHODS))}")
    allowed = _PARAMS[method]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(f"fuse: unknown parameter(s) {', '.join(map(repr, unknown))} for method {method!r}; "
                         f"allowed: {', '.join(allowed)}")
    if method == "wbf":
        return weighted_boxes_fusion(per_model, **params)  # type: ignore[arg-type]
    if method == "nms":
        return nms_fusion(per_model, **params)  # type: ignore[arg-type]
    if "k" not in params:
        raise ValueError("fuse: method 'vote' needs parameter 'k' (minimum number of agreeing models)")
    return consensus_vote(per_model, **params)  # type: ignore[arg-type]
