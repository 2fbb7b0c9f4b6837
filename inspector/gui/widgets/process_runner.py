"""Run a sequence of command lines as child processes (QProcess), never in the GUI process.

The runner shows a progress bar, a log view (stdout and stderr appended as they arrive, read by
Qt's event loop: nothing here ever waits on a process), and a Cancel button that kills the
running step (and, where Qt allows, its whole process group) and runs the cleanup.

A step marked ``cancellable=False`` (a short one that changes shared state, such as registering
a model) is never interrupted: Cancel is disabled while it runs, and a cancel asked for then stops
the run after it instead.

Progress: a step with ``epochs`` set is parsed for ``Epoch x/N`` lines, or the progress lines
that ultralytics prints under its ``Epoch`` header (``   3/30   0G   1.23 ...``); any other step
shows an indeterminate bar.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QProcess, QProcessEnvironment, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget

ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EPOCH_RE = re.compile(r"\bEpoch\s+(\d+)\s*/\s*(\d+)\b")
# ultralytics: the epoch counter opens the line, then GPU memory ("0G", "1.2G") or a loss figure.
BARE_EPOCH_RE = re.compile(r"^\s*(\d+)/(\d+)\s+\S")
MAX_LOG_LINES = 20_000
MAX_PARTIAL = 64 * 1024
UNINTERRUPTIBLE_WAIT_MS = 30_000  # app shutdown: how long a step that must not be cut short gets to end


def parse_epoch(line: str, total: int | None = None) -> tuple[int, int] | None:
    """``(epoch, epochs)`` from one line of training output, or None.

    With ``total`` a bare ``x/N`` line counts only when N is the number of epochs asked for (so
    a batch counter such as ``12/50`` of a data loader is not taken for an epoch).
    """
    line = ANSI_RE.sub("", line)
    m = EPOCH_RE.search(line)
    if m is None:
        m = BARE_EPOCH_RE.match(line)
        if m is None or (total is not None and int(m.group(2)) != total):
            return None
    x, n = int(m.group(1)), int(m.group(2))
    if n <= 0 or not 0 <= x <= n:
        return None
    return x, n


@dataclass(frozen=True)
class Step:
    """One command line: ``args[0]`` is the program. ``epochs``: parse epoch progress from its output.

    ``cancellable=False``: the step is never killed by Cancel (it must be short: shutdown waits for it).
    """

    title: str
    args: tuple[str, ...]
    epochs: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    cancellable: bool = True


class ProcessRunner(QWidget):
    """Runs steps one after the other; stops at the first that fails (non-zero exit) or on cancel."""

    stepFinished = Signal(int, int, str)   # noqa: N815 - index, exit code, the step's whole stdout
    progressChanged = Signal(int, int)     # noqa: N815 - epoch, epochs
    finished = Signal(str)                 # "ok" / "failed" / "cancelled"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("idle")
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.cancel_btn = QPushButton("Cancel", self)
        self.cancel_btn.setEnabled(False)
        self.cancel_btn.clicked.connect(self.cancel)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(MAX_LOG_LINES)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.log.setStyleSheet("font-family: monospace")
        top = QHBoxLayout()
        top.addWidget(self.bar, 1)
        top.addWidget(self.cancel_btn)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(self.log, 1)

        self.proc: QProcess | None = None
        self.steps: list[Step] = []
        self.index = -1
        self.outputs: list[str] = []          # stdout of each finished step
        self.result: str | None = None        # the last run's outcome
        self.epoch: tuple[int, int] | None = None
        self._cwd: Path | None = None
        self._env: dict[str, str] = {}
        self._cleanup: Callable[[str], None] | None = None
        self._cancelled = False
        self._cancel_pending = False          # asked for during a step that may not be interrupted
        self._own_group = False
        self._stdout: list[str] = []
        self._partial = {"out": "", "err": ""}
        app = QCoreApplication.instance()
        if app is not None:  # never leave a training run behind when the app quits
            app.aboutToQuit.connect(self.kill_now)

    # --- public ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.proc is not None

    def run(self, steps: Sequence[Step], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
            cleanup: Callable[[str], None] | None = None) -> bool:
        """Start the steps; returns False when a run is already under way.

        ``cleanup(outcome)`` runs once at the end ("ok", "failed" or "cancelled"), in the GUI thread.
        """
        if self.running:
            return False
        if not steps:
            raise ValueError("no steps to run")
        self.steps = list(steps)
        self.index = -1
        self.outputs = []
        self.result = None
        self._cwd = Path(cwd) if cwd is not None else None
        self._env = {"PYTHONUNBUFFERED": "1", **(env or {})}
        self._cleanup = cleanup
        self._cancelled = False
        self._cancel_pending = False
        self.log.clear()
        self.cancel_btn.setEnabled(True)
        self._next()
        return True

    @property
    def current(self) -> Step | None:
        """The step running now."""
        return self.steps[self.index] if self.running and 0 <= self.index < len(self.steps) else None

    def cancel(self) -> None:
        """Kill the running step (never waits for it: its ``finished`` signal ends the run).

        A step that may not be interrupted is left to finish; the run stops after it.
        """
        p, step = self.proc, self.current
        if p is None:
            return
        if step is not None and not step.cancellable and not self._cancelled:
            if not self._cancel_pending:
                self._cancel_pending = True
                self.status.setText(f"cancel requested: '{step.title}' cannot be interrupted; the run stops after it")
                self._append("err", f"\n[cancel requested: waiting for '{step.title}' to finish]\n")
            return
        self._kill(p)

    def _kill(self, p: QProcess) -> None:
        if self._cancelled:
            p.kill()
            return
        self._cancelled = True
        self.cancel_btn.setEnabled(False)
        self.status.setText("cancelling...")
        self._append("err", "\n[cancelled: killing the process]\n")
        pid = int(p.processId() or 0)
        if pid > 0 and self._own_group:
            try:
                os.killpg(pid, signal.SIGKILL)  # the step and anything it started (data-loader workers)
            except OSError:
                pass
        p.kill()

    def kill_now(self) -> None:
        """Kill the running step and its group at once and run the cleanup (app shutdown).

        A step that may not be interrupted gets up to ``UNINTERRUPTIBLE_WAIT_MS`` to finish first.
        """
        p, step = self.proc, self.current
        if p is None:
            return
        if step is not None and not step.cancellable:
            self._cancel_pending = True  # its `finished` (delivered inside the wait) ends the run there
            p.waitForFinished(UNINTERRUPTIBLE_WAIT_MS)
            if self.proc is not p:
                return
        self._kill(p)
        p.waitForFinished(2000)  # shutdown only: the event loop is ending anyway
        if self.proc is p:       # `finished` was not delivered: end the run here
            self.proc = None
            self._end("cancelled")

    # --- steps ----------------------------------------------------------------------------------
    def _next(self) -> None:
        self.index += 1
        if self.index >= len(self.steps):
            self._end("ok")
            return
        step = self.steps[self.index]
        self.epoch = None
        self._stdout = []
        self._partial = {"out": "", "err": ""}
        self.bar.setRange(0, 0)  # indeterminate until an epoch line comes
        self.bar.setFormat("")
        self.status.setText(f"step {self.index + 1}/{len(self.steps)}: {step.title}"
                            + ("" if step.cancellable else " (cannot be interrupted)"))
        self.cancel_btn.setEnabled(step.cancellable and not self._cancel_pending)
        self.log.appendPlainText(f"$ {' '.join(step.args)}")
        p = QProcess(self)
        p.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        env = QProcessEnvironment.systemEnvironment()
        for k, v in {**self._env, **step.env}.items():
            env.insert(k, v)
        p.setProcessEnvironment(env)
        if self._cwd is not None:
            p.setWorkingDirectory(str(self._cwd))
        self._own_group = False
        if hasattr(p, "setUnixProcessParameters") and os.name == "posix":
            try:  # its own session: Cancel can kill the whole group
                p.setUnixProcessParameters(QProcess.UnixProcessFlag.CreateNewSession)
                self._own_group = True
            except (AttributeError, TypeError):
                pass
        p.readyReadStandardOutput.connect(lambda: self._read(p, "out"))
        p.readyReadStandardError.connect(lambda: self._read(p, "err"))
        p.finished.connect(lambda code, st: self._finished(p, code, st))
        p.errorOccurred.connect(lambda err: self._error(p, err))
        self.proc = p
        p.start(step.args[0], list(step.args[1:]))

    def _read(self, p: QProcess, channel: str) -> None:
        data = p.readAllStandardOutput() if channel == "out" else p.readAllStandardError()
        text = bytes(data.data()).decode("utf-8", "replace")
        if channel == "out":
            self._stdout.append(text)
        self._append(channel, text)

    def _append(self, channel: str, text: str) -> None:
        buf = self._partial[channel] + text
        *lines, rest = buf.split("\n")
        if len(rest) > MAX_PARTIAL:  # a process that never ends its line: show what came
            lines.append(rest)
            rest = ""
        self._partial[channel] = rest
        total = self.steps[self.index].epochs if 0 <= self.index < len(self.steps) else None
        shown: list[str] = []
        for line in lines:
            parts = [s for s in line.split("\r") if s.strip()]  # progress bars redraw with \r: keep the last
            if total is not None:
                for s in parts:
                    self._progress(s, total)
            if parts:
                shown.append(ANSI_RE.sub("", parts[-1]))
        if shown:
            self.log.appendPlainText("\n".join(shown))
            self.log.moveCursor(QTextCursor.MoveOperation.End)

    def _progress(self, line: str, total: int) -> None:
        e = parse_epoch(line, total)
        if e is None or e == self.epoch:
            return
        self.epoch = e
        x, n = e
        self.bar.setRange(0, n)
        self.bar.setValue(x)
        self.bar.setFormat(f"epoch {x}/{n}")
        self.progressChanged.emit(x, n)

    def _flush(self) -> None:
        for ch in ("out", "err"):
            if self._partial[ch]:
                self._append(ch, "\n")

    def _finished(self, p: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        if p is not self.proc:
            return
        self._read(p, "out")
        self._read(p, "err")
        self._flush()
        self.proc = None
        p.deleteLater()
        if self._cancelled:
            self._end("cancelled")
            return
        rc = code if status == QProcess.ExitStatus.NormalExit else -1
        out = "".join(self._stdout)
        self.outputs.append(out)
        self.stepFinished.emit(self.index, rc, out)
        if rc != 0:
            step = self.steps[self.index]
            self.log.appendPlainText(f"[{step.title} failed: exit code {rc}]")
            self._end("failed")
            return
        if self._cancel_pending:
            step = self.steps[self.index]
            if self.index + 1 < len(self.steps):
                self.log.appendPlainText(f"[cancelled after '{step.title}', which could not be interrupted]")
                self._end("cancelled")
                return
            self.log.appendPlainText(f"[cancel came during '{step.title}', the last step, which could not be "
                                     "interrupted: it completed]")
        self._next()

    def _error(self, p: QProcess, err: QProcess.ProcessError) -> None:
        if p is not self.proc or err != QProcess.ProcessError.FailedToStart:
            return  # crashes and kills also end in `finished`
        self.log.appendPlainText(f"[cannot start {self.steps[self.index].args[0]}: {p.errorString()}]")
        self.proc = None
        p.deleteLater()
        self._end("cancelled" if self._cancelled else "failed")

    def _end(self, outcome: str) -> None:
        self.result = outcome
        self.cancel_btn.setEnabled(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(1 if outcome == "ok" else 0)
        self.bar.setFormat(outcome)
        done = min(self.index + (1 if outcome == "ok" else 0), len(self.steps))
        self.status.setText(f"{outcome}: {done}/{len(self.steps)} step(s) done")
        if self._cleanup is not None:
            try:
                self._cleanup(outcome)
            except Exception as e:  # noqa: BLE001 - a failed cleanup is reported, never raised into Qt
                self.log.appendPlainText(f"[cleanup failed: {e}]")
        self.finished.emit(outcome)
