"""File-drop transport: one file per message, written then renamed into place.

A reader of the folder never sees a half-written file: the content goes to a hidden temporary
name, is fsynced, then ``os.replace``d to its final name; the folder is fsynced before the batch
counts as delivered (the rename survives a power cut). Names start with the outbox row id, so
sorting the folder gives the delivery order, and a re-delivery rewrites the same name.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from inspector.mes.forwarder import Delivery, DeliveryError
from inspector.mes.outbox import OutboxRow
from inspector.mes.payload import safe_name


def _fsync_dir(folder: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync on Windows; NTFS journals the rename
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_name(row: OutboxRow) -> str:
    """``<row id>_<key>.json`` (or the name in ``meta["file"]``, e.g. a KLARF file)."""
    given = row.meta.get("file")
    if given:
        return safe_name(str(given), 200)
    return f"{row.id:012d}_{safe_name(row.key)}.json"


class FileDropTransport:
    """Writes each message into ``folder`` (created when missing)."""

    def __init__(self, name: str, folder: str | Path, *, kinds: frozenset[str] = frozenset({"unit", "wafer"}),
                 fsync: bool = True) -> None:
        self.name = name
        self.folder = Path(folder)
        self.kinds = kinds
        self.fsync = fsync

    def deliver(self, rows: Sequence[OutboxRow]) -> Delivery:
        done = 0
        error: DeliveryError | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return Delivery(0, DeliveryError(f"cannot create folder {self.folder}: {e}", "transport"))
        for row in rows:
            name = file_name(row)
            tmp = self.folder / f".{name}.tmp"
            try:
                with open(tmp, "wb") as fh:
                    fh.write(row.body.encode("utf-8"))
                    fh.flush()
                    if self.fsync:
                        os.fsync(fh.fileno())
                os.replace(tmp, self.folder / name)
            except OSError as e:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
                error = DeliveryError(f"cannot write {self.folder / name}: {e}", "transport")
                break
            done += 1
        if done and self.fsync:
            try:
                _fsync_dir(self.folder)
            except OSError as e:  # the renames may not be durable: deliver them again later
                return Delivery(0, DeliveryError(f"cannot sync folder {self.folder}: {e}", "transport"))
        return Delivery(done, error)

    def close(self) -> None:
        pass


__all__ = ["FileDropTransport", "file_name"]
