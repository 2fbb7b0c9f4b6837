"""Run a sequence of command lines as child processes (QProcess), never in the GUI process.

The runner shows a progress bar, the stage and its latest figures, a log view (stdout and stderr
appended as they arrive, read by Qt's event loop: nothing here ever waits on a process), and a
Cancel button.

Progress comes as JSON lines on the child's stderr (``--progress json`` of Inspector's commands,
``inspector.util.progress``): ``{"progress": STAGE, "event": "start"|"update"|"end"|"failed", "done",
"total", "unit", ...metrics}``. Those lines drive the bar and the status; every other line goes to
the log. Nothing is read out of console text.

Cancel sends SIGTERM: the command stops cleanly (Inspector's commands undo what they started), and
only if it is still running after ``CANCEL_GRACE_MS`` is its whole process group killed; never once it
has begun a stage the step names in ``protected_stages`` (such as registering a model: the command
completes it, so the runner waits). A step marked ``cancellable=False`` is never signalled: a cancel asked for then
stops the run after it.
"""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QCoreApplication, QProcess, QProcessEnvironment, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWidget

MAX_LOG_LINES = 20_000
MAX_PARTIAL = 64 * 1024
CANCEL_GRACE_MS = 15_000          # after SIGTERM, how long a step gets to stop cleanly before the group is killed
SHUTDOWN_WAIT_MS = 30_000         # app shutdown: how long a step gets to finish (or stop cleanly)
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")   # colour codes, removed for display (not parsed)
METRIC_NAMES = {"map50": "mAP50", "map50_95": "mAP50-95", "precision": "P", "recall": "R", "box_loss": "box loss",
                "best_map50": "best mAP50", "best_map50_95": "best mAP50-95"}
_EVENT_KEYS = {"progress", "event", "done", "total", "unit", "elapsed_s"}


def parse_progress(line: str) -> dict[str, Any] | None:
    """One progress event from a JSON line of ``--progress json``, or None for any other line."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("progress"), str):
        return None
    return event


def event_metrics(event: Mapping[str, Any]) -> dict[str, float]:
    """The numeric figures an event carries besides its counters (e.g. map50 of the last epoch)."""
    return {k: float(v) for k, v in event.items()
            if k not in _EVENT_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool)}


def describe_metrics(metrics: Mapping[str, float]) -> str:
    return "  ".join(f"{METRIC_NAMES.get(k, k)} {v:.3f}" for k, v in metrics.items())


@dataclass(frozen=True)
class Step:
    """One command line: ``args[0]`` is the program.

    ``cancellable=False``: the step is never signalled by Cancel (it must be short: shutdown waits for it).
    ``protected_stages``: progress stages the command completes even when cancelled (never killed then).
    ``result_on_stdout``: stdout is the command's result (``--json``): kept in ``outputs``, not logged.
    """

    title: str
    args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cancellable: bool = True
    protected_stages: frozenset[str] = frozenset()
    result_on_stdout: bool = False


class ProcessRunner(QWidget):
    """Runs steps one after the other; stops at the first that fails (non-zero exit) or on cancel."""

    stepFinished = Signal(int, int, str)   # noqa: N815 - index, exit code, the step's whole stdout
    progressChanged = Signal(object)       # noqa: N815 - a progress event (dict) of the running step
    finished = Signal(str)                 # "ok" / "failed" / "cancelled"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1)
        self.bar.setValue(0)
        self.bar.setFormat("idle")
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.metrics = QLabel("", self)       # the latest figures of the running stage (e.g. mAP50 per epoch)
        self.metrics.setStyleSheet("font-family: monospace")
        self.metrics.setWordWrap(True)
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
        lay.addWidget(self.metrics)
        lay.addWidget(self.log, 1)

        self.proc: QProcess | None = None
        self.steps: list[Step] = []
        self.index = -1
        self.outputs: list[str] = []          # stdout of each finished step
        self.result: str | None = None        # the last run's outcome
        self.stage: dict[str, Any] | None = None   # the running step's latest progress event
        self.events: list[dict[str, Any]] = []     # every progress event of the run, in order
        self._cwd: Path | None = None
        self._env: dict[str, str] = {}
        self._cleanup: Callable[[str], None] | None = None
        self._cancelled = False               # SIGTERM sent to the running step
        self._cancel_pending = False          # asked for during a step that may not be interrupted
        self._committed = False               # the running step began a protected stage
        self._own_group = False
        self._stdout: list[str] = []
        self._partial = {"out": "", "err": ""}
        self._grace = QTimer(self)
        self._grace.setSingleShot(True)
        self._grace.timeout.connect(self._grace_over)
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
        self.events = []
        self.result = None
        self._cwd = Path(cwd) if cwd is not None else None
        self._env = {"PYTHONUNBUFFERED": "1", **(env or {})}
        self._cleanup = cleanup
        self._cancelled = False
        self._cancel_pending = False
        self.log.clear()
        self.metrics.clear()
        self.cancel_btn.setEnabled(True)
        self._next()
        return True

    @property
    def current(self) -> Step | None:
        """The step running now."""
        return self.steps[self.index] if self.running and 0 <= self.index < len(self.steps) else None

    @property
    def protected(self) -> bool:
        """The running step has begun a stage it completes even when cancelled (its point of no return:
        from then on it is never killed, only waited for)."""
        return self.running and self._committed

    def cancel(self) -> None:
        """Ask the running step to stop (SIGTERM; never waits: its ``finished`` signal ends the run).

        A step that may not be interrupted is left to finish; the run stops after it.
        """
        p, step = self.proc, self.current
        if p is None or step is None:
            return
        if not step.cancellable:
            if not self._cancel_pending:
                self._cancel_pending = True
                self.status.setText(f"cancel requested: '{step.title}' cannot be interrupted; the run stops after it")
                self._append("err", f"\n[cancel requested: waiting for '{step.title}' to finish]\n")
            return
        if self._cancelled:
            return
        self._cancelled = True
        self.cancel_btn.setEnabled(False)
        self.status.setText("cancelling: asked the process to stop...")
        self._append("err", "\n[cancel: SIGTERM sent; the command stops and cleans up]\n")
        p.terminate()                      # SIGTERM to the step's own process (its workers follow it)
        self._grace.start(CANCEL_GRACE_MS)

    def _grace_over(self) -> None:
        p = self.proc
        if p is None or not self._cancelled:
            return
        if self.protected:                 # e.g. registering: the command completes it; wait for it
            self._grace.start(CANCEL_GRACE_MS)
            return
        self._append("err", f"\n[no exit {CANCEL_GRACE_MS // 1000} s after SIGTERM: killing the process group]\n")
        self._kill_group(p)

    def _kill_group(self, p: QProcess) -> None:
        pid = int(p.processId() or 0)
        if pid > 0 and self._own_group:
            try:
                os.killpg(pid, signal.SIGKILL)  # the step and anything it started (data-loader workers)
            except OSError:
                pass
        p.kill()

    def kill_now(self) -> None:
        """App shutdown: stop the running step now and run the cleanup (blocks up to SHUTDOWN_WAIT_MS).

        A step that may not be interrupted gets that long to finish; any other gets SIGTERM and that
        long to stop cleanly (a protected stage completes); then its process group is killed.
        """
        p, step = self.proc, self.current
        if p is None:
            return
        if step is not None and not step.cancellable:
            self._cancel_pending = True  # its `finished` (delivered inside the wait) ends the run there
        else:
            self._cancelled = True
            p.terminate()
        p.waitForFinished(SHUTDOWN_WAIT_MS)
        if self.proc is not p:
            return
        self._cancelled = True
        self._kill_group(p)
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
        self.stage = None
        self._committed = False
        self._stdout = []
        self._partial = {"out": "", "err": ""}
        self.bar.setRange(0, 0)  # indeterminate until a stage with a total reports
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
            try:  # its own session: a stuck step can be killed with its whole group
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
            step = self.current
            if step is not None and step.result_on_stdout:
                return
        self._append(channel, text)

    def _append(self, channel: str, text: str) -> None:
        buf = self._partial[channel] + text
        *lines, rest = buf.split("\n")
        if len(rest) > MAX_PARTIAL:  # a process that never ends its line: show what came
            lines.append(rest)
            rest = ""
        self._partial[channel] = rest
        shown: list[str] = []
        for line in lines:
            event = parse_progress(line) if channel == "err" else None
            if event is not None:
                note = self._progress(event)
                if note:
                    shown.append(note)
                continue
            parts = [s for s in line.split("\r") if s.strip()]  # progress bars redraw with \r: keep the last
            if parts:
                shown.append(ANSI_RE.sub("", parts[-1]))
        if shown:
            self.log.appendPlainText("\n".join(shown))
            self.log.moveCursor(QTextCursor.MoveOperation.End)

    def _progress(self, event: dict[str, Any]) -> str:
        """Draw one progress event; returns the log line it deserves ('' for a plain update)."""
        self.stage = event
        self.events.append(event)
        name, kind = str(event["progress"]), event.get("event")
        done, total, unit = event.get("done"), event.get("total"), event.get("unit") or ""
        counted = isinstance(total, int) and total > 0 and isinstance(done, int)
        if counted:
            self.bar.setRange(0, total)
            self.bar.setValue(min(done, total))
            self.bar.setFormat(f"{name}: {min(done, total)}/{total} {unit}".rstrip())
        elif kind in ("end", "failed"):
            self.bar.setRange(0, 1)
            self.bar.setValue(1 if kind == "end" else 0)
            self.bar.setFormat(f"{name}: {'done' if kind == 'end' else 'failed'}")
        else:
            self.bar.setRange(0, 0)
            self.bar.setFormat(name)
        figures = event_metrics(event)
        if figures:
            self.metrics.setText(f"{name}: {describe_metrics(figures)}")
        step = self.current
        if step is not None and kind == "start" and name in step.protected_stages:
            self._committed = True
        if step is not None and not self._cancelled:
            guarded = self.protected
            self.cancel_btn.setEnabled(step.cancellable and not self._cancel_pending and not guarded)
            self.status.setText(f"step {self.index + 1}/{len(self.steps)}: {step.title}: {name}"
                                + (" (cannot be interrupted)" if guarded else ""))
        self.progressChanged.emit(event)
        if kind == "start":
            return f"[{name}]"
        if kind in ("end", "failed"):
            took = event.get("elapsed_s")
            return f"[{name}: {'done' if kind == 'end' else 'failed'}" + (
                f" in {took:.1f} s]" if isinstance(took, (int, float)) else "]")
        return ""

    def _flush(self) -> None:
        for ch in ("out", "err"):
            if self._partial[ch]:
                self._append(ch, "\n")

    def _finished(self, p: QProcess, code: int, status: QProcess.ExitStatus) -> None:
        if p is not self.proc:
            return
        self._grace.stop()
        self._read(p, "out")
        self._read(p, "err")
        self._flush()
        self.proc = None
        p.deleteLater()
        rc = code if status == QProcess.ExitStatus.NormalExit else -1
        step = self.steps[self.index]
        if self._cancelled and rc != 0:
            self._end("cancelled")
            return
        out = "".join(self._stdout)
        self.outputs.append(out)
        self.stepFinished.emit(self.index, rc, out)
        if rc != 0:
            self.log.appendPlainText(f"[{step.title} failed: exit code {rc}]")
            self._end("failed")
            return
        if self._cancelled or self._cancel_pending:
            if self.index + 1 < len(self.steps):
                self.log.appendPlainText(f"[cancelled after '{step.title}', which could not be interrupted]")
                self._end("cancelled")
                return
            self.log.appendPlainText(f"[cancel came during '{step.title}' at a point that is never interrupted: "
                                     "it completed]")
        self._next()

    def _error(self, p: QProcess, err: QProcess.ProcessError) -> None:
        if p is not self.proc or err != QProcess.ProcessError.FailedToStart:
            return  # crashes and kills also end in `finished`
        self._grace.stop()
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
