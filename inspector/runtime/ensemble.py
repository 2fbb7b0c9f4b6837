"""Runs the ensemble's detectors on a batch and fuses their boxes per image."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.core.detections import Detections
from inspector.core.fusion import fuse
from inspector.core.ports import Detector

# The fusion parameters each method accepts (the config carries all of them; fuse() refuses extras
# so that a setting meant for another method is never silently ignored there).
_FUSION_PARAMS = {
    "wbf": ("iou_thr", "skip_box_thr", "conf_type"),
    "nms": ("iou_thr", "skip_box_thr"),
    "vote": ("iou_thr", "skip_box_thr", "conf_type", "k"),
}


@dataclass(frozen=True)
class Member:
    """One ensemble member: its identity (for traceability), its detector and its fusion weight."""

    name: str
    version: str
    sha256: str
    detector: Detector
    weight: float = 1.0


def model_set_version(members: Sequence[Member]) -> str:
    """A short id naming the exact ensemble: every member's name, version and sha256, in order."""
    text = "|".join(f"{m.name}@{m.version}:{m.sha256}:{m.weight:g}" for m in members)
    return "ms-" + hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class EnsembleResult:
    """One image's boxes: fused, and each member's own (in member order)."""

    fused: Detections
    per_model: tuple[Detections, ...]


@dataclass(frozen=True, slots=True)
class EnsembleBatch:
    """What ``Ensemble.detect`` returns: one result per image, in order, and the batch's timings
    in milliseconds (``detect_ms``: every member's detector; ``fusion_ms``)."""

    results: tuple[EnsembleResult, ...]
    timings_ms: Mapping[str, float]


@dataclass
class Ensemble:
    """``detect`` runs every member on the batch, then fuses each image's boxes; it returns the
    boxes and the timings together (an ``EnsembleBatch``) and keeps no state between batches.

    A single member skips fusion (its NMS already ran), so an ensemble of one costs nothing extra.
    """

    members: Sequence[Member]
    method: str = "wbf"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one model")
        if self.method not in _FUSION_PARAMS:
            raise ValueError(f"fusion method {self.method!r} is not one of {', '.join(_FUSION_PARAMS)}")
        self.params = {k: v for k, v in self.params.items() if k in _FUSION_PARAMS[self.method]}
        names = [tuple(m.detector.class_names) for m in self.members]
        if any(n != names[0] for n in names):
            raise ValueError("ensemble members must share one label space (class_names differ)")
        self.weights = [m.weight for m in self.members]
        self.version = model_set_version(self.members)

    @property
    def class_names(self) -> Sequence[str]:
        return self.members[0].detector.class_names

    def detect(self, images: Sequence[np.ndarray]) -> EnsembleBatch:
        t0 = time.perf_counter()
        per_member = [m.detector.detect(images) for m in self.members]
        t1 = time.perf_counter()
        out = []
        for i in range(len(images)):
            per_model = tuple(per_member[j][i].with_model_index(j) for j in range(len(self.members)))
            if len(per_model) == 1:
                fused = per_model[0]
            else:
                fused = fuse(per_model, self.method, weights=self.weights, **self.params)
            out.append(EnsembleResult(fused, per_model))
        return EnsembleBatch(tuple(out), {"detect_ms": (t1 - t0) * 1e3,
                                          "fusion_ms": (time.perf_counter() - t1) * 1e3})
