"""The traceable outcome of one unit: exactly one Decision per frame, whatever happened."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from inspector.core.detections import Detections


class Verdict(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    REVIEW = "review"
    ERROR = "error"                  # the unit was seen but could not be judged (model or rule failure)
    NOT_INSPECTED = "not_inspected"  # the unit never reached a model (unreadable image, stopped line)

    @property
    def needs_human(self) -> bool:
        return self in (Verdict.FAIL, Verdict.REVIEW, Verdict.ERROR)

    @staticmethod
    def worst(verdicts: Iterable[Verdict]) -> Verdict:
        """Combine rule outcomes: an error or a missing inspection outranks a judgement, then
        fail > review > pass (a certain fail is never hidden behind a 'maybe')."""
        best = Verdict.PASS
        for v in verdicts:
            if _SEVERITY[v] > _SEVERITY[best]:
                best = v
        return best


_SEVERITY = {Verdict.PASS: 0, Verdict.REVIEW: 1, Verdict.FAIL: 2, Verdict.ERROR: 3, Verdict.NOT_INSPECTED: 4}


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a verdict was reached: the rule that fired, the verdict it asks for, and a sentence."""

    rule_id: str
    verdict: Verdict
    message: str
    detection_indices: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The recorded outcome of one frame.

    ``detections`` are the fused boxes the rules kept; ``model_set_version`` names the exact
    ensemble (model names, versions and sha256s hashed together) and ``config_hash`` the exact
    station config, so the decision can be reproduced.
    """

    frame_id: str
    verdict: Verdict
    reasons: tuple[Reason, ...]
    detections: Detections
    model_set_version: str
    config_hash: str
    t_decided: datetime
    error: str | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.verdict, Verdict):
            object.__setattr__(self, "verdict", Verdict(self.verdict))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        if self.verdict in (Verdict.ERROR, Verdict.NOT_INSPECTED) and not (self.error or self.reasons):
            raise ValueError(f"decision for frame {self.frame_id}: verdict {self.verdict.value} needs an error or a reason")
        if self.t_decided.tzinfo is None:
            raise ValueError(f"decision for frame {self.frame_id}: t_decided must be timezone-aware")

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.reasons)

    @classmethod
    def unjudged(cls, frame_id: str, verdict: Verdict, error: str, model_set_version: str,
                 config_hash: str, t_decided: datetime) -> Decision:
        """The record for a unit that could not be judged: it still gets exactly one decision."""
        if verdict not in (Verdict.ERROR, Verdict.NOT_INSPECTED):
            raise ValueError(f"unjudged decision needs ERROR or NOT_INSPECTED, got {verdict.value}")
        return cls(frame_id, verdict, (), Detections.empty(), model_set_version, config_hash, t_decided, error=error)
