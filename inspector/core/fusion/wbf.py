"""Weighted boxes fusion: the greedy, per-class clustering of ``ensemble-boxes``, run over all
independent groups at once (see the package docstring for how and why)."""

from __future__ import annotations

import struct

import numpy as np

from inspector.core.detections import Detections
from inspector.core.fusion.pool import Pool, independent_groups

_F32 = np.float32
_F64 = np.float64


def _dense(sorted_labels: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... per run of equal values in a sorted label array."""
    out = np.zeros(len(sorted_labels), np.intp)
    (sorted_labels[1:] != sorted_labels[:-1]).cumsum(out=out[1:])
    return out



def _visit_order(label: np.ndarray, ws: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's visiting order inside each class, and the dense class rank of each box.

    Inside a class the reference visits boxes by ``argsort(weighted score)[::-1]``. For distinct
    scores that is descending order; a class with tied scores replays numpy's (unstable) argsort
    on the same values in the same (model, box) order, so ties are visited exactly as there.
    Classes are independent; here they come by class id (the reference takes them in order of first
    appearance, which only matters for the final order of equal scores, see ``wbf_core``).
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


def wbf_core(pool: Pool, w: np.ndarray, iou_thr: float, conf_type: str, allows_overflow: bool) -> Detections:
    ws = pool.score * w[pool.model]
    visit, dense = _visit_order(pool.label, ws)
    xyxy = pool.xyxy.take(visit, 0)
    group = independent_groups(xyxy, dense, iou_thr)
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
