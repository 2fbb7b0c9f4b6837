"""The shipped site-demo model as the construction station runs it, side by side with ultralytics.

Same weights, same frames, one interleaved loop (background load hits every runtime alike):
- Inspector, site-demo@2 (dynamic input) with the rect letterbox (``rect: true``), on OpenVINO and on
  ONNX Runtime: what the construction demo and ``inspector analyze`` run;
- Inspector, site-demo@1 (static 480x480 letterbox) on ONNX Runtime: what ran before;
- ultralytics ``YOLO(weights.pt).predict`` and ``YOLO(model.onnx).predict`` (site-demo@2's files), at
  imgsz 480 (ultralytics letterboxes a .pt to the smallest stride rectangle by itself).

Frames: the synthetic site camera at 1920x1080 (an archive's size) and 960x540 (the demo's). Each
runtime is timed end to end per frame (letterbox, inference, decoding, NMS); speed-ups are medians
against ultralytics' .pt predict.

    python bench/bench_site_model.py [--frames 20] [--rounds 2] [--json] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import training.ultralytics_env  # noqa: E402,F401  (offline ultralytics settings before it loads)

from bench.results_md import write_section  # noqa: E402
from inspector.capture.synthetic_site import SyntheticSiteCamera  # noqa: E402
from inspector.runtime.onnx_detector import OnnxDetector  # noqa: E402
from inspector.runtime.registry import RegistryReader, default_registry_root  # noqa: E402


def frames(n: int, width: int, height: int) -> list[np.ndarray]:
    cam = SyntheticSiteCamera("gate", seed=11, duration_s=60.0, workers=5, occluders=2, width=width, height=height)
    return [np.ascontiguousarray(cam.render(i)) for i in range(0, 6 * n, 6)]


def runtimes() -> tuple[dict[str, Any], dict[str, str]]:
    import torch
    from ultralytics import YOLO

    from inspector.runtime.openvino_detector import OpenVinoDetector

    reader = RegistryReader(default_registry_root())
    v2, v1 = reader.resolve("site-demo@2"), reader.resolve("site-demo@1")
    ours_ov = OpenVinoDetector.from_manifest(v2.manifest_path, rect=True)
    ours_ort = OnnxDetector.from_manifest(v2.manifest_path, rect=True)
    ours_sq = OnnxDetector.from_manifest(v1.manifest_path)
    u_pt = YOLO(str(v2.onnx_path.parent / "weights.pt"), task="detect")
    u_onnx = YOLO(str(v2.onnx_path), task="detect")
    torch.set_num_threads(os.cpu_count() or 1)  # ultralytics caps torch at cores - 1: give it every core
    kw = dict(imgsz=480, conf=0.25, iou=0.45, device="cpu", verbose=False)
    run = {
        "inspector_openvino_rect": lambda img: ours_ov.detect([img]),
        "inspector_onnxruntime_rect": lambda img: ours_ort.detect([img]),
        "inspector_onnxruntime_square@1": lambda img: ours_sq.detect([img]),
        "ultralytics_pt": lambda img: u_pt.predict(img, **kw),
        "ultralytics_onnx": lambda img: u_onnx.predict(img, **kw),
    }
    models = {"v2": f"{v2.spec} sha256 {v2.sha256[:12]} (dynamic input)",
              "v1": f"{v1.spec} sha256 {v1.sha256[:12]} (static 480x480)"}
    return run, models


def measure(run: dict[str, Any], images: list[np.ndarray], rounds: int) -> dict[str, Any]:
    for img in images[:2]:  # warm-up; a dynamic-input runtime compiles for the new shape here
        for fn in run.values():
            fn(img)
    times: dict[str, list[float]] = {k: [] for k in run}
    for _ in range(rounds):
        for img in images:
            for k, fn in run.items():
                t0 = time.perf_counter()
                fn(img)
                times[k].append((time.perf_counter() - t0) * 1e3)
    p50 = {k: float(np.median(v)) for k, v in times.items()}
    ref = p50["ultralytics_pt"]
    return {k: {"p50_ms": round(p50[k], 2), "p99_ms": round(float(np.percentile(v, 99)), 2),
                "speedup_vs_ultralytics_pt": round(ref / p50[k], 2)} for k, v in times.items()}


def markdown(res: dict[str, Any]) -> str:
    lines = ["## Shipped site-demo model (construction station)", "",
             f"Measured {res['date']} on {res['cpu']}, {res['cores']} cores, load average "
             f"{res['load'][0]} - {res['load'][1]}, with `python bench/bench_site_model.py --frames "
             f"{res['frames']} --rounds {res['rounds']}`. Models: {res['models']['v2']}; {res['models']['v1']}. "
             "End to end per frame (letterbox, inference, decoding, NMS), interleaved; speed-up = ultralytics "
             ".pt predict's median / this one's.", ""]
    for size, rows in res["sizes"].items():
        lines += [f"Frames {size}:", "", "| runtime | p50 ms | p99 ms | speed-up vs ultralytics .pt |",
                  "| --- | ---: | ---: | ---: |"]
        lines += [f"| {k} | {v['p50_ms']} | {v['p99_ms']} | {v['speedup_vs_ultralytics_pt']}x |" for k, v in rows.items()]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=20, help="Frames per size.")
    ap.add_argument("--rounds", type=int, default=2, help="Passes over the frames.")
    ap.add_argument("--json", action="store_true", help="Print the results as JSON alone on stdout.")
    ap.add_argument("--no-write", action="store_true", help="Do not update bench/RESULTS.md.")
    args = ap.parse_args(argv)
    load0 = os.getloadavg()[0]
    print("loading the runtimes", file=sys.stderr)
    run, models = runtimes()
    sizes = {}
    for w, h in ((1920, 1080), (960, 540)):
        print(f"timing {w}x{h}", file=sys.stderr)
        sizes[f"{w}x{h}"] = measure(run, frames(args.frames, w, h), args.rounds)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    res = {"date": time.strftime("%Y-%m-%d"), "cpu": cpu, "cores": os.cpu_count(), "frames": args.frames,
           "rounds": args.rounds, "load": [round(load0, 2), round(os.getloadavg()[0], 2)], "models": models,
           "sizes": sizes}
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", "bench_site_model", markdown(res))
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
