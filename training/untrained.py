"""Untrained YOLO models built from YAML, for shape, agreement and speed checks (never for accuracy).

Freshly initialised weights give near-constant outputs (the signal fades layer by layer), which
makes every score a near-tie. A few train-mode passes over synthetic scenes set the batch-norm
statistics so outputs depend on the image, and a lower class bias spreads the scores.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from training import ultralytics_env  # noqa: F401  (offline settings before ultralytics loads)


def rectangles_scene(rng: np.random.Generator, h: int, w: int, n: int = 25) -> np.ndarray:
    """Grey background with filled rectangles of random colour: structure for a model to react to."""
    import cv2

    img = np.full((h, w, 3), 114, np.uint8)
    for _ in range(n):
        x, y = int(rng.integers(0, max(1, w - 8))), int(rng.integers(0, max(1, h - 8)))
        bw, bh = (int(v) for v in rng.integers(4, max(5, min(h, w) // 4), 2))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), [int(c) for c in rng.integers(0, 255, 3)], -1)
    return img


def build_untrained_yolo(
    class_names: Sequence[str],
    out_dir: Path,
    *,
    scale: str = "n",
    imgsz: int = 640,
    seed: int = 0,
    scene: Callable[[np.random.Generator, int, int], np.ndarray] = rectangles_scene,
):
    """A yolo11<scale> ``ultralytics.YOLO`` with ``len(class_names)`` classes, BN-calibrated on ``scene``."""
    import torch
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.utils import YAML

    torch.manual_seed(seed)
    cfg = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "models" / "11" / "yolo11.yaml")
    cfg["nc"] = len(class_names)
    out_dir.mkdir(parents=True, exist_ok=True)
    yaml_path = out_dir / f"yolo11{scale}.yaml"  # the scale letter in the name selects the model size
    YAML.save(yaml_path, cfg)
    model = YOLO(str(yaml_path))
    net = model.model
    rng = np.random.default_rng(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration passes
    net.train()
    with torch.no_grad():
        for _ in range(3):
            batch = np.stack([scene(rng, imgsz, imgsz) for _ in range(4)])[..., ::-1].copy()
            net(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255)
        for seq in net.model[-1].cv3:
            seq[-1].bias.fill_(-2.0)
    net.eval()
    net.names = dict(enumerate(class_names))
    return model


def export_onnx(model, out_dir: Path, stem: str, imgsz: int, dynamic: bool = False) -> Path:
    """Export ``model`` to ``out_dir/stem.onnx`` (ultralytics names the file after ``pt_path``)."""
    model.model.pt_path = str(out_dir / f"{stem}.pt")
    with warnings.catch_warnings():  # torch's exporter warns about its own internals
        warnings.simplefilter("ignore", DeprecationWarning)
        f = Path(model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=True, verbose=False))
    if f.parent != out_dir:
        raise RuntimeError(f"export wrote {f}, expected it in {out_dir}")
    return f


def save_pt(model, path: Path) -> Path:
    """Save as an ultralytics checkpoint that ``YOLO(path)`` loads (for predict comparisons)."""
    model.save(str(path))
    return path
