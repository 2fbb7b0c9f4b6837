"""Health counters shared by the capture adapters (read by the pipeline, the GUI and the CLI).

One small thread-safe object per source: reader threads increment, anyone reads a snapshot. A
snapshot is a plain dict so it can go straight into metrics, logs or JSON.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any


class CaptureError(RuntimeError):
    """A source cannot deliver frames at all (bad path, missing driver, unsupported format)."""


class SourceStats:
    """Named integer counters plus the last error message, safe to update from any thread."""

    def __init__(self, counters: Iterable[str]) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {name: 0 for name in counters}
        self._last_error: str | None = None
        self._state = "idle"

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


__all__ = ["CaptureError", "SourceStats"]
