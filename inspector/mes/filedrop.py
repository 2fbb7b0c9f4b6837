"""File-drop transport: one file per message, written then renamed into place.

A reader of the folder never sees a half-written file: each message is written with
``inspector.util.atomic.write_bytes_atomic`` (hidden temporary name, fsynced, ``os.replace``d to
its final name); the folder is fsynced once per batch before the batch counts as delivered (the
renames survive a power cut). Names start with the outbox row id, so
sorting the folder gives the delivery order, and a re-delivery rewrites the same name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from inspector.mes.forwarder import Delivery, DeliveryError
from inspector.mes.outbox import OutboxRow
from inspector.mes.payload import safe_name
from inspector.util.atomic import fsync_dir, write_bytes_atomic


def file_name(row: OutboxRow) -> str:
    """``<row id>_<key>.json`` (or the name in ``meta["file"]``, e.g. a KLARF file)."""
    given = row.meta.get("file")
    if given:
        return safe_name(str(given), 200)
    return f"{row.id:012d}_{safe_name(row.key)}.json"


def _file_bytes(row: OutboxRow) -> bytes:
    """What the file holds: a scheduled report's own bytes (a PDF stays a PDF in the folder), else
    the message's JSON."""
    if row.kind == "report":
        import base64
        import json

        content = json.loads(row.body).get("content_base64")
        if isinstance(content, str):
            return base64.b64decode(content)
    return row.body.encode("utf-8")


class FileDropTransport:
    """Writes each message into ``folder`` (created when missing)."""

    def __init__(self, name: str, folder: str | Path, *,
                 kinds: frozenset[str] = frozenset({"unit", "wafer", "incident", "report"})) -> None:
        self.name = name
        self.folder = Path(folder)
        self.kinds = kinds

    def deliver(self, rows: Sequence[OutboxRow]) -> Delivery:
        done = 0
        error: DeliveryError | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return Delivery(0, DeliveryError(f"cannot create folder {self.folder}: {e}", "transport"))
        for row in rows:
            name = file_name(row)
            try:
                # 0o644: the MES side reads these files, often as another account (a temporary file
                # would otherwise keep its 0o600). The folder is synced once per batch, below.
                write_bytes_atomic(self.folder / name, _file_bytes(row), mode=0o644)
            except OSError as e:
                error = DeliveryError(f"cannot write {self.folder / name}: {e}", "transport")
                break
            done += 1
        if done:
            try:
                fsync_dir(self.folder)
            except OSError as e:  # the renames may not be durable: deliver them again later
                return Delivery(0, DeliveryError(f"cannot sync folder {self.folder}: {e}", "transport"))
        return Delivery(done, error)

    def close(self) -> None:
        pass


__all__ = ["FileDropTransport", "file_name"]
