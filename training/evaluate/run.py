"""``evaluate_model``: run a model on a dataset split (PyTorch and / or the station's ONNX runtime)
and score it; the report also goes to ``report.json`` with the plots."""

from __future__ import annotations

import json
import logging
import math
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inspector.core.detections import Detections
from inspector.util.progress import NO_PROGRESS, Progress
from training.console import json_safe, quiet_stdout
from training.evaluate.models import ModelSource, resolve_model
from training.evaluate.plots import save_plots
from training.evaluate.thresholds import EvalError, thresholds_from_config
from training.metrics import evaluate_detections, resolve_thresholds
from training.yolo import dataset_hash, read_yolo_split, yolo_split

log = logging.getLogger(__name__)

MAX_ONNX_DELTA_POINTS = 0.5  # PyTorch vs station runtime: larger gaps mean a pre/post-processing bug


class _Runtime:
    """One detector under evaluation, with its per-image timings."""

    def __init__(self, name: str, detector: Any) -> None:
        self.name, self.detector = name, detector
        self.preds: list[Detections] = []
        self.ms: list[float] = []

    def run(self, image: np.ndarray) -> None:
        t = time.perf_counter()
        det = self.detector.detect([image])[0]
        self.ms.append((time.perf_counter() - t) * 1e3)
        self.preds.append(det)

    def timing(self) -> dict[str, float | None]:
        if not self.ms:
            return {"ms_per_image_median": None, "ms_per_image_mean": None}
        return {"ms_per_image_median": round(statistics.median(self.ms), 3),
                "ms_per_image_mean": round(statistics.fmean(self.ms), 3)}


def evaluate_model(
    model_spec: str | Path,
    dataset: Path | str,
    split: str = "val",
    *,
    conf: float = 0.001,
    nms_iou: float = 0.7,
    max_det: int = 300,
    thresholds: Mapping[str, float] | float | None = None,
    config: Path | str | None = None,
    onnx: bool = True,
    imgsz: int | None = None,
    registry_root: Path | str | None = None,
    out_dir: Path | str | None = None,
    plots: bool = True,
    max_images: int | None = None,
    threads: int | None = None,
    rect: bool = False,
    progress: Progress = NO_PROGRESS,
) -> dict[str, Any]:
    """Evaluate a model on a dataset split; returns one JSON-safe dict with every figure.

    Predictions are taken down to ``conf`` (0.001, for mAP) with NMS IoU ``nms_iou`` (0.7, ultralytics'
    val setting), then scored by ``evaluate_detections`` at the operating thresholds: ``thresholds``
    (a value or a per-class mapping), else the ``config`` station's (``thresholds_from_config``), else
    0.25. A ``.pt`` runs through ultralytics (``UltralyticsDetector``) and, with ``onnx``, is exported to
    ONNX in a temporary folder and run through the station runtime (``OnnxDetector``) as well; the two
    must agree within ``MAX_ONNX_DELTA_POINTS`` mAP50 points (``agree``). Headline figures come from the
    PyTorch side for a ``.pt`` and from the ONNX side for an ``.onnx`` file or a registry model.
    Steps are logged (info); ``progress`` counts the images (and the temporary export).
    """
    import cv2

    def say(msg: str) -> None:
        log.info("%s", msg)

    src = resolve_model(model_spec, registry_root)
    primary_kind = src.primary  # decided before a temporary export adds an ONNX side
    split_info = yolo_split(dataset, split)
    images, truths, names = read_yolo_split(dataset, split)
    if max_images:
        images, truths = images[:max_images], truths[:max_images]
    ds_hash, ds_hash_source = dataset_hash(dataset, split)
    if src.class_names is not None and tuple(src.class_names) != tuple(names):
        raise EvalError(f"model {src.label} has classes {list(src.class_names)}, the dataset {list(names)}")

    if thresholds is not None and config is not None:
        raise EvalError("give operating thresholds either with --thresholds or with --config, not both")
    if config is not None:
        thr_map, thr_source = thresholds_from_config(config, names, (src.registry or {}).get("name") or src.label)
        op_thr: Mapping[str, float] | float = thr_map
    elif thresholds is not None:
        op_thr, thr_source = thresholds, "--thresholds"
    else:
        op_thr, thr_source = 0.25, "default 0.25 (no station config given)"
    op_thr_arr = resolve_thresholds(op_thr, names)

    runtimes: dict[str, _Runtime] = {}
    notes: list[str] = []
    temp_onnx = False
    with tempfile.TemporaryDirectory(prefix="inspector-eval-") as tmp, quiet_stdout():
        run_imgsz = imgsz
        if src.pt is not None:
            from training.export import checkpoint_info
            from training.pt_detector import UltralyticsDetector

            say(f"loading {src.pt} (PyTorch, through ultralytics)")
            det = UltralyticsDetector(src.pt, names, imgsz=640, conf=conf, iou=nms_iou, max_det=max_det)
            ck_imgsz = checkpoint_info(det.model)[1]
            run_imgsz = int(imgsz or (src.imgsz[0] if src.imgsz else None) or ck_imgsz or 640)
            det.imgsz = run_imgsz
            runtimes["pytorch"] = _Runtime("pytorch", det)
        if onnx and src.onnx is None and src.pt is not None:
            from training.export import export_onnx

            say(f"exporting {src.pt} to ONNX at imgsz {run_imgsz} (temporary)")
            src.onnx = export_onnx(src.pt, Path(tmp), run_imgsz, name=src.label, progress=progress)
            src.manifest = src.onnx.with_name(src.onnx.stem + ".manifest.json")
            temp_onnx = True
            notes.append("ONNX side: a fresh export of the checkpoint (training/export.py), run by OnnxDetector")
        if onnx and src.onnx is not None:
            from inspector.runtime.onnx_detector import OnnxDetector

            say(f"loading {src.onnx} (station runtime, onnxruntime)")
            kw = {"conf": conf, "iou": nms_iou, "max_det": max_det, "threads": threads, "rect": rect}
            if src.manifest is not None and src.manifest.is_file():
                det = OnnxDetector.from_manifest(src.manifest, class_names=names, **kw)
            else:
                det = OnnxDetector(src.onnx, names, imgsz, **kw)
                notes.extend(det.notes)
            if rect and not det.rect:
                raise EvalError(f"--rect needs a model with a dynamic input size; {src.onnx} takes a fixed "
                                f"{det.imgsz[0]}x{det.imgsz[1]} input (export it with --dynamic)")
            if rect:
                notes.append("ONNX side: rect letterbox (the smallest stride-multiple rectangle per image), "
                             "as a station config with rect: true runs it")
            runtimes["onnx"] = _Runtime("onnx", det)
            run_imgsz = run_imgsz or det.imgsz[0]
        if not runtimes:
            raise EvalError(f"nothing to evaluate: {src.spec} has no ONNX model and --no-onnx was given")

        say(f"running {', '.join(runtimes)} on {len(images)} {split} images")
        first = True
        with progress.stage("evaluate", total=len(images), unit="img") as stage:
            for i, path in enumerate(images):
                img = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if img is None:
                    raise EvalError(f"cannot read image {path}")
                if first:  # one untimed pass: lazy initialisation is not per-image cost
                    for rt in runtimes.values():
                        rt.detector.detect([img])
                    first = False
                for rt in (list(runtimes.values()) if i % 2 == 0 else list(runtimes.values())[::-1]):
                    rt.run(img)
                stage.advance()

    reports = {k: evaluate_detections(rt.preds, truths, names, operating_thresholds=op_thr)
               for k, rt in runtimes.items()}
    primary = primary_kind if primary_kind in reports else next(iter(reports))
    main = reports[primary]
    result: dict[str, Any] = {
        "model": src.spec, "model_label": src.label, "runtime": primary,
        "pt_path": str(src.pt) if src.pt else None,
        "onnx_path": None if temp_onnx or src.onnx is None else str(src.onnx),
        "onnx_sha256": runtimes["onnx"].detector.sha256 if "onnx" in runtimes else None,
        "registry": src.registry,
        "dataset": str(dataset), "dataset_hash": ds_hash, "dataset_hash_source": ds_hash_source,
        "split": split, "dataset_root": str(split_info.root), "max_images": max_images,
        "class_names": list(names), "imgsz": run_imgsz, "rect": rect,
        "conf": conf, "nms_iou": nms_iou, "max_det": max_det,
        "operating_thresholds": {n: float(t) for n, t in zip(names, op_thr_arr)},
        "operating_thresholds_source": thr_source,
    }
    result.update(main.to_json())
    for k in ("pytorch", "onnx"):
        rep = reports.get(k)
        result[f"{k}_map50"] = rep.map50 if rep else None
        result[f"{k}_map50_95"] = rep.map50_95 if rep else None
    if "pytorch" in reports and "onnx" in reports:
        d50 = abs(reports["pytorch"].map50 - reports["onnx"].map50) * 100
        d95 = abs(reports["pytorch"].map50_95 - reports["onnx"].map50_95) * 100
        result["onnx_delta_map50"] = round(d50, 4) if math.isfinite(d50) else None
        result["onnx_delta_map50_95"] = round(d95, 4) if math.isfinite(d95) else None
        result["agree"] = bool(d50 <= MAX_ONNX_DELTA_POINTS) if math.isfinite(d50) else None
    else:
        result["onnx_delta_map50"] = result["onnx_delta_map50_95"] = result["agree"] = None
    result["max_onnx_delta_points"] = MAX_ONNX_DELTA_POINTS
    result["timing"] = {k: rt.timing() for k, rt in runtimes.items()}
    result["runtimes"] = {k: rep.to_json() for k, rep in reports.items() if k != primary}
    result["notes"] = notes
    result = json_safe(result)

    out = Path(out_dir) if out_dir is not None else default_out_dir(src, dataset)
    out.mkdir(parents=True, exist_ok=True)
    result["out_dir"] = str(out)
    title = f"{src.label} on {_dataset_label(dataset)} ({split})"
    result["plots"] = save_plots(main, out, title=title) if plots else {}
    (out / "report.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return result


def _dataset_label(dataset: Path | str) -> str:
    ds = Path(str(dataset))
    return ds.parent.name if ds.is_file() else ds.name  # data.yaml -> its folder's name


def default_out_dir(src: ModelSource, dataset: Path | str) -> Path:
    """``runs/eval/<model>-<dataset>`` (relative to the working directory, like training runs)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in f"{src.label}-{_dataset_label(dataset)}")
    return Path("runs") / "eval" / safe

