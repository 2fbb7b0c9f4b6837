"""The station seen from the GUI: start / stop / pause without ever blocking the GUI thread.

The real app runs the station in a child process (``inspector.station.child_process``): the
factory returns a ``StationSpec``, the controller spawns a ``StationProcess`` (off the GUI thread)
and then only polls it from a QTimer: state changes and metrics through a pipe, drained without
waiting; the newest frame from a shared-memory slot when the live view asks. Nothing the station
does (inference, rules, store writes) runs in this process or holds its GIL.

A factory may also return a station object (tests with fake stations): that one runs in this
process, built and stopped on a worker thread as before (``in_process``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from inspector.station.bridge import LiveFrame
from inspector.station.child_process import StationProcess, StationSpec

log = logging.getLogger(__name__)
POLL_MS = 40  # how often the pipe is drained: state changes show within this
_BUSY = ("starting", "stopping")


class StationController(QObject):
    """Owns at most one station run; ``factory()`` gives a fresh ``StationSpec`` (or station) per start."""

    stateChanged = Signal(str)   # noqa: N815 - Qt naming
    failed = Signal(str)

    def __init__(self, factory: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._factory = factory
        self.station: Any = None   # the StationProcess (or the in-process station) of the last start
        self._busy = threading.Lock()
        self._state = "stopped"
        self._worker: threading.Thread | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)

    @property
    def in_process(self) -> bool:
        return self.station is not None and not isinstance(self.station, StationProcess)

    @property
    def state(self) -> str:
        """stopped / starting / running / paused / stopping / faulted."""
        if self.in_process and self._state in ("running", "paused"):
            m = self.station.state
            if m in ("faulted", "stopped"):
                return m
        return self._state

    def _set(self, state: str) -> None:
        if state == self._state:
            return
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

    # --- commands ----------------------------------------------------------------------------
    def start(self) -> bool:
        if self._state in ("running", "paused", "starting", "stopping"):
            return False
        old = self.station
        if isinstance(old, StationProcess) and old.alive:
            return False  # a faulted child still holds its run: stop it first
        if isinstance(old, StationProcess):
            old.close()
        self.station = None
        self._set("starting")

        def do() -> None:
            made = self._factory()
            if isinstance(made, StationSpec):
                # Spawning forks and pickles the spec: off the GUI thread; poll() takes over from here.
                proc = StationProcess(made)
                try:
                    proc.start()
                except BaseException:
                    proc.close()
                    raise
                self.station = proc
                return
            made.start()
            self.station = made
            self._set("running")

        ok = self._in_background(do, "start")
        if ok:
            self._timer.start()
        else:
            self._set("stopped")
        return ok

    def stop(self) -> bool:
        st = self.station
        if st is None or self._state not in ("running", "paused", "faulted"):
            return False
        if isinstance(st, StationProcess):
            if not st.alive or not st.request_stop():
                return False
            self._set("stopping")  # the child drains, sends its summary and exits; poll() sees it
            return True

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

    # --- polling (GUI thread) ------------------------------------------------------------------
    def poll(self, timeout: float = 0.0) -> None:
        """Apply what the station process reported since the last poll (QTimer; never blocks)."""
        st = self.station
        if not isinstance(st, StationProcess):
            w = self._worker
            if st is not None or w is None or not w.is_alive():
                self._timer.stop()  # nothing to poll: an in-process station, or a start that failed
            return
        for kind, value in st.poll(timeout):
            if kind == "state":
                self._set(value)
            elif kind == "failed":
                self.failed.emit(value)
        if st.exitcode is not None:
            self._timer.stop()

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a start or stop under way to finish (tests, window close); polls meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        w = self._worker
        if w is not None:
            w.join(timeout)
        while self._state in _BUSY and isinstance(self.station, StationProcess):
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return
            self.poll(left)

    def shutdown(self, timeout: float = 60.0) -> None:
        """Window closing: stop the run cleanly (every accepted frame stored), wait at most
        ``timeout``, then make sure no station process outlives the GUI."""
        self.wait(timeout)  # a start under way first: its run is then stopped like any other
        if self.station is not None and self.state in ("running", "paused", "faulted"):
            self.stop()
        self.wait(timeout)
        st = self.station
        if isinstance(st, StationProcess) and st.alive:
            log.error("station process %s did not stop within %s s: terminating it", st.pid, timeout)
            st.kill()
            self.poll()
        self._timer.stop()

    # --- what the views read ---------------------------------------------------------------------
    def latest(self) -> LiveFrame | None:
        st = self.station
        if st is None:
            return None
        return st.latest() if isinstance(st, StationProcess) else st.bridge.latest()

    def snapshot(self) -> dict[str, Any] | None:
        st = self.station
        return None if st is None else st.snapshot()

    def model_names(self) -> list[str]:
        st = self.station
        if isinstance(st, StationProcess):
            return list(st.models)
        ens = None if st is None else getattr(st, "ensemble", None)
        return [] if ens is None else [f"{m.name}@{m.version}" for m in ens.members]
