"""Tiled inference for images larger than the model input (wafer scans of 4k x 4k and more).

Tiles: per axis, the fewest tiles of ``tile`` px whose consecutive overlap is at least
``overlap * tile`` px, spread evenly, the first at 0 and the last flush with the border (every tile
is full size, so the model never sees padding inside a wafer image). Tiles are zero-copy views of
the big image, run through the inner detector ``batch`` at a time.

Seams. Guarantee: an object whose width and height are at most the overlap is seen whole by at
least one tile (per axis, take the last tile starting left of the object: if the object left that
tile, it would have to span the whole overlap with the next one). **So choose the overlap larger
than the largest defect** (in pixels of the image); larger defects are still found, as the union of
their fragments.

Merge. Two boxes from two overlapping tiles are the same object when, *clipped to the region both
tiles see*, they have IoU >= ``match_iou`` and the same class: both tiles see that region fully, so
the clipped parts of one object agree whether a tile saw the object whole or cut. Matches are
joined transitively (an object over three tiles, or a corner shared by four). Each group becomes
one box: the best-scoring box that no tile edge cut (a box touching an *interior* tile edge, within
``edge_margin`` px, is "cut"; a box at the image border is not), or, when every view was cut, the
union of the fragments; the score is the group's best, the support the OR of its members.

With a real model, "seen whole and away from every interior edge" needs an overlap of at least the
largest defect plus twice the edge margin; when no tile qualifies, the union of the fragments is
used, which still gives one box over the whole defect. Boxes from the same tile are never compared
with each other (the inner detector's NMS already separated them); only a chain of matches through
a neighbouring tile can join them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inspector.core.detections import Detections
from inspector.core.geometry import box_iou
from inspector.core.ports import Detector, TimedDetections, TimedDetector


@dataclass(frozen=True, slots=True)
class Tile:
    x0: int
    y0: int
    x1: int
    y1: int


def tile_origins(length: int, tile: int, overlap_px: int) -> list[int]:
    """Start offsets along one axis: first 0, last ``length - tile``, consecutive overlap >= ``overlap_px``."""
    if length <= tile:
        return [0]
    stride = tile - overlap_px
    if stride < 1:
        raise ValueError(f"overlap {overlap_px} px leaves no stride for tile {tile} px")
    n = math.ceil((length - tile) / stride) + 1
    # Floor of an even spread: every step <= ceil((length - tile) / (n - 1)) <= stride.
    return [i * (length - tile) // (n - 1) for i in range(n)]


def make_tiles(height: int, width: int, tile: int, overlap_px: int) -> list[Tile]:
    """Row-major tiles covering the image exactly; a side shorter than ``tile`` gets one tile of its length."""
    xs, ys = tile_origins(width, tile, overlap_px), tile_origins(height, tile, overlap_px)
    tw, th = min(tile, width), min(tile, height)
    return [Tile(x, y, x + tw, y + th) for y in ys for x in xs]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def merge_tile_detections(
    per_tile: Sequence[Detections],
    tiles: Sequence[Tile],
    width: int,
    height: int,
    *,
    match_iou: float = 0.5,
    edge_margin: float = 2.0,
) -> Detections:
    """Tile-local detections -> one set in image coordinates, seams merged (see the module doc)."""
    if len(per_tile) != len(tiles):
        raise ValueError(f"{len(per_tile)} detection sets for {len(tiles)} tiles")
    counts = [len(d) for d in per_tile]
    n = sum(counts)
    if n == 0:
        return Detections.empty()
    tile_id = np.repeat(np.arange(len(tiles)), counts)
    t = np.array([[tl.x0, tl.y0, tl.x1, tl.y1] for tl in tiles], np.float64)
    allx = Detections.concat(per_tile)
    boxes = allx.xyxy.astype(np.float64) + t[tile_id][:, [0, 1, 0, 1]]
    scores, cls = allx.score, allx.class_id
    tb = t[tile_id]
    cut = (
        ((tb[:, 0] > 0) & (boxes[:, 0] <= tb[:, 0] + edge_margin))
        | ((tb[:, 1] > 0) & (boxes[:, 1] <= tb[:, 1] + edge_margin))
        | ((tb[:, 2] < width) & (boxes[:, 2] >= tb[:, 2] - edge_margin))
        | ((tb[:, 3] < height) & (boxes[:, 3] >= tb[:, 3] - edge_margin))
    )

    # Pairs of tiles that overlap, and the region they share.
    lt = np.maximum(t[:, None, :2], t[None, :, :2])
    rb = np.minimum(t[:, None, 2:], t[None, :, 2:])
    shared = np.all(rb > lt, axis=2)
    ii, jj = np.nonzero(np.triu(shared, k=1))
    starts = np.concatenate([[0], np.cumsum(counts)])
    uf = _UnionFind(n)
    for i, j in zip(ii.tolist(), jj.tolist()):
        if not counts[i] or not counts[j]:
            continue
        region = np.concatenate([lt[i, j], rb[i, j]])
        a = np.arange(starts[i], starts[i + 1])
        b = np.arange(starts[j], starts[j + 1])
        ca, cb = _clip_to(boxes[a], region), _clip_to(boxes[b], region)
        ka, kb = _nonempty(ca), _nonempty(cb)
        if not ka.any() or not kb.any():
            continue
        a, ca, b, cb = a[ka], ca[ka], b[kb], cb[kb]
        match = (box_iou(ca, cb) >= match_iou) & (cls[a][:, None] == cls[b][None, :])
        for p, q in zip(*np.nonzero(match)):
            uf.union(int(a[p]), int(b[q]))

    roots = np.fromiter((uf.find(k) for k in range(n)), np.int64, n)
    _, group = np.unique(roots, return_inverse=True)
    g = int(group.max()) + 1
    # Representative per group: uncut before cut, then the highest score.
    order = np.lexsort((-scores, cut, group))
    first = np.ones(n, bool)
    first[1:] = group[order][1:] != group[order][:-1]
    rep = order[first]  # one per group, groups in ascending order
    has_whole = ~cut[rep]
    union = np.empty((g, 4), np.float64)
    union[:, :2] = np.inf
    union[:, 2:] = -np.inf
    np.minimum.at(union[:, 0], group, boxes[:, 0])
    np.minimum.at(union[:, 1], group, boxes[:, 1])
    np.maximum.at(union[:, 2], group, boxes[:, 2])
    np.maximum.at(union[:, 3], group, boxes[:, 3])
    out_boxes = np.where(has_whole[:, None], boxes[rep], union)
    best = np.full(g, -np.inf, np.float32)
    np.maximum.at(best, group, scores)
    support = np.zeros(g, np.uint32)
    np.bitwise_or.at(support, group, allx.support)
    merged = Detections(out_boxes, best, cls[rep], allx.model_index[rep], support)
    return merged.sorted_by_score()


def _clip_to(b: np.ndarray, region: np.ndarray) -> np.ndarray:
    out = np.empty_like(b)
    out[:, 0::2] = np.clip(b[:, 0::2], region[0], region[2])
    out[:, 1::2] = np.clip(b[:, 1::2], region[1], region[3])
    return out


def _nonempty(b: np.ndarray) -> np.ndarray:
    return (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])


class TiledDetector:
    """``Detector`` that tiles large images through an inner detector and merges across seams.

    Images no larger than ``tile`` in both sides pass straight through (one tile). ``tile``
    defaults to the inner detector's input size, so tiles are inferred at full resolution.
    """

    def __init__(
        self,
        detector: Detector,
        tile: int | None = None,
        overlap: float = 0.2,
        batch: int = 8,
        *,
        match_iou: float = 0.5,
        edge_margin: float | None = None,
    ) -> None:
        imgsz = getattr(detector, "imgsz", None)
        model_side = None if imgsz is None else int(imgsz if isinstance(imgsz, int) else max(imgsz))
        if tile is None:
            if model_side is None:
                raise ValueError("tile size not given and the inner detector has no imgsz")
            tile = model_side
        if tile < 8:
            raise ValueError(f"tile must be at least 8 px, got {tile}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap}")
        self.inner = detector
        self._timed = isinstance(detector, TimedDetector)  # decided once: only a timed one adds stage times
        self.tile = int(tile)
        self.overlap = float(overlap)
        self.overlap_px = int(round(overlap * tile))
        self.batch = max(1, int(batch))
        self.match_iou = float(match_iou)
        if edge_margin is None:
            # 2 model pixels, in image pixels: a box cut by the tile edge ends within ~1 model px of it.
            edge_margin = 2.0 * max(1.0, self.tile / model_side) if model_side else 2.0
        self.edge_margin = float(edge_margin)

    @property
    def class_names(self) -> Sequence[str]:
        return self.inner.class_names

    @property
    def model_index(self) -> int:
        return int(getattr(self.inner, "model_index", 0))

    @model_index.setter
    def model_index(self, value: int) -> None:
        self.inner.model_index = value  # type: ignore[attr-defined]

    def tiles_for(self, height: int, width: int) -> list[Tile]:
        return make_tiles(height, width, self.tile, self.overlap_px)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self.detect_timed(images).detections

    def detect_timed(self, images: Sequence[np.ndarray]) -> TimedDetections:
        """``detect`` with the inner detector's stage times summed over tiles, the tile count and merge time."""
        t0 = time.perf_counter()
        plans = [self.tiles_for(*im.shape[:2]) for im in images]
        # One flat job list across all images, so batches stay full.
        jobs = [(k, tl) for k, tiles in enumerate(plans) for tl in tiles]
        results: list[Detections] = []
        inner_ms = {"preprocess_ms": 0.0, "inference_ms": 0.0, "postprocess_ms": 0.0}
        for s in range(0, len(jobs), self.batch):
            chunk = jobs[s : s + self.batch]
            views = [images[k][tl.y0 : tl.y1, tl.x0 : tl.x1] for k, tl in chunk]  # views, no copies
            if self._timed:
                run = self.inner.detect_timed(views)  # type: ignore[attr-defined]
                results.extend(run.detections)
                for key, v in run.timings_ms.items():
                    if key in inner_ms:
                        inner_ms[key] += v
            else:
                results.extend(self.inner.detect(views))
        t1 = time.perf_counter()
        out: list[Detections] = []
        pos = 0
        for k, tiles in enumerate(plans):
            per_tile = results[pos : pos + len(tiles)]
            pos += len(tiles)
            if len(tiles) == 1:
                out.append(per_tile[0])
            else:
                h, w = images[k].shape[:2]
                out.append(merge_tile_detections(per_tile, tiles, w, h, match_iou=self.match_iou,
                                                 edge_margin=self.edge_margin))
        t2 = time.perf_counter()
        return TimedDetections(out, {**inner_ms, "tiles": float(len(jobs)), "merge_ms": (t2 - t1) * 1e3,
                                     "total_ms": (t2 - t0) * 1e3})
