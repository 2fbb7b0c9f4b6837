"""Write a YOLO-format detection dataset from the synthetic wafer line.

Layout written under ``out``::

    images/train/*.png  images/val/*.png      lossless PNG, BGR die images
    labels/train/*.txt  labels/val/*.txt      "cls cx cy w h" normalised, 6 decimals; empty = clean die
    data.yaml                                 path (absolute), train, val, nc, names
    manifest.json                             seed, generator version, counts per class and split

The split is by lot (so also by wafer): train takes the first lots, val the lots after them, so
no die of a val wafer has a sibling in train. Exactly ``images`` images are written.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2

from inspector.capture.synthetic import CLASS_NAMES, GENERATOR_VERSION, SyntheticWaferLine
from inspector.core.detections import Detections
from inspector.util.progress import NO_PROGRESS, Progress
from training import yolo

# Dataset mode: more defective dies than a production line and a class mix tuned so that every
# class holds a fair share of the boxes (edge chips can only sit on edge dies, about half of
# them, and also come from edge-ring wafers; clusters add particles and residue).
DATASET_DEFECT_RATE = 0.55
DATASET_CLASS_WEIGHTS: dict[str, float] = {
    "particle": 0.10, "scratch": 0.22, "residue": 0.14, "pattern": 0.42, "edge_chip": 0.16,
}
DATASET_WAFERS_PER_LOT = 5
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # lossless either way; level 1 is several times faster

_Job = tuple[str, int, int, tuple[int, int]]  # split, lot, slot, die


def dataset_params(seed: int, lots: int = 1, die_px: int = 640, *, defect_rate: float = DATASET_DEFECT_RATE,
                   class_weights: Mapping[str, float] | None = None,
                   wafers_per_lot: int = DATASET_WAFERS_PER_LOT) -> dict[str, Any]:
    """Keyword arguments of the ``SyntheticWaferLine`` that dataset mode renders from."""
    return {
        "seed": int(seed), "lots": int(lots), "wafers_per_lot": int(wafers_per_lot), "die_px": int(die_px),
        "defect_rate": float(defect_rate), "class_weights": dict(class_weights or DATASET_CLASS_WEIGHTS),
        "cycle_signatures": True,  # every signature equally often, even in a small dataset
    }


def yolo_lines(truth: Detections, width: int, height: int) -> list[str]:
    """YOLO label lines ``cls cx cy w h`` (normalised to [0, 1], 6 decimals)."""
    lines = []
    for (x0, y0, x1, y1), c in zip(truth.xyxy.tolist(), truth.class_id.tolist()):
        x0, x1 = max(0.0, x0), min(float(width), x1)  # clipped to the die
        y0, y1 = max(0.0, y0), min(float(height), y1)
        lines.append(yolo.format_label_line(c, (x0, y0, x1, y1), width, height))
    return lines


def _split_jobs(dies: list[tuple[int, int]], n_train: int, n_val: int, wafers_per_lot: int
                ) -> tuple[list[_Job], int]:
    """Jobs for both splits and the last lot used; val starts at the lot after the last train lot."""
    jobs: list[_Job] = []

    def take(split: str, lot: int, n: int) -> int:
        k = 0
        while True:
            for slot in range(1, wafers_per_lot + 1):
                for die in dies:
                    if k == n:
                        return lot
                    jobs.append((split, lot, slot, die))
                    k += 1
            if k == n:
                return lot
            lot += 1

    last = take("train", 1, n_train) if n_train else 0
    if n_val:
        last = take("val", last + 1, n_val)
    return jobs, last


# One line object per worker process (wafer plans are cached inside it).
_WORKER: dict[str, Any] = {}


def _worker_init(params: Mapping[str, Any], out: str) -> None:
    cv2.setNumThreads(1)  # parallelism comes from the processes
    _WORKER["line"] = SyntheticWaferLine(**params)
    _WORKER["out"] = Path(out)


def _render_job(job: _Job) -> tuple[str, str, list[int], str]:
    split, lot, slot, die = job
    line: SyntheticWaferLine = _WORKER["line"]
    out: Path = _WORKER["out"]
    image, truth = line.render(lot, slot, die)
    fid = line.frame_id(lot, slot, die)
    if not cv2.imwrite(str(out / "images" / split / f"{fid}.png"), image, _PNG_PARAMS):
        raise OSError(f"could not write {out / 'images' / split / f'{fid}.png'}")
    lines = yolo_lines(truth, image.shape[1], image.shape[0])
    (out / "labels" / split / f"{fid}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    return split, line.wafer_id(lot, slot), truth.class_id.tolist(), line.wafer_truth(lot, slot).signature


def _run(jobs: list[_Job], params: dict[str, Any], out: Path, workers: int
         ) -> Iterator[tuple[str, str, list[int], str]]:
    if workers <= 1 or len(jobs) < 32:
        _worker_init(params, str(out))
        yield from map(_render_job, jobs)
        return
    with ProcessPoolExecutor(max_workers=workers, initializer=_worker_init, initargs=(params, str(out))) as pool:
        yield from pool.map(_render_job, jobs, chunksize=8)


def write_data_yaml(out: Path, names: tuple[str, ...] = CLASS_NAMES) -> Path:
    """``data.yaml`` with the train and val splits (see :func:`training.yolo.write_data_yaml`)."""
    return yolo.write_data_yaml(out, names, ("train", "val"))


def write_yolo_dataset(
    out: Path,
    images: int,
    seed: int,
    die_px: int = 640,
    val_fraction: float = 0.2,
    *,
    defect_rate: float = DATASET_DEFECT_RATE,
    class_weights: Mapping[str, float] | None = None,
    wafers_per_lot: int = DATASET_WAFERS_PER_LOT,
    workers: int | None = None,
    progress: Progress = NO_PROGRESS,
) -> dict[str, Any]:
    """Render ``images`` dies into a YOLO dataset at ``out`` and return a summary.

    The same ``seed`` and arguments give byte-identical images and labels. ``workers`` defaults
    to the CPU count (processes; each die is rendered independently).
    """
    if images < 1:
        raise ValueError(f"write_yolo_dataset: images must be >= 1, got {images}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"write_yolo_dataset: val_fraction must be in [0, 1), got {val_fraction}")
    out = Path(out)
    n_val = round(images * val_fraction)
    if val_fraction > 0 and images >= 2:
        n_val = min(max(n_val, 1), images - 1)  # both splits non-empty: ultralytics needs a val set
    n_train = images - n_val
    params = dataset_params(seed, 1, die_px, defect_rate=defect_rate, class_weights=class_weights,
                            wafers_per_lot=wafers_per_lot)
    probe = SyntheticWaferLine(**params)
    jobs, last_lot = _split_jobs(probe.layout.dies, n_train, n_val, wafers_per_lot)
    params["lots"] = max(1, last_lot)
    for sub in ("images/train", "images/val", "labels/train", "labels/val"):
        (out / sub).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    counts = {sp: dict.fromkeys(CLASS_NAMES, 0) for sp in ("train", "val")}
    n_img = {"train": 0, "val": 0}
    clean = {"train": 0, "val": 0}
    wafers: dict[str, dict[str, str]] = {"train": {}, "val": {}}
    with progress.stage("synth", total=images, unit="img") as stage:
        for split, wafer, classes, signature in _run(jobs, params, out, workers or os.cpu_count() or 1):
            n_img[split] += 1
            clean[split] += not classes
            for c in classes:
                counts[split][CLASS_NAMES[c]] += 1
            wafers[split][wafer] = signature
            stage.advance()
    elapsed = time.perf_counter() - t0

    yaml_path = write_data_yaml(out)
    total = {c: counts["train"][c] + counts["val"][c] for c in CLASS_NAMES}
    n_boxes = sum(total.values())
    manifest = {
        "generator": "inspector.capture.synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": int(seed),
        "die_px": int(die_px),
        "val_fraction": float(val_fraction),
        "split_by": "lot",
        "params": {k: v for k, v in params.items() if k != "seed"},
        "names": list(CLASS_NAMES),
        "images": n_img,
        "clean_images": clean,
        "boxes": counts,
        "class_share": {c: round(total[c] / n_boxes, 4) if n_boxes else 0.0 for c in CLASS_NAMES},
        "wafers": {sp: [{"wafer": w, "signature": s} for w, s in sorted(ws.items())] for sp, ws in wafers.items()},
        # same definition as `inspector-train dataset`, so evaluations and the registry name this set alike
        "content_hash": yolo.content_hash(out, CLASS_NAMES),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {
        "out": str(out.resolve()), "data_yaml": str(yaml_path.resolve()), "images": n_img, "clean_images": clean,
        "boxes": counts, "class_share": manifest["class_share"], "seconds": round(elapsed, 2),
        "wafers": {sp: len(ws) for sp, ws in wafers.items()}, "content_hash": manifest["content_hash"],
    }


__all__ = ["write_yolo_dataset", "dataset_params", "write_data_yaml", "yolo_lines", "DATASET_CLASS_WEIGHTS",
           "DATASET_DEFECT_RATE"]
