"""Scoring a run's tracks against the ground truth of its synthetic cameras (MOTA, IDF1, ...).

Only frames the station judged are scored: a frame dropped in monitoring flow was never seen by
the tracker, so it is neither a miss nor a hit. Counting drops as misses would score the CPU
(how many frames the model could judge) rather than the tracker, and filling them in from the
tracks would score frames nobody looked at; so MOTA / IDF1 say how well the judged frames were
tracked, and the summary gives the drops beside them (``frames`` judged and scored, ``dropped``):
a reader weighs both. The drops still make tracking harder (longer gaps between judged frames),
and that is in the score. Truth workers are taken at their visible extent (what a detector can
see), the boxes a perfect detector would return; every worker with any visible part counts,
however little shows (a worker 5 % visible behind a container that the model misses is a miss).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from inspector.capture.synthetic_site import SyntheticSiteCamera
from inspector.station.site_tally import Scorer, TrackedFrame


def truth_cameras(sources: Iterable[object]) -> dict[str, SyntheticSiteCamera]:
    """The sources that know their truth, by camera id."""
    return {s.camera: s for s in sources if isinstance(s, SyntheticSiteCamera)}


def truth_of(camera: SyntheticSiteCamera, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Track ids and visible boxes of the workers in view in one frame."""
    workers = [w for w in camera.truth(frame_index).workers if w.visible_box is not None]
    return (np.array([w.track_id for w in workers], np.int64),
            np.array([w.visible_box for w in workers], np.float64).reshape(-1, 4))


def truth_scorer(cameras: Mapping[str, SyntheticSiteCamera]) -> Scorer:
    """A ``SiteTally`` scorer: each kept camera's tracks against that camera's truth."""

    def score(camera: str, frames: Sequence[TrackedFrame]) -> dict[str, Any]:
        from inspector.station.tracking_score import score_tracks  # motmetrics: only when scoring

        cam = cameras[camera]
        score = score_tracks([(*truth_of(cam, f.frame_index), f.track_ids, f.xyxy) for f in frames]).as_dict()
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in score.items()}

    return score


__all__ = ["truth_cameras", "truth_of", "truth_scorer"]
