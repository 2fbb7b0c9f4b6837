"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The data go to a temporary file in the same folder, are fsync'd, then ``os.replace``d over the
target; with ``durable=True`` the folder is fsync'd too, so the rename itself survives a power cut.

The data folder holds password hashes, images of people and credentials' surroundings: what
Inspector creates there is private to the station's user (folders 0700, files 0600), set with
chmod after creation so the process umask can neither loosen nor tighten it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or a new file in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows: os.replace is as durable as it gets there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(folder: str | Path) -> Path:
    """Create ``folder`` and its missing parents as 0700 (umask-independent); existing folders
    are left as they are (see :func:`tighten`)."""
    folder = Path(folder)
    missing: list[Path] = []
    p = folder
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:  # another thread or process made it meanwhile: theirs is private too
            continue
        os.chmod(d, PRIVATE_DIR)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} is not a folder")
    return folder


def tighten(path: str | Path, mode: int) -> int | None:
    """Remove the permission bits of ``path`` beyond ``mode``; returns the old mode when it was
    looser (so the caller can say so once), None when nothing changed or it could not be changed."""
    try:
        old = os.stat(path).st_mode & 0o777
        if old & ~mode == 0:
            return None
        os.chmod(path, old & mode)
    except OSError:  # not ours, or gone: the caller's check stays as it was
        return None
    return old


def write_bytes_atomic(path: str | Path, data: bytes, *, durable: bool = False, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; ``mode`` sets the file's permissions (e.g. 0o600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str, *, durable: bool = False, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"), durable=durable, mode=mode)


def write_json_atomic(path: str | Path, data: Any, *, indent: int | None = 2, durable: bool = False) -> Path:
    """Write ``data`` as readable JSON (UTF-8 kept, NaN refused) to ``path`` atomically."""
    text = json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=False) + "\n"
    return write_text_atomic(path, text, durable=durable)
