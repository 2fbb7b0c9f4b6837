"""``Detector`` over an ONNX Runtime session: verified model, chosen providers, batched letterbox inference."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from inspector.core.detections import Detections
from inspector.core.ports import TimedDetections
from inspector.runtime.model_artifact import (
    ModelMetadata,
    ModelMetadataError,
    check_class_names,
    load_manifest,
    parse_metadata,
    read_verified,
)
from inspector.runtime.postprocess import MAX_CANDIDATES, check_output_layout, postprocess
from inspector.runtime.preprocess import Preprocessor
from inspector.runtime.providers import (
    CPU,
    TENSORRT,
    ProviderUnavailableError,
    resolve_providers,
    short_name,
)

log = logging.getLogger(__name__)

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def _imgsz_pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


class OnnxDetector:
    """One YOLOv8/11 detect model in ONNX Runtime, implementing ``inspector.core.ports.Detector``.

    The sha256 is checked before the session exists, so a tampered file is never parsed by ORT.
    ``detect`` is serialised by a lock (the pre-processing buffers are reused across calls).

    ``rect`` (models with a dynamic input size only): letterbox equal-sized images to the smallest
    stride-multiple rectangle instead of the full square, like ultralytics does for such models;
    a 640x480 frame then runs at 640x480 instead of 640x640.

    ``threads``: ORT intra-op threads (None: ORT's default, one per physical core). On a machine
    whose cores are shared with other busy work, fewer threads and ``allow_spinning=False`` keep
    latency steadier (a parallel region waits for its slowest thread).
    """

    def __init__(
        self,
        onnx_path: Path | str,
        class_names: Sequence[str] | None = None,
        imgsz: int | Sequence[int] | None = None,
        *,
        sha256: str | None = None,
        providers: Sequence[str] = ("cpu",),
        conf: float = 0.25,
        iou: float = 0.45,
        max_det: int = 300,
        max_candidates: int = MAX_CANDIDATES,
        agnostic_nms: bool = False,
        threads: int | None = None,
        allow_spinning: bool = True,
        warmup: bool = True,
        strict_providers: bool = False,
        max_batch: int = 16,
        rect: bool = False,
        name: str | None = None,
        version: str | None = None,
        trt_cache_dir: Path | str | None = None,
        class_names_source: str = "station config",
    ) -> None:
        if not 0.0 <= conf <= 1.0 or not 0.0 <= iou <= 1.0:
            raise ValueError(f"conf and iou must be within [0, 1], got conf={conf}, iou={iou}")
        self.path = Path(onnx_path)
        self.name = name or self.path.stem
        self.version = version
        self.conf, self.iou, self.max_det = float(conf), float(iou), int(max_det)
        self.max_candidates, self.agnostic_nms = int(max_candidates), bool(agnostic_nms)
        self.model_index = 0  # set by the ensemble
        self.notes: list[str] = []
        self._lock = threading.Lock()

        # 1. Integrity first: ORT must never parse a file that is not the one the manifest promised.
        #    The session is built from the verified bytes, so the file cannot change in between.
        model_bytes, self.sha256 = read_verified(self.path, sha256)  # hash kept for traceability
        if sha256 is None:
            self.notes.append(f"sha256 not verified (no expected hash given); file hash is {self.sha256}")

        # 2. Providers, then the session (a subclass opens another runtime here: see ``_open``).
        self.provider_notes: list[str] = []
        self.providers_in_use: list[str] = []
        self._open(model_bytes, providers=providers, strict=strict_providers, threads=threads,
                   allow_spinning=allow_spinning, max_batch=max_batch, trt_cache_dir=trt_cache_dir)
        del model_bytes  # the session holds its own copy

        # 3. What the model says about itself must agree with what we were told.
        self.metadata: ModelMetadata = parse_metadata(self._model_props())
        if self.metadata.end2end:
            raise ModelMetadataError(f"model {self.path} was exported with NMS inside (end2end); "
                                     "export it with nms=False for this runtime")
        if self.metadata.task not in (None, "detect"):
            raise ModelMetadataError(f"model {self.path} is a {self.metadata.task!r} model, not 'detect'")
        if class_names is not None:
            check_class_names(class_names, self.metadata, class_names_source, self.path)
            self.class_names: tuple[str, ...] = tuple(class_names)
        elif self.metadata.class_names is not None:
            self.class_names = self.metadata.class_names
        else:
            raise ModelMetadataError(f"model {self.path} has no class names in its metadata; pass class_names")
        self.num_classes = len(self.class_names)
        self._setup_io(imgsz, max_batch)
        self.rect = bool(rect) and self.dynamic_size
        if rect and not self.dynamic_size:
            self.notes.append("rect ignored: the model has a static input size")
        self._pre = Preprocessor(self.imgsz, stride=(self.metadata.stride or 32) if self.rect else None)
        self.warmup_ms: float | None = None
        if warmup:
            self.warmup()

    # --- the runtime: the four places a subclass (OpenVinoDetector) differs -------------------
    def _open(self, model_bytes: bytes, *, providers: Sequence[str], strict: bool, threads: int | None,
              allow_spinning: bool, max_batch: int, trt_cache_dir: Path | str | None) -> None:
        """Build the inference session from the verified bytes; set ``provider_notes`` / ``providers_in_use``."""
        trt_profile = self._trt_profile(model_bytes, max_batch) if self._wants_tensorrt(providers) else None
        resolved = resolve_providers(providers, strict, trt_cache_dir=trt_cache_dir, trt_profile=trt_profile)
        self.provider_notes.extend(resolved.notes)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1  # one graph branch at a time: intra-op threads do the work
        if threads is not None:
            so.intra_op_num_threads = int(threads)
        if not allow_spinning:  # idle ORT threads sleep instead of spinning: frees cores that other stages share
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = self._create_session(model_bytes, so, resolved.providers, strict)
        self.providers_in_use = [short_name(p) for p in self._session.get_providers()]

    def _model_props(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` (ultralytics writes names, imgsz, stride, task there)."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

    def _io_signature(self) -> tuple[list[tuple[str, list[Any], str]], list[tuple[str, list[Any]]]]:
        """Inputs as (name, shape, ORT type string) and outputs as (name, shape); a dynamic dimension is
        not an int (ORT gives its symbolic name or None)."""
        return ([(i.name, list(i.shape), i.type) for i in self._session.get_inputs()],
                [(o.name, list(o.shape)) for o in self._session.get_outputs()])

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """The raw output for one (N, 3, H, W) batch; consumed before the next call."""
        return self._session.run([self._out_name], {self._in_name: x})[0]

    # --- construction helpers -----------------------------------------------------------------
    @classmethod
    def from_manifest(
        cls, manifest_path: Path | str, *, class_names: Sequence[str] | None = None, **kwargs: Any
    ) -> OnnxDetector:
        """Load the model a manifest describes, verified by the manifest's sha256.

        ``class_names`` (from a station config), when given, must equal the manifest's list.
        """
        m = load_manifest(manifest_path)
        if class_names is not None and tuple(class_names) != m.class_names:
            raise ModelMetadataError(
                f"station config class names {list(class_names)} differ from manifest {m.path} "
                f"class names {list(m.class_names)}; refusing to run {m.name} v{m.version} with the wrong labels"
            )
        kwargs.setdefault("imgsz", m.imgsz)
        return cls(m.onnx_path, m.class_names, sha256=m.sha256, name=m.name, version=m.version,
                   class_names_source=f"manifest {m.path}", **kwargs)

    @staticmethod
    def _wants_tensorrt(providers: Sequence[str]) -> bool:
        names = [providers] if isinstance(providers, str) else list(providers)
        return any(str(p).strip().lower() == "tensorrt" for p in names) and TENSORRT in ort.get_available_providers()

    def _trt_profile(self, model_bytes: bytes, max_batch: int) -> dict[str, str] | None:
        """TensorRT needs min/opt/max shapes for dynamic inputs; read them from the graph on the CPU."""
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        inp = ort.InferenceSession(model_bytes, so, providers=[CPU]).get_inputs()[0]
        if all(isinstance(d, int) for d in inp.shape):
            return None
        h, w = (d if isinstance(d, int) else 640 for d in inp.shape[2:])

        def shape(b: int) -> str:
            return f"{inp.name}:{b}x3x{h}x{w}"

        return {"trt_profile_min_shapes": shape(1), "trt_profile_opt_shapes": shape(1),
                "trt_profile_max_shapes": shape(max_batch)}

    def _create_session(
        self, model: bytes, so: ort.SessionOptions, providers: list, strict: bool
    ) -> ort.InferenceSession:
        names = [p for p, _ in providers]
        opts = [o for _, o in providers]
        try:
            sess = ort.InferenceSession(model, so, providers=names, provider_options=opts)
        except Exception as e:  # a GPU provider can fail at session creation (engine build, driver)
            if names == [CPU] or strict:
                raise
            self.provider_notes.append(f"{', '.join(short_name(n) for n in names[:-1])} failed to start "
                                       f"({type(e).__name__}: {e}) — falling back to cpu")
            sess = ort.InferenceSession(model, so, providers=[CPU])
        got = sess.get_providers()
        for n in names:
            if n not in got:  # listed as available, but its libraries did not load
                msg = (f"{short_name(n)} is in this onnxruntime build but could not be initialised (usually "
                       f"missing CUDA/cuDNN/TensorRT libraries; see the onnxruntime log) — running on "
                       f"{short_name(got[0])}")
                if strict:
                    raise ProviderUnavailableError(msg + " (strict providers: not falling back)")
                self.provider_notes.append(msg)
        for note in self.provider_notes:
            log.info("%s: %s", self.name, note)
        return sess

    def _setup_io(self, imgsz: int | Sequence[int] | None, max_batch: int) -> None:
        inputs, outputs = self._io_signature()
        if len(inputs) != 1:
            raise ModelMetadataError(f"model {self.path} has {len(inputs)} inputs; a detect model has one image input")
        in_name, shape, in_type = inputs[0]
        if len(shape) != 4 or (isinstance(shape[1], int) and shape[1] != 3):
            raise ModelMetadataError(f"model {self.path} input {in_name} has shape {shape}; expected (batch, 3, H, W)")
        if in_type not in _DTYPES:
            raise ModelMetadataError(f"model {self.path} input type {in_type} is not supported (float or float16)")
        static_hw = tuple(shape[2:]) if all(isinstance(d, int) for d in shape[2:]) else None
        self.dynamic_size = static_hw is None
        want = _imgsz_pair(imgsz) if imgsz is not None else None
        if static_hw is not None:
            if want is not None and want != static_hw:
                raise ModelMetadataError(f"model {self.path} takes input {static_hw[0]}x{static_hw[1]} "
                                         f"but imgsz {want[0]}x{want[1]} was configured")
            self.imgsz: tuple[int, int] = static_hw  # type: ignore[assignment]
        elif want is not None:
            self.imgsz = want
        elif self.metadata.imgsz is not None:
            self.imgsz = self.metadata.imgsz
        else:
            raise ModelMetadataError(f"model {self.path} has a dynamic input size and no imgsz; pass imgsz")
        if self.metadata.imgsz is not None and self.metadata.imgsz != self.imgsz:
            self.notes.append(f"running at {self.imgsz} although the model was exported at {self.metadata.imgsz}")
        # Static batch N: chunks of exactly N (the last one padded); dynamic: chunks of up to max_batch.
        self.static_batch: int | None = shape[0] if isinstance(shape[0], int) else None
        self.batch_size = self.static_batch or max(1, int(max_batch))
        self._in_name, self._in_dtype = in_name, _DTYPES[in_type]
        self._out_name = outputs[0][0]
        out_shape = list(outputs[0][1])
        c = 4 + self.num_classes
        # Fail at load, not on the first frame, whenever the declared shape already decides it.
        if len(out_shape) != 3 or all(isinstance(d, int) for d in out_shape[1:]) or c in out_shape[1:]:
            check_output_layout(out_shape, self.num_classes)
        self.input_shape = shape
        self.output_shape = out_shape

    # --- running ------------------------------------------------------------------------------
    def warmup(self, batch: int = 1) -> None:
        """One full pass (pre, infer, post) so first-frame latency does not include ORT's lazy setup."""
        t = time.perf_counter()
        grey = np.full((*self.imgsz, 3), 114, np.uint8)
        self.detect([grey] * max(1, batch))
        self.warmup_ms = (time.perf_counter() - t) * 1000.0

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self.detect_timed(images).detections

    def detect_timed(self, images: Sequence[np.ndarray]) -> TimedDetections:
        """``detect`` with the batch's pre-process / inference / post-process times beside it."""
        if not images:
            return TimedDetections([], {})
        pc = time.perf_counter
        t_pre = t_inf = t_post = 0.0
        out: list[Detections] = []
        with self._lock:
            step = self.batch_size
            for start in range(0, len(images), step):
                chunk = images[start : start + step]
                t0 = pc()
                n_run = self.static_batch or len(chunk)
                x = self._pre.batch_array(n_run, self._pre.input_shape(chunk))
                lbs = [self._pre.fill(x[i], img) for i, img in enumerate(chunk)]
                if n_run > len(chunk):
                    x[len(chunk):] = 0.0  # static batch padding; its outputs are discarded
                if self._in_dtype is not np.float32:
                    x = x.astype(self._in_dtype)
                t1 = pc()
                raw = self._infer(x)
                t2 = pc()
                for xyxy, score, cls in postprocess(raw, lbs, self.num_classes, conf=self.conf, iou=self.iou,
                                                    max_det=self.max_det, max_candidates=self.max_candidates,
                                                    agnostic=self.agnostic_nms,
                                                    model=self.name if self.version is None
                                                    else f"{self.name}@{self.version}"):
                    out.append(Detections(xyxy, score, cls, self.model_index))
                t3 = pc()
                t_pre += t1 - t0
                t_inf += t2 - t1
                t_post += t3 - t2
        return TimedDetections(out, {"preprocess_ms": t_pre * 1e3, "inference_ms": t_inf * 1e3,
                                     "postprocess_ms": t_post * 1e3, "images": float(len(images))})

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, version={self.version!r}, imgsz={self.imgsz}, "
                f"classes={len(self.class_names)}, providers={self.providers_in_use}, sha256={self.sha256[:12]})")
