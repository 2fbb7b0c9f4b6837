"""The one logging set-up every command uses.

- stderr: warnings and errors always (INFO and DEBUG too at ``--log-level info|debug``);
- a rotating log file (5 MB x 5) in the station's data folder, at the chosen level, when the
  command knows that folder; so "TensorRT unavailable, fell back to CPU" reaches someone.

Both mask credentials in URLs (``user:***@``, ``token=***``), and the log file is private (0600 in
a 0700 folder). stdout is never touched: it belongs to the command's result (``--json``).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from pathlib import Path

from inspector.util.atomic import PRIVATE_FILE, make_private_dirs, tighten
from inspector.util.redact import redact_text

LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
LOG_FILE = "logs/inspector.log"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_MARK = "_inspector_handler"


def _level(name: str) -> int:
    lvl = logging.getLevelName(name.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {name!r}")
    return lvl


class _RedactingFormatter(logging.Formatter):
    """The whole line, traceback included, with URL credentials masked (``inspector.util.redact``):
    a log is read by more people than the config, and an exception may quote a URL."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def _drop_ours(root: logging.Logger, kind: str) -> None:
    for h in list(root.handlers):
        if getattr(h, _MARK, None) == kind:
            root.removeHandler(h)
            h.close()


def setup_logging(level: str | None = None, *, stream=None) -> None:
    """Configure the root logger for a command: ``level`` (default ``$INSPECTOR_LOG_LEVEL`` or
    warning) on stderr. Re-running replaces the handler it added before (tests call commands often)."""
    level = level or os.environ.get("INSPECTOR_LOG_LEVEL", "warning")
    lvl = _level(level)
    root = logging.getLogger()
    _drop_ours(root, "stderr")
    h = logging.StreamHandler(stream or sys.stderr)
    h.setLevel(lvl)
    h.setFormatter(_RedactingFormatter("%(levelname)s %(name)s: %(message)s"))
    setattr(h, _MARK, "stderr")
    root.addHandler(h)
    root.setLevel(min(lvl, root.level if root.level != logging.NOTSET else logging.WARNING, _file_level(root)))


def _file_level(root: logging.Logger) -> int:
    for h in root.handlers:
        if getattr(h, _MARK, None) == "file":
            return h.level
    return logging.CRITICAL


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates each log file 0600 whatever the umask: logs name users, hosts and file paths."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        try:
            os.fchmod(fd, PRIVATE_FILE)
        except OSError:  # someone else's file we may append to: leave its mode alone
            pass
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def add_log_file(data_dir: str | Path, level: str | None = None) -> Path:
    """Also log to ``data_dir/logs/inspector.log`` (rotating; INFO unless ``level`` says otherwise)."""
    path = Path(data_dir) / LOG_FILE
    make_private_dirs(path.parent)
    tighten(path, PRIVATE_FILE)  # a log written by an older version was world-readable
    lvl = _level(level or "info")
    root = logging.getLogger()
    _drop_ours(root, "file")
    h = _PrivateRotatingFileHandler(path, maxBytes=5_000_000, backupCount=5, encoding="utf-8")
    h.setLevel(lvl)
    h.setFormatter(_RedactingFormatter(_FORMAT))
    setattr(h, _MARK, "file")
    root.addHandler(h)
    root.setLevel(min(root.level if root.level != logging.NOTSET else logging.WARNING, lvl))
    return path


def current_level() -> str:
    """The level this process shows on stderr (what ``setup_logging`` set), for child processes to
    use the same; ``$INSPECTOR_LOG_LEVEL`` or warning when nothing was set up."""
    for h in logging.getLogger().handlers:
        if getattr(h, _MARK, None) == "stderr":
            return logging.getLevelName(h.level).lower()
    return os.environ.get("INSPECTOR_LOG_LEVEL", "warning")
