"""Run slow reads off the GUI thread and hand the result back on it.

``Background.submit(fn, on_done)`` runs ``fn()`` on a worker thread of a small pool and calls
``on_done(result)`` on the GUI thread (a queued signal). A newer submit under the same ``key``
makes older, still-running ones stale: their results are dropped, so a view never shows the
answer to a question it stopped asking (e.g. the incident selected before the current one).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    done = Signal(object, object, object)  # key, token, (ok, value)


class _Job(QRunnable):
    def __init__(self, relay: _Relay, key: str, token: int, fn: Callable[[], Any]) -> None:
        super().__init__()
        self.relay, self.key, self.token, self.fn = relay, key, token, fn

    def run(self) -> None:
        try:
            out = (True, self.fn())
        except Exception as e:  # noqa: BLE001 - handed to the GUI thread, which shows it
            log.exception("background job %s failed", self.key)
            out = (False, e)
        try:
            self.relay.done.emit(self.key, self.token, out)
        except RuntimeError:  # the view (and its relay) is gone: nobody wants the answer
            pass


class Background(QObject):
    """A small thread pool whose answers arrive on the thread that owns this object (the GUI's)."""

    def __init__(self, parent: QObject | None = None, threads: int = 2) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.done.connect(self._deliver)
        self._lock = threading.Lock()
        self._tokens: dict[str, int] = {}
        self._callbacks: dict[tuple[str, int], tuple[Callable[[Any], None], Callable[[Exception], None] | None]] = {}
        self.pending = 0

    def submit(self, key: str, fn: Callable[[], Any], on_done: Callable[[Any], None],
               on_error: Callable[[Exception], None] | None = None) -> int:
        with self._lock:
            token = self._tokens.get(key, 0) + 1
            self._tokens[key] = token
        self._callbacks[(key, token)] = (on_done, on_error)
        self.pending += 1
        self.pool.start(_Job(self._relay, key, token, fn))
        return token

    def _deliver(self, key: str, token: int, out: tuple[bool, Any]) -> None:
        self.pending -= 1
        on_done, on_error = self._callbacks.pop((key, token), (None, None))
        if token != self._tokens.get(key) or on_done is None:
            return  # stale: a newer request under this key replaced it
        ok, value = out
        if ok:
            on_done(value)
        elif on_error is not None:
            on_error(value)

    def wait(self, ms: int = 5000) -> bool:
        """Wait for the workers (tests, shutdown); answers still arrive through the event loop."""
        return self.pool.waitForDone(ms)
