"""inspector/core/wafer_rules.py: defect-die fraction, spatial signatures (hand-built maps, random
maps that must not be called a pattern, clear patterns that must be found), coverage and errors."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from inspector.core.decision import Verdict
from inspector.core.wafer import WaferLayout
from inspector.core.wafer_rules import (
    COVERAGE_RULE_ID,
    DefectDieFraction,
    DieLayout,
    DieResult,
    SpatialSignature,
    WaferRuleSet,
    find_signatures,
)

P, S = 0, 1  # particle, scratch
LAY = WaferLayout(210.0, 10.0, 10.0, 3.0)  # a realistic round wafer: 293 dies, 52 on the edge
DL = DieLayout.of(LAY)
DIES = LAY.dies
SIGS = WaferRuleSet([SpatialSignature(id="sig", scratch_class_ids=(S,))])  # lines need scratch dies
AGNOSTIC = WaferRuleSet([SpatialSignature(id="sig")])  # any failed die may form a line


def results(bad: np.ndarray | set, cls: int = P, line: set | None = None) -> dict:
    """Die results from a defect map: FAIL dies carry ``cls`` (or S for dies in ``line``)."""
    if not isinstance(bad, set):
        bad = {d for d, b in zip(DIES, bad) if b}
    out = {}
    for d in DIES:
        if d in bad or (line and d in line):
            out[d] = (Verdict.FAIL, {S} if line and d in line else {cls})
        else:
            out[d] = (Verdict.PASS, ())
    return out


# --- map generators (like the synthetic wafer line: signature + background) ---------------------


def random_map(rng: np.random.Generator, rate: float) -> np.ndarray:
    return rng.random(len(DIES)) < rate


def cluster_map(rng: np.random.Generator, bg: float) -> np.ndarray:
    centres = LAY.die_centers_mm()
    inner = np.flatnonzero(LAY.radius_fraction(LAY.dies_array) < 0.6)
    c0 = centres[rng.choice(inner)] + rng.uniform(-0.4, 0.4, 2) * 10
    radius = rng.uniform(1.5, 2.2) * 10
    return random_map(rng, bg) | (np.hypot(*(centres - c0).T) <= radius)


def ring_map(rng: np.random.Generator, bg: float) -> np.ndarray:
    return random_map(rng, bg) | (LAY.edge_mask() & (rng.random(len(DIES)) < rng.uniform(0.7, 0.95)))


def _segment_hits(p0: np.ndarray, p1: np.ndarray, rect: tuple) -> bool:
    (x0, y0, x1, y1), d = rect, p1 - p0
    lo, hi = 0.0, 1.0
    for p, q in ((-d[0], p0[0] - x0), (d[0], x1 - p0[0]), (-d[1], p0[1] - y0), (d[1], y1 - p0[1])):
        if p == 0:
            if q < 0:
                return False
        elif p < 0:
            lo = max(lo, q / p)
        else:
            hi = min(hi, q / p)
    return lo <= hi


def line_dies(rng: np.random.Generator) -> set:
    """Dies a straight scratch crosses: 80-100% of a chord at a random angle and offset."""
    r = LAY.usable_radius_mm
    ang, off = rng.uniform(0, math.pi), rng.uniform(-0.45, 0.45) * r
    dv = np.array([math.cos(ang), math.sin(ang)])
    nv = np.array([-dv[1], dv[0]])
    half = math.sqrt(r * r - off * off)
    p0, p1 = nv * off - dv * half * rng.uniform(0.8, 1.0), nv * off + dv * half * rng.uniform(0.8, 1.0)
    return {d for d in DIES if _segment_hits(p0, p1, LAY.die_rect_mm(d))}


def line_map(rng: np.random.Generator, bg: float) -> np.ndarray:
    hit = line_dies(rng)
    return random_map(rng, bg) | np.array([d in hit for d in DIES])


# --- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [LAY, DL, DIES], ids=["WaferLayout", "DieLayout", "die list"])
def test_layout_forms_agree(layout) -> None:
    dl = DieLayout.of(layout)
    assert len(dl) == 293
    assert dl.edge.tolist() == LAY.edge_mask().tolist()  # 4-neighbour rule computed from indices alike
    res = SIGS.evaluate(results(set()), layout)
    assert res.signature == "none" and res.verdict is Verdict.PASS


def test_die_result_forms() -> None:
    assert DieResult.of("fail") == DieResult(Verdict.FAIL)
    assert DieResult.of((Verdict.FAIL, [1, 1])) == DieResult(Verdict.FAIL, frozenset({1}))
    with pytest.raises(ValueError):
        DieResult.of("broken")


# --- defect-die fraction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_fail, n_review, max_fraction, verdict",
    [(0, 0, 0.1, Verdict.PASS), (29, 0, 0.1, Verdict.PASS), (30, 0, 0.1, Verdict.FAIL),
     (10, 200, 0.1, Verdict.PASS), (30, 0, 0.5, Verdict.PASS)],
)
def test_defect_fraction(n_fail: int, n_review: int, max_fraction: float, verdict: Verdict) -> None:
    rs = WaferRuleSet([DefectDieFraction(id="frac", max_fraction=max_fraction)])
    res_in = {d: Verdict.PASS for d in DIES}
    for d in DIES[:n_fail]:
        res_in[d] = Verdict.FAIL
    for d in DIES[n_fail:n_fail + n_review]:
        res_in[d] = Verdict.REVIEW  # awaiting a person: not counted as defective
    res = rs.evaluate(res_in, LAY)
    assert res.verdict is verdict
    assert res.defect_fraction == pytest.approx(n_fail / 293)
    assert res.signature is None  # no signature rule configured
    if verdict is Verdict.FAIL:
        assert res.reasons[0].rule_id == "frac" and "30 of 293 judged dies failed" in res.reasons[0].message


def test_review_verdict_and_unjudged_dies() -> None:
    rs = WaferRuleSet([DefectDieFraction(id="frac", max_fraction=0.05, verdict="review")])
    res_in = {d: Verdict.FAIL if i < 20 else Verdict.PASS for i, d in enumerate(DIES)}
    res_in[DIES[-1]] = Verdict.ERROR
    del res_in[DIES[-2]]
    res_in[(99, 99)] = Verdict.PASS  # a die off the layout is shown, not counted
    res = rs.evaluate(res_in, LAY)
    assert res.defect_fraction == pytest.approx(20 / 291)  # the error and missing dies are not judged
    assert res.verdict is Verdict.REVIEW
    cov = [r for r in res.reasons if r.rule_id == COVERAGE_RULE_ID]
    assert len(cov) == 1 and "2 of 293 dies not judged (1 without a result, 1 error" in cov[0].message
    assert res.die_map[DIES[-2]] == "not_inspected" and res.die_map[DIES[-1]] == "error"
    assert res.die_map[(99, 99)] == "pass" and len(res.die_map) == 294
    quiet = WaferRuleSet([], unjudged_verdict=None).evaluate(res_in, LAY)
    assert quiet.verdict is Verdict.PASS and quiet.reasons == ()


def test_a_wafer_rule_that_raises_gives_error() -> None:
    class Boom:
        id = "boom"

        def apply(self, w):
            raise RuntimeError("kaput")

    res = WaferRuleSet([Boom(), DefectDieFraction(id="frac", max_fraction=0.0)]).evaluate(
        results({DIES[0]}), LAY)
    assert res.verdict is Verdict.ERROR
    assert res.reasons[0].rule_id == "boom" and "RuntimeError: kaput" in res.reasons[0].message
    assert res.reasons[1].rule_id == "frac"  # the other rules still ran


# --- hand-built signature maps ------------------------------------------------------------------


def test_cluster_block() -> None:
    block = {(x, y) for x in (1, 2, 3) for y in (-1, 0, 1)}
    res = SIGS.evaluate(results(block | {(-7, 5)}), LAY)
    assert res.signature == "cluster" and res.verdict is Verdict.FAIL
    assert set(res.signature_dies["cluster"]) == block  # the lone die far away is not part of it
    assert res.reasons[0].rule_id == "sig" and res.reasons[0].message.startswith("cluster: 1 cluster of 9 dies")


def test_small_cluster_below_min_dies_is_not_reported() -> None:
    block = {(0, 0), (1, 0), (0, 1), (1, 1)}
    assert SIGS.evaluate(results(block), LAY).signature == "cluster"
    strict = WaferRuleSet([SpatialSignature(id="sig", min_dies=5)])
    assert strict.evaluate(results(block), LAY).signature == "random"


def test_edge_ring() -> None:
    edge = set(LAY.edge_dies())
    res = SIGS.evaluate(results(edge | {(0, 0), (2, 3)}), LAY)
    assert res.signature == "edge_ring" and res.verdict is Verdict.FAIL
    assert set(res.signature_dies["edge_ring"]) == edge
    assert "52 of 52 edge dies defective" in res.reasons[0].message
    # The ring's straight top row is not also a scratch line, nor its corners clusters.
    assert set(res.signature_dies) == {"edge_ring"}
    # Needs at least half of the edge dies: 27 of 52 (y >= 0) is a ring, 25 of 52 (y > 0) is not.
    assert SIGS.evaluate(results({d for d in edge if d[1] >= 0}), LAY).signature == "edge_ring"
    assert "edge_ring" not in SIGS.evaluate(results({d for d in edge if d[1] > 0}), LAY).signature_dies


@pytest.mark.parametrize("dies", [
    {(i, i) for i in range(-6, 7)},         # diagonal
    {(x, -2) for x in range(-8, 9)},        # a row
    {(i, i) for i in range(-6, 7)} - {(1, 1)},  # one gap is allowed
    {(x, x // 2) for x in range(-8, 9)},    # a shallow slope
], ids=["diagonal", "row", "one-gap", "slope"])
def test_scratch_line(dies: set) -> None:
    for rs, res_in in ((SIGS, results({(-5, 5), (6, -3)}, line=dies)),
                       (AGNOSTIC, results(dies | {(-5, 5), (6, -3)}))):
        res = rs.evaluate(res_in, LAY)
        assert res.signature == "scratch_line" and res.verdict is Verdict.FAIL
        assert set(res.signature_dies["scratch_line"]) == dies
        assert "cluster" not in res.signature_dies


def test_two_gaps_break_a_line() -> None:
    line = {(i, i) for i in range(-6, 7)}
    broken = line - {(0, 0), (1, 1)}
    res = AGNOSTIC.evaluate(results(broken), LAY)
    found = set(res.signature_dies.get("scratch_line", ()))
    assert found <= {(i, i) for i in range(-6, 0)} or found <= {(i, i) for i in range(2, 7)}


def test_scratch_class_decides_when_classes_are_known() -> None:
    line = {(i, i) for i in range(-6, 7)}
    # Dies on a line but carrying no scratch: not a scratch line.
    assert SIGS.evaluate(results(line, cls=P), LAY).signature == "random"
    # Scratch dies on a line stand out even from heavy other defects (30% of dies).
    rng = np.random.default_rng(5)
    noisy = results(random_map(rng, 0.3), cls=P, line=line)
    res = SIGS.evaluate(noisy, LAY)
    assert res.signature == "scratch_line" and set(res.signature_dies["scratch_line"]) == line
    # Without class information the same map is too noisy to call a line.
    agnostic = AGNOSTIC.evaluate(noisy, LAY)
    assert "scratch_line" not in agnostic.signature_dies


def test_none_random_and_signature_filter() -> None:
    assert SIGS.evaluate(results(set()), LAY).signature == "none"
    one = SIGS.evaluate(results({(0, 0)}), LAY)
    assert one.signature == "random" and one.verdict is Verdict.PASS
    # A rule that only looks for clusters still reports the ring it saw, but does not judge by it.
    only_cluster = WaferRuleSet([SpatialSignature(id="sig", signatures=("cluster",))])
    res = only_cluster.evaluate(results(set(LAY.edge_dies())), LAY)
    assert res.signature == "edge_ring" and res.verdict is Verdict.PASS and res.reasons == ()


# --- statistics over many wafers ----------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.1, 0.25])
@pytest.mark.parametrize("rules", [AGNOSTIC, SIGS], ids=["class-agnostic", "scratch-class"])
def test_random_defects_are_not_called_a_signature(rate: float, rules: WaferRuleSet) -> None:
    calls = Counter()
    for seed in range(50):
        rng = np.random.default_rng(seed)
        bad = random_map(rng, rate)
        scratch = {d for d, b in zip(DIES, bad & (rng.random(len(DIES)) < 0.2)) if b}  # a few scratches, at random
        calls[rules.evaluate(results(bad, line=scratch), LAY).signature] += 1
    assert calls["random"] >= 48, calls  # false signature rate <= 5% (measured: 0 of 50)


@pytest.mark.parametrize("kind, make", [("cluster", cluster_map), ("edge_ring", ring_map), ("scratch_line", line_map)])
@pytest.mark.parametrize("bg", [0.03, 0.09])
def test_clear_signatures_are_found(kind: str, make, bg: float) -> None:
    calls = Counter()
    for seed in range(50):
        res = AGNOSTIC.evaluate(results(make(np.random.default_rng(1000 + seed), bg)), LAY)
        calls[res.signature] += 1
    assert calls[kind] >= 48, calls  # detected in >= 95% (measured: 50 of 50)


def test_clear_scratch_lines_are_found_among_heavy_other_defects() -> None:
    found = 0
    for seed in range(50):
        rng = np.random.default_rng(2000 + seed)
        line = line_dies(rng)
        res = SIGS.evaluate(results(random_map(rng, 0.25), line=line), LAY)
        found += res.signature == "scratch_line" and set(res.signature_dies["scratch_line"]) <= line
    assert found >= 48


def test_find_signatures_checks_the_map_shape() -> None:
    with pytest.raises(ValueError, match="shape"):
        find_signatures(np.zeros(3, bool), DL)
