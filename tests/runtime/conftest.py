"""Runtime fixtures: a small yolo11n with random weights, exported to ONNX once per test session.

Random weights say nothing about accuracy; they serve shape, batch, provider, integrity, speed and
"ONNX runtime vs ultralytics predict" tests. Exact decode/NMS/mapping tests use hand-built tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


CLASS_NAMES = ("scratch", "particle", "pit", "stain", "crack")
IMGSZ = 320


def make_scene(rng: np.random.Generator, h: int = IMGSZ, w: int = IMGSZ, n: int = 25, grey: bool = False) -> np.ndarray:
    """Grey background with filled rectangles of random colour: structure for the model to react to."""
    from training.untrained import rectangles_scene

    img = rectangles_scene(rng, h, w, n)
    return img[:, :, 0].copy() if grey else img


@dataclass(frozen=True)
class YoloFiles:
    static_onnx: Path  # batch 1, 320x320
    dynamic_onnx: Path  # dynamic batch and size
    static_manifest: Path
    dynamic_manifest: Path
    class_names: tuple[str, ...] = CLASS_NAMES
    imgsz: int = IMGSZ


@pytest.fixture(scope="session")
def yolo_files(tmp_path_factory: pytest.TempPathFactory) -> YoloFiles:
    """yolo11n, nc=5, built from YAML only; BN statistics calibrated on synthetic scenes.

    Freshly initialised weights give near-constant outputs (the signal fades layer by layer), which
    would make every score a near-tie. A few train-mode passes set the BN statistics so outputs
    depend on the image, and a lower class bias spreads the scores.
    """
    from inspector.runtime.model_artifact import write_manifest
    from training.untrained import build_untrained_yolo, export_onnx

    out = tmp_path_factory.mktemp("yolo11n")
    model = build_untrained_yolo(CLASS_NAMES, out, imgsz=IMGSZ, seed=0)
    files = {kind: export_onnx(model, out, f"det_{kind}", IMGSZ, dynamic=(kind == "dynamic"))
             for kind in ("static", "dynamic")}
    return YoloFiles(
        static_onnx=files["static"],
        dynamic_onnx=files["dynamic"],
        static_manifest=write_manifest(files["static"], "synthetic-defects", "1", CLASS_NAMES, IMGSZ,
                                       exported_from="tests/runtime/conftest.py random yolo11n"),
        dynamic_manifest=write_manifest(files["dynamic"], "synthetic-defects", "1-dyn", CLASS_NAMES, IMGSZ,
                                        exported_from="tests/runtime/conftest.py random yolo11n"),
    )


@pytest.fixture(scope="session")
def scene() -> Callable[..., np.ndarray]:
    return make_scene
