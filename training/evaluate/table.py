"""The readable summary of an evaluation (what ``inspector-train evaluate`` prints without ``--json``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if isinstance(v, float):
        return f"{v * 100:.1f}" if pct else f"{v:.3f}"
    return str(v)


def format_table(result: Mapping[str, Any]) -> str:
    """The readable summary of ``evaluate_model``'s result (figures in percent)."""
    head = (f"{'class':<16}{'truths':>7}{'thr':>6}{'AP50':>7}{'AP50-95':>9}{'P':>7}{'R':>7}{'F1':>7}"
            f"{'TP':>6}{'FP':>6}{'FN':>6}")
    lines = [f"{result['model']} on {result['dataset']} [{result['split']}], {result['n_images']} images, "
             f"{result['n_truths']} truths (runtime: {result['runtime']}, imgsz {result['imgsz']})", "", head,
             "-" * len(head)]
    for n, pc in result["per_class"].items():
        lines.append(f"{n[:15]:<16}{pc['support']:>7}{pc['threshold']:>6.2f}{_fmt(pc['ap50'], True):>7}"
                     f"{_fmt(pc['ap50_95'], True):>9}{_fmt(pc['precision'], True):>7}{_fmt(pc['recall'], True):>7}"
                     f"{_fmt(pc['f1'], True):>7}{pc['tp']:>6}{pc['fp']:>6}{pc['fn']:>6}")
    tp = sum(pc["tp"] for pc in result["per_class"].values())
    fp = sum(pc["fp"] for pc in result["per_class"].values())
    fn = sum(pc["fn"] for pc in result["per_class"].values())
    lines += ["-" * len(head),
              f"{'all':<16}{result['n_truths']:>7}{'':>6}{_fmt(result['map50'], True):>7}"
              f"{_fmt(result['map50_95'], True):>9}{_fmt(result['precision'], True):>7}"
              f"{_fmt(result['recall'], True):>7}"
              f"{_fmt(result['f1'], True):>7}{tp:>6}{fp:>6}{fn:>6}", ""]
    lines.append(f"mAP33 {_fmt(result['map33'], True)}   ECE {_fmt(result['ece'])}   "
                 f"(P / R / F1 at the operating thresholds, IoU 0.5; overall = pooled counts)")
    lines.append(f"operating thresholds: {result['operating_thresholds_source']}")
    if result.get("pytorch_map50") is not None and result.get("onnx_map50") is not None:
        verdict = "agree" if result["agree"] else "DISAGREE: check pre/post-processing"
        lines.append(f"PyTorch mAP50 {_fmt(result['pytorch_map50'], True)} vs station ONNX runtime "
                     f"{_fmt(result['onnx_map50'], True)}: delta {result['onnx_delta_map50']:.2f} points "
                     f"(max {result['max_onnx_delta_points']:g}) -> {verdict}")
    elif result.get("onnx_map50") is not None:
        lines.append(f"station ONNX runtime mAP50 {_fmt(result['onnx_map50'], True)}")
    timing = ", ".join(f"{k} {v['ms_per_image_median']:.1f} ms" for k, v in result["timing"].items()
                       if v.get("ms_per_image_median") is not None)
    lines.append(f"time per image (median, batch 1): {timing}")
    lines.append(f"dataset hash {result['dataset_hash'][:16]}... ({result['dataset_hash_source']})")
    if result.get("plots"):
        lines.append(f"plots: {', '.join(Path(p).name for p in result['plots'].values())} in {result['out_dir']}")
    return "\n".join(lines)
