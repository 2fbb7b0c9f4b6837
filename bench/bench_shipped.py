"""The shipped wafer-demo model (registry production version), benchmarked as the station runs it.

- per-stage latency and end-to-end time on 320 px dies, Inspector's runtime against ultralytics'
  ``YOLO(model.onnx).predict`` and ``YOLO(weights.pt).predict``, interleaved frame by frame;
- a 4096 x 4096 wafer field through the tiled detector (320 tiles, as the model was trained);
- INT8 (ONNX Runtime static quantisation, calibrated on synthetic dies) against FP32: speed and
  mAP50 on a fresh synthetic lot, through ``training.export.int8_gate``.

Returns None when no wafer-demo model is registered (a fresh clone before training).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.side_by_side import compare, pct
from inspector.capture.synthetic import CLASS_NAMES, SyntheticWaferLine, render_field
from inspector.core.geometry import box_iou
from inspector.runtime.onnx_detector import OnnxDetector
from inspector.runtime.registry import RegistryError, RegistryReader
from inspector.runtime.tiling import TiledDetector

CACHE = Path(__file__).resolve().parent / ".cache"


def _dies(n: int, die_px: int) -> list[np.ndarray]:
    line = SyntheticWaferLine(seed=11, lots=1, wafers_per_lot=1, die_px=die_px, defect_rate=0.5)
    out = []
    for frame in line.frames():
        out.append(np.ascontiguousarray(frame.image))
        if len(out) == n:
            break
    return out


def _tiled_4k(onnx: Path, imgsz: int, rounds: int) -> dict[str, Any]:
    inner = OnnxDetector(onnx, CLASS_NAMES, imgsz, sha256=None, conf=0.25, iou=0.45)
    tiled = TiledDetector(inner, tile=imgsz, overlap=0.2, batch=8)
    overlap = round(0.2 * imgsz)
    field, truth = render_field(5, size=4096, die_px=imgsz, tile=imgsz, overlap=overlap)
    run = tiled.detect_timed([field])
    (found,) = run.detections
    tiles = int(run.timings_ms.get("tiles", 0))
    hit = (box_iou(truth.xyxy, found.xyxy) >= 0.5) & (truth.class_id[:, None] == found.class_id[None, :]) \
        if len(found) else np.zeros((len(truth), 1), bool)
    total = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        tiled.detect([field])
        total.append((time.perf_counter() - t0) * 1e3)
    return {"image": "4096x4096 synthetic wafer field", "tile": imgsz, "overlap": 0.2, "batch": 8,
            "tiles": tiles, "truth_boxes": len(truth), "found_boxes": len(found),
            "recall_iou50": round(float(hit.any(axis=1).mean()), 3) if len(truth) else None,
            "end_to_end_ms": pct(total)}


def _int8(onnx: Path, imgsz: int, int8: Path) -> dict[str, Any]:
    from training.export import int8_gate, quantize_int8
    from training.synth import write_yolo_dataset

    data = CACHE / f"wafer-fresh-{imgsz}"
    if not (data / "data.yaml").exists():
        write_yolo_dataset(data, 200, seed=99, die_px=imgsz, workers=1)
    if not int8.exists():
        int8.parent.mkdir(parents=True, exist_ok=True)
        quantize_int8(onnx, data, int8, calibration_images=100)
    return int8_gate(onnx, int8, data, "val").to_json()


def run(rounds: int = 3, frames: int = 20, rounds_4k: int = 3, registry: Path | None = None) -> dict[str, Any] | None:
    try:
        resolved = RegistryReader(registry).resolve("wafer-demo")
    except RegistryError:
        return None
    pt = resolved.onnx_path.parent / "weights.pt"
    imgsz = resolved.imgsz[0]
    out: dict[str, Any] = {"model": f"{resolved.spec} ({resolved.stage}, sha256 {resolved.sha256[:12]})"}
    # cached per model hash: a newly promoted model gets its own INT8 copy
    int8 = CACHE / f"wafer-demo-int8-{resolved.sha256[:12]}" / "model.int8.onnx"
    out["int8"] = _int8(resolved.onnx_path, imgsz, int8)
    if pt.is_file():
        # The INT8 model passed its accuracy gate above, so a station may run it: time it in the
        # same interleaved loop, beside the FP32 figures (which stay the headline comparison).
        variants = {"inspector_int8": int8} if out["int8"]["accepted"] else None
        out["runtime"] = compare(resolved.onnx_path, pt, imgsz, _dies(frames, imgsz), rounds, variants)
    out["tiled_4k"] = _tiled_4k(resolved.onnx_path, imgsz, rounds_4k)
    return out
