"""bench/side_by_side.py: the runtime comparison `make bench` reports, run small (a real yolo11n
from YAML at 64 px, exported to ONNX; ultralytics predicts on both files)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ultralytics")

import training.ultralytics_env  # noqa: E402,F401  (offline settings before ultralytics loads)
from bench.side_by_side import compare, pct  # noqa: E402
from inspector.capture.synthetic import CLASS_NAMES  # noqa: E402


def test_pct_gives_p50_and_p99():
    assert pct([1.0, 2.0, 3.0]) == {"p50": 2.0, "p99": 2.98}


def test_compare_times_every_runtime_on_the_same_images(tmp_path):
    from training.untrained import build_untrained_yolo, export_onnx, save_pt

    model = build_untrained_yolo(CLASS_NAMES, tmp_path, imgsz=64, seed=0)
    pt = tmp_path / "model.pt"
    save_pt(model, pt)
    onnx = export_onnx(model, tmp_path, "model", 64)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (80, 96, 3), np.uint8) for _ in range(3)]
    r = compare(onnx, pt, 64, images, rounds=2, variants={"inspector_copy": onnx})
    assert r["frames"] == 6 and r["imgsz"] == 64
    assert set(r["end_to_end_ms"]) == {"inspector_onnx", "ultralytics_onnx", "ultralytics_pt", "inspector_copy"}
    assert all(v["p50"] > 0 and v["p99"] >= v["p50"] for v in r["end_to_end_ms"].values())
    assert set(r["stages_ms"]) == {"preprocess_ms", "inference_ms", "postprocess_ms"}
    for key in ("speedup_vs_ultralytics_onnx", "speedup_vs_ultralytics_pt", "inspector_copy_speedup_vs_ultralytics_pt",
                "inspector_copy_speedup_vs_inspector_onnx", "overhead_fraction"):
        assert r[key] > 0, key
    assert r["providers"] == ["cpu"] and r["torch_threads"] >= 1
