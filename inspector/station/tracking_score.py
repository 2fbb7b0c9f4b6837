"""How well tracks follow the true people: MOTA, IDF1, id switches, mostly tracked / lost, computed
with ``motmetrics`` (the standard CLEAR-MOT and identity metrics) against known ground truth such
as the synthetic site camera's.

A track box matches a true box when their IoU is at least ``iou_min`` (0.5, as in MOTChallenge).
The IoU matrix is computed here (motmetrics' own helper uses a function NumPy 2 removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import motmetrics as mm
import numpy as np

from inspector.core.geometry import box_iou
from inspector.core.site.types import SiteFrame

_METRICS = ("mota", "motp", "idf1", "num_switches", "mostly_tracked", "mostly_lost", "num_frames",
            "num_objects", "num_false_positives", "num_misses", "num_unique_objects")


@dataclass(frozen=True, slots=True)
class TrackingScore:
    """Scores over all frames added. ``motp`` is the mean IoU *distance* (1 - IoU) of matches."""

    mota: float
    idf1: float
    id_switches: int
    mostly_tracked: int
    mostly_lost: int
    true_tracks: int
    frames: int
    objects: int
    false_positives: int
    misses: int
    motp: float

    def as_dict(self) -> dict:
        return asdict(self)


class TrackingScorer:
    """Add frames one by one (truth and tracks), then ``score()``. Several cameras: one scorer each
    (track ids are per camera)."""

    def __init__(self, iou_min: float = 0.5) -> None:
        self.iou_min = float(iou_min)
        self._acc = mm.MOTAccumulator(auto_id=True)
        self._frames = 0

    def add(self, truth_ids: Sequence[int] | np.ndarray, truth_xyxy: np.ndarray,
            track_ids: Sequence[int] | np.ndarray, track_xyxy: np.ndarray) -> None:
        """One frame: the true people (ids, boxes) and the tracker's (ids, boxes); boxes with a
        negative track id (unconfirmed) are left out."""
        gt_ids = np.asarray(truth_ids, dtype=np.int64).reshape(-1)
        hyp_ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        gt = np.asarray(truth_xyxy, dtype=np.float64).reshape(-1, 4)
        hyp = np.asarray(track_xyxy, dtype=np.float64).reshape(-1, 4)
        keep = hyp_ids >= 0
        hyp_ids, hyp = hyp_ids[keep], hyp[keep]
        iou = box_iou(gt, hyp).astype(np.float64)
        dist = np.where(iou >= self.iou_min, 1.0 - iou, np.nan)
        self._acc.update(gt_ids.tolist(), hyp_ids.tolist(), dist)
        self._frames += 1

    def add_site_frame(self, truth_ids: Sequence[int] | np.ndarray, truth_xyxy: np.ndarray, site: SiteFrame) -> None:
        """One frame of a site judge's result against its truth."""
        boxes = np.array([w.xyxy for w in site.workers], dtype=np.float64).reshape(-1, 4)
        self.add(truth_ids, truth_xyxy, site.track_ids, boxes)

    def score(self) -> TrackingScore:
        if self._frames == 0:
            return TrackingScore(0.0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0)
        s = mm.metrics.create().compute(self._acc, metrics=list(_METRICS), name="all").iloc[0]

        def num(key: str) -> float:
            v = float(s[key])
            return 0.0 if np.isnan(v) else v

        return TrackingScore(
            mota=num("mota"), idf1=num("idf1"), id_switches=int(num("num_switches")),
            mostly_tracked=int(num("mostly_tracked")), mostly_lost=int(num("mostly_lost")),
            true_tracks=int(num("num_unique_objects")), frames=int(num("num_frames")),
            objects=int(num("num_objects")), false_positives=int(num("num_false_positives")),
            misses=int(num("num_misses")), motp=num("motp"),
        )


def score_tracks(frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                 iou_min: float = 0.5) -> TrackingScore:
    """Score a whole sequence of (truth ids, truth boxes, track ids, track boxes) frames at once."""
    scorer = TrackingScorer(iou_min)
    for gt_ids, gt_xyxy, hyp_ids, hyp_xyxy in frames:
        scorer.add(gt_ids, gt_xyxy, hyp_ids, hyp_xyxy)
    return scorer.score()
