"""What a worker violates in one frame, rule by rule."""

from __future__ import annotations

import pytest

from inspector.core.site.types import TrackedWorker
from inspector.core.site.violations import SiteRule, ViolationCheck
from inspector.core.site.zones import SiteZone

SQ = ((0, 0), (1, 0), (1, 1))
ZONES = (SiteZone("pit", "restricted", SQ), SiteZone("crane", "restricted", SQ),
         SiteZone("yard", "ppe_required", SQ), SiteZone("office", "exclusion", SQ),
         SiteZone("gate", "inspection", SQ))
RULES = (SiteRule("hat", "no_hard_hat"), SiteRule("vest", "no_vest"), SiteRule("danger", "in_danger_zone"))


def W(hat=True, vest=True, zones=(), score=0.9, hat_score=0.0, vest_score=0.0):
    return TrackedWorker(1, (0, 0, 1, 1), score, hat, vest, hat_score, vest_score, tuple(zones))


@pytest.mark.parametrize("case, worker, rules, expected", [
    ("fully equipped, nowhere", W(), RULES, []),
    ("no hat anywhere", W(hat=False), RULES, [("hat", None)]),
    ("no vest outside a PPE zone is fine", W(vest=False), RULES, []),
    ("no vest in a PPE zone", W(vest=False, zones=("yard",)), RULES, [("vest", "yard")]),
    ("in a restricted zone, equipped", W(zones=("crane",)), RULES, [("danger", "crane")]),
    ("inspection zone means nothing by itself", W(zones=("gate",)), RULES, []),
    ("exclusion zone: ignored entirely", W(hat=False, vest=False, zones=("yard", "office", "pit")), RULES, []),
    ("everything at once", W(hat=False, vest=False, zones=("pit", "yard")), RULES,
     [("hat", None), ("vest", "yard"), ("danger", "pit")]),
    ("rule with zones: only those", W(zones=("crane",)), (SiteRule("d", "in_danger_zone", zones=("pit",)),), []),
    ("rule with zones: in one of them", W(zones=("crane", "pit")),
     (SiteRule("d", "in_danger_zone", zones=("pit",)),), [("d", "pit")]),
    ("hat rule limited to a zone, outside it", W(hat=False), (SiteRule("h", "no_hard_hat", zones=("yard",)),), []),
    ("hat rule limited to a zone, inside it", W(hat=False, zones=("yard",)),
     (SiteRule("h", "no_hard_hat", zones=("yard",)),), [("h", "yard")]),
])
def test_hits(case, worker, rules, expected):
    hits = ViolationCheck(rules, ZONES).hits(worker)
    assert [(h.rule.id, h.zone) for h in hits] == expected, case


def test_strength_is_worker_score_times_missing_ppe_certainty():
    (h,) = ViolationCheck(RULES[:1], ZONES).hits(W(hat=False, score=0.8, hat_score=0.25))
    assert h.strength == pytest.approx(0.6)
    (d,) = ViolationCheck(RULES[2:], ZONES).hits(W(zones=("pit",), score=0.7))
    assert d.strength == pytest.approx(0.7)


def test_kinds_once_each_in_rule_order():
    rules = RULES + (SiteRule("danger2", "in_danger_zone", severity="low"),)
    assert ViolationCheck(rules, ZONES).kinds(W(hat=False, zones=("pit",))) == ("no_hard_hat", "in_danger_zone")


def test_like_reads_a_config_rule():
    from types import SimpleNamespace
    r = SiteRule.like(SimpleNamespace(id="x", kind="no_vest", persist_s=1, clear_s=3, severity="low", zones=["a"]))
    assert r == SiteRule("x", "no_vest", 1.0, 3.0, "low", ("a",))
