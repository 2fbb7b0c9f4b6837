"""The station seen from the GUI: start / stop / pause off the GUI thread, newest frame by polling.

Building a station loads and warms the models and opens the store; stopping drains every
accepted frame into the store. Both can take seconds, so they run on a worker thread and report
back through queued signals; the GUI thread only ever reads the bridge's latest-value slot and
the metrics snapshot (both O(1) under a short lock).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from inspector.station.bridge import LiveFrame

log = logging.getLogger(__name__)


class StationController(QObject):
    """Owns at most one running station; ``factory()`` builds a fresh one per start (single use)."""

    stateChanged = Signal(str)   # noqa: N815 - Qt naming
    failed = Signal(str)

    def __init__(self, factory: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self.station: Any = None
        self._busy = threading.Lock()
        self._state = "stopped"
        self._worker: threading.Thread | None = None

    @property
    def state(self) -> str:
        """stopped / starting / running / paused / stopping / faulted (the metrics say the rest)."""
        if self._state in ("running", "paused") and self.station is not None:
            m = self.station.state
            if m in ("faulted", "stopped"):
                return m
        return self._state

    def _set(self, state: str) -> None:
        self._state = state
        self.stateChanged.emit(state)

    def _in_background(self, fn: Callable[[], None], name: str) -> bool:
        if not self._busy.acquire(blocking=False):
            return False  # a start or stop is already under way

        def run() -> None:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - shown to the operator, never raised into Qt
                log.exception("station %s failed", name)
                self._set("faulted")
                self.failed.emit(f"{name}: {e}")
            finally:
                self._busy.release()

        self._worker = threading.Thread(target=run, name=f"gui-station-{name}", daemon=True)
        self._worker.start()
        return True

    def start(self) -> bool:
        if self._state in ("running", "paused", "starting", "stopping"):
            return False

        def do() -> None:
            self._set("starting")
            st = self._factory()
            st.start()
            self.station = st
            self._set("running")

        return self._in_background(do, "start")

    def stop(self) -> bool:
        if self.station is None or self._state not in ("running", "paused", "faulted"):
            return False
        st = self.station

        def do() -> None:
            self._set("stopping")
            st.request_stop()
            st.stop()
            self._set("stopped")

        return self._in_background(do, "stop")

    def pause(self) -> None:
        if self.station is not None and self._state == "running":
            self.station.pause()
            self._set("paused")

    def resume(self) -> None:
        if self.station is not None and self._state == "paused":
            self.station.resume()
            self._set("running")

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a start or stop under way (tests, window close)."""
        w = self._worker
        if w is not None:
            w.join(timeout)

    def latest(self) -> LiveFrame | None:
        st = self.station
        return None if st is None else st.bridge.latest()

    def snapshot(self) -> dict[str, Any] | None:
        st = self.station
        return None if st is None else st.snapshot()

    def model_names(self) -> list[str]:
        st = self.station
        ens = None if st is None else st.ensemble
        return [] if ens is None else [f"{m.name}@{m.version}" for m in ens.members]
