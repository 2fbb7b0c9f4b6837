"""Runtime fixtures: a small yolo11n with random weights, exported to ONNX once per test session.

Random weights say nothing about accuracy; they serve shape, batch, provider, integrity, speed and
"ONNX runtime vs ultralytics predict" tests. Exact decode/NMS/mapping tests use hand-built tensors.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")
os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / ".yolo"))

CLASS_NAMES = ("scratch", "particle", "pit", "stain", "crack")
IMGSZ = 320


def make_scene(rng: np.random.Generator, h: int = IMGSZ, w: int = IMGSZ, n: int = 25, grey: bool = False) -> np.ndarray:
    """Grey background with filled rectangles of random colour: structure for the model to react to."""
    import cv2

    img = np.full((h, w, 3), 114, np.uint8)
    for _ in range(n):
        x, y = int(rng.integers(0, max(1, w - 8))), int(rng.integers(0, max(1, h - 8)))
        bw, bh = (int(v) for v in rng.integers(4, max(5, min(h, w) // 4), 2))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), [int(c) for c in rng.integers(0, 255, 3)], -1)
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
    import torch
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.utils import YAML

    from inspector.runtime.model_artifact import write_manifest

    torch.manual_seed(0)
    cfg = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11.yaml")
    cfg["nc"] = len(CLASS_NAMES)
    out = tmp_path_factory.mktemp("yolo11n")
    yaml_path = out / "yolo11n.yaml"  # the "n" in the name selects the nano scale
    YAML.save(yaml_path, cfg)
    model = YOLO(str(yaml_path))
    net = model.model
    rng = np.random.default_rng(0)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration passes
    net.train()
    with torch.no_grad():
        for _ in range(3):
            batch = np.stack([make_scene(rng) for _ in range(4)])[..., ::-1].copy()
            net(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255)
        for seq in net.model[-1].cv3:
            seq[-1].bias.fill_(-2.0)
    net.eval()
    net.names = dict(enumerate(CLASS_NAMES))
    files = {}
    for kind, dynamic in (("static", False), ("dynamic", True)):
        net.pt_path = str(out / f"det_{kind}.pt")  # export names its file after this
        with warnings.catch_warnings():  # torch's exporter warns about its own internals
            warnings.simplefilter("ignore", DeprecationWarning)
            f = Path(model.export(format="onnx", imgsz=IMGSZ, dynamic=dynamic, simplify=True, verbose=False))
        assert f.parent == out, f
        files[kind] = f
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
