"""Inspector's runtime against ultralytics' own predict, on the same model and images, in one run.

Shared by ``bench/run.py`` (the 640 model) and ``bench/bench_shipped.py`` (the shipped wafer model).
The runtimes are interleaved frame by frame (ours, ultralytics ONNX, ultralytics .pt, then any
extra Inspector variant such as the INT8 model), so background load hits them alike; ratios are of
medians.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspector.capture.synthetic import CLASS_NAMES
from inspector.runtime.onnx_detector import OnnxDetector

STAGES = ("preprocess_ms", "inference_ms", "postprocess_ms")


def pct(samples: Sequence[float]) -> dict[str, float]:
    """p50 / p99 of a list of milliseconds, rounded for the tables."""
    a = np.asarray(samples, np.float64)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def compare(onnx: Path, pt: Path, imgsz: int, images: Sequence[np.ndarray], rounds: int,
            variants: Mapping[str, Path] | None = None) -> dict[str, Any]:
    """Per-stage and end-to-end times of ``OnnxDetector`` against ``YOLO(onnx)`` / ``YOLO(pt)`` predict.

    ``variants``: other ONNX files of the same model (e.g. ``{"inspector_int8": int8_path}``), run
    through ``OnnxDetector`` in the same interleaved loop; each gets its own speed-up against .pt.
    """
    import torch
    from ultralytics import YOLO

    ours = OnnxDetector(onnx, CLASS_NAMES, imgsz, sha256=None, conf=0.25, iou=0.45)
    extra = {k: OnnxDetector(p, CLASS_NAMES, imgsz, sha256=None, conf=0.25, iou=0.45)
             for k, p in (variants or {}).items()}
    u_onnx, u_pt = YOLO(str(onnx), task="detect"), YOLO(str(pt), task="detect")
    # ultralytics caps torch at cpu_count - 1 threads on import; give PyTorch every core, as ONNX
    # Runtime gets, so the comparison is not tilted in our favour.
    torch.set_num_threads(os.cpu_count() or 1)
    kw = dict(imgsz=imgsz, conf=0.25, iou=0.45, device="cpu", verbose=False)

    def timed(fn: Any) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3

    for img in images[:3]:  # warm-up every runtime
        ours.detect([img]), u_onnx.predict(img, **kw), u_pt.predict(img, **kw)
        for d in extra.values():
            d.detect([img])
    stages: dict[str, list[float]] = {k: [] for k in STAGES}
    e2e: dict[str, list[float]] = {k: [] for k in ("inspector_onnx", "ultralytics_onnx", "ultralytics_pt", *extra)}
    boxes = []
    for _ in range(rounds):
        for img in images:
            t0 = time.perf_counter()
            run = ours.detect_timed([img])
            e2e["inspector_onnx"].append((time.perf_counter() - t0) * 1e3)
            (det,) = run.detections
            for k in STAGES:
                stages[k].append(run.timings_ms[k])
            boxes.append(len(det))
            e2e["ultralytics_onnx"].append(timed(lambda: u_onnx.predict(img, **kw)))
            e2e["ultralytics_pt"].append(timed(lambda: u_pt.predict(img, **kw)))
            for k, d in extra.items():
                e2e[k].append(timed(lambda: d.detect([img])))  # noqa: B023 - called at once
    med = {k: statistics.median(v) for k, v in e2e.items()}
    inf = statistics.median(stages["inference_ms"])
    overhead = (statistics.median(stages["preprocess_ms"]) + statistics.median(stages["postprocess_ms"])) / inf
    result: dict[str, Any] = {
        "imgsz": imgsz,
        "frames": len(e2e["inspector_onnx"]),
        "boxes_per_frame_median": float(statistics.median(boxes)),
        "stages_ms": {k: pct(v) for k, v in stages.items()},
        "end_to_end_ms": {k: pct(v) for k, v in e2e.items()},
        "overhead_fraction": round(overhead, 4),
        "speedup_vs_ultralytics_onnx": round(med["ultralytics_onnx"] / med["inspector_onnx"], 3),
        "speedup_vs_ultralytics_pt": round(med["ultralytics_pt"] / med["inspector_onnx"], 3),
        "providers": list(ours.providers_in_use),
        "torch_threads": torch.get_num_threads(),  # as used for the .pt predict timings
    }
    for k in extra:
        result[f"{k}_speedup_vs_ultralytics_pt"] = round(med["ultralytics_pt"] / med[k], 3)
        result[f"{k}_speedup_vs_inspector_onnx"] = round(med["inspector_onnx"] / med[k], 3)
    return result

