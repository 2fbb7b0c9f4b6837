"""Who, when, and the registry's files: the user for the record, timestamps, JSON records and the writers' lock.

Index and records are replaced atomically (``inspector.util.atomic``), so readers never lock;
writers serialise through an exclusive lock on ``<root>/.lock`` (read-modify-write of the index).
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.runtime.registry import RegistryError, RegistryIntegrityError
from inspector.util.atomic import write_json_atomic

LOCK_FILE = ".lock"


# --- who and when -----------------------------------------------------------------------------
def default_user() -> str:
    """``$INSPECTOR_USER``, else the OS login name."""
    env = os.environ.get("INSPECTOR_USER", "").strip()
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no login name (some containers): still record something honest
        return "unknown"


def utc_now(timespec: str = "seconds") -> str:
    """UTC now in ISO form; records use seconds, events milliseconds (the format already on disk)."""
    return datetime.now(timezone.utc).isoformat(timespec=timespec)


def check_user(user: str | None) -> str:
    """The user for the record: the one given, else the default; never empty."""
    u = (user if user is not None else default_user()).strip()
    if not u:
        raise RegistryError("a user name is required for the record (--user or $INSPECTOR_USER)")
    return u


# --- files --------------------------------------------------------------------------------------
def write_json(path: Path, data: Any) -> None:
    """Readable JSON, replaced atomically (the index, records and evaluations)."""
    write_json_atomic(path, data)


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing or unreadable file is an integrity error naming ``what``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryIntegrityError(f"{what} {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RegistryIntegrityError(f"{what} {path} is not readable JSON: {e}") from e
    if not isinstance(data, dict):
        raise RegistryIntegrityError(f"{what} {path}: expected a JSON object")
    return data


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block (blocks until other writers are done)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl

        def lock(fd: int) -> None:
            fcntl.flock(fd, fcntl.LOCK_EX)

        def unlock(fd: int) -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    except ImportError:  # pragma: no cover - Windows: lock the first byte instead
        import msvcrt

        def lock(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

        def unlock(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

    with open(path, "a+b") as f:
        lock(f.fileno())
        try:
            yield
        finally:
            unlock(f.fileno())
