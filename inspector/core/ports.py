"""The small protocols adapters implement; the core and the station depend only on these."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from inspector.core.decision import Decision
from inspector.core.detections import Detections
from inspector.core.frame import Frame


@runtime_checkable
class FrameSource(Protocol):
    """Yields frames until exhausted or closed. ``name`` identifies it in logs and records."""

    name: str

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...


@runtime_checkable
class Detector(Protocol):
    """One ensemble member: images in, one ``Detections`` per image out, in original pixels."""

    class_names: Sequence[str]

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


@dataclass(frozen=True)
class TimedDetections:
    """What a detector's timed run returns: one ``Detections`` per image and where the time went
    (``preprocess_ms``, ``inference_ms``, ``postprocess_ms``, ... for the whole batch)."""

    detections: list[Detections]
    timings_ms: Mapping[str, float] = field(default_factory=dict)


@runtime_checkable
class TimedDetector(Detector, Protocol):
    """A detector that also reports its stage timings, as a return value (benchmarks, tiling)."""

    def detect_timed(self, images: Sequence[np.ndarray]) -> TimedDetections: ...


@runtime_checkable
class DecisionSink(Protocol):
    """Receives each decision with its frame: the simplest consumer of decisions.

    The station's own sinks (store, GUI bridge) take the whole judged frame instead
    (``inspector.station.sinks.ResultSink``); a ``DecisionSink`` joins them through
    ``inspector.station.sinks.DecisionSinkAdapter``."""

    def accept(self, frame: Frame, decision: Decision) -> None: ...
