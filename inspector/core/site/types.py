"""The data a site camera's frames produce, from tracked workers to incident events.

Flow per camera frame: detections -> tracks (one id per worker across frames, from the tracker)
-> ``TrackedWorker`` (PPE worn, zones stood in, violations now) -> the incident engine ->
``IncidentEvent``s (new / update / end). A frame's share of all this is one ``SiteFrame``,
carried in the judge's result beside the decision, never through attributes read afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np

IncidentKind = Literal["no_hard_hat", "no_vest", "in_danger_zone"]
EventType = Literal["new", "update", "end"]
INCIDENT_KINDS: tuple[str, ...] = ("no_hard_hat", "no_vest", "in_danger_zone")


@dataclass(frozen=True, slots=True)
class TrackedWorker:
    """One worker in one frame: the track, the box, what PPE it wears and where it stands."""

    track_id: int
    xyxy: tuple[float, float, float, float]
    score: float
    hat: bool              # smoothed over the association window
    vest: bool
    hat_score: float       # best associated hat detection's score (0 when none)
    vest_score: float
    zones: tuple[str, ...] = ()        # ids of the zones the foot point lies in
    violations: tuple[str, ...] = ()   # incident kinds this worker violates in this frame (before persistence)


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """One step of an incident's life: ``new`` when a violation has persisted long enough,
    ``update`` when its worst frame changes, ``end`` when it has been clear long enough (or the
    track is gone). ``key`` is unique per incident (camera / run / track / kind / sequence) and,
    with ``seq``, makes each event idempotent for the MES."""

    event: EventType
    key: str
    seq: int                     # 0 for new, then 1, 2, ... per incident
    camera: str
    track_id: int
    kind: str
    rule_id: str
    severity: str
    zone: str | None
    t_utc: datetime              # of the frame that caused the event
    frame_id: str                # the frame that caused the event
    first_frame_id: str          # where the violation began (before persistence)
    worst_frame_id: str          # the frame with the strongest evidence so far
    worst_score: float           # its evidence strength (e.g. worker score x missing-PPE certainty)
    started_utc: datetime        # when the violation began
    reason: str = ""             # "cleared", "track lost", "run ended" for end events
    last_frame_id: str = ""      # the last frame that showed the violation (the evidence's "last frame")


@dataclass(frozen=True, slots=True)
class SiteFrame:
    """Everything site-specific one frame produced: its camera, the tracked workers and the
    incident events it caused (usually none)."""

    camera: str
    workers: tuple[TrackedWorker, ...] = ()
    events: tuple[IncidentEvent, ...] = ()
    zones: tuple[tuple[str, str, tuple[tuple[float, float], ...]], ...] = field(default=())  # (id, kind, polygon)

    @property
    def track_ids(self) -> np.ndarray:
        return np.array([w.track_id for w in self.workers], dtype=np.int64)
