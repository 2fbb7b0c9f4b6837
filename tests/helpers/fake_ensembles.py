"""Fake ensembles a station child process can build by name (``StationSpec.ensemble_factory``)."""

from __future__ import annotations

import os
import time

from inspector.core.detections import Detections
from inspector.runtime.ensemble import Ensemble, Member

DEMO_CLASSES = ("particle", "scratch", "residue", "pattern", "edge_chip")


class Boxes:
    """A fast fake detector: one scratch box on every die (a live view with something to draw)."""

    class_names = DEMO_CLASSES

    def detect(self, images):
        return [Detections([[60, 70, 180, 120]], [0.9], [1]) for _ in images]


class Slow(Boxes):
    """Boxes, 20 ms per batch: a stop has frames in flight to drain."""

    def detect(self, images):
        time.sleep(0.02)
        return super().detect(images)


class DiesAfter(Boxes):
    """Kills its process on the 5th batch (a segfault-like death: no cleanup, no message)."""

    calls = 0

    def detect(self, images):
        DiesAfter.calls += 1
        if DiesAfter.calls >= 5:
            os._exit(43)
        return super().detect(images)


def boxes() -> Ensemble:
    return Ensemble([Member("fake", "1", "ab" * 32, Boxes())])


def slow_boxes() -> Ensemble:
    return Ensemble([Member("slow", "1", "cd" * 32, Slow())])


def dies_after() -> Ensemble:
    return Ensemble([Member("doomed", "1", "ef" * 32, DiesAfter())])
