"""Export a trained checkpoint for the station: ONNX (always), TensorRT (when present), INT8 (gated).

* ``export_onnx``: ultralytics' exporter from the ``.pt``, opset 17 (see ``ONNX_OPSET``), raw head output
  (no NMS inside: the station runtime does its own), then a manifest with the checkpoint's class names.
* ``export_tensorrt``: a serialized TensorRT engine when the ``tensorrt`` package is importable; otherwise
  a clear error that points at onnxruntime-gpu's TensorRT provider, which builds engines itself.
* ``quantize_int8`` + ``int8_gate``: ONNX Runtime static quantization (QDQ, per-channel weights),
  calibrated on dataset images letterboxed by the station's own ``Preprocessor``; the INT8 model is only
  accepted when its mAP50, measured through the station runtime, is at most 1 point below FP32.

Which nodes stay in float (``exclude=``): a YOLO detect head ends in a *decode* block (DFL softmax and
its 1x1 conv, anchor arithmetic, stride multiply) and one ``Concat`` that joins box coordinates in input
pixels (0..imgsz) with class scores (0..1) into the single output. Quantized, that Concat shares one
scale across both, so with imgsz 320 one quantization step is about 1.3: every score collapses to 0 or
1.3 and every box corner snaps to a 1.3 px grid. ``exclude="decode"`` (default) keeps the whole decode
block in float and quantizes everything else, head convolutions included; ``"head"`` also keeps the
head's convolutions in float (more accuracy, less speed); ``"none"`` quantizes everything (for study).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inspector.runtime.model_artifact import load_manifest, sha256_file, write_manifest
from inspector.util.progress import NO_PROGRESS, Progress, Stage
from training.metrics import evaluate_detections
from training.yolo import DatasetError, read_yolo_split, yolo_split

log = logging.getLogger(__name__)

# Opset 17: the newest that every target here reads (ONNX Runtime >= 1.14 CPU / CUDA, TensorRT 8.6 and
# 10, and ORT's static quantizer, which rejects opset >= 21). ultralytics would pick 18 for torch >= 2.4;
# nothing in a YOLO detect graph needs 18.
ONNX_OPSET = 17
MAX_INT8_DROP_POINTS = 1.0
EXCLUDE_POLICIES = ("decode", "head", "none")
# "entropy" is not offered: through quantize_static (ORT 1.32) it always runs with num_bins =
# num_quantized_bins = 128, whose KL search can only pick the full range, so it writes a model
# byte-identical to "minmax" (checked on yolo11n) at five times the calibration time.
CALIBRATION_METHODS = ("minmax", "percentile")

TENSORRT_MISSING = (
    "TensorRT is not installed on this machine (pip install tensorrt on a CUDA host); the ONNX model runs "
    "with the tensorrt provider of onnxruntime-gpu instead: list `tensorrt` first in the model's `providers` "
    "in the station config (installers/setup.sh --gpu installs onnxruntime-gpu; the engine is built and cached "
    "on the first load)."
)


class ExportError(Exception):
    """An export step could not run; the message says why and what to do."""


class TensorRTUnavailable(ExportError):
    """The ``tensorrt`` Python package is missing."""


# ================================================================================================
# ONNX
# ================================================================================================
def checkpoint_info(model: Any) -> tuple[tuple[str, ...], int | None]:
    """(class names, training image size or None) recorded in a loaded ultralytics model."""
    names = model.names
    names = tuple(str(names[k]) for k in sorted(names)) if isinstance(names, dict) else tuple(map(str, names))
    imgsz = None
    for src in (getattr(model, "overrides", None) or {}, getattr(model.model, "args", None) or {}):
        v = src.get("imgsz") if isinstance(src, dict) else None
        if isinstance(v, int):
            imgsz = v
            break
        if isinstance(v, (list, tuple)) and v:
            imgsz = int(max(v))
            break
    return names, imgsz


def checkpoint_imgsz(pt_path: Path | str) -> int | None:
    """The training image size recorded in an ultralytics checkpoint (None when it records none)."""
    from training import ultralytics_env  # noqa: F401
    from ultralytics import YOLO

    return checkpoint_info(YOLO(str(pt_path), task="detect"))[1]


def export_onnx(
    pt_path: Path | str,
    out_dir: Path | str,
    imgsz: int | None = None,
    *,
    dynamic: bool = False,
    simplify: bool = True,
    opset: int = ONNX_OPSET,
    name: str | None = None,
    version: str = "0",
    stem: str | None = None,
    progress: Progress = NO_PROGRESS,
) -> Path:
    """Export ``pt_path`` to ``out_dir/<stem>.onnx`` with its manifest; return the ONNX path.

    ``imgsz`` defaults to the checkpoint's training size (640 when it records none). ``name`` (manifest
    name) defaults to the run folder for ``runs/<run>/weights/best.pt``, else the file stem.
    """
    from training import ultralytics_env  # noqa: F401  (offline settings before ultralytics loads)
    from ultralytics import YOLO

    pt = Path(pt_path)
    if not pt.is_file():
        raise ExportError(f"checkpoint {pt} does not exist")
    if pt.suffix != ".pt":
        raise ExportError(f"{pt}: expected an ultralytics .pt checkpoint")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = YOLO(str(pt), task="detect")
    if model.task != "detect":
        raise ExportError(f"{pt} is a {model.task!r} model; the station runs detect models only")
    class_names, ck_imgsz = checkpoint_info(model)
    imgsz = int(imgsz or ck_imgsz or 640)
    if imgsz % 32:
        raise ExportError(f"imgsz {imgsz} must be a multiple of 32")
    stem = stem or pt.stem
    # The exporter writes next to `pt_path`; point that at out_dir so the source folder stays untouched.
    model.model.pt_path = str(out / f"{stem}.pt")
    with progress.stage("export onnx", total=1, unit="model") as stage, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's exporter warns about its own internals
        f = Path(model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=simplify, opset=opset,
                              nms=False, batch=1, device="cpu", verbose=False))
        stage.advance()
    if f.resolve().parent != out.resolve():
        target = out / f"{stem}.onnx"
        shutil.move(str(f), target)
        f = target
    if name is None:
        name = pt.parent.parent.name if pt.parent.name == "weights" and pt.parent.parent.name else pt.stem
    write_manifest(f, name, version, class_names, imgsz, exported_from=f"{pt} sha256:{sha256_file(pt)}",
                   extra={"opset": opset, "dynamic": bool(dynamic), "simplify": bool(simplify), "precision": "fp32"})
    return f


# ================================================================================================
# TensorRT
# ================================================================================================
def tensorrt_provider_hint() -> str:
    """Whether this onnxruntime build has the TensorRT provider, and the options the station would use."""
    import onnxruntime as ort

    from inspector.runtime.providers import TENSORRT, provider_options

    if TENSORRT in ort.get_available_providers():
        opts = provider_options(TENSORRT)
        return f"this onnxruntime has the TensorRT provider; the station would use it with {json.dumps(opts)}"
    return "this onnxruntime build has no TensorRT provider (CPU build)"


def export_tensorrt(
    onnx_path: Path | str,
    out_path: Path | str | None = None,
    *,
    fp16: bool = True,
    workspace_gb: float = 4.0,
    max_batch: int = 1,
) -> Path:
    """Build a serialized TensorRT engine from ``onnx_path`` (needs the ``tensorrt`` package and a GPU).

    Writes ``<stem>.engine`` and ``<stem>.engine.json`` (sha256 of engine and source, TensorRT version,
    class names, imgsz). Raises ``TensorRTUnavailable`` with the alternative when TensorRT is absent.
    """
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError:  # also OSError-free: the wheel loads its CUDA libraries lazily
        raise TensorRTUnavailable(f"{TENSORRT_MISSING} ({tensorrt_provider_hint()})") from None
    src = Path(onnx_path)
    manifest = load_manifest(src)
    out = Path(out_path) if out_path else src.with_suffix(".engine")
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # TensorRT 8; implicit in 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(src.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse {src}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if fp16 and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    inp = network.get_input(0)
    if any(d < 0 for d in inp.shape):  # dynamic: one optimisation profile around the manifest's size
        h, w = manifest.imgsz
        profile = builder.create_optimization_profile()
        profile.set_shape(inp.name, (1, 3, h, w), (1, 3, h, w), (max_batch, 3, h, w))
        config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(f"TensorRT failed to build an engine from {src} (see the TensorRT log above)")
    out.write_bytes(bytes(engine))
    meta = {"engine": out.name, "sha256": sha256_file(out), "source_onnx": src.name, "source_sha256": manifest.sha256,
            "tensorrt": trt.__version__, "fp16": bool(fp16 and builder.platform_has_fast_fp16),
            "class_names": list(manifest.class_names), "imgsz": list(manifest.imgsz),
            "note": "an engine runs only on the GPU model and TensorRT version it was built with"}
    out.with_name(out.name + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


# ================================================================================================
# INT8
# ================================================================================================
def _cpu_has_vnni() -> bool | None:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    return bool(re.search(r"\b(avx512_vnni|avx_vnni|amx_int8)\b", flags))


def head_nodes(model: Any, policy: str = "decode") -> list[str]:
    """Names of the nodes to keep in float under ``policy`` (see the module docstring).

    The detect head is the module that produces the graph output (``/model.<N>/...`` in ultralytics
    exports); its convolutions are the ``cv2`` (box) and ``cv3`` (class) branches, everything else in it
    is the decode block.
    """
    if policy not in EXCLUDE_POLICIES:
        raise ValueError(f"exclude policy must be one of {EXCLUDE_POLICIES}, got {policy!r}")
    if policy == "none":
        return []
    out_name = model.graph.output[0].name
    producer = next((n for n in model.graph.node if out_name in n.output), None)
    m = re.match(r"^(/model\.\d+/)", producer.name if producer is not None else "")
    if m is None:
        raise ExportError("cannot find the detect head: the output is not produced by a '/model.<N>/' node "
                          "(not an ultralytics export?); use exclude='none' or give the nodes yourself")
    prefix = m.group(1)
    branch = re.compile(re.escape(prefix) + r"cv[23]\.\d+/")
    return [n.name for n in model.graph.node
            if n.name.startswith(prefix) and (policy == "head" or not branch.match(n.name))]


class _LetterboxReader:
    """``CalibrationDataReader``: dataset images letterboxed by the station's ``Preprocessor``."""

    def __init__(self, images: Sequence[Path], input_name: str, imgsz: tuple[int, int],
                 stage: Stage | None = None) -> None:
        from inspector.runtime.preprocess import Preprocessor

        self.images, self.input_name = list(images), input_name
        self.pre = Preprocessor(imgsz)
        self.stage = stage  # counts the images handed to the calibrator
        self._it: Iterator[Path] = iter(self.images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        import cv2

        for path in self._it:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                log.warning("calibration: cannot read %s; skipped", path)
                continue
            x, _ = self.pre([img])
            if self.stage is not None:
                self.stage.advance()
            return {self.input_name: x.copy()}  # the preprocessor reuses its buffer
        return None

    def rewind(self) -> None:
        self._it = iter(self.images)

    def __len__(self) -> int:
        return len(self.images)


def _calibration_images(dataset: Path | str, n: int, split: str) -> list[Path]:
    try:
        images = yolo_split(dataset, split).images
    except DatasetError:
        if split == "val":
            raise
        images = yolo_split(dataset, "val").images  # a dataset without a train split: calibrate on val
    k = min(int(n), len(images))
    idx = np.unique(np.linspace(0, len(images) - 1, k).round().astype(int))  # spread over the split
    return [images[i] for i in idx]


def quantize_int8(
    onnx_path: Path | str,
    dataset: Path | str,
    out_path: Path | str | None = None,
    *,
    calibration_images: int = 100,
    method: str = "minmax",
    split: str = "train",
    exclude: str = "decode",
    per_channel: bool = True,
    reduce_range: bool | None = None,
    progress: Progress = NO_PROGRESS,
) -> Path:
    """Statically quantize an FP32 ONNX export to INT8 (QDQ); return the INT8 path (with its manifest).

    Calibration uses ``calibration_images`` images spread evenly over the ``split`` (train by default,
    so the gate's val images were not seen), letterboxed exactly as the station does. Activations are
    uint8 (asymmetric), weights int8 per channel; ``reduce_range`` (7-bit weights) defaults to on only
    for CPUs without VNNI, as ONNX Runtime advises. ``method``: "minmax" (the observed range) or
    "percentile" (99.999th percentile of a 2048-bin histogram: clips outliers; about 5x slower to
    calibrate). Run ``int8_gate`` before using the result.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    if calibration_images < 1:
        raise ValueError("calibration_images must be >= 1")
    src = Path(onnx_path)
    manifest = load_manifest(src)
    out = Path(out_path) if out_path else src.with_name(f"{src.stem}-int8.onnx")
    out.parent.mkdir(parents=True, exist_ok=True)
    images = _calibration_images(dataset, calibration_images, split)
    if reduce_range is None:
        reduce_range = _cpu_has_vnni() is False
    fp32 = onnx.load(str(src))
    in_name = fp32.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="inspector-int8-") as tmp:
        prep = Path(tmp) / "prep.onnx"
        try:  # shape inference + graph optimisation: what ORT recommends before quantizing
            quant_pre_process(str(src), str(prep), skip_symbolic_shape=False)
            model_in = prep
        except Exception as e:  # noqa: BLE001  (a failed pre-pass only costs some speed)
            log.warning("quantization pre-processing failed (%s: %s); quantizing the model as exported",
                        type(e).__name__, e)
            model_in = src
        excluded = head_nodes(onnx.load(str(model_in)), exclude)
        t0 = time.perf_counter()
        with progress.stage("int8 calibration", total=len(images), unit="img") as stage:
            reader = _LetterboxReader(images, in_name, manifest.imgsz, stage)
            quantize_static(
                str(model_in), str(out), reader, quant_format=QuantFormat.QDQ, per_channel=per_channel,
                reduce_range=bool(reduce_range), activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded,
                calibrate_method={"minmax": CalibrationMethod.MinMax,
                                  "percentile": CalibrationMethod.Percentile}[method],
                calibration_providers=["CPUExecutionProvider"],
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        seconds = time.perf_counter() - t0
    # The station reads class names and imgsz from the model's own metadata: carry them over.
    q = onnx.load(str(out))
    have = {p.key for p in q.metadata_props}
    for p in fp32.metadata_props:
        if p.key not in have:
            q.metadata_props.add(key=p.key, value=p.value)
    onnx.save(q, str(out))
    write_manifest(out, manifest.name, manifest.version, manifest.class_names, manifest.imgsz,
                   exported_from=f"{src.name} sha256:{manifest.sha256}",
                   extra={**manifest.extra, "precision": "int8", "quantization": {
                       "format": "QDQ", "activations": "uint8", "weights": "int8",
                       "per_channel": per_channel, "reduce_range": bool(reduce_range), "method": method,
                       "calibration_images": len(images), "calibration_split": split, "exclude": exclude,
                       "excluded_nodes": len(excluded), "seconds": round(seconds, 1)}})
    return out


@dataclass
class Int8GateResult:
    accepted: bool
    reason: str
    fp32_map50: float
    int8_map50: float
    drop_points: float  # mAP50 lost, in points (percent of 1.0)
    max_drop_points: float
    fp32_ms: float  # median end-to-end ms per image (pre + inference + post), same images, interleaved
    int8_ms: float
    speedup: float  # fp32_ms / int8_ms
    fp32_infer_ms: float  # median session.run time only
    int8_infer_ms: float
    infer_speedup: float
    n_images: int
    fp32_map50_95: float | None = None
    int8_map50_95: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def gate_decision(fp32_map50: float, int8_map50: float, max_drop_points: float = MAX_INT8_DROP_POINTS
                  ) -> tuple[bool, float, str]:
    """(accepted, drop in points, reason): accept when INT8 loses at most ``max_drop_points`` of mAP50."""
    if not (np.isfinite(fp32_map50) and np.isfinite(int8_map50)):
        return False, float("nan"), "mAP50 is undefined (no truths in the evaluation split?)"
    drop = (float(fp32_map50) - float(int8_map50)) * 100.0
    if drop <= max_drop_points + 1e-9:
        change = f"{drop:.2f} points lost" if drop > 0 else f"{-drop:.2f} points gained"
        return True, drop, (f"accepted: mAP50 {int8_map50 * 100:.2f} vs FP32 {fp32_map50 * 100:.2f} "
                            f"({change}; at most {max_drop_points:g} may be lost)")
    return False, drop, (f"rejected: INT8 loses {drop:.2f} mAP50 points (FP32 {fp32_map50 * 100:.2f}, "
                         f"INT8 {int8_map50 * 100:.2f}); at most {max_drop_points:g} allowed")


def int8_gate(
    fp32_onnx: Path | str,
    int8_onnx: Path | str,
    dataset: Path | str,
    split: str = "val",
    *,
    max_drop_points: float = MAX_INT8_DROP_POINTS,
    max_images: int | None = None,
    conf: float = 0.001,
    nms_iou: float = 0.7,
    threads: int | None = None,
    progress: Progress = NO_PROGRESS,
) -> Int8GateResult:
    """Evaluate both models through the station runtime (``OnnxDetector``) on the same images, one
    image at a time and interleaved (FP32, INT8, FP32, ...) so load changes hit both alike."""
    import cv2

    from inspector.runtime.onnx_detector import OnnxDetector

    images, truths, names = read_yolo_split(dataset, split)
    if max_images:
        images, truths = images[:max_images], truths[:max_images]
    dets = {k: OnnxDetector.from_manifest(load_manifest(p).path, conf=conf, iou=nms_iou, threads=threads)
            for k, p in (("fp32", fp32_onnx), ("int8", int8_onnx))}
    for k, d in dets.items():
        if tuple(d.class_names) != tuple(names):
            raise ExportError(f"{k} model classes {list(d.class_names)} differ from the dataset's {list(names)}")
    preds: dict[str, list] = {"fp32": [], "int8": []}
    total: dict[str, list[float]] = {"fp32": [], "int8": []}
    infer: dict[str, list[float]] = {"fp32": [], "int8": []}
    with progress.stage("int8 gate", total=len(images), unit="img") as stage:
        for i, path in enumerate(images):
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is None:
                raise ExportError(f"cannot read image {path}")
            for k in (("fp32", "int8") if i % 2 == 0 else ("int8", "fp32")):  # alternate who goes first
                t = time.perf_counter()
                run = dets[k].detect_timed([img])
                total[k].append((time.perf_counter() - t) * 1e3)
                preds[k].append(run.detections[0])
                infer[k].append(run.timings_ms.get("inference_ms", float("nan")))
            stage.advance()
    rep = {k: evaluate_detections(preds[k], truths, names) for k in preds}
    accepted, drop, reason = gate_decision(rep["fp32"].map50, rep["int8"].map50, max_drop_points)
    med = {k: statistics.median(v) for k, v in total.items()}
    med_inf = {k: statistics.median(v) for k, v in infer.items()}
    return Int8GateResult(
        accepted=accepted, reason=reason, fp32_map50=rep["fp32"].map50, int8_map50=rep["int8"].map50,
        drop_points=drop, max_drop_points=max_drop_points, fp32_ms=med["fp32"], int8_ms=med["int8"],
        speedup=med["fp32"] / med["int8"], fp32_infer_ms=med_inf["fp32"], int8_infer_ms=med_inf["int8"],
        infer_speedup=med_inf["fp32"] / med_inf["int8"], n_images=len(images),
        fp32_map50_95=rep["fp32"].map50_95, int8_map50_95=rep["int8"].map50_95,
    )


__all__ = ["export_onnx", "export_tensorrt", "quantize_int8", "int8_gate", "gate_decision", "head_nodes",
           "Int8GateResult", "ExportError", "TensorRTUnavailable", "TENSORRT_MISSING", "ONNX_OPSET",
           "checkpoint_imgsz", "checkpoint_info", "tensorrt_provider_hint"]
