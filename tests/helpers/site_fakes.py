"""A construction station without a trained model: the synthetic cameras' exact truth as detections.

``LedgerCamera`` is a ``SyntheticSiteCamera`` that notes each frame's true boxes in a shared
``TruthLedger`` as it yields the frame; ``TruthDetector`` answers an image with the boxes noted
for it. Images are matched by their pixel buffer's address: every view of a frame's image (the
pipeline re-wraps frames) shares it, and an entry is removed once read, so an address reused by
a later frame cannot be mistaken for an earlier one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from inspector.capture.synthetic_site import CLASS_NAMES, SyntheticSiteCamera
from inspector.config.schema import StationConfig, SyntheticSiteSource, source_id
from inspector.core.detections import Detections
from inspector.runtime.ensemble import Ensemble, Member


def _address(image: np.ndarray) -> int:
    return int(image.__array_interface__["data"][0])


class TruthLedger:
    """Frame pixels -> the detections a perfect detector would return for them (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boxes: dict[int, Detections] = {}

    def note(self, image: np.ndarray, boxes: Detections) -> None:
        with self._lock:
            self._boxes[_address(image)] = boxes

    def take(self, image: np.ndarray) -> Detections | None:
        with self._lock:
            return self._boxes.pop(_address(image), None)


class LedgerCamera(SyntheticSiteCamera):
    """A synthetic site camera that notes each yielded frame's truth in ``ledger``."""

    ledger: TruthLedger

    @classmethod
    def with_ledger(cls, src: SyntheticSiteSource, ledger: TruthLedger, *, name: str, station_id: str,
                    min_visibility: float = 0.3) -> LedgerCamera:
        cam = cls.from_config(src, source_id=name, station_id=station_id)
        cam.ledger = ledger
        cam.min_visibility = min_visibility
        return cam

    def frames(self):
        for frame, truth in self.frames_with_truth():
            self.ledger.note(frame.image, truth.detections(min_visibility=self.min_visibility))
            yield frame


class TruthDetector:
    """A detector that returns the truth noted for each image (scores jittered below 1 so score
    thresholds are exercised); ``delay`` seconds per batch makes it slow enough to drop frames."""

    class_names = CLASS_NAMES

    def __init__(self, ledger: TruthLedger, delay: float = 0.0, score: float = 0.9) -> None:
        self.ledger, self.delay, self.score = ledger, delay, score
        self.unknown = 0  # images nobody noted (should stay 0)

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if self.delay:
            time.sleep(self.delay)
        out = []
        for img in images:
            d = self.ledger.take(img)
            if d is None:
                self.unknown += 1
                d = Detections.empty()
            out.append(Detections(d.xyxy, np.full(len(d), self.score, np.float32), d.class_id))
        return out


def truth_station_parts(cfg: StationConfig, delay: float = 0.0) -> tuple[list[LedgerCamera], Ensemble, TruthDetector]:
    """The sources and ensemble for ``Station.from_config(..., sources=, ensemble=)``: every
    ``synthetic_site`` source of ``cfg`` as a ``LedgerCamera``, judged by a ``TruthDetector``."""
    ledger = TruthLedger()
    cams = [LedgerCamera.with_ledger(src, ledger, name=source_id(src, i), station_id=cfg.station.id)
            for i, src in enumerate(cfg.sources) if isinstance(src, SyntheticSiteSource)]
    det = TruthDetector(ledger, delay)
    return cams, Ensemble([Member("site-truth", "1", "5e" * 32, det)]), det

