"""inspector/core/rules.py: every rule kind with pass, fail and review (or keep / drop) cases,
persistence over frames and seconds per stream, ERROR conversion, and rule order."""

from __future__ import annotations

from contextlib import nullcontext as does_not_raise
from typing import Any

import numpy as np
import pytest

from inspector.core.decision import Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.rules import (
    Agreement,
    AnyDefect,
    ClassThreshold,
    Count,
    Disagreement,
    Persistence,
    Region,
    Rule,
    RuleInput,
    RuleSet,
    RuleStep,
    Size,
    Uncertainty,
    model_scores,
)

NAMES = ("particle", "scratch", "residue")
P, S, R = 0, 1, 2  # class ids
PASS, FAIL, REVIEW, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.REVIEW, Verdict.ERROR
ALL3 = 0b111


def dets(*rows: tuple) -> Detections:
    """Rows of (x1, y1, x2, y2, score, class[, support bitmask])."""
    if not rows:
        return Detections.empty()
    a = [list(r) + [1] * (7 - len(r)) for r in rows]
    return Detections([r[:4] for r in a], [r[4] for r in a], [r[5] for r in a], -1, [r[6] for r in a])


def box(score: float = 0.9, cls: int = P, x: float = 10, y: float = 10, size: float = 10, support: int = 1) -> tuple:
    return (x, y, x + size, y + size, score, cls, support)


def run(rule: Rule, det: Detections, **kw: Any):
    return RuleSet([rule]).evaluate(RuleInput(det, class_names=NAMES, **kw))


SQUARE = np.array([[0, 0], [50, 0], [50, 50], [0, 50]], float)
MASK = np.zeros((100, 100), bool)
MASK[:, 60:] = True  # the right part of a 100 x 100 frame


def shift_mm(px: np.ndarray) -> np.ndarray:
    """A die image whose pixel (0, 0) sits at wafer (140, 0) mm, 0.1 mm per pixel."""
    return np.stack([140 + px[:, 0] * 0.1, -px[:, 1] * 0.1], 1)


# Each case: rule, boxes, extra RuleInput fields, expected verdict, boxes kept, text in a reason.
CASES = [
    # --- class_threshold (filter) ---
    ("thr-keep", ClassThreshold(id="t", default=0.3), [box(0.5), box(0.3)], {}, PASS, 2, None),
    ("thr-drop-default", ClassThreshold(id="t", default=0.3), [box(0.5), box(0.29)], {}, PASS, 1, "dropped 1 box"),
    ("thr-drop-per-class", ClassThreshold(id="t", default=0.3, thresholds={S: 0.6}),
     [box(0.5, P), box(0.5, S), box(0.7, S)], {}, PASS, 2, "scratch 0.60"),
    ("thr-classes-limit", ClassThreshold(id="t", default=0.9, classes=(S,)), [box(0.5, P), box(0.5, S)], {},
     PASS, 1, "dropped 1 box"),
    ("thr-empty", ClassThreshold(id="t", default=0.3), [], {}, PASS, 0, None),
    # --- size ---
    ("size-keep", Size(id="s", min_px=5, max_px=50), [box(size=5), box(size=50)], {}, PASS, 2, None),
    ("size-drop-small", Size(id="s", min_px=5), [box(size=4), box(size=20)], {}, PASS, 1, "shorter than 5 px"),
    ("size-drop-large", Size(id="s", max_px=30), [box(size=31), box(size=20)], {}, PASS, 1, "longer than 30 px"),
    ("size-longest-side", Size(id="s", min_px=5), [(0, 0, 2, 8, 0.9, P)], {}, PASS, 1, None),
    ("size-fail", Size(id="s", max_px=30, action="fail"), [box(size=40), box(size=10)], {}, FAIL, 2,
     "1 box longer than 30 px"),
    ("size-review", Size(id="s", min_px=5, action="review"), [box(size=3)], {}, REVIEW, 1, "shorter than 5 px"),
    ("size-um-message", Size(id="s", min_px=3, unit="um", unit_per_px=2.0), [box(size=2)], {}, PASS, 0,
     "shorter than 6 um"),
    ("size-classes-limit", Size(id="s", min_px=5, classes=(S,)), [box(size=3, cls=P), box(size=3, cls=S)], {},
     PASS, 1, None),
    # --- region: polygons, mask, wafer edge ring ---
    ("poly-exclude-drop", Region(id="g", mode="exclude", polygons=(SQUARE,)), [box(x=10), box(x=70)], {}, PASS, 1,
     "inside the excluded region"),
    ("poly-exclude-keep", Region(id="g", mode="exclude", polygons=(SQUARE,)), [box(x=70)], {}, PASS, 1, None),
    ("poly-include", Region(id="g", mode="include", polygons=(SQUARE, SQUARE + 200)), [box(x=10), box(x=70),
     box(x=210, y=210)], {}, PASS, 2, "outside the included region"),
    ("mask-exclude", Region(id="g", mode="exclude", mask=MASK), [box(x=10), box(x=70), box(x=95)],
     {"image_shape": (100, 100)}, PASS, 1, "dropped 2 boxes"),
    ("mask-centre-clipped", Region(id="g", mode="exclude", mask=MASK), [(90, 10, 130, 20, 0.9, P)],
     {"image_shape": (100, 100)}, PASS, 0, None),
    ("mask-size-mismatch", Region(id="g", mask=MASK), [box()], {"image_shape": (200, 100)}, ERROR, 1, "mask is"),
    ("edge-ring-drop", Region(id="g", edge_ring_mm=3.0, wafer_radius_mm=150.0),
     [box(x=50, y=0, size=10), box(x=90, y=0, size=20)], {"wafer_xy_mm": shift_mm}, PASS, 1, "dropped 1 box"),
    ("edge-ring-no-die", Region(id="g", edge_ring_mm=3.0, wafer_radius_mm=150.0), [box()], {}, ERROR, 1,
     "die position"),
    ("region-classes-limit", Region(id="g", polygons=(SQUARE,), classes=(S,)), [box(cls=P), box(cls=S)], {},
     PASS, 1, None),
    ("region-empty", Region(id="g", edge_ring_mm=3.0, wafer_radius_mm=150.0), [], {}, PASS, 0, None),
    # --- agreement ---
    ("agree-pass", Agreement(id="a", k=2), [box(support=0b011), box(support=ALL3)], {"n_models": 3}, PASS, 2, None),
    ("agree-review", Agreement(id="a", k=2), [box(support=0b001), box(support=ALL3)], {"n_models": 3}, REVIEW, 2,
     "1 box backed by fewer than 2 of 3 models"),
    ("agree-fail", Agreement(id="a", k=3, verdict="fail"), [box(support=0b011)], {"n_models": 3}, FAIL, 1, None),
    ("agree-classes", Agreement(id="a", k=2, classes=(S,)), [box(cls=P, support=1)], {"n_models": 3}, PASS, 1, None),
    # --- count ---
    ("count-pass", Count(id="c", classes=(P,), max_count=2), [box(), box(), box(cls=S)], {}, PASS, 3, None),
    ("count-fail", Count(id="c", classes=(P,), max_count=2), [box(), box(), box()], {}, FAIL, 3,
     "3 boxes (3 particle), more than the 2 allowed"),
    ("count-review", Count(id="c", classes=(P, S), max_count=1, verdict="review"), [box(), box(cls=S)], {},
     REVIEW, 2, None),
    ("count-zero", Count(id="c", max_count=0), [], {}, PASS, 0, None),
    # --- uncertainty: band [low, high) ---
    ("unc-pass", Uncertainty(id="u", low=0.3, high=0.5), [box(0.5), box(0.29)], {}, PASS, 2, None),
    ("unc-review", Uncertainty(id="u", low=0.3, high=0.5), [box(0.3), box(0.9)], {}, REVIEW, 2, "uncertain band"),
    ("unc-fail", Uncertainty(id="u", low=0.3, high=0.5, verdict="fail"), [box(0.49)], {}, FAIL, 1, None),
    ("unc-classes", Uncertainty(id="u", low=0.3, high=0.5, classes=(S,)), [box(0.4, P)], {}, PASS, 1, None),
    # --- disagreement ---
    ("dis-agreement-pass", Disagreement(id="d", min_agreement=0.6), [box(support=0b011)], {"n_models": 3},
     PASS, 1, None),
    ("dis-agreement-review", Disagreement(id="d", min_agreement=0.6), [box(support=0b001)], {"n_models": 3},
     REVIEW, 1, "fewer than 60% of the models"),
    ("dis-fail", Disagreement(id="d", min_agreement=1.0, verdict="fail"), [box(support=0b011)], {"n_models": 3},
     FAIL, 1, None),
    ("dis-single-model", Disagreement(id="d", min_agreement=0.6), [box(support=1)], {"n_models": 1}, PASS, 1, None),
    ("dis-spread-needs-raw", Disagreement(id="d", max_spread=0.3), [box()], {"n_models": 2}, ERROR, 1,
     "raw detections"),
    # --- any_defect ---
    ("any-pass", AnyDefect(id="x"), [], {}, PASS, 0, None),
    ("any-fail", AnyDefect(id="x"), [box(cls=P), box(cls=S), box(cls=P)], {}, FAIL, 3,
     "3 defects remain: 2 particle, 1 scratch"),
    ("any-review", AnyDefect(id="x", classes=(S,), verdict="review"), [box(cls=S)], {}, REVIEW, 1, None),
    ("any-other-class", AnyDefect(id="x", classes=(S,)), [box(cls=P)], {}, PASS, 1, None),
    ("any-below-min-score", AnyDefect(id="x", min_score=0.5), [box(score=0.4)], {}, PASS, 1, None),
    ("any-at-min-score", AnyDefect(id="x", min_score=0.5), [box(score=0.5)], {}, FAIL, 1, None),
]


@pytest.mark.parametrize("rule, rows, extra, verdict, n_kept, text", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_cases(rule: Rule, rows: list, extra: dict, verdict: Verdict, n_kept: int, text: str | None) -> None:
    res = run(rule, dets(*rows), **extra)
    assert res.verdict is verdict, res.reasons
    assert len(res.kept) == n_kept
    assert all(r.rule_id == rule.id for r in res.reasons)
    if text is not None:
        assert any(text in r.message for r in res.reasons), res.reasons
    if verdict is PASS and n_kept == len(rows):
        assert res.reasons == ()  # silent when nothing was dropped or judged
    if n_kept < len(rows) and verdict is PASS:
        assert res.dropped == {rule.id: len(rows) - n_kept}


def test_every_rule_kind_has_pass_fail_review_or_keep_drop_cases() -> None:
    seen: dict[type, set[Any]] = {}
    for _, rule, rows, _, verdict, n_kept, _ in CASES:
        seen.setdefault(type(rule), set()).update({verdict, "drop" if n_kept < len(rows) else "keep"})
    for judge in (Size, Agreement, Count, Uncertainty, Disagreement, AnyDefect):
        assert {PASS, FAIL, REVIEW} <= seen[judge], judge
    for filt in (ClassThreshold, Size, Region):
        assert {"keep", "drop"} <= seen[filt], filt
    # Persistence is stateful: see the test_persistence_* tests below.


def test_judge_reasons_cite_the_boxes() -> None:
    res = run(Uncertainty(id="u", low=0.3, high=0.5), dets(box(0.9), box(0.4), box(0.35)))
    assert res.reasons[0].detection_indices == (1, 2)


def test_disagreement_score_spread() -> None:
    fused = dets(box(0.8, support=ALL3), box(0.7, x=60, support=ALL3))
    m0 = dets(box(0.9), box(0.7, x=60))
    m1 = dets(box(0.85), box(0.72, x=60))
    m2 = dets(box(0.8, cls=S), box(0.68, x=61))  # box 0: wrong class -> this member missed it (score 0)
    scores = model_scores(fused, [m0, m1, m2], 0.5)
    assert np.allclose(scores[:, 0], [0.9, 0.85, 0.0]) and np.allclose(scores[:, 1], [0.7, 0.72, 0.68])
    rule = Disagreement(id="d", max_spread=0.3, match_iou=0.5)
    res = run(rule, fused, n_models=3, per_model=[m0, m1, m2])
    assert res.verdict is REVIEW and res.reasons[0].detection_indices == (0,)
    assert "spread by up to 0.90" in res.reasons[0].message
    agree = run(rule, fused, n_models=3, per_model=[m0, m1, m1])
    assert agree.verdict is PASS


@pytest.mark.parametrize(
    "make, expectation",
    [
        (lambda: ClassThreshold(id="t", default=0.5), does_not_raise()),
        (lambda: Size(id="s", min_px=1), does_not_raise()),
        (lambda: Size(id="s"), pytest.raises(ValueError, match="min_px")),
        (lambda: Size(id="s", min_px=1, action="maybe"), pytest.raises(ValueError)),
        (lambda: Region(id="g"), pytest.raises(ValueError, match="polygons")),
        (lambda: Region(id="g", edge_ring_mm=3.0), pytest.raises(ValueError, match="wafer_radius_mm")),
        (lambda: Region(id="g", mask=np.zeros(5)), pytest.raises(ValueError, match="2-D")),
        (lambda: Persistence(id="p"), pytest.raises(ValueError, match="min_frames")),
        (lambda: Uncertainty(id="u", low=0.5, high=0.5), pytest.raises(ValueError, match="low < high")),
        (lambda: Disagreement(id="d"), pytest.raises(ValueError, match="max_spread")),
        (lambda: Agreement(id="a", k=0), pytest.raises(ValueError)),
        (lambda: AnyDefect(id=""), pytest.raises(ValueError, match="id")),
        (lambda: RuleSet([AnyDefect(id="x"), Count(id="x")]), pytest.raises(ValueError, match="duplicate")),
    ],
)
def test_construction(make, expectation) -> None:
    with expectation:
        make()


# --- persistence -------------------------------------------------------------------------------


def frame(rs: RuleSet, t: float, *rows: tuple, camera: str = "cam-a"):
    return rs.evaluate(RuleInput(dets(*rows), context={"camera": camera}, t_monotonic=t, class_names=NAMES))


def test_persistence_over_frames() -> None:
    rs = RuleSet([Persistence(id="p", min_frames=3, match_iou=0.3), AnyDefect(id="x", verdict="review")])
    assert frame(rs, 0.0, box(x=10)).verdict is PASS
    second = frame(rs, 0.1, box(x=12))  # moved a little: same object
    assert second.verdict is PASS and second.dropped == {"p": 1}
    assert "not yet seen for 3 frames" in second.reasons[0].message
    third = frame(rs, 0.2, box(x=14))
    assert third.verdict is REVIEW and len(third.kept) == 1
    assert frame(rs, 0.3, box(x=14, cls=S)).verdict is PASS  # another class: a new object
    assert frame(rs, 0.4).verdict is PASS  # nothing on this frame: the run is broken
    assert frame(rs, 0.5, box(x=14, cls=S)).verdict is PASS


def test_persistence_over_seconds_and_both_limits() -> None:
    rs = RuleSet([Persistence(id="p", min_seconds=1.0), AnyDefect(id="x")])
    assert frame(rs, 10.0, box()).verdict is PASS
    assert frame(rs, 10.5, box()).verdict is PASS
    assert frame(rs, 11.0, box()).verdict is FAIL
    both = RuleSet([Persistence(id="p", min_seconds=1.0, min_frames=5), AnyDefect(id="x")])
    got = [frame(both, t, box()).verdict for t in (0.0, 0.6, 1.2, 1.8, 2.4)]
    assert got == [PASS, PASS, PASS, PASS, FAIL]  # 1 s is reached on frame 3, 5 frames on frame 5


def test_persistence_keeps_streams_apart() -> None:
    rs = RuleSet([Persistence(id="p", min_frames=2), AnyDefect(id="x")])
    assert frame(rs, 0.0, box(), camera="a").verdict is PASS
    assert frame(rs, 0.1, box(), camera="b").verdict is PASS  # first sight on camera b
    assert frame(rs, 0.2, box(), camera="a").verdict is FAIL
    assert frame(rs, 0.3, box(), camera="b").verdict is FAIL
    rs.reset()
    assert frame(rs, 0.4, box(), camera="a").verdict is PASS


def test_persistence_only_filters_its_classes_and_matches_one_to_one() -> None:
    rs = RuleSet([Persistence(id="p", min_frames=2, classes=(S,))])
    first = frame(rs, 0.0, box(cls=P), box(cls=S, x=50))
    assert len(first.kept) == 1 and first.kept.class_id.tolist() == [P]
    # Two boxes over one old object: only one continues it.
    second = frame(rs, 0.1, box(cls=S, x=50), box(cls=S, x=51))
    assert len(second.kept) == 1


# --- the rule set ------------------------------------------------------------------------------


def test_order_matters_threshold_before_any_defect() -> None:
    d = dets(box(0.2))
    threshold_first = RuleSet([ClassThreshold(id="t", default=0.3), AnyDefect(id="x")])
    judge_first = RuleSet([AnyDefect(id="x"), ClassThreshold(id="t", default=0.3)])
    assert threshold_first.evaluate(RuleInput(d)).verdict is PASS
    res = judge_first.evaluate(RuleInput(d))
    assert res.verdict is FAIL and len(res.kept) == 0
    assert res.reasons[0].detection_indices == ()  # the cited box was dropped later: no longer cited


class Boom(Rule):
    def apply(self, inp: RuleInput, state: dict) -> RuleStep:
        raise RuntimeError("kaput")


class BadMask(Rule):
    def apply(self, inp: RuleInput, state: dict) -> RuleStep:
        return RuleStep(np.ones(len(inp.fused) + 1, bool))


@pytest.mark.parametrize("bad, text", [(Boom(id="boom"), "RuntimeError: kaput"), (BadMask(id="boom"), "keep mask")])
def test_a_rule_that_raises_gives_error_not_a_lost_unit(bad: Rule, text: str) -> None:
    rs = RuleSet([ClassThreshold(id="t", default=0.5), bad, AnyDefect(id="x")])
    res = rs.evaluate(RuleInput(dets(box(0.9), box(0.1))))
    assert res.verdict is ERROR
    err = [r for r in res.reasons if r.verdict is ERROR]
    assert len(err) == 1 and err[0].rule_id == "boom" and text in err[0].message and "'boom'" in err[0].message
    assert [r.rule_id for r in res.reasons] == ["t", "boom", "x"]  # the other rules still ran
    assert len(res.kept) == 1


def test_indices_point_into_kept_and_dropped_counts() -> None:
    d = dets(box(0.1), box(0.9, cls=S), box(0.2), box(0.8, cls=P, x=60))
    rs = RuleSet([ClassThreshold(id="t", default=0.5), AnyDefect(id="x", classes=(P,))])
    res = rs.evaluate(RuleInput(d, class_names=NAMES))
    assert res.dropped == {"t": 2}
    assert res.kept_index.tolist() == [1, 3]
    assert res.reasons[-1] == Reason("x", FAIL, "1 defect remains: 1 particle", (1,))
    assert res.kept.class_id[1] == P


def test_empty_rule_set_passes() -> None:
    res = RuleSet([]).evaluate(RuleInput(dets(box())))
    assert res.verdict is PASS and res.reasons == () and len(res.kept) == 1


def test_many_boxes_all_rules_do_not_raise() -> None:
    rng = np.random.default_rng(0)
    n = 100
    xy = rng.uniform(0, 600, (n, 2))
    d = Detections(np.hstack([xy, xy + rng.uniform(1, 40, (n, 2))]), rng.uniform(0, 1, n), rng.integers(0, 3, n),
                   -1, rng.integers(1, 8, n).astype(np.uint32))
    raw = [d[rng.random(n) < 0.8] for _ in range(3)]
    rules = [
        ClassThreshold(id="t", default=0.2, thresholds={S: 0.4}), Size(id="s", min_px=3),
        Region(id="g", mode="exclude", polygons=(SQUARE,), mask=np.zeros((640, 640), bool)),
        Persistence(id="p", min_frames=1), Agreement(id="a", k=2),
        Count(id="c", classes=(P,), max_count=10), Uncertainty(id="u", low=0.3, high=0.5),
        Disagreement(id="d", max_spread=0.5, min_agreement=0.5), AnyDefect(id="x"),
    ]
    res = RuleSet(rules).evaluate(RuleInput(d, raw, 3, (640, 640), {"camera": "c"}, 0.0))
    assert res.verdict is FAIL and not any(r.verdict is ERROR for r in res.reasons)
    assert all(0 <= i < len(res.kept) for r in res.reasons for i in r.detection_indices)


def test_class_lookups_handle_unlisted_negative_and_large_ids() -> None:
    # class ids outside the configured ones (an unknown id, -1, one far beyond) take the default
    # threshold and are not selected by a class-restricted rule
    ids = [-1, 0, 1, 2, 3, 40]
    boxes = Detections(np.tile([0, 0, 10, 10], (6, 1)), [0.6] * 6, ids)
    inp = RuleInput(boxes, class_names=NAMES)
    thr = ClassThreshold(id="t", thresholds={S: 0.7, 40: 0.5}, default=0.65)
    step = thr.apply(inp, {})
    assert step.keep.tolist() == [False, False, False, False, False, True]
    assert Count(id="c", classes=(S, R), max_count=0).applies(boxes).tolist() == [False, False, True, True, False, False]
    none = ClassThreshold(id="t0", default=0.5).apply(inp, {})
    assert none.keep is None and none.reasons == ()
