"""End-to-end throughput of `inspector demo` (capture -> inference -> fusion -> rules -> durable
store) against the raw inference speed of the same model on the same dies, on this machine.

Raw inference: ``OnnxDetector.detect`` on pre-rendered dies, one at a time (what the model alone
costs). Station: the demo config, the shipped model, a fresh database in a temporary data folder,
with the config's image storage (lossless PNG of every die) and, for comparison, without images.

    python bench/bench_pipeline.py [--frames 178] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from inspector.config import config_hash, default_config_path, load_config  # noqa: E402
from inspector.runtime.registry import RegistryReader  # noqa: E402
from inspector.station.demo import run_demo  # noqa: E402
from inspector.station.sources import build_sources  # noqa: E402


def raw_inference_fps(cfg, frames: int) -> dict:
    spec = cfg.models[0]
    det = RegistryReader().resolve(spec.registry).load(class_names=spec.class_names, conf=spec.conf, iou=spec.iou)
    images = []
    for src in build_sources(cfg):
        for f in src.frames():
            images.append(np.ascontiguousarray(f.image))
            if len(images) == frames:
                break
        src.close()
    det.detect(images[:2])  # warm-up
    t = []
    for img in images:
        t0 = time.perf_counter()
        det.detect([img])
        t.append(time.perf_counter() - t0)
    return {"frames": len(images), "fps": round(len(images) / sum(t), 2),
            "ms_p50": round(statistics.median(t) * 1e3, 3)}


def station_fps(cfg, frames: int, store_images: str) -> dict:
    cfg = cfg.model_copy(update={"storage": cfg.storage.model_copy(update={"store_images": store_images})})
    with tempfile.TemporaryDirectory() as tmp:
        s = run_demo(cfg, config_hash(cfg), max_frames=frames, data_dir=Path(tmp))
    return {"frames": s["frames"], "decisions": s["decisions"], "fps": s["throughput_fps"],
            "latency_ms": s.get("latency_ms"), "store_images": store_images, "verdicts": s["verdicts"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=178, help="dies (the demo lot has 4 wafers x 89)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    cfg = load_config(default_config_path())
    raw = raw_inference_fps(cfg, args.frames)
    full = station_fps(cfg, args.frames, "all")
    bare = station_fps(cfg, args.frames, "none")
    out = {"raw_inference": raw, "station_store_all_images": full, "station_store_no_images": bare,
           "pipeline_overhead_ratio": round(raw["fps"] / full["fps"], 3),
           "pipeline_overhead_ratio_no_images": round(raw["fps"] / bare["fps"], 3)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"raw inference {raw['fps']} dies/s; inspector demo {full['fps']} dies/s with every image stored "
              f"(ratio {out['pipeline_overhead_ratio']}), {bare['fps']} dies/s without images "
              f"(ratio {out['pipeline_overhead_ratio_no_images']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
