"""One id per worker across a camera's frames: ByteTrack from Roboflow's ``trackers`` (the kept
successor of the ByteTrack that supervision carried until 0.30), behind a two-array interface.

ByteTrack matches confident boxes to tracks first, then gives the weak boxes (a worker half behind
a container) a second chance to keep their track, and keeps a lost track alive for ``lost_s`` so
an id survives a short occlusion. Times are seconds (video time for recordings), so the tracker
stays right when the monitoring flow drops frames or a file is analysed with a stride.

Tuned for a few judged frames a second (a site camera stream at 5 fps, thinned further by drops),
where a worker moves a good part of its width between two judged frames and may have turned or
stopped meanwhile (measured on the synthetic site, ``tests/runtime/test_tracker.py``):

- association by buffered IoU (``match_buffer``, C-BIoU, Yang et al. WACV 2023) with a low IoU
  floor, instead of plain IoU >= 0.2 against the Kalman prediction;
- the Kalman motion model steps at a fixed ``motion_hz`` whatever the camera's frame rate
  (ByteTrack's process noise is tuned per step; stepping once per judged frame at a few frames
  a second made the filter too sure of constant velocity, and a worker who turned lost its id);
- ``lost_s`` is a time budget (the library prunes on timestamps), not a frame count.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker
from trackers.utils.iou import BIoU

_NOMINAL_FPS = 30.0  # the trackers library counts its lost-track buffer in frames at 30 fps


class WorkerTracker:
    """``update(xyxy, score, t)`` -> one track id per box, in the input order; -1 for boxes below
    ``min_score`` and for tracks not yet confirmed (seen fewer than ``min_frames`` frames).

    ``cfg`` is a ``TrackerConfig`` (or anything with its fields: min_score, activation_score,
    match_iou, lost_s, min_frames, and optionally match_buffer, motion_hz); ``fps`` is the
    camera's nominal frame rate (only used to time frames given without a time)."""

    def __init__(self, cfg: Any, fps: float) -> None:
        self.min_score = float(cfg.min_score)
        self.fps = float(fps)
        buffer = float(getattr(cfg, "match_buffer", 0.0))
        self._bt = ByteTrackTracker(
            # with timestamps the library prunes a lost track after lost_track_buffer / 30 seconds
            lost_track_buffer=max(1, round(float(cfg.lost_s) * _NOMINAL_FPS)),
            # the Kalman step: a time step of the motion model, not the camera's frame period
            frame_rate=float(getattr(cfg, "motion_hz", None) or self.fps),
            track_activation_threshold=float(cfg.activation_score),
            minimum_consecutive_frames=int(cfg.min_frames),
            # the config speaks ByteTrack's original "1 - IoU cost" threshold; trackers takes the IoU
            minimum_iou_threshold=max(1e-6, 1.0 - float(cfg.match_iou)),
            high_conf_det_threshold=float(cfg.activation_score),
            iou=BIoU(buffer) if buffer > 0 else None,
        )
        self._last_t: float | None = None
        self._frame = 0

    def update(self, xyxy: np.ndarray, score: np.ndarray, t: float | None = None) -> np.ndarray:
        """Track ids (int64) for these boxes at time ``t`` (seconds; None = one frame after the last)."""
        boxes = np.asarray(xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(score, dtype=np.float32).reshape(-1)
        if t is None:
            t = self._frame / self.fps
        if self._last_t is not None and t <= self._last_t:
            t = self._last_t + 1e-6  # the library skips a frame whose time does not advance
        self._last_t = t
        self._frame += 1
        out = np.full(len(boxes), -1, dtype=np.int64)
        keep = np.flatnonzero(scores >= self.min_score)
        dets = sv.Detections(xyxy=boxes[keep], confidence=scores[keep],
                             data={"row": keep.astype(np.int64)})
        tracked = self._bt.update(dets, timestamp=float(t))
        if len(tracked):  # the library returns boxes in its own order: map back by row
            out[np.asarray(tracked.data["row"], dtype=np.int64)] = np.asarray(tracked.tracker_id, dtype=np.int64)
        return out

    def reset(self) -> None:
        self._bt.reset()
        self._last_t = None
        self._frame = 0
