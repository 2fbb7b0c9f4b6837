"""A real YOLO model that finds nothing: the deliberately worse model of promotion-gate tests."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def blind_model(out: Path, class_names: Sequence[str], imgsz: int) -> Path:
    """A yolo11n whose class logits are pushed to -20: every score ~2e-9, so it detects nothing.
    Returns its ONNX export (with manifest)."""
    from training.export import export_onnx
    from training.untrained import build_untrained_yolo, save_pt

    model = build_untrained_yolo(list(class_names), out, imgsz=imgsz, seed=1)
    for seq in model.model.model[-1].cv3:
        seq[-1].bias.data.fill_(-20.0)
    pt = save_pt(model, out / "blind.pt")
    return export_onnx(pt, out, imgsz)
