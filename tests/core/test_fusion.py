"""Ensemble fusion against the reference implementation (ensemble-boxes 1.0.9) and by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ensemble_boxes import nms as ref_nms
from ensemble_boxes import weighted_boxes_fusion as ref_wbf
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from inspector.core.detections import Detections
from inspector.core.fusion import CONF_TYPES, consensus_vote, fuse, nms_fusion, weighted_boxes_fusion

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------


def dets(boxes, scores, labels, model=0) -> Detections:
    return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), scores, labels, model)


def as_ref(per_model, scale=(1.0, 1.0)):
    """The reference's inputs: float64 copies of the same float32 values, divided by the image size."""
    s = np.array([scale[0], scale[1], scale[0], scale[1]])
    return ([d.xyxy.astype(np.float64) / s for d in per_model],
            [d.score.astype(np.float64) for d in per_model],
            [d.class_id.astype(np.float64) for d in per_model])


def canonical(xyxy, score, label):
    """Rows sorted by (score desc, label, coords) on float32-rounded keys (ties cannot flip)."""
    xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
    score = np.asarray(score, np.float64)
    label = np.asarray(label, np.float64)
    k32 = xyxy.astype(np.float32)
    o = np.lexsort((k32[:, 3], k32[:, 2], k32[:, 1], k32[:, 0], label, -score.astype(np.float32)))
    return xyxy[o], score[o], label[o]


def assert_matches(ours: Detections, ref, scale=(1.0, 1.0), atol=1e-4):
    rb, rs, rl = ref
    s = np.array([scale[0], scale[1], scale[0], scale[1]])
    assert len(ours) == len(rb), f"{len(ours)} boxes, reference {len(rb)}"
    ob, os_, ol = canonical(ours.xyxy / s, ours.score, ours.class_id)
    rb, rs, rl = canonical(rb, rs, rl)
    np.testing.assert_allclose(ob, rb, atol=atol, rtol=0)
    np.testing.assert_allclose(os_, rs, atol=atol, rtol=0)
    np.testing.assert_array_equal(ol, rl)


def quiet_ref(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# strategies: overlapping boxes from a few "objects", on a coarse grid (many exact ties in
# coordinates, IoUs and scores) with optional float jitter
# ----------------------------------------------------------------------------------------------

GRID = 32
SCORES = st.one_of(st.sampled_from([0.05, 0.25, 0.5, 0.75, 0.9, 1.0]), st.floats(0.0078125, 1.0, width=32))


@st.composite
def grid_box(draw):
    x1 = draw(st.integers(0, GRID - 1))
    y1 = draw(st.integers(0, GRID - 1))
    x2 = draw(st.integers(x1 + 1, GRID))
    y2 = draw(st.integers(y1 + 1, GRID))
    return np.array([x1, y1, x2, y2], np.float64) / GRID


@st.composite
def ensembles(draw, max_models=4, max_boxes=10, n_classes=3):
    n_models = draw(st.integers(1, max_models))
    objects = draw(st.lists(grid_box(), min_size=1, max_size=5))
    jitter = draw(st.booleans())
    per_model = []
    for t in range(n_models):
        k = draw(st.integers(0, max_boxes))
        boxes, scores, labels = [], [], []
        for _ in range(k):
            box = objects[draw(st.integers(0, len(objects) - 1))].copy() if draw(st.booleans()) else draw(grid_box())
            if jitter:  # less than half a grid step: corners keep their order
                box = box + np.array(draw(st.lists(st.floats(-0.4, 0.4), min_size=4, max_size=4))) / GRID
                box = np.clip(box, 0.0, 1.0)
            boxes.append(box)
            scores.append(draw(SCORES))
            labels.append(draw(st.integers(0, n_classes - 1)))
        per_model.append(dets(np.array(boxes).reshape(-1, 4), np.array(scores, np.float32), labels, t))
    return per_model


WEIGHTS = st.lists(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), min_size=4, max_size=4)


# ----------------------------------------------------------------------------------------------
# weighted boxes fusion
# ----------------------------------------------------------------------------------------------


@SETTINGS
@given(per_model=ensembles(), weights=st.one_of(st.none(), WEIGHTS), conf_type=st.sampled_from(CONF_TYPES),
       iou_thr=st.sampled_from([0.0, 0.3, 0.5, 0.55, 0.8]), allows_overflow=st.booleans())
def test_wbf_matches_reference(per_model, weights, conf_type, iou_thr, allows_overflow):
    w = None if weights is None else weights[:len(per_model)]
    ours = weighted_boxes_fusion(per_model, w, iou_thr=iou_thr, conf_type=conf_type, allows_overflow=allows_overflow)
    ref = quiet_ref(ref_wbf, *as_ref(per_model), weights=w, iou_thr=iou_thr, conf_type=conf_type,
                    allows_overflow=allows_overflow)
    assert_matches(ours, ref)
    assert np.all(ours.model_index == -1)
    assert np.all(np.diff(ours.score) <= 0), "sorted by score, best first"
    # the very same order, ties included: our final argsort runs on the reference's exact scores
    np.testing.assert_allclose(ours.xyxy, ref[0], atol=1e-6)
    np.testing.assert_array_equal(ours.class_id, ref[2])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_models=st.integers(1, 4), conf_type=st.sampled_from(CONF_TYPES))
def test_wbf_matches_reference_on_dense_random_scenes(seed, n_models, conf_type):
    """Jittered copies of one set of objects, in pixels (a power-of-two image: scaling is exact)."""
    per_model = random_scene(seed, n_models, n_objects=60, size=(1024, 512))
    weights = list(np.random.default_rng(seed).uniform(0.5, 2.0, n_models))
    ours = weighted_boxes_fusion(per_model, weights, conf_type=conf_type, skip_box_thr=0.1)
    ref = quiet_ref(ref_wbf, *as_ref(per_model, (1024, 512)), weights=weights, conf_type=conf_type, skip_box_thr=0.1)
    assert_matches(ours, ref, scale=(1024, 512))


def random_scene(seed, n_models, n_objects, size, n_classes=4):
    rng = np.random.default_rng(seed)
    w, h = size
    wh = rng.uniform(8, 120, (n_objects, 2))
    c = rng.uniform([0, 0], [w, h], (n_objects, 2))
    gt = np.concatenate([c - wh / 2, c + wh / 2], 1)
    cls = rng.integers(0, n_classes, n_objects)
    out = []
    for t in range(n_models):
        keep = rng.random(n_objects) < 0.9
        b = gt[keep] + rng.normal(0, 0.08, (int(keep.sum()), 4)) * np.tile(wh[keep], 2)
        b = np.clip(np.sort(b.reshape(-1, 2, 2), axis=1).reshape(-1, 4), 0, [w, h, w, h])
        b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
        b = np.clip(b, 0, [w, h, w, h])
        out.append(dets(b, rng.uniform(0.05, 1.0, len(b)).astype(np.float32), cls[keep], t))
    return out


def test_wbf_weights_change_results_like_the_reference():
    per_model = random_scene(3, 3, 40, (1, 1))
    plain = weighted_boxes_fusion(per_model)
    weighted = weighted_boxes_fusion(per_model, [1.0, 4.0, 0.5])
    assert len(plain) != len(weighted) or not np.allclose(plain.score, weighted.score)
    assert_matches(weighted, quiet_ref(ref_wbf, *as_ref(per_model), weights=[1.0, 4.0, 0.5]))
    assert_matches(plain, quiet_ref(ref_wbf, *as_ref(per_model)))


def test_wbf_skip_box_thr_like_the_reference():
    per_model = random_scene(5, 3, 40, (1, 1))
    for thr in (0.0, 0.3, 0.7, 1.1):
        ours = weighted_boxes_fusion(per_model, skip_box_thr=thr)
        assert_matches(ours, quiet_ref(ref_wbf, *as_ref(per_model), skip_box_thr=thr))
        assert len(weighted_boxes_fusion(per_model, skip_box_thr=thr)) <= len(weighted_boxes_fusion(per_model))


def test_wbf_of_one_model_merges_its_own_boxes_like_the_reference():
    one = random_scene(11, 1, 30, (1, 1))
    doubled = Detections.concat([one[0], one[0]])  # every box twice, in one model
    for per_model in ([one[0]], [doubled]):
        assert_matches(weighted_boxes_fusion(per_model), quiet_ref(ref_wbf, *as_ref(per_model)))
    assert len(weighted_boxes_fusion([doubled])) == len(weighted_boxes_fusion(one))


def test_support_bits_two_models_agree_one_alone():
    a = [10, 10, 50, 50]
    b = [200, 200, 260, 240]
    m0 = dets([a], [0.9], [1], 0)
    m1 = dets([[11, 9, 51, 50], b], [0.8, 0.7], [1, 1], 1)
    m2 = Detections.empty()
    fused = weighted_boxes_fusion([m0, m1, m2])
    assert len(fused) == 2
    by_support = {int(s): i for i, s in enumerate(fused.support)}
    assert set(by_support) == {0b011, 0b010}
    agreed, alone = by_support[0b011], by_support[0b010]
    np.testing.assert_allclose(fused.xyxy[agreed], (0.9 * np.array(a) + 0.8 * np.array([11, 9, 51, 50])) / 1.7, atol=1e-4)
    np.testing.assert_allclose(fused.xyxy[alone], b)
    # 2 of 3 models, average 0.85, rescaled by min(3, 2) / 3; the lone box 0.7 / 3
    np.testing.assert_allclose(fused.score[[agreed, alone]], [0.85 * 2 / 3, 0.7 / 3], rtol=1e-6)
    assert fused.support_count().tolist() == [2, 1]  # sorted by score: the agreed box first

    vote = consensus_vote([m0, m1, m2], k=2)
    assert len(vote) == 1 and int(vote.support[0]) == 0b011
    assert len(consensus_vote([m0, m1, m2], k=1)) == 2
    assert len(consensus_vote([m0, m1, m2], k=3)) == 0

    kept = nms_fusion([m0, m1, m2])
    assert sorted(kept.support.tolist()) == [0b010, 0b011]
    assert kept.model_index.tolist() == [0, 1]  # NMS keeps real boxes: the model that produced them


def test_different_classes_never_fuse():
    m0 = dets([[0, 0, 10, 10]], [0.9], [0], 0)
    m1 = dets([[0, 0, 10, 10]], [0.9], [1], 1)
    assert sorted(weighted_boxes_fusion([m0, m1]).support.tolist()) == [1, 2]
    assert sorted(nms_fusion([m0, m1]).support.tolist()) == [1, 2]


@pytest.mark.parametrize("fn", [weighted_boxes_fusion, nms_fusion, lambda p: consensus_vote(p, 1)])
def test_empty_inputs(fn):
    assert len(fn([])) == 0
    assert len(fn([Detections.empty()])) == 0
    assert len(fn([Detections.empty(), Detections.empty()])) == 0
    one = fn([Detections.empty(), dets([[0, 0, 1, 1]], [0.5], [0], 1)])
    assert len(one) == 1 and int(one.support[0]) == 0b10


def test_reversed_corners_are_swapped_and_zero_area_boxes_dropped():
    ok = dets([[10, 10, 20, 30]], [0.9], [0])
    flipped = dets([[20, 30, 10, 10]], [0.9], [0])
    flat = dets([[10, 10, 10, 30], [5, 5, 8, 5]], [0.9, 0.8], [0, 0])
    for fn in (weighted_boxes_fusion, nms_fusion):
        np.testing.assert_array_equal(fn([flipped]).xyxy, fn([ok]).xyxy)
        assert len(fn([flat])) == 0
    nan = dets([[np.nan, 0, 1, 1], [0, 0, np.inf, 1]], [0.9, 0.9], [0, 0])
    assert len(weighted_boxes_fusion([nan])) == 0 and len(nms_fusion([nan])) == 0


def test_all_zero_score_cluster_keeps_its_first_box():
    # the reference divides by a zero score sum here (NaN); we keep the first box
    m = dets([[0, 0, 10, 10], [0, 0, 10, 11], [1, 0, 10, 10]], [0.0, 0.0, 0.0], [0, 0, 0])
    fused = weighted_boxes_fusion([m])
    assert len(fused) == 1 and np.all(np.isfinite(fused.xyxy)) and fused.score.tolist() == [0.0]


def test_many_boxes_in_one_long_group_use_the_python_tail():
    # a chain of overlapping boxes of one class: one group, visited mostly in Python
    x = np.arange(0, 400, 7.0)
    m = [dets(np.stack([x, x * 0, x + 20, x * 0 + 20], 1), np.linspace(1, 0.1, len(x), dtype=np.float32),
              np.zeros(len(x), int), t) for t in range(3)]
    for thr in (0.1, 0.55):
        assert_matches(weighted_boxes_fusion(m, iou_thr=thr), quiet_ref(ref_wbf, *as_ref(m, (512, 512)), iou_thr=thr),
                       scale=(512, 512))


def test_a_box_that_overlaps_only_the_fused_box_joins_it():
    # m1 and m2 merge (IoU 1/7); the small box touches neither of them, only their fused box
    m = [dets([[0, 0, 2, 2]], [0.9], [0], 0), dets([[1, 1, 3, 3]], [0.8], [0], 1),
         dets([[2.1, 0.5, 2.4, 0.9]], [0.7], [0], 2)]
    m = [dets(d.xyxy / 4, d.score, d.class_id, t) for t, d in enumerate(m)]
    fused = weighted_boxes_fusion(m, iou_thr=0.0)
    assert len(fused) == 1 and int(fused.support[0]) == 0b111
    assert_matches(fused, quiet_ref(ref_wbf, *as_ref(m), iou_thr=0.0))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 2500), density=st.floats(0.5, 12.0))
@example(seed=1, n=3000, density=2.0)  # many hull merges: vectorised rounds, then one by one
@example(seed=1, n=3000, density=1.1)
def test_independent_groups_never_touch(seed, n, density):
    """Groups of one class have hulls that do not overlap: no box can reach another group's cluster."""
    from inspector.core.fusion.pool import independent_groups as _independent_groups

    rng = np.random.default_rng(seed)
    side = np.sqrt(n) * 4.0 / density
    lo = rng.uniform(0, side, (n, 2))
    xyxy = np.concatenate([lo, lo + rng.uniform(0.2, 4.0, (n, 2))], 1)
    cls = rng.integers(0, 3, n)
    comp = _independent_groups(xyxy, cls, 0.5)
    k = int(comp.max()) + 1
    assert sorted(set(comp.tolist())) == list(range(k))
    hull = np.full((k, 4), [np.inf, np.inf, -np.inf, -np.inf])
    for c in range(4):
        (np.minimum if c < 2 else np.maximum).at(hull[:, c], comp, xyxy[:, c])
    hcls = np.full(k, -1)
    hcls[comp] = cls
    assert np.all(hcls[comp] == cls), "a group mixes classes"
    ov = (hcls[:, None] == hcls) & (hull[:, None, 0] < hull[None, :, 2]) & (hull[None, :, 0] < hull[:, None, 2]) \
        & (hull[:, None, 1] < hull[None, :, 3]) & (hull[None, :, 1] < hull[:, None, 3])
    np.fill_diagonal(ov, False)
    assert not ov.any()


@pytest.mark.parametrize("iou_thr", [0.0, 0.2, 0.55])
def test_crowded_and_tiled_scenes_match_the_reference(iou_thr):
    rng = np.random.default_rng(4)
    # one class crowded into a small area: one large group with many clusters
    crowd = [dets(np.concatenate([c := rng.uniform(0, 120, (150, 2)), c + rng.uniform(8, 30, (150, 2))], 1),
                  rng.uniform(0.1, 1, 150).astype(np.float32), np.zeros(150, int), t) for t in range(3)]
    # adjacent boxes that share edges (a die grid), and sub-pixel boxes next to them
    xs, ys = np.meshgrid(np.arange(12.0), np.arange(12.0))
    cells = np.stack([xs.ravel(), ys.ravel(), xs.ravel() + 1, ys.ravel() + 1], 1) * 10
    tiny = np.array([[120.0, 5.0, 120.001, 5.001], [59.9995, 30, 60.0004, 30.0004]])
    grid = [dets(np.concatenate([cells, tiny]), rng.uniform(0.1, 1, len(cells) + 2).astype(np.float32),
                 np.zeros(len(cells) + 2, int), t) for t in range(2)]
    for per_model in (crowd, grid):
        ours = weighted_boxes_fusion(per_model, iou_thr=iou_thr)
        assert_matches(ours, quiet_ref(ref_wbf, *as_ref(per_model, (256, 256)), iou_thr=iou_thr), scale=(256, 256))


def test_zero_scores_in_many_groups_and_odd_class_ids():
    """60 objects seen by 3 models; one class scores 0 everywhere (the reference would give NaN)."""
    rng = np.random.default_rng(9)
    lo = rng.uniform(0, 900, (60, 2))
    truth = np.concatenate([lo, lo + 30], 1)
    cls = np.array([-7, 3, 2_000_000_000])[np.arange(60) % 3]
    per_model = [dets(truth + rng.normal(0, 1, truth.shape), np.where(cls == -7, 0.0, rng.uniform(0.1, 1.0, 60)),
                      cls, t) for t in range(3)]
    fused = weighted_boxes_fusion(per_model)
    assert np.all(np.isfinite(fused.xyxy)) and np.all(np.isfinite(fused.score))
    assert np.all(fused.score[fused.class_id == -7] == 0) and np.count_nonzero(fused.class_id == -7) >= 20
    scored = [d[d.class_id != -7] for d in per_model]
    assert_matches(weighted_boxes_fusion(scored), quiet_ref(ref_wbf, *as_ref(scored, (1024, 1024))), scale=(1024, 1024))
    assert_matches(nms_fusion(scored), quiet_ref(ref_nms, *as_ref(scored, (1024, 1024))), scale=(1024, 1024))
    assert set(nms_fusion(per_model).class_id.tolist()) == {-7, 3, 2_000_000_000}


def test_coordinates_beyond_float32_range_do_not_crash():
    big = dets([[0, 0, 2.5e38, 2.5e38], [0, 0, 2.5e38, 2.6e38]], [0.9, 0.8], [0, 0])  # sums overflow float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(weighted_boxes_fusion([big])) == 1


# ----------------------------------------------------------------------------------------------
# support bits: an independent, slow oracle of the greedy clustering that tracks members
# ----------------------------------------------------------------------------------------------


def oracle_support(per_model, weights, iou_thr, skip_box_thr):
    """Support bits of every WBF cluster, keyed by rounded fused box (slow, obviously correct)."""
    w = np.ones(len(per_model)) if weights is None else np.asarray(weights, float)
    rows = []
    for t, d in enumerate(per_model):
        for box, s, c in zip(d.xyxy.astype(float), d.score.astype(float), d.class_id):
            if s >= skip_box_thr:
                rows.append((int(c), s * w[t], t, box))
    out = {}
    for c in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == c]
        ws = np.array([r[1] for r in mine])
        clusters = []  # [fused box, members]
        for i in np.argsort(ws)[::-1]:
            _, s, t, box = mine[i]
            ious = [iou(fb, box) for fb, _ in clusters]
            j = int(np.argmax(ious)) if ious else -1
            if j >= 0 and ious[j] > iou_thr:
                clusters[j][1].append((s, t, box))
                mem = clusters[j][1]
                acc = np.zeros(4, np.float32)
                for ms, _, mb in mem:
                    acc += ms * mb
                clusters[j][0] = (acc / sum(ms for ms, _, _ in mem)).astype(np.float32).astype(float)
            else:
                clusters.append([box, [(s, t, box)]])
        for fb, mem in clusters:
            out.setdefault((c, *np.round(fb, 3)), []).append(sum(1 << t for t in {t for _, t, _ in mem}))
    return out


def iou(a, b):
    """IoU in float64, with the reference's formula."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def ious(boxes, b):
    return np.array([iou(a, b) for a in np.asarray(boxes, float)])


@SETTINGS
@given(per_model=ensembles(max_models=5), weights=st.one_of(st.none(), st.just([1.0, 2.0, 0.5, 1.5, 3.0])),
       iou_thr=st.sampled_from([0.3, 0.55]), k=st.integers(1, 5))
def test_support_bits_and_vote(per_model, weights, iou_thr, k):
    w = None if weights is None else weights[:len(per_model)]
    fused = weighted_boxes_fusion(per_model, w, iou_thr=iou_thr)
    expected = oracle_support(per_model, w, iou_thr, 0.0)
    got: dict = {}
    for box, c, s in zip(fused.xyxy.astype(float), fused.class_id, fused.support):
        got.setdefault((int(c), *np.round(box, 3)), []).append(int(s))
    assert {key: sorted(v) for key, v in got.items()} == {key: sorted(v) for key, v in expected.items()}
    if k <= len(per_model):
        vote = consensus_vote(per_model, k, w, iou_thr=iou_thr)
        keep = np.array([bin(int(s)).count("1") >= k for s in fused.support], bool)
        np.testing.assert_array_equal(vote.xyxy, fused.xyxy[keep])
        np.testing.assert_array_equal(vote.score, fused.score[keep])
        np.testing.assert_array_equal(vote.support, fused.support[keep])
    else:
        with pytest.raises(ValueError, match="k must be"):
            consensus_vote(per_model, k, w)


# ----------------------------------------------------------------------------------------------
# NMS across models
# ----------------------------------------------------------------------------------------------


def weighted_scores_tie(per_model, weights):
    w = np.ones(len(per_model)) if weights is None else np.asarray(weights)
    by_class: dict = {}
    for t, d in enumerate(per_model):
        for s, c in zip(d.score.astype(float), d.class_id):
            by_class.setdefault(int(c), []).append(s * w[t])
    return any(len(set(v)) < len(v) for v in by_class.values())


@SETTINGS
@given(per_model=ensembles(), weights=st.one_of(st.none(), WEIGHTS), iou_thr=st.sampled_from([0.0, 0.3, 0.5, 0.9]))
def test_nms_matches_reference(per_model, weights, iou_thr):
    w = None if weights is None else weights[:len(per_model)]
    assume(not weighted_scores_tie(per_model, w))  # the reference breaks score ties arbitrarily
    ours = nms_fusion(per_model, w, iou_thr=iou_thr)
    bl, sl, ll = as_ref(per_model)
    if sum(len(b) for b in bl) == 0:
        assert len(ours) == 0
        return
    ref = quiet_ref(ref_nms, bl, sl, ll, iou_thr=iou_thr, weights=w)
    assert_matches(ours, ref)
    assert np.all(np.diff(ours.score) <= 0)
    # support: own model plus the models of every box it suppressed (same class, lower score, IoU > thr)
    allb = Detections.concat([d.with_model_index(t) for t, d in enumerate(per_model)])
    wsc = allb.score.astype(float) * (1.0 if w is None else np.asarray(w)[allb.model_index] / sum(w))
    for i in range(len(ours)):
        me = np.flatnonzero((allb.xyxy == ours.xyxy[i]).all(1) & (allb.model_index == ours.model_index[i])
                            & (allb.class_id == ours.class_id[i]) & (wsc.astype(np.float32) == ours.score[i]))[0]
        below = (allb.class_id == allb.class_id[me]) & (wsc < wsc[me]) \
            & (ious(allb.xyxy, allb.xyxy[me].astype(float)) > iou_thr)
        assert int(ours.support[i]) == int(np.bitwise_or.reduce(allb.support[below], initial=int(allb.support[me])))


def brute_nms(d: Detections, thr: float) -> np.ndarray:
    boxes = d.xyxy.astype(float)
    keep: list[int] = []
    for i in np.argsort(-d.score, kind="stable"):
        if all(d.class_id[j] != d.class_id[i] or iou(boxes[j], boxes[i]) <= thr for j in keep):
            keep.append(int(i))
    return np.array(keep, int)


@SETTINGS
@given(per_model=ensembles(max_models=1, max_boxes=20), iou_thr=st.sampled_from([0.2, 0.5]))
def test_nms_of_one_model_is_plain_class_aware_nms(per_model, iou_thr):
    d = per_model[0]
    assume(len(set(d.score.tolist())) == len(d))
    keep = brute_nms(d, iou_thr)
    ours = nms_fusion([d], iou_thr=iou_thr)
    np.testing.assert_array_equal(ours.xyxy, d.xyxy[keep])
    np.testing.assert_array_equal(ours.score, d.score[keep])
    assert np.all(ours.support == 1)


def test_nms_dense_scene_matches_reference_and_weights_normalise_like_it():
    per_model = random_scene(7, 3, 200, (1, 1))
    for w in (None, [1.0, 2.0, 0.5], [1.0, 1.0, 1.0]):
        ours = nms_fusion(per_model, w)
        assert_matches(ours, quiet_ref(ref_nms, *as_ref(per_model), weights=w))
    # the reference divides by the sum of the weights when weights are given, even all ones
    np.testing.assert_allclose(nms_fusion(per_model, [1, 1, 1]).score, nms_fusion(per_model).score / 3, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# fuse(): one entry point, parameters checked
# ----------------------------------------------------------------------------------------------

TWO = [dets([[0, 0, 10, 10]], [0.9], [0], 0), dets([[1, 0, 10, 10]], [0.8], [0], 1)]


@pytest.mark.parametrize(
    "method, params, error",
    [
        ("wbf", {}, None),
        ("wbf", {"iou_thr": 0.4, "conf_type": "max", "weights": [1, 2], "skip_box_thr": 0.1}, None),
        ("wbf", {"conf_type": "box_and_model_avg", "allows_overflow": True}, None),
        ("nms", {"iou_thr": 0.3, "weights": (2.0, 1.0)}, None),
        ("vote", {"k": 2}, None),
        ("vote", {"k": 1, "conf_type": "absent_model_aware_avg"}, None),
        ("mean", {}, "unknown method 'mean'"),
        ("WBF", {}, "unknown method 'WBF'"),
        (["wbf"], {}, "unknown method"),
        ("wbf", {"k": 2}, "unknown parameter.*'k'"),
        ("nms", {"conf_type": "avg"}, "unknown parameter.*'conf_type'"),
        ("wbf", {"iou": 0.5}, "unknown parameter.*'iou'"),
        ("vote", {}, "needs parameter 'k'"),
        ("vote", {"k": 3}, "k must be"),
        ("vote", {"k": 0}, "k must be"),
        ("vote", {"k": 1.5}, "k must be"),
        ("wbf", {"iou_thr": 1.5}, "iou_thr"),
        ("wbf", {"iou_thr": -0.1}, "iou_thr"),
        ("nms", {"iou_thr": float("nan")}, "iou_thr"),
        ("wbf", {"iou_thr": "0.5"}, "iou_thr"),
        ("wbf", {"skip_box_thr": -1}, "skip_box_thr"),
        ("wbf", {"conf_type": "median"}, "conf_type"),
        ("wbf", {"weights": [1.0]}, "weights"),
        ("wbf", {"weights": [1.0, 0.0]}, "weights"),
        ("nms", {"weights": [1.0, -2.0]}, "weights"),
        ("wbf", {"weights": ["a", "b"]}, "weights"),
        ("wbf", {"allows_overflow": "yes"}, "allows_overflow"),
    ],
)
def test_fuse_parameters(method, params, error):
    if error is None:
        out = fuse(TWO, method, **params)
        assert isinstance(out, Detections) and len(out) >= 1
    else:
        with pytest.raises(ValueError, match=error):
            fuse(TWO, method, **params)


def test_fuse_dispatches_to_the_functions():
    per_model = random_scene(1, 3, 30, (1, 1))
    np.testing.assert_array_equal(fuse(per_model, "wbf", iou_thr=0.5).xyxy, weighted_boxes_fusion(per_model, iou_thr=0.5).xyxy)
    np.testing.assert_array_equal(fuse(per_model, "nms").xyxy, nms_fusion(per_model).xyxy)
    np.testing.assert_array_equal(fuse(per_model, "vote", k=2).xyxy, consensus_vote(per_model, 2).xyxy)


def test_per_model_must_be_a_sequence_of_detections():
    d = TWO[0]
    with pytest.raises(TypeError, match="sequence of Detections"):
        weighted_boxes_fusion(d)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"per_model\[1\]"):
        nms_fusion([d, np.zeros((1, 4))])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="at most 32 models"):
        weighted_boxes_fusion([d] * 33)
    assert len(weighted_boxes_fusion([d] * 32)) == 1
    assert int(weighted_boxes_fusion([d] * 32).support[0]) == 0xFFFFFFFF
