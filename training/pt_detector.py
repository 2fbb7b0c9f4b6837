"""The ``Detector`` protocol over ``ultralytics.YOLO(...).predict``: for comparisons only.

It loads ``.pt`` checkpoints (pickles) and therefore lives in ``training/``; no station config can
select it. Use it to check an exported ONNX model against its source, or to benchmark the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from inspector.core.detections import Detections
from inspector.core.ports import TimedDetections
from training import ultralytics_env  # noqa: F401  (offline settings before ultralytics loads)


class UltralyticsDetector:
    """``Detector`` via ultralytics' own predictor (its letterbox, NMS and scaling).

    Note: for ``.pt`` and dynamic ONNX models ultralytics letterboxes a batch of equal-sized images
    to the minimum stride-32 rectangle rather than the full square, so its input (and its boxes)
    can differ slightly from the station runtime on those models; static ONNX models get the same
    square letterbox as ``OnnxDetector``.
    """

    def __init__(
        self,
        pt_or_onnx_path: Path | str,
        class_names: Sequence[str] | None = None,
        imgsz: int = 640,
        conf: float = 0.25,
        iou: float = 0.45,
        device: str = "cpu",
        max_det: int = 300,
        half: bool = False,
    ) -> None:
        from ultralytics import YOLO  # heavy: imported when a detector is built, not at module import

        self.path = Path(pt_or_onnx_path)
        self.model = YOLO(str(self.path), task="detect")
        self.imgsz, self.conf, self.iou, self.device = imgsz, conf, iou, device
        self.max_det, self.half = max_det, half
        self.model_index = 0
        names = self._model_names()
        if class_names is not None:
            if names is not None and tuple(class_names) != names:
                raise ValueError(f"model {self.path} has class names {list(names)}, not {list(class_names)}")
            self.class_names: tuple[str, ...] = tuple(class_names)
        elif names is not None:
            self.class_names = names
        else:
            raise ValueError(f"model {self.path} carries no class names; pass class_names")

    def _model_names(self) -> tuple[str, ...] | None:
        names = getattr(self.model, "names", None)  # ONNX: read from metadata on first predict; may be None now
        if isinstance(names, dict) and names:
            return tuple(str(names[k]) for k in sorted(names))
        if isinstance(names, (list, tuple)) and names:
            return tuple(str(n) for n in names)
        return None

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return self.detect_timed(images).detections

    def detect_timed(self, images: Sequence[np.ndarray]) -> TimedDetections:
        """``detect`` with ultralytics' own per-stage times, summed over the batch."""
        if not images:
            return TimedDetections([], {})
        # ultralytics expects 3-channel BGR arrays; grey frames are replicated like OnnxDetector does.
        bgr = [cv2.cvtColor(im, cv2.COLOR_GRAY2BGR) if im.ndim == 2 or im.shape[2] == 1 else
               (cv2.cvtColor(im, cv2.COLOR_BGRA2BGR) if im.shape[2] == 4 else im) for im in images]
        # `half` only when asked: ultralytics warns on every call that passes it (deprecated there).
        extra = {"half": True} if self.half else {}
        results = self.model.predict(bgr, imgsz=self.imgsz, conf=self.conf, iou=self.iou, device=self.device,
                                     max_det=self.max_det, verbose=False, **extra)
        out = []
        for r in results:
            b = r.boxes
            out.append(Detections(b.xyxy.cpu().numpy(), b.conf.cpu().numpy(), b.cls.cpu().numpy().astype(np.int32),
                                  self.model_index))
        speed = [r.speed for r in results]
        timings = {f"{k}_ms": float(sum(s.get(k) or 0.0 for s in speed))
                   for k in ("preprocess", "inference", "postprocess")}
        timings["images"] = float(len(images))
        return TimedDetections(out, timings)
