"""What a construction-site run saw, per camera, for its summary: frames judged, tracks, incidents
by kind, and the tracks of every judged frame for scoring against a synthetic camera's truth.

A ``ResultSink`` on the record thread. It keeps the tracks only when asked (``keep_tracks``: a
camera with ground truth), so a long live run does not grow without bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.core.site.types import INCIDENT_KINDS, IncidentEvent
from inspector.station.inspection import WaferSummary
from inspector.station.judgement import FrameResult


@dataclass
class TrackedFrame:
    """The confirmed tracks of one judged frame (ids >= 0, boxes xyxy)."""

    frame_index: int
    track_ids: np.ndarray
    xyxy: np.ndarray


@dataclass
class CameraTally:
    frames: int = 0
    track_ids: set[int] = field(default_factory=set)
    opened: Counter[str] = field(default_factory=Counter)   # "new" events by kind
    closed: Counter[str] = field(default_factory=Counter)   # "end" events by kind
    end_reasons: Counter[str] = field(default_factory=Counter)
    tracked: list[TrackedFrame] = field(default_factory=list)


# (camera, frames) -> scores; frames are the judged ones, in order (see ``tracking_scores``).
Scorer = Callable[[str, Sequence[TrackedFrame]], Mapping[str, Any]]


class SiteTally:
    """See the module doc. ``cameras``: the configured ones (listed even when none of their frames
    was judged); ``keep_tracks``: cameras whose tracks are kept for scoring."""

    name = "site"
    critical = False

    def __init__(self, cameras: Sequence[str] = (), keep_tracks: Sequence[str] = ()) -> None:
        self.keep_tracks = frozenset(keep_tracks)
        self.cameras: dict[str, CameraTally] = {c: CameraTally() for c in cameras}

    def _camera(self, camera: str) -> CameraTally:
        return self.cameras.setdefault(camera, CameraTally())

    def accept_result(self, result: FrameResult) -> None:
        site = result.site
        if site is None:
            return
        tally = self._camera(site.camera)
        tally.frames += 1
        confirmed = [w for w in site.workers if w.track_id >= 0]
        tally.track_ids.update(w.track_id for w in confirmed)
        self._count(site.events)
        index = result.frame.context.get("frame_index")
        if site.camera in self.keep_tracks and index is not None:
            tally.tracked.append(TrackedFrame(
                int(index), np.array([w.track_id for w in confirmed], np.int64),
                np.array([w.xyxy for w in confirmed], np.float64).reshape(-1, 4)))

    def accept_wafer(self, summary: WaferSummary) -> None:
        pass  # no wafers on a site

    def accept_events(self, events: Sequence[IncidentEvent]) -> None:
        self._count(events)

    def flush(self, timeout: float | None = None) -> None:
        pass  # counted as it arrives: nothing waits

    def _count(self, events: Sequence[IncidentEvent]) -> None:
        for e in events:
            tally = self._camera(e.camera)
            if e.event == "new":
                tally.opened[e.kind] += 1
            elif e.event == "end":
                tally.closed[e.kind] += 1
                tally.end_reasons[e.reason or "-"] += 1

    def summary(self, drops: Mapping[str, int] | None = None, scorer: Scorer | None = None) -> dict[str, Any]:
        """The run's site facts: per camera and in total. ``drops`` per camera (frames that never
        reached the model); ``scorer`` scores each camera whose tracks were kept."""
        drops = drops or {}
        cameras: dict[str, Any] = {}
        opened: Counter[str] = Counter()
        closed: Counter[str] = Counter()
        for cam in sorted(set(self.cameras) | set(drops)):
            t = self.cameras.get(cam, CameraTally())
            opened.update(t.opened)
            closed.update(t.closed)
            tracking = None
            if scorer is not None and cam in self.keep_tracks and t.tracked:  # nothing judged: no score
                tracking = dict(scorer(cam, t.tracked))
            cameras[cam] = {
                "frames": t.frames,
                "dropped": int(drops.get(cam, 0)),
                "tracks": len(t.track_ids),
                "incidents": _by_kind(t.opened),
                "incidents_closed": _by_kind(t.closed),
                "end_reasons": dict(sorted(t.end_reasons.items())),
                "tracking": tracking,
            }
        return {
            "cameras": cameras,
            "frames": sum(c["frames"] for c in cameras.values()),
            "dropped": sum(c["dropped"] for c in cameras.values()),
            "tracks": sum(c["tracks"] for c in cameras.values()),
            "incidents": _by_kind(opened),
            "incidents_total": sum(opened.values()),
            "incidents_closed": _by_kind(closed),
        }


def _by_kind(counts: Mapping[str, int]) -> dict[str, int]:
    """Every incident kind (zero when unseen), in a fixed order, then any other kind seen."""
    out = {k: int(counts.get(k, 0)) for k in INCIDENT_KINDS}
    out.update({k: int(n) for k, n in sorted(counts.items()) if k not in out})
    return out


__all__ = ["CameraTally", "Scorer", "SiteTally", "TrackedFrame"]
