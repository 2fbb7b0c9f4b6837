"""training/evaluate.py: metric definitions on hand-built cases, and agreement with ultralytics' own code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspector.core.detections import Detections
from inspector.core.geometry import box_iou
from training.evaluate import (
    COCO_IOU_THRESHOLDS,
    EvalError,
    dataset_hash,
    evaluate_detections,
    parse_threshold_args,
    read_yolo_split,
    resolve_thresholds,
    thresholds_from_config,
)
from training.metrics import greedy_match
from training.yolo import content_hash

REPO = Path(__file__).resolve().parents[2]
NAMES = ("a", "b")


def boxes_at(*xs: float, size: float = 10.0) -> np.ndarray:
    """Disjoint square boxes along the x axis (one per x)."""
    return np.array([[x, 0.0, x + size, size] for x in xs], np.float32).reshape(-1, 4)


def dets(xyxy, scores, classes) -> Detections:
    return Detections(np.asarray(xyxy, np.float32).reshape(-1, 4), scores, classes)


def truth(xyxy, classes) -> Detections:
    xyxy = np.asarray(xyxy, np.float32).reshape(-1, 4)
    return Detections(xyxy, np.ones(len(xyxy)), classes)


# --- AP on hand cases ------------------------------------------------------------------------------
def test_perfect_predictions():
    t = truth(boxes_at(0, 20, 40), [0, 0, 1])
    p = dets(boxes_at(0, 20, 40), [0.9, 0.8, 0.7], [0, 0, 1])
    coco = evaluate_detections([p], [t], NAMES, interpolation="coco101")
    assert coco.map50 == pytest.approx(1.0) and coco.map50_95 == pytest.approx(1.0) and coco.map33 == 1.0
    # ultralytics' interpolation: the sentinel (recall 1, precision 0) is what np.interp returns at
    # recall 1, so a perfect class scores 0.995 (its well-known ceiling); documented in the module.
    ul = evaluate_detections([p], [t], NAMES)
    assert ul.map50 == pytest.approx(0.995) and ul.map50_95 == pytest.approx(0.995)
    assert ul.precision == ul.recall == ul.f1 == 1.0
    assert ul.confusion.tolist() == [[2, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_one_false_positive_above_all_true_positives():
    t = truth(boxes_at(0, 20), [0, 0])
    p = dets(boxes_at(100, 0, 20), [0.9, 0.8, 0.7], [0, 0, 0])  # FP first, then both TPs
    # precision after each: 0, 1/2, 2/3 -> the envelope is 2/3 everywhere up to recall 1.
    coco = evaluate_detections([p], [t], ("a",), interpolation="coco101")
    assert coco.ap50[0] == pytest.approx(2 / 3)
    ul = evaluate_detections([p], [t], ("a",))
    assert ul.ap50[0] == pytest.approx(2 / 3 * 0.995, abs=1e-9)  # last trapezoid step falls to 0 at recall 1


def test_missed_truths():
    t = truth(boxes_at(0, 20, 40, 60), [0, 0, 0, 0])
    p = dets(boxes_at(0, 20), [0.9, 0.8], [0, 0])  # half the truths are never predicted
    coco = evaluate_detections([p], [t], ("a",), interpolation="coco101")
    assert coco.ap50[0] == pytest.approx(51 / 101)  # precision 1 at recall points 0.00 .. 0.50
    ul = evaluate_detections([p], [t], ("a",))
    assert ul.ap50[0] == pytest.approx(0.495)  # 1 on [0, 0.49], linear drop to 0 at 0.50
    assert ul.recall == 0.5 and ul.precision == 1.0


def test_two_classes_average_only_classes_with_truths():
    t = truth(boxes_at(0, 20), [0, 1])
    p = dets(np.vstack([boxes_at(0), boxes_at(300)]), [0.9, 0.8], [0, 1])  # class b misses its truth
    rep = evaluate_detections([p], [t], ("a", "b", "c"), interpolation="coco101")
    assert rep.ap50.tolist()[:2] == [1.0, 0.0] and np.isnan(rep.ap50[2])  # c has no truths: left out
    assert rep.map50 == pytest.approx(0.5)
    j = rep.to_json()
    assert j["per_class"]["c"]["ap50"] is None and j["per_class"]["c"]["support"] == 0
    json.dumps(j, allow_nan=False)  # JSON-safe


def test_iou_thresholds_effect():
    t = truth([[0, 0, 10, 10]], [0])
    p = dets([[0, 0, 10, 7.2]], [0.9], [0])  # IoU 0.72: a hit at 0.50 .. 0.70, a miss at 0.75 .. 0.95
    rep = evaluate_detections([p], [t], ("a",), interpolation="coco101")
    assert rep.ap[0].tolist() == [1.0] * 5 + [0.0] * 5
    assert rep.map50 == 1.0 and rep.map50_95 == pytest.approx(0.5) and rep.map33 == 1.0
    p2 = dets([[0, 0, 10, 4]], [0.9], [0])  # IoU 0.4: only counts at the DeepPCB threshold 0.33
    rep2 = evaluate_detections([p2], [t], ("a",), interpolation="coco101")
    assert rep2.map50 == 0.0 and rep2.map33 == 1.0
    custom = evaluate_detections([p], [t], ("a",), iou_thresholds=[0.75], interpolation="coco101")
    assert custom.map50_95 == 0.0 and custom.map50 == 1.0  # 0.5 is always evaluated for map50


def test_empty_predictions_and_empty_truths():
    t = truth(boxes_at(0, 20), [0, 1])
    none = evaluate_detections([Detections.empty()], [t], NAMES)
    assert none.map50 == 0.0 and none.precision == 0.0 and none.recall == 0.0 and none.f1 == 0.0
    assert none.confusion.tolist() == [[0, 0, 1], [0, 0, 1], [0, 0, 0]]  # both truths missed
    p = dets(boxes_at(0), [0.9], [0])
    no_truth = evaluate_detections([p], [Detections.empty()], NAMES)
    assert np.isnan(no_truth.map50) and no_truth.precision == 0.0 and np.isnan(no_truth.recall)
    assert no_truth.confusion.tolist() == [[0, 0, 0], [0, 0, 0], [1, 0, 0]]  # a false positive
    j = no_truth.to_json()
    assert j["map50"] is None and j["recall"] is None
    both = evaluate_detections([Detections.empty()], [Detections.empty()], NAMES)
    assert both.n_truths == 0 and np.isnan(both.precision) and np.isnan(both.ece)
    assert evaluate_detections([], [], NAMES).n_images == 0
    with pytest.raises(ValueError):
        evaluate_detections([p], [], NAMES)


# --- operating point, confusion, calibration --------------------------------------------------------
def test_precision_recall_f1_at_operating_thresholds():
    t = truth(boxes_at(0, 20, 40, 60), [0, 0, 0, 0])
    p = dets(np.vstack([boxes_at(0, 20, 40), boxes_at(200, 300)]), [0.9, 0.6, 0.3, 0.8, 0.2], [0] * 5)
    rep = evaluate_detections([p], [t], ("a",), operating_thresholds=0.5)
    # kept: TP 0.9, TP 0.6, FP 0.8 -> P 2/3, R 2/4
    assert (rep.tp[0], rep.fp[0], rep.fn[0]) == (2, 1, 2)
    assert rep.precision == pytest.approx(2 / 3) and rep.recall == 0.5 and rep.f1 == pytest.approx(4 / 7)
    strict = evaluate_detections([p], [t], ("a",), operating_thresholds={"a": 0.85})
    assert (strict.tp[0], strict.fp[0]) == (1, 0)
    # per-class thresholds by name or id; unknown names are refused
    np.testing.assert_allclose(resolve_thresholds({"b": 0.4, "default": 0.3}, NAMES), [0.3, 0.4])
    np.testing.assert_allclose(resolve_thresholds({1: 0.4}, NAMES, default=0.2), [0.2, 0.4])
    with pytest.raises(ValueError, match="unknown class"):
        resolve_thresholds({"zzz": 0.4}, NAMES)


def test_confusion_matrix_hand_case():
    t = truth(boxes_at(0, 20, 40), [0, 1, 0])
    p = dets(boxes_at(0, 20, 200, 40), [0.9, 0.8, 0.7, 0.1], [0, 0, 1, 0])
    rep = evaluate_detections([p], [t], NAMES, operating_thresholds=0.25)
    # a->a; true b predicted a; a stray b (background); the 0.1 box is below threshold: its truth is missed
    assert rep.confusion.tolist() == [[1, 0, 1],
                                      [1, 0, 0],
                                      [0, 1, 0]]
    j = rep.to_json()["confusion"]
    assert j["labels"] == ["a", "b", "background"] and j["rows"] == "true class"


def _calibration_case(score: float, n_correct: int, n: int = 10) -> list[Detections]:
    t = truth(boxes_at(*range(0, 20 * n, 20)), [0] * n)
    xs = [i * 20 if i < n_correct else 1000 + i * 20 for i in range(n)]  # the rest miss everything
    return [dets(boxes_at(*xs), [score] * n, [0] * n)], [t]


def test_ece_calibrated_vs_overconfident():
    good = evaluate_detections(*_calibration_case(0.7, 7), ("a",))
    assert good.ece == pytest.approx(0.0, abs=1e-6)
    over = evaluate_detections(*_calibration_case(0.95, 5), ("a",))
    assert over.ece == pytest.approx(0.45, abs=1e-6)
    bins = over.to_json()["calibration"]
    assert sum(bins["count"]) == 10 and bins["count"][14] == 10 and bins["accuracy"][14] == pytest.approx(0.5)
    # predictions under ece_min_score do not count
    low = evaluate_detections(*_calibration_case(0.01, 0), ("a",))
    assert np.isnan(low.ece)


# --- agreement with ultralytics ----------------------------------------------------------------------
def _random_case(rng: np.random.Generator, nc: int):
    preds, truths = [], []
    for _ in range(int(rng.integers(1, 8))):
        nt = int(rng.integers(0, 12))
        xy = rng.random((nt, 2)) * 200
        t = np.hstack([xy, xy + rng.random((nt, 2)) * 40 + 5])
        tc = rng.integers(0, nc, nt)
        jit = t + rng.normal(0, 4, t.shape)  # near-misses and hits at various IoUs
        jc = np.where(rng.random(nt) < 0.8, tc, rng.integers(0, nc, nt))
        nr = int(rng.integers(0, 15))
        xy = rng.random((nr, 2)) * 200
        r = np.hstack([xy, xy + rng.random((nr, 2)) * 40 + 5])
        p = np.vstack([jit, r]) if len(r) else jit
        preds.append(Detections(p, rng.random(len(p)), np.concatenate([jc, rng.integers(0, nc, nr)])))
        truths.append(Detections(t, np.ones(nt), tc))
    return preds, truths


def test_agrees_with_ultralytics_matching_and_ap_per_class():
    import torch

    from training import ultralytics_env  # noqa: F401
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import ap_per_class

    class _V:  # what match_predictions reads from the validator
        iouv = torch.linspace(0.5, 0.95, 10)

    rng = np.random.default_rng(7)
    worst_ap = 0.0
    for _ in range(25):
        nc = int(rng.integers(1, 5))
        preds, truths = _random_case(rng, nc)
        tps, confs, pcls, tcls = [], [], [], []
        for p, t in zip(preds, truths):
            p = p.sorted_by_score()
            iou = box_iou(t.xyxy, p.xyxy)
            mine = greedy_match(np.where(t.class_id[:, None] == p.class_id[None, :], iou, 0.0), COCO_IOU_THRESHOLDS)
            theirs = BaseValidator.match_predictions(
                _V(), torch.from_numpy(p.class_id.astype(np.int64)), torch.from_numpy(t.class_id.astype(np.int64)),
                torch.from_numpy(iou)).numpy()
            np.testing.assert_array_equal(mine, theirs)
            tps.append(mine)
            confs.append(p.score.astype(np.float64))
            pcls.append(p.class_id)
            tcls.append(t.class_id)
        tp, conf, pc, tc = (np.concatenate(v) for v in (tps, confs, pcls, tcls))
        out = ap_per_class(tp, conf, pc, tc)
        ap_ul, classes = out[5], out[6]
        rep = evaluate_detections(preds, truths, [str(i) for i in range(nc)])
        for i, c in enumerate(classes):
            worst_ap = max(worst_ap, float(np.abs(rep.ap[c] - ap_ul[i]).max()))
        if len(classes):
            assert rep.map50 == pytest.approx(ap_ul[:, 0].mean(), abs=1e-3)
            assert rep.map50_95 == pytest.approx(ap_ul.mean(), abs=1e-3)
    assert worst_ap < 1e-3


def test_coco101_matches_a_plain_loop():
    """pycocotools' rule written as a loop: envelope, then precision at the first recall >= each point."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        preds, truths = _random_case(rng, 1)
        rep = evaluate_detections(preds, truths, ("a",), iou_thresholds=[0.5], interpolation="coco101")
        allp = Detections.concat([p.sorted_by_score() for p in preds])
        flags = []
        for p, t in zip(preds, truths):
            p = p.sorted_by_score()
            flags.append(greedy_match(box_iou(t.xyxy, p.xyxy), np.array([0.5]))[:, 0])
        order = np.argsort(-np.concatenate([p.sorted_by_score().score for p in preds]), kind="stable")
        tp = np.concatenate(flags)[order]
        n = sum(len(t) for t in truths)
        if n == 0 or len(allp) == 0:
            continue
        tpc = np.cumsum(tp)
        rc = tpc / n
        pr = list(tpc / np.arange(1, len(tp) + 1))
        for i in range(len(pr) - 1, 0, -1):
            pr[i - 1] = max(pr[i - 1], pr[i])
        q = []
        for r in np.linspace(0, 1, 101):
            k = int(np.searchsorted(rc, r, side="left"))
            q.append(pr[k] if k < len(pr) else 0.0)
        assert rep.ap50[0] == pytest.approx(np.mean(q), abs=1e-12)


# --- datasets and thresholds ----------------------------------------------------------------------
def _tiny_dataset(root: Path) -> Path:
    import cv2

    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
    cv2.imwrite(str(root / "images/val/a.png"), np.zeros((100, 200, 3), np.uint8))  # w 200, h 100
    cv2.imwrite(str(root / "images/val/b.png"), np.zeros((50, 50, 3), np.uint8))
    (root / "labels/val/a.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.3 0.1 0.3 0.3\n")  # box + polygon
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: x\n  1: y\n")
    return root


def test_read_yolo_split_and_dataset_hash(tmp_path):
    root = _tiny_dataset(tmp_path / "ds")
    images, truths, names = read_yolo_split(root / "data.yaml", "val")
    assert names == ("x", "y") and [p.name for p in images] == ["a.png", "b.png"]
    np.testing.assert_allclose(truths[0].xyxy, [[80, 30, 120, 70], [20, 10, 60, 30]], atol=1e-4)
    assert truths[0].class_id.tolist() == [1, 0] and len(truths[1]) == 0  # b.png: no label file
    assert read_yolo_split(root, "val")[2] == names  # the folder works as well as its data.yaml
    h1, src = dataset_hash(root, "val")
    # no manifest: the one content hash, computed from disk (what write_yolo / synth record)
    assert src.startswith("computed") and h1 == content_hash(root) and h1.startswith("sha256:")
    (root / "labels/val/a.txt").write_text("1 0.5 0.5 0.2 0.41\n")
    assert dataset_hash(root, "val")[0] != h1
    (root / "manifest.json").write_text(json.dumps({"content_hash": "abc123"}))
    assert dataset_hash(root, "val") == ("abc123", "manifest.json:content_hash")
    with pytest.raises(Exception, match="no 'test' split"):
        read_yolo_split(root, "test")


def test_threshold_arguments_and_station_config():
    assert parse_threshold_args([]) is None
    assert parse_threshold_args(["0.3"]) == 0.3
    assert parse_threshold_args(["scratch=0.4,particle=0.2", "default=0.3"]) == {
        "scratch": 0.4, "particle": 0.2, "default": 0.3}
    with pytest.raises(EvalError):
        parse_threshold_args(["scratch=high"])
    names = ("particle", "scratch", "residue", "pattern", "edge_chip")
    thr, desc = thresholds_from_config(REPO / "station_configs" / "wafer-demo.yaml", names, "wafer-demo")
    # the larger of the model's conf (0.25) and the class_threshold rule (default 0.30, scratch 0.40, edge_chip 0.35)
    assert thr == {"particle": 0.3, "scratch": 0.4, "residue": 0.3, "pattern": 0.3, "edge_chip": 0.35}
    assert "min-score" in desc
    with pytest.raises(EvalError, match="lists classes"):
        thresholds_from_config(REPO / "station_configs" / "wafer-demo.yaml", ("a", "b"))
