"""Decoding raw YOLO output, candidate cap, class-aware NMS against a reference, exact mapping back."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.runtime.postprocess import OutputShapeError, check_output_layout, nms, postprocess
from inspector.runtime.preprocess import letterbox_params

NC = 3


def raw_output(anchors: list[tuple[float, float, float, float, int, float]], n_anchors: int = 20) -> np.ndarray:
    """(1, 4+NC, A) tensor: given anchors get (cx, cy, w, h) and one class score; the rest are 0.01 noise."""
    out = np.zeros((1, 4 + NC, n_anchors), np.float32)
    out[0, :4] = 5.0
    out[0, 4:] = 0.01
    for a, (cx, cy, w, h, c, s) in enumerate(anchors):
        out[0, :4, a] = (cx, cy, w, h)
        out[0, 4 + c, a] = s
        out[0, 4 + (c + 1) % NC, a] = s / 3  # a weaker second class: the best one must win
    return out


def reference_nms(xyxy: np.ndarray, scores: np.ndarray, cls: np.ndarray, iou: float) -> list[int]:
    """Plain greedy NMS, one class at a time, written for clarity rather than speed."""

    def iou_one(a: np.ndarray, b: np.ndarray) -> float:
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    keep: list[int] = []
    for c in np.unique(cls):
        idx = [int(i) for i in np.flatnonzero(cls == c)]
        idx.sort(key=lambda i: -scores[i])
        kept_c: list[int] = []
        for i in idx:
            if all(iou_one(xyxy[i], xyxy[k]) <= iou for k in kept_c):
                kept_c.append(i)
        keep.extend(kept_c)
    return sorted(keep, key=lambda i: -scores[i])


def test_hand_built_output_decodes_to_expected_boxes() -> None:
    lb = letterbox_params(480, 640, (320, 320))  # scale 0.5, pad_y 40
    out = raw_output([
        (100, 100, 40, 20, 1, 0.9),  # -> input (80, 90, 120, 110) -> original (160, 100, 240, 140)
        (300, 60, 20, 40, 2, 0.6),  # -> input (290, 40, 310, 80) -> original (580, 0, 620, 80)
        (10, 200, 30, 30, 0, 0.3),  # -> input (-5, 185, 25, 215) -> original (-10 -> 0, 290, 50, 350)
        (200, 200, 10, 10, 0, 0.2),  # below conf: dropped
    ])
    (xyxy, score, cls), = postprocess(out, [lb], NC, conf=0.25, iou=0.45)
    np.testing.assert_allclose(xyxy, [[160, 100, 240, 140], [580, 0, 620, 80], [0, 290, 50, 350]], atol=1e-4)
    np.testing.assert_allclose(score, [0.9, 0.6, 0.3], atol=1e-7)
    np.testing.assert_array_equal(cls, [1, 2, 0])
    assert xyxy.dtype == np.float32 and cls.dtype == np.int32


def test_transposed_layout_gives_the_same_result() -> None:
    lb = letterbox_params(300, 500, (320, 320))
    rng = np.random.default_rng(0)
    anchors = [(*rng.uniform(20, 300, 2), *rng.uniform(5, 60, 2), int(rng.integers(0, NC)), float(rng.uniform(0.3, 1)))
               for _ in range(15)]
    out = raw_output(anchors, 40)
    a = postprocess(out, [lb], NC)[0]
    b = postprocess(np.ascontiguousarray(out.transpose(0, 2, 1)), [lb], NC)[0]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert check_output_layout((1, 7, 8400), NC) is True
    assert check_output_layout((1, 8400, 7), NC) is False
    assert check_output_layout(("batch", 7, "anchors"), NC) is True


@pytest.mark.parametrize("shape", [(1, 8, 100), (1, 100, 8), (7, 100), (1, 85, 8400), (1, 300, 6)])
def test_bad_shape_is_refused_naming_expected_and_actual(shape: tuple[int, ...]) -> None:
    with pytest.raises(OutputShapeError) as e:
        postprocess(np.zeros(shape, np.float32), [letterbox_params(320, 320, (320, 320))], NC)
    msg = str(e.value)
    assert str(tuple(shape)) in msg and "(batch, 7, anchors)" in msg and "3 classes" in msg


def test_candidate_cap_keeps_the_best_scores() -> None:
    # 50 disjoint boxes above conf; a cap of 5 must keep exactly the 5 best (NMS removes nothing here).
    anchors = [(10 + 6 * i, 10 + 6 * i, 4, 4, 0, 0.3 + 0.01 * i) for i in range(50)]
    lb = letterbox_params(320, 320, (320, 320))
    _, score, _ = postprocess(raw_output(anchors, 60), [lb], NC, max_candidates=5)[0]
    np.testing.assert_allclose(score, [0.79, 0.78, 0.77, 0.76, 0.75], atol=1e-6)
    _, score, _ = postprocess(raw_output(anchors, 60), [lb], NC, max_det=3)[0]
    np.testing.assert_allclose(score, [0.79, 0.78, 0.77], atol=1e-6)


def test_conf_threshold_is_strict() -> None:
    lb = letterbox_params(320, 320, (320, 320))
    out = raw_output([(50, 50, 10, 10, 0, 0.5), (150, 150, 10, 10, 0, 0.5000001)])
    _, score, _ = postprocess(out, [lb], NC, conf=0.5)[0]
    assert len(score) == 1 and score[0] > 0.5


def test_different_classes_do_not_suppress_each_other() -> None:
    xyxy = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    cls = np.array([0, 1, 0, 1], np.int32)
    assert nms(xyxy, scores, cls, 0.5).tolist() == [0, 1]
    assert nms(xyxy, scores, cls, 0.5, agnostic=True).tolist() == [0]
    assert nms(xyxy[:0], scores[:0], cls[:0], 0.5).tolist() == []


@pytest.mark.parametrize("seed", range(8))
def test_class_aware_nms_equals_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    centres = rng.uniform(-20, 200, (12, 2))  # clusters, some reaching negative coordinates
    c = centres[rng.integers(0, 12, n)] + rng.normal(0, 6, (n, 2))
    wh = rng.uniform(5, 40, (n, 2))
    xyxy = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    scores = rng.permutation(np.linspace(0.05, 0.99, n)).astype(np.float32)  # no ties
    cls = rng.integers(0, 4, n).astype(np.int32)
    for thr in (0.3, 0.45, 0.7):
        assert nms(xyxy, scores, cls, thr).tolist() == reference_nms(xyxy, scores, cls, thr)


def test_batch_of_two_maps_each_image_with_its_own_letterbox() -> None:
    a = raw_output([(160, 160, 32, 32, 0, 0.9)])
    out = np.concatenate([a, a])
    lbs = [letterbox_params(640, 640, (320, 320)), letterbox_params(160, 320, (320, 320))]
    (b0, _, _), (b1, _, _) = postprocess(out, lbs, NC)
    np.testing.assert_allclose(b0, [[288, 288, 352, 352]], atol=1e-4)  # scale 0.5, no pad
    np.testing.assert_allclose(b1, [[144, 64, 176, 96]], atol=1e-4)  # scale 1, pad_y 80


def test_float16_output_is_accepted() -> None:
    out = raw_output([(100, 100, 20, 20, 2, 0.75)]).astype(np.float16)
    (xyxy, score, cls), = postprocess(out, [letterbox_params(320, 320, (320, 320))], NC)
    np.testing.assert_allclose(xyxy, [[90, 90, 110, 110]], atol=0.1)
    assert cls.tolist() == [2]


@pytest.mark.parametrize("seed", range(4))
def test_early_stop_at_max_det_equals_full_nms_then_cap(seed: int) -> None:
    """A candidate flood (thousands of boxes, many tied scores): stopping at max_det changes nothing."""
    rng = np.random.default_rng(seed)
    n = 4000
    c = rng.uniform(-30, 640, (n, 2))
    wh = rng.uniform(4, 120, (n, 2))
    xyxy = np.concatenate([c - wh / 2, c + wh / 2], 1).astype(np.float32)
    scores = (rng.integers(1, 150, n) / 150).astype(np.float32)  # heavy ties
    cls = rng.integers(0, 4, n).astype(np.int32)
    full = nms(xyxy, scores, cls, 0.45)
    for max_det in (1, 50, 300, len(full), 5000):
        assert nms(xyxy, scores, cls, 0.45, max_det=max_det).tolist() == full[:max_det].tolist()


# --- impossible output values: an ERROR, never a silent "nothing found" --------------------------

def _lb():
    return [letterbox_params(100, 100, (100, 100))]


@pytest.mark.parametrize("where, value, said", [
    ("score", np.nan, "class scores of 1 anchor(s) are NaN or infinite"),
    ("score", np.inf, "class scores of 1 anchor(s) are NaN or infinite"),
    ("score", 1.5, "outside [0, 1]"),
    ("all scores", -0.5, "outside [0, 1]"),  # logits, not sigmoid scores (a lone negative one is harmless)
    ("box", np.nan, "1 box value(s) are NaN or infinite"),
    ("box", -np.inf, "1 box value(s) are NaN or infinite"),
])
@pytest.mark.parametrize("channels_first", [True, False])
def test_impossible_values_raise_naming_the_model_and_the_problem(where, value, said, channels_first):
    from inspector.runtime.postprocess import ModelOutputError

    out = raw_output([(50, 50, 10, 10, 0, 0.9)])
    rows = {"score": 4 + 1, "all scores": slice(4, None), "box": 2}[where]
    out[0, rows, 7] = value  # a non-best class or an unselected anchor still counts
    if not channels_first:
        out = np.ascontiguousarray(out.transpose(0, 2, 1))
    with pytest.raises(ModelOutputError, match=r"model ppe@3 output for image 1 of 1: .*") as e:
        postprocess(out, _lb(), NC, model="ppe@3")
    assert said in str(e.value)


def test_scores_a_hair_past_one_from_fp16_rounding_pass_but_not_more():
    from inspector.runtime.postprocess import ModelOutputError

    ((xyxy, score, cls),) = postprocess(raw_output([(50, 50, 10, 10, 0, 1.0005)]), _lb(), NC)
    assert len(score) == 1 and score[0] == pytest.approx(1.0005)
    with pytest.raises(ModelOutputError, match=r"1\.01, outside \[0, 1\]"):
        postprocess(raw_output([(50, 50, 10, 10, 0, 1.01)]), _lb(), NC)


def test_an_onnx_model_giving_impossible_scores_makes_an_error_decision_naming_it():
    import tempfile
    from pathlib import Path

    from helpers.tiny_models import tiny_onnx

    from inspector.config import config_hash, default_config_path, load_config
    from inspector.core.decision import Verdict
    from inspector.core.frame import Frame
    from inspector.runtime.ensemble import Ensemble, Member
    from inspector.runtime.onnx_detector import OnnxDetector
    from inspector.station.inspection import Inspection

    cfg = load_config(default_config_path())
    names = tuple(cfg.models[0].class_names)
    with tempfile.TemporaryDirectory() as d:
        # Output = input pixel (0..1) + 0.3, 4 + 5 classes = 9 rows of 3 x 48^2 values: the grey
        # warm-up image passes (0.75), a white frame's scores reach 1.3.
        det = OnnxDetector(tiny_onnx(Path(d) / "over.onnx", names, imgsz=48, bias=0.3), names, 48)
        ens = Ensemble([Member("wafer-over", "7", det.sha256, det)])
        f = Frame("f1", "st", "cam", 0.0, Frame.utc_now(), np.full((48, 48, 3), 255, np.uint8), {})
        (dec,) = Inspection(cfg, ens, config_hash(cfg)).judge([f]).decisions
    assert dec.verdict is Verdict.ERROR
    assert "ModelOutputError" in dec.error and "outside [0, 1]" in dec.error and f"model {det.name}" in dec.error


def test_a_model_giving_nan_on_the_warm_up_image_is_refused_when_loaded(tmp_path):
    from helpers.tiny_models import tiny_onnx

    from inspector.runtime.onnx_detector import OnnxDetector
    from inspector.runtime.postprocess import ModelOutputError

    with pytest.raises(ModelOutputError, match="NaN"):
        OnnxDetector(tiny_onnx(tmp_path / "nan.onnx", ("a", "b"), imgsz=32, bias=float("nan")), ("a", "b"), 32)
