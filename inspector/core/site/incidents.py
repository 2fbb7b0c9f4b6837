"""Incidents, not alarms per frame: a violation on one track opens an incident only after it has
lasted ``persist_s``; the incident stays one record while it lasts and ends after ``clear_s``
without the violation, when its track is lost, or when the run ends.

Episodes are kept per (track, rule): with one rule per kind (the usual config) that is one incident
per worker and kind. A gap shorter than ``clear_s`` neither closes an open incident nor restarts a
pending one (a detector's flicker or a foot on a zone's edge is not a new episode).

Times: ``t`` is a monotonic time in seconds (video time for recordings), used for every duration;
``t_utc`` is only recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from inspector.core.site.types import IncidentEvent, TrackedWorker
from inspector.core.site.violations import Hit, SiteRule, ViolationCheck
from inspector.core.site.zones import SiteZone


@dataclass(slots=True)
class _Episode:
    """One (track, rule) violation: pending until it persists, then an open incident."""

    rule: SiteRule
    track_id: int
    zone: str | None
    started_t: float
    started_utc: datetime
    first_frame_id: str
    last_t: float                 # last time the violation was seen
    last_frame_id: str
    worst_score: float
    worst_frame_id: str
    key: str | None = None        # set when the incident opens
    seq: int = -1                 # of the last event sent

    @property
    def is_open(self) -> bool:
        return self.key is not None


@dataclass(frozen=True, slots=True)
class ActiveViolation:
    """An open incident (``key`` set) or a pending violation (``key`` None) right now."""

    rule_id: str
    kind: str
    track_id: int
    zone: str | None
    key: str | None
    since_t: float


@dataclass(frozen=True, slots=True)
class IncidentStatus:
    open: tuple[ActiveViolation, ...] = ()
    pending: tuple[ActiveViolation, ...] = ()


class IncidentEngine:
    """The incidents of one camera in one run. ``update`` once per judged frame, in time order;
    ``finish`` at the run's end. ``update_margin``: an open incident sends an ``update`` only when
    its worst evidence improves by at least this much (no event per frame for noise in scores)."""

    def __init__(self, rules: Iterable[SiteRule], camera: str, run_id: str, zones: Sequence[SiteZone] = (),
                 lost_s: float = 1.5, update_margin: float = 0.05) -> None:
        self.rules = tuple(SiteRule.like(r) for r in rules)
        self.camera = camera
        self.run_id = run_id
        self.check = ViolationCheck(self.rules, zones)
        self.lost_s = float(lost_s)
        self.update_margin = float(update_margin)
        self._episodes: dict[tuple[int, str], _Episode] = {}
        self._track_seen: dict[int, float] = {}
        self._opened = 0

    # --- per frame ------------------------------------------------------------------------------
    def update(self, t: float, t_utc: datetime, frame_id: str,
               workers: Sequence[TrackedWorker]) -> tuple[IncidentEvent, ...]:
        events: list[IncidentEvent] = []
        hit_now: set[tuple[int, str]] = set()
        for w in workers:
            if w.track_id < 0:  # an unconfirmed track has no identity to hold an incident
                continue
            self._track_seen[w.track_id] = t
            for hit in self.check.hits(w):
                k = (w.track_id, hit.rule.id)
                hit_now.add(k)
                ev = self._on_hit(k, hit, t, t_utc, frame_id)
                if ev is not None:
                    events.append(ev)
        for k, ep in list(self._episodes.items()):
            if k in hit_now:
                continue
            lost = t - self._track_seen.get(ep.track_id, ep.last_t) > self.lost_s
            if lost or t - ep.last_t >= ep.rule.clear_s:
                del self._episodes[k]
                if ep.is_open:
                    events.append(self._event(ep, "end", t_utc, frame_id, "track lost" if lost else "cleared"))
        forget = t - max(self.lost_s, 1.0) * 4
        self._track_seen = {tid: ts for tid, ts in self._track_seen.items() if ts >= forget}
        return tuple(events)

    def finish(self, t_utc: datetime, frame_id: str) -> tuple[IncidentEvent, ...]:
        """End every open incident (reason "run ended"); pending violations are dropped."""
        events = [self._event(ep, "end", t_utc, frame_id, "run ended")
                  for ep in self._episodes.values() if ep.is_open]
        self._episodes.clear()
        self._track_seen.clear()
        return tuple(events)

    def status(self) -> IncidentStatus:
        """Open incidents and pending violations after the last ``update`` (for the frame's verdict)."""
        act = [ActiveViolation(ep.rule.id, ep.rule.kind, ep.track_id, ep.zone, ep.key, ep.started_t)
               for ep in self._episodes.values()]
        return IncidentStatus(tuple(a for a in act if a.key is not None), tuple(a for a in act if a.key is None))

    # --- internals ------------------------------------------------------------------------------
    def _on_hit(self, k: tuple[int, str], hit: Hit, t: float, t_utc: datetime, frame_id: str) -> IncidentEvent | None:
        ep = self._episodes.get(k)
        if ep is None:
            ep = self._episodes[k] = _Episode(hit.rule, k[0], hit.zone, t, t_utc, frame_id, t, frame_id,
                                              hit.strength, frame_id)
            improved = False
        else:
            ep.last_t, ep.last_frame_id = t, frame_id
            margin = self.update_margin if ep.is_open else 0.0
            improved = hit.strength > ep.worst_score + margin
            if improved:
                ep.worst_score, ep.worst_frame_id = hit.strength, frame_id
        if not ep.is_open and t - ep.started_t >= ep.rule.persist_s:
            ep.key = f"{self.run_id}:{self.camera}:{ep.track_id}:{ep.rule.kind}:{self._opened}"
            self._opened += 1
            return self._event(ep, "new", t_utc, frame_id)
        if ep.is_open and improved:
            return self._event(ep, "update", t_utc, frame_id)
        return None

    def _event(self, ep: _Episode, kind: str, t_utc: datetime, frame_id: str, reason: str = "") -> IncidentEvent:
        ep.seq += 1
        assert ep.key is not None
        return IncidentEvent(kind, ep.key, ep.seq, self.camera, ep.track_id, ep.rule.kind, ep.rule.id,
                             ep.rule.severity, ep.zone, t_utc, frame_id, ep.first_frame_id, ep.worst_frame_id,
                             float(ep.worst_score), ep.started_utc, reason, ep.last_frame_id)


__all__ = ["ActiveViolation", "IncidentEngine", "IncidentStatus", "SiteRule"]
