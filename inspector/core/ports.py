"""The small protocols adapters implement; the core and the station depend only on these."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
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


@runtime_checkable
class DecisionSink(Protocol):
    """Receives each decision with its frame (store, MES outbox, GUI bridge)."""

    def accept(self, frame: Frame, decision: Decision) -> None: ...
