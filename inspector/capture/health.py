"""Health counters shared by the capture adapters (read by the pipeline, the GUI and the CLI).

One small thread-safe object per source: reader threads increment, anyone reads a snapshot. A
snapshot is a plain dict so it can go straight into metrics, logs or JSON.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from inspector.core.decision import Verdict
from inspector.core.frame import Frame

log = logging.getLogger(__name__)

# What a source reports beside its frames (the station stores each as a station event).
EVENT_KINDS = ("stall", "freeze", "reconnect")


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """Something that happened to a source between frames. ``end`` closes the open event of the
    same source and kind at ``t`` (``detail`` added to it)."""

    source: str
    kind: str
    t: datetime
    end: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UnreadableFrame(Frame):
    """A unit a source saw but could not turn into pixels (unreadable file, image too large): it
    still gets one decision, ``verdict`` with ``reason``, and never reaches a model. Its image is a
    1x1 placeholder; its context says which unit it was."""

    verdict: Verdict = Verdict.NOT_INSPECTED
    reason: str = ""

    @staticmethod
    def placeholder() -> np.ndarray:
        return np.zeros((1, 1), np.uint8)


class CaptureError(RuntimeError):
    """A source cannot deliver frames at all (bad path, missing driver, unsupported format)."""


class SourceStats:
    """Named integer counters plus the last error message, safe to update from any thread."""

    def __init__(self, counters: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {name: 0 for name in counters}
        self._last_error: str | None = None
        self._state = "idle"
        self._listener: Callable[[SourceEvent], None] | None = None

    def listen(self, listener: Callable[[SourceEvent], None] | None) -> None:
        """Who hears this source's events (the station); one listener, set before ``frames()``."""
        self._listener = listener

    def event(self, ev: SourceEvent) -> None:
        """Count the event (``<kind>_events`` counter when it begins) and hand it to the listener."""
        if not ev.end:
            self.inc(f"{ev.kind}_events")
        listener = self._listener
        if listener is not None:
            try:
                listener(ev)
            except Exception as e:  # noqa: BLE001 - a listener must not take a reader thread down
                log.error("source %r: %s event not handed on: %s: %s", ev.source, ev.kind, type(e).__name__, e)

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def get(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def error(self, message: str) -> None:
        with self._lock:
            self._last_error = message

    def set_state(self, state: str) -> None:
        with self._lock:
            self._state = state

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def snapshot(self, **extra: Any) -> dict[str, Any]:
        """Counters, ``state`` and ``last_error`` (None when nothing went wrong), plus ``extra``."""
        with self._lock:
            return {**self._counts, "state": self._state, "last_error": self._last_error, **extra}


__all__ = ["EVENT_KINDS", "CaptureError", "SourceEvent", "SourceStats", "UnreadableFrame"]
