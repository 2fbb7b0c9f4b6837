"""What a worker violates in one frame, rule by rule, before any persistence.

- ``no_hard_hat``: no hat, anywhere on the camera (or only in the rule's zones when it lists some);
- ``no_vest``: no vest while standing in a ``ppe_required`` zone (or one of the rule's zones);
- ``in_danger_zone``: standing in a ``restricted`` zone (or one of the rule's zones).

A worker standing in an ``exclusion`` zone is ignored (a fenced-off area the site does not judge).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from inspector.core.site.types import TrackedWorker
from inspector.core.site.zones import SiteZone

_DEFAULT_ZONE_KIND = {"no_vest": "ppe_required", "in_danger_zone": "restricted"}


@dataclass(frozen=True, slots=True)
class SiteRule:
    """An incident rule (``inspector.config.schema.site.IncidentRule`` has the same fields)."""

    id: str
    kind: str
    persist_s: float = 2.0
    clear_s: float = 2.0
    severity: str = "medium"
    zones: tuple[str, ...] | None = None

    @classmethod
    def like(cls, rule: Any) -> SiteRule:
        """From any object with these attributes (the config's rule), without importing the config."""
        zones = getattr(rule, "zones", None)
        return cls(rule.id, rule.kind, float(rule.persist_s), float(rule.clear_s), str(rule.severity),
                   None if zones is None else tuple(zones))


@dataclass(frozen=True, slots=True)
class Hit:
    """One rule a worker violates now, where, and how strong the evidence is (0..1)."""

    rule: SiteRule
    zone: str | None
    strength: float


class ViolationCheck:
    """The rules of one camera, with that camera's zones (their kinds decide what a rule without
    explicit zones applies to)."""

    def __init__(self, rules: Iterable[SiteRule], zones: Sequence[SiteZone] = ()) -> None:
        self.rules = tuple(rules)
        self.kind_of = {z.id: z.kind for z in zones}

    def _zone_for(self, rule: SiteRule, worker_zones: tuple[str, ...]) -> str | None:
        for z in worker_zones:
            if (z in rule.zones) if rule.zones is not None else self.kind_of.get(z) == _DEFAULT_ZONE_KIND[rule.kind]:
                return z
        return None

    def hits(self, w: TrackedWorker) -> tuple[Hit, ...]:
        if any(self.kind_of.get(z) == "exclusion" for z in w.zones):
            return ()
        out = []
        for rule in self.rules:
            if rule.kind == "no_hard_hat":
                if w.hat:
                    continue
                zone = None if rule.zones is None else next((z for z in w.zones if z in rule.zones), None)
                if rule.zones is not None and zone is None:
                    continue
                out.append(Hit(rule, zone, w.score * (1.0 - w.hat_score)))
            elif rule.kind == "no_vest":
                zone = None if w.vest else self._zone_for(rule, w.zones)
                if zone is not None:
                    out.append(Hit(rule, zone, w.score * (1.0 - w.vest_score)))
            elif rule.kind == "in_danger_zone":
                zone = self._zone_for(rule, w.zones)
                if zone is not None:
                    out.append(Hit(rule, zone, w.score))
        return tuple(out)

    def kinds(self, w: TrackedWorker) -> tuple[str, ...]:
        """The kinds violated now, each once, in rule order (``TrackedWorker.violations``)."""
        return tuple(dict.fromkeys(h.rule.kind for h in self.hits(w)))
