"""What the judge returns: one value per batch, holding everything it produced.

A ``Judgement`` carries, per frame, a ``FrameResult`` (the frame, its decision, the fused boxes
and each model's boxes) and, per batch, the stage timings. The pipeline hands each
``FrameResult`` to the sinks as it is: nothing is read back from the judge afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from inspector.core.decision import Decision, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent, SiteFrame


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One frame with its decision, plus the boxes behind it when the model ran."""

    frame: Frame
    decision: Decision
    fused: Detections | None = None                 # fused boxes before the rules
    per_model: tuple[Detections, ...] | None = None  # each ensemble member's own boxes
    site: SiteFrame | None = None                    # construction site: tracked workers, incident events


@dataclass(frozen=True, slots=True)
class Judgement:
    """A judged batch: one ``FrameResult`` per frame, in the frames' order, and the batch's stage
    timings in milliseconds (``detect_ms``, ``fusion_ms``, ``rules_ms``; empty when nothing ran)."""

    results: tuple[FrameResult, ...]
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    # Incident events tied to no frame of this batch (those a run's end closes); the others travel
    # in their frame's ``FrameResult.site``.
    events: tuple[IncidentEvent, ...] = ()

    @property
    def decisions(self) -> list[Decision]:
        return [r.decision for r in self.results]

    @classmethod
    def unjudged(cls, frames: Sequence[Frame], verdict: Verdict, reason: str, model_set_version: str,
                 config_hash: str) -> Judgement:
        """Every frame recorded as ERROR or NOT_INSPECTED with ``reason``: still one record per unit."""
        now = Frame.utc_now()
        return cls(tuple(FrameResult(f, Decision.unjudged(f.frame_id, verdict, reason, model_set_version,
                                                          config_hash, now)) for f in frames))


class Judge(Protocol):
    """Frames in, one ``Judgement`` out with exactly one result per frame (``Inspection`` is one)."""

    def judge(self, frames: Sequence[Frame]) -> Judgement: ...

    def finish(self) -> Judgement:
        """Called once after the last batch: what the run's end produces (incident end events);
        no results. Judges without state return an empty ``Judgement``."""
        ...


__all__ = ["FrameResult", "Judge", "Judgement"]
