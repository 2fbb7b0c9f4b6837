"""Station events: what happened to the station between units (stalls, freezes, reconnects, store gaps).

A unit that never became a decision (a camera that stalled, a stream that repeated its last
picture, records the store refused) leaves no decision row; its event row is the record that the
gap happened, with its times. Plain functions over ``station_events`` (migration 7); call them
inside the writer's transaction (``StoreWriter.submit_job``).

Each insert and each end is an audit row (action ``event.<kind>`` / ``event.<kind>.end``): a
safety manager relies on "the camera was frozen from t to t_end" as much as on an incident, so a
deleted or edited event must be as detectable. The table is one of ``audit.ENTITIES``: the audit
row hashes the row as stored (the dict :func:`get_event` returns) and ``verify`` re-reads it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from inspector.store import audit
from inspector.util.canonical import canonical_json, iso_utc

KINDS = ("stall", "freeze", "reconnect", "store_gap", "unreadable")


def _content(row: sqlite3.Row | tuple) -> dict[str, Any]:
    rid, run_id, t, t_end, source, kind, detail = tuple(row)
    return {"id": rid, "run_id": run_id, "t": t, "t_end": t_end, "source": source, "kind": kind,
            "detail": json.loads(detail)}


_COLUMNS = "id, run_id, t, t_end, source, kind, detail"


def record_event(conn: sqlite3.Connection, run_id: str, kind: str, t: datetime, *, source: str | None = None,
                 t_end: datetime | None = None, detail: Mapping[str, Any] | None = None,
                 actor: str = "station") -> int:
    """Insert one event (and its audit row) inside the caller's transaction; returns its id."""
    if kind not in KINDS:
        raise ValueError(f"station event kind must be one of {', '.join(KINDS)}, got {kind!r}")
    cur = conn.execute("INSERT INTO station_events (run_id, t, t_end, source, kind, detail) VALUES (?,?,?,?,?,?)",
                       (run_id, iso_utc(t), None if t_end is None else iso_utc(t_end), source, kind,
                        canonical_json(dict(detail or {}))))
    eid = int(cur.lastrowid)
    audit.append(conn, actor=actor, action=f"event.{kind}", entity="station_events", entity_id=eid)
    return eid


def end_event(conn: sqlite3.Connection, run_id: str, source: str | None, kind: str, t_end: datetime, *,
              detail: Mapping[str, Any] | None = None, actor: str = "station") -> int | None:
    """Close the open event of this kind for this source (``detail`` merged in); its id, or None
    when none was open (the end of something never recorded is no event)."""
    row = conn.execute("SELECT id, detail FROM station_events WHERE run_id = ? AND kind = ? AND source IS ?"
                       " AND t_end IS NULL ORDER BY id DESC LIMIT 1", (run_id, kind, source)).fetchone()
    if row is None:
        return None
    eid = int(row[0])
    merged = {**json.loads(row[1]), **dict(detail or {})}
    conn.execute("UPDATE station_events SET t_end = ?, detail = ? WHERE id = ?",
                 (iso_utc(t_end), canonical_json(merged), eid))
    audit.append(conn, actor=actor, action=f"event.{kind}.end", entity="station_events", entity_id=eid)
    return eid


def get_event(conn: sqlite3.Connection, event_id: int) -> dict[str, Any]:
    row = conn.execute(f"SELECT {_COLUMNS} FROM station_events WHERE id = ?", (int(event_id),)).fetchone()
    if row is None:
        raise LookupError(f"station event {event_id} does not exist")
    return _content(row)


def list_events(conn: sqlite3.Connection, run_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Events in time order, optionally of one run and / or one kind."""
    where, args = [], []
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if kind is not None:
        where.append("kind = ?")
        args.append(kind)
    sql = f"SELECT {_COLUMNS} FROM station_events" + (f" WHERE {' AND '.join(where)}" if where else "")
    return [_content(r) for r in conn.execute(sql + " ORDER BY t, id", args)]


def count_by_kind(conn: sqlite3.Connection, run_id: str) -> dict[str, int]:
    """Events of one run per kind (kinds without any left out)."""
    return {str(k): int(n) for k, n in conn.execute(
        "SELECT kind, COUNT(*) FROM station_events WHERE run_id = ? GROUP BY kind ORDER BY kind", (run_id,))}


__all__ = ["KINDS", "count_by_kind", "end_event", "get_event", "list_events", "record_event"]
