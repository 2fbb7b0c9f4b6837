"""Exports in the background with progress: a row of export buttons, a progress bar and a line
that announces the result.

``ExportPanel.start(name, fn)`` runs ``fn(progress)`` on a worker thread; the library reports
through the ``Progress`` it is given (``inspector.util.progress``), which this panel turns into
queued Qt signals, so the bar moves while the GUI thread stays free. One export at a time: a
second one asked for meanwhile is refused with a message, never queued behind a frozen window.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from inspector.util.progress import Progress, Stage

log = logging.getLogger(__name__)


class _Relay(QObject):
    progressed = Signal(str, int, int)   # stage, done, total (0: unknown)
    finished = Signal(str, object)       # export name, result
    failed = Signal(str, str)            # export name, message


class SignalProgress(Progress):
    """A ``Progress`` whose reports become Qt signals (emitted on the worker, delivered on the GUI thread)."""

    def __init__(self, relay: _Relay) -> None:
        self.relay = relay

    def _start(self, stage: Stage) -> None:
        self.relay.progressed.emit(stage.name, 0, int(stage.total or 0))

    def _update(self, stage: Stage, final: bool) -> None:
        self.relay.progressed.emit(stage.name, int(stage.done), int(stage.total or 0))

    def _finish(self, stage: Stage, failed: bool) -> None:
        total = int(stage.total or stage.done)
        self.relay.progressed.emit(stage.name, total if not failed else int(stage.done), total)


class ExportPanel(QWidget):
    started = Signal(str)
    finished = Signal(str, object)   # name, result (the action's dict)
    failed = Signal(str, str)

    def __init__(self, buttons: list[tuple[str, str, Callable[[], None]]], parent: QWidget | None = None) -> None:
        """``buttons``: (key, text, what it does) each, e.g. ("period_pdf", "Period PDF  [R]", fn)."""
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.buttons: dict[str, QPushButton] = {}
        for key, text, fn in buttons:
            b = QPushButton(text, self)
            b.clicked.connect(lambda _checked=False, f=fn: f())
            self.buttons[key] = b
            lay.addWidget(b)
        self.bar = QProgressBar(self)
        self.bar.setMaximumWidth(220)
        self.bar.setTextVisible(True)
        self.bar.hide()
        self.line = QLabel("", self)
        self.line.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # the path can be copied
        lay.addWidget(self.bar)
        lay.addWidget(self.line, 1)
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._relay.finished.connect(self._on_finished)
        self._relay.failed.connect(self._on_failed)
        self.running: str | None = None
        self.results: list[tuple[str, Any]] = []   # (name, result or error text), newest last
        self._thread: threading.Thread | None = None

    def set_allowed(self, allowed: dict[str, bool]) -> None:
        for key, ok in allowed.items():
            if key in self.buttons:
                self.buttons[key].setEnabled(ok)

    def start(self, name: str, fn: Callable[[Progress], Any], label: str = "") -> bool:
        """Run ``fn(progress)`` off the GUI thread; False (and a message) when one is running."""
        if self.running is not None:
            self.line.setText(f"an export is running ({self.running}); wait for it to finish")
            return False
        self.running = name
        self.bar.setRange(0, 0)  # busy until the first stage says how much there is
        self.bar.show()
        self.line.setText(f"exporting {label or name}...")
        for b in self.buttons.values():
            b.setProperty("was_enabled", b.isEnabled())
            b.setEnabled(False)
        relay, progress = self._relay, SignalProgress(self._relay)

        def work() -> None:
            try:
                result = fn(progress)
            except Exception as e:  # noqa: BLE001 - shown in the window, logged with its trace
                log.exception("export %s failed", name)
                try:
                    relay.failed.emit(name, f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)
                except RuntimeError:
                    pass  # the window is gone
                return
            try:
                relay.finished.emit(name, result)
            except RuntimeError:
                pass
        self._thread = threading.Thread(target=work, name=f"export-{name}", daemon=True)
        self._thread.start()
        self.started.emit(name)
        return True

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        if total > 0:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            self.bar.setFormat(f"{stage} %v/%m")
        else:
            self.bar.setRange(0, 0)

    def _end(self) -> None:
        self.running = None
        self.bar.hide()
        for b in self.buttons.values():
            b.setEnabled(bool(b.property("was_enabled")))

    def _on_finished(self, name: str, result: Any) -> None:
        self._end()
        out = result.get("out") if isinstance(result, dict) else None
        self.line.setText(f"written: {out}" if out else f"{name}: done")
        self.results.append((name, result))
        self.finished.emit(name, result)

    def _on_failed(self, name: str, msg: str) -> None:
        self._end()
        self.line.setText(f"export failed: {msg}")
        self.results.append((name, msg))
        self.failed.emit(name, msg)

    def wait(self, timeout: float = 30.0) -> bool:
        """Join the worker (tests, shutdown); its result still arrives through the event loop."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
