"""Micro-benchmark of the per-frame rules: the wafer-demo RuleSet on 100 fused boxes.

``run()`` returns ``{"rules_ms_100": median milliseconds}`` for building the frame's
``RuleInput`` and evaluating the rule set (what the rules thread pays per die image);
``bench/run.py`` combines it with the fusion benchmark. Run alone: ``python bench/bench_rules.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # runnable as a script from anywhere
    sys.path.insert(0, str(REPO))

from inspector.config import load_config  # noqa: E402
from inspector.core.detections import Detections  # noqa: E402
from inspector.station.rules_builder import build_rule_set, make_rule_input  # noqa: E402


def _boxes(n: int, size: int, n_classes: int, seed: int = 0) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, size - 40, (n, 2))
    wh = rng.uniform(1, 40, (n, 2))  # some under the 3 px size floor, most above
    return Detections(np.hstack([xy, xy + wh]), rng.uniform(0.2, 1.0, n), rng.integers(0, n_classes, n),
                      support=np.full(n, 0b111, np.uint32))


def run(repeats: int = 500, n_boxes: int = 100) -> dict[str, float]:
    cfg = load_config(REPO / "station_configs" / "wafer-demo.yaml")
    rules = build_rule_set(cfg)
    fused = _boxes(n_boxes, 640, len(cfg.models[0].class_names))
    per_model = [fused.with_model_index(i) for i in range(len(cfg.models))]
    context = {"lot": "LOT0001", "wafer": "LOT0001-W01", "die_x": 3, "die_y": -2}
    times = []
    for i in range(repeats + 50):
        t0 = time.perf_counter()
        inp = make_rule_input(cfg, fused, per_model, (640, 640), context, float(i))
        rules.evaluate(inp)
        if i >= 50:  # warm-up first
            times.append(time.perf_counter() - t0)
    return {"rules_ms_100": round(statistics.median(times) * 1e3, 4)}


if __name__ == "__main__":
    print(run())
