"""The shipped wafer-demo model: intact, agrees with its PyTorch weights, and finds a fresh lot's defects.

These tests use the model committed under ``models/wafer-demo/`` (reproduced by
``training/recipes/ship-wafer-demo.sh``); nothing is downloaded or trained here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspector.capture.synthetic import CLASS_NAMES, SyntheticWaferLine
from inspector.config import config_hash, default_config_path, load_config
from inspector.core.detections import Detections
from inspector.core.geometry import box_iou
from inspector.runtime.registry import RegistryReader, default_registry_root
from inspector.station.ensemble_builder import build_ensemble
from inspector.station.inspection import Inspection
from inspector.station.rules_builder import wafer_layout

# Seeds the shipped model never saw: training used seed 1, the acceptance lot seed 99.
FRESH_SEED = 7


@pytest.fixture(scope="module")
def cfg():
    return load_config(default_config_path())


@pytest.fixture(scope="module")
def shipped():
    return RegistryReader(default_registry_root()).resolve("wafer-demo")


def test_shipped_model_is_registered_in_production_and_intact(shipped, cfg):
    assert shipped.stage == "production"
    assert shipped.onnx_path.stat().st_size < 15 * 2**20, "the committed ONNX file must stay small"
    det = shipped.load(class_names=list(CLASS_NAMES))  # verifies sha256 before building a session
    assert tuple(det.class_names) == CLASS_NAMES
    assert tuple(shipped.imgsz) == (cfg.models[0].imgsz, cfg.models[0].imgsz)
    reader = RegistryReader(default_registry_root())
    record = json.loads((reader.version_dir("wafer-demo", shipped.version) / "registry.json").read_text())
    overall = record["metrics"]["overall"]
    # The acceptance figures on a fresh lot (seed 99), measured on these exact ONNX bytes.
    assert overall["map50"] >= 0.90 and record["metrics"]["source"]["split"] == "val"
    assert record["weights"]["sha256"] and (shipped.onnx_path.parent / "weights.pt").is_file()


def _fresh_dies(n: int, seed: int = FRESH_SEED) -> list[tuple[np.ndarray, Detections]]:
    cfg = load_config(default_config_path())
    line = SyntheticWaferLine(seed=seed, lots=1, wafers_per_lot=4, die_px=320, defect_rate=0.5,
                              layout=wafer_layout(cfg), station_id="test")
    out = []
    for frame, truth in line.frames_with_truth():
        if len(truth):
            out.append((np.asarray(frame.image), truth))
        if len(out) == n:
            break
    return out


def _matched(a: Detections, b: Detections, iou: float) -> np.ndarray:
    """For each box of ``a``: is there a box of ``b`` of the same class overlapping it by >= iou?"""
    if len(a) == 0:
        return np.zeros(0, bool)
    if len(b) == 0:
        return np.zeros(len(a), bool)
    m = box_iou(a.xyxy, b.xyxy) >= iou
    m &= a.class_id[:, None] == b.class_id[None, :]
    return m.any(axis=1)


def test_onnx_export_agrees_with_its_pytorch_weights(shipped):
    from training.pt_detector import UltralyticsDetector

    weights = shipped.onnx_path.parent / "weights.pt"
    assert weights.is_file(), "the shipped model's training checkpoint is committed beside its ONNX file"
    images = [im for im, _ in _fresh_dies(24)]
    onnx = shipped.load(class_names=list(CLASS_NAMES), conf=0.25, iou=0.45)
    pt = UltralyticsDetector(weights, CLASS_NAMES, imgsz=shipped.imgsz[0], conf=0.25, iou=0.45)
    a, b = onnx.detect(images), pt.detect(images)
    total = agree = 0
    for da, db in zip(a, b):
        # Boxes well above the threshold must appear in both, at the same place and score.
        strong_a, strong_b = da.filter(da.score >= 0.4), db.filter(db.score >= 0.4)
        total += len(strong_a) + len(strong_b)
        agree += int(_matched(strong_a, db, 0.9).sum() + _matched(strong_b, da, 0.9).sum())
        if len(strong_a) and len(db):
            iou = box_iou(strong_a.xyxy, db.xyxy)
            j = iou.argmax(axis=1)
            close = iou[np.arange(len(j)), j] >= 0.9
            assert np.all(np.abs(strong_a.score[close] - db.score[j[close]]) < 0.03)
    assert total > 20
    assert agree / total >= 0.97, f"ONNX and PyTorch agree on {agree} of {total} confident boxes"


def test_shipped_model_finds_a_fresh_lots_defects_through_the_station_runtime(cfg):
    """Ensemble of one, the demo config's default rules: recall of kept boxes against ground truth."""
    inspection = Inspection(cfg, build_ensemble(cfg), config_hash(cfg))
    line = SyntheticWaferLine(seed=FRESH_SEED, lots=1, wafers_per_lot=2, die_px=320, defect_rate=0.3,
                              layout=wafer_layout(cfg), station_id="test")
    truths = found = defective = flagged = clean = clean_passed = 0
    per_class = np.zeros((len(CLASS_NAMES), 2), int)
    for frame, truth in line.frames_with_truth():
        (d,) = inspection.decide([frame])
        hit = _matched(truth, d.detections, 0.5)
        truths += len(truth)
        found += int(hit.sum())
        np.add.at(per_class, (truth.class_id, 0), 1)
        np.add.at(per_class, (truth.class_id[hit], 1), 1)
        if len(truth):
            defective += 1
            flagged += d.verdict.value != "pass"
        else:
            clean += 1
            clean_passed += d.verdict.value == "pass"
    recall = found / truths
    detail = ", ".join(f"{n} {h}/{t}" for n, (t, h) in zip(CLASS_NAMES, per_class))
    assert truths > 50
    assert recall >= 0.9, f"recall {recall:.3f} on a fresh lot ({detail})"
    assert flagged / defective >= 0.9, f"{flagged} of {defective} defective dies flagged"
    assert clean_passed / clean >= 0.9, f"{clean_passed} of {clean} clean dies passed"
