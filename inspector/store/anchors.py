"""Where the audit chain's head is published, and gathering those heads back for ``verify``.

Published: in every JSON MES message (``audit_head``, see :mod:`inspector.mes.payload`), in signed
checkpoint files (:mod:`inspector.store.checkpoints`), in run summaries (:func:`current_anchor`).
Gathered: :func:`outbox_anchors` (the heads in the outbox's own bodies: a weak anchor, it lives
in the same file, but it catches a chain recomputed without rewriting every message) and
:func:`message_anchors` (messages a receiver kept: outside the station's reach).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from inspector.store.audit import Anchor, audit_head

_MESSAGE_SUFFIXES = (".json", ".jsonl", ".ndjson")


def current_anchor(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """``{"seq", "hash"}`` of the newest audit row (None on an empty chain): print or send it."""
    head = audit_head(conn)
    return None if head is None else {"seq": head[0], "hash": head[1]}


def anchor_of_db(path: str | Path) -> dict[str, Any] | None:
    """:func:`current_anchor` of a database file (a run summary after the run closed its store).
    None when the file or its audit table cannot be read: a summary never fails on it."""
    if not Path(path).is_file():  # sqlite3.connect would create an empty one
        return None
    try:
        conn = sqlite3.connect(str(path), timeout=5.0)  # not mode=ro: a WAL file may need its -shm created
    except sqlite3.Error:
        return None
    try:
        return current_anchor(conn)
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def _head(body: Any) -> tuple[int, str] | None:
    h = body.get("audit_head") if isinstance(body, dict) else None
    if not isinstance(h, dict):
        return None
    try:
        return int(h["seq"]), str(h["hash"])
    except (KeyError, TypeError, ValueError):
        return None


def outbox_anchors(conn: sqlite3.Connection) -> list[Anchor]:
    """The distinct heads carried by the outbox's JSON bodies (one anchor per head, the first row naming it)."""
    out: dict[tuple[int, str], Anchor] = {}
    sql = ("SELECT id, json_extract(body, '$.audit_head.seq'), json_extract(body, '$.audit_head.hash') FROM outbox"
           " WHERE kind != 'klarf' AND json_valid(body) AND json_extract(body, '$.audit_head.seq') IS NOT NULL"
           " ORDER BY id")
    for row_id, seq, digest in conn.execute(sql):
        key = (int(seq), str(digest))
        if key not in out:
            out[key] = Anchor(key[0], key[1], "outbox", f"outbox row {row_id}", "outbox bodies")
    return list(out.values())


def _messages(path: Path) -> Iterable[tuple[str, Any]]:
    files = sorted(p for p in path.iterdir() if p.suffix in _MESSAGE_SUFFIXES) if path.is_dir() else [path]
    for f in files:
        text = f.read_text(encoding="utf-8", errors="replace")
        if f.suffix == ".json":
            try:
                yield f.name, json.loads(text)
            except ValueError:
                continue
        else:
            for number, line in enumerate(text.splitlines(), start=1):
                try:
                    yield f"{f.name} line {number}", json.loads(line)
                except ValueError:
                    continue


def message_anchors(paths: Iterable[str | Path], stations: Iterable[str] | None = None) -> list[Anchor]:
    """Heads in MES messages kept outside the station: files (``.json``: one message; ``.jsonl``:
    one per line) or folders of them (a file-drop folder, a receiver's log). Only messages of
    ``stations`` count (a plant-wide log holds other stations' chains)."""
    wanted = None if stations is None else set(stations)
    out: dict[tuple[int, str], Anchor] = {}
    for p in paths:
        for where, body in _messages(Path(p)):
            head = _head(body)
            if head is None or (wanted is not None and body.get("station") not in wanted):
                continue
            out.setdefault(head, Anchor(head[0], head[1], "mes-message", f"MES message {where}", str(p)))
    return list(out.values())


__all__ = ["anchor_of_db", "current_anchor", "message_anchors", "outbox_anchors"]
