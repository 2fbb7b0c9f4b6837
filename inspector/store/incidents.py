"""Incidents as records: the incident engine's events applied to rows, the human steps, the reads.

An automatic incident (construction site) is one row keyed by the engine's ``key``. Its events
are applied by :func:`apply_event` inside the store writer's transaction of the batch that holds
the frame which caused them, so a committed decision never lacks the incident it opened (and the
MES outbox rows of both commit with them). Every change appends an audit row in the same
transaction. Events are idempotent: one whose ``seq`` is not newer than the row's is ignored, so a
replay never changes or duplicates a record.

Human steps (:func:`acknowledge`, :func:`close`, :func:`mark_false_alarm`, :func:`reopen`) take
the acting session, check it at their entry (``sessions.check``: a live log-in that may act on
incidents), each run in a transaction of their own and keep who and when on the row as well as in
the audit.
Manual incidents (``queries.add_incident``) share the table; their extra columns stay NULL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from inspector.core.site.types import IncidentEvent
from inspector.store import audit, sessions
from inspector.store.db import StoreError, transaction
from inspector.util.canonical import canonical_json, iso_utc

STATUSES = ("open", "acknowledged", "closed", "false_alarm")
# Which status each human step may start from.
_FROM = {
    "acknowledged": ("open",),
    "closed": ("open", "acknowledged"),
    "false_alarm": ("open", "acknowledged"),
    "open": ("acknowledged", "closed", "false_alarm"),
}
EVIDENCE_ROLES = ("first", "worst", "last")

_COLUMNS = (
    "id", "key", "run_id", "frame_id", "camera", "zone", "track_id", "kind", "rule_id", "severity", "t", "started",
    "ended", "end_reason", "seq", "first_frame_id", "worst_frame_id", "worst_score", "last_frame_id", "clip_path",
    "clip_sha256", "evidence", "model_set_version", "config_hash", "status", "note", "acknowledged_by",
    "acknowledged_at", "resolved_by", "resolved_at", "resolution_note",
)


# --------------------------------------------------------------------------------------------
# Engine events (inside the writer's transaction)
# --------------------------------------------------------------------------------------------


def _frame_or_none(conn: sqlite3.Connection, frame_id: str) -> str | None:
    # frame_id references frames(id): a frame that was never stored (its record failed) must not
    # cost the incident its row.
    return frame_id if conn.execute("SELECT 1 FROM frames WHERE id = ?", (frame_id,)).fetchone() else None


def apply_event(conn: sqlite3.Connection, event: IncidentEvent, *, run_id: str, model_set_version: str = "",
                config_hash: str = "", actor: str = "station") -> int | None:
    """Apply one engine event (call inside a transaction); returns the incident id, or None when
    the event was already applied (same or older ``seq``).

    new -> a row (status open, opened at the event's frame time); update -> the worst frame moves;
    end -> ``ended``, ``end_reason`` and the last frame. An update or end whose incident is not
    stored (its ``new`` was lost) creates the row from the event: the event carries all of it.
    """
    if not conn.in_transaction:
        raise RuntimeError("apply_event must run inside the writer's transaction")
    row = conn.execute("SELECT id, seq FROM incidents WHERE key = ?", (event.key,)).fetchone()
    if row is not None and row["seq"] is not None and int(row["seq"]) >= event.seq:
        return None
    t = iso_utc(event.t_utc)
    last = event.last_frame_id or event.frame_id  # the last frame that showed the violation
    if row is None:
        cur = conn.execute(
            "INSERT INTO incidents (frame_id, kind, zone, camera, t, severity, note, status, key, run_id, track_id,"
            " rule_id, started, seq, first_frame_id, worst_frame_id, worst_score, last_frame_id, model_set_version,"
            " config_hash) VALUES (?, ?, ?, ?, ?, ?, '', 'open', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_frame_or_none(conn, event.frame_id), event.kind, event.zone, event.camera, t, event.severity, event.key,
             run_id, int(event.track_id), event.rule_id, iso_utc(event.started_utc), int(event.seq),
             event.first_frame_id, event.worst_frame_id, float(event.worst_score), last,
             model_set_version, config_hash))
        incident_id = int(cur.lastrowid)
    else:
        incident_id = int(row["id"])
        conn.execute("UPDATE incidents SET seq = ?, worst_frame_id = ?, worst_score = ?, last_frame_id = ?"
                     " WHERE id = ?", (int(event.seq), event.worst_frame_id, float(event.worst_score), last,
                                       incident_id))
    if event.event == "end":
        conn.execute("UPDATE incidents SET ended = ?, end_reason = ? WHERE id = ?",
                     (t, event.reason or "cleared", incident_id))
    audit.append(conn, actor=actor, action=f"incident.{event.event}", entity="incidents", entity_id=incident_id)
    return incident_id


def apply_events(conn: sqlite3.Connection, events: Iterable[IncidentEvent], *, run_id: str,
                 model_set_version: str = "", config_hash: str = "", actor: str = "station") -> list[int]:
    """:func:`apply_event` for each; returns the ids of the incidents that changed."""
    out = []
    for e in events:
        i = apply_event(conn, e, run_id=run_id, model_set_version=model_set_version, config_hash=config_hash,
                        actor=actor)
        if i is not None:
            out.append(i)
    return out


def record_evidence(conn: sqlite3.Connection, key: str, *, clip_path: str | None, clip_sha256: str | None,
                    images: Mapping[str, Mapping[str, Any]], actor: str = "station") -> int:
    """Attach the clip (path relative to the data folder, sha256 of its bytes) and the evidence
    images (role -> {frame_id, sha256, path}) to an incident (inside a transaction); returns its id."""
    bad = sorted(set(images) - set(EVIDENCE_ROLES))
    if bad:
        raise ValueError(f"evidence roles must be among {', '.join(EVIDENCE_ROLES)}, got {bad}")
    row = conn.execute("SELECT id FROM incidents WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise StoreError(f"incident {key!r} is not stored; its evidence was not recorded")
    evidence = canonical_json({k: dict(v) for k, v in images.items()}) if images else None
    conn.execute("UPDATE incidents SET clip_path = ?, clip_sha256 = ?, evidence = ? WHERE id = ?",
                 (clip_path, clip_sha256, evidence, int(row["id"])))
    audit.append(conn, actor=actor, action="incident.evidence", entity="incidents", entity_id=int(row["id"]))
    return int(row["id"])


# --------------------------------------------------------------------------------------------
# Human steps (each its own transaction)
# --------------------------------------------------------------------------------------------


def _step(conn: sqlite3.Connection, incident_id: int, status: str, session: sessions.Session, note: str,
          t: datetime | None) -> None:
    if status not in _FROM:
        raise ValueError(f"incident status must be one of {', '.join(STATUSES)}, got {status!r}")
    when = iso_utc(t)
    with transaction(conn):
        user = sessions.check(conn, session, "incidents", f"set incident {incident_id} to {status!r}")
        row = conn.execute("SELECT status FROM incidents WHERE id = ?", (int(incident_id),)).fetchone()
        if row is None:
            raise StoreError(f"incident {incident_id} does not exist")
        if row["status"] not in _FROM[status]:
            raise StoreError(f"incident {incident_id} is {row['status']}; it cannot become {status}")
        if status == "acknowledged":
            conn.execute("UPDATE incidents SET status = ?, acknowledged_by = ?, acknowledged_at = ? WHERE id = ?",
                         (status, user, when, int(incident_id)))
        elif status == "open":  # reopened: the resolution is undone (the audit keeps it)
            conn.execute("UPDATE incidents SET status = 'open', resolved_by = NULL, resolved_at = NULL,"
                         " resolution_note = NULL WHERE id = ?", (int(incident_id),))
        else:
            conn.execute("UPDATE incidents SET status = ?, resolved_by = ?, resolved_at = ?, resolution_note = ?"
                         " WHERE id = ?", (status, user, when, note, int(incident_id)))
        audit.append(conn, actor=user, action=f"incident.{status}", entity="incidents", entity_id=int(incident_id),
                     t=t)


def acknowledge(conn: sqlite3.Connection, incident_id: int, *, session: sessions.Session,
                t: datetime | None = None) -> None:
    """Someone has seen it (open -> acknowledged)."""
    _step(conn, incident_id, "acknowledged", session, "", t)


def close(conn: sqlite3.Connection, incident_id: int, *, session: sessions.Session, note: str = "",
          t: datetime | None = None) -> None:
    """Dealt with (open / acknowledged -> closed), with what was done."""
    _step(conn, incident_id, "closed", session, note, t)


def mark_false_alarm(conn: sqlite3.Connection, incident_id: int, *, session: sessions.Session, note: str = "",
                     t: datetime | None = None) -> None:
    """Not a real violation (open / acknowledged -> false_alarm); its evidence frames become
    training material (:func:`false_alarm_frames`)."""
    _step(conn, incident_id, "false_alarm", session, note, t)


def reopen(conn: sqlite3.Connection, incident_id: int, *, session: sessions.Session,
           t: datetime | None = None) -> None:
    """Back to open (a closing or false alarm undone; the audit keeps both steps)."""
    _step(conn, incident_id, "open", session, "", t)


def set_status(conn: sqlite3.Connection, incident_id: int, status: str, *, session: sessions.Session,
               note: str = "", t: datetime | None = None) -> None:
    """The step that leads to ``status`` (open / acknowledged / closed / false_alarm)."""
    _step(conn, incident_id, status, session, note, t)


# --------------------------------------------------------------------------------------------
# Reads
# --------------------------------------------------------------------------------------------


def _dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["evidence"] = json.loads(d["evidence"]) if d["evidence"] else {}
    d["opened"] = d["t"]
    d["automatic"] = d["key"] is not None
    return d


def incidents(conn: sqlite3.Connection, *, camera: str | None = None, kind: str | None = None,
              zone: str | None = None, status: str | Iterable[str] | None = None, run_id: str | None = None,
              since: datetime | str | None = None, until: datetime | str | None = None,
              limit: int | None = None, newest_first: bool = False) -> list[dict[str, Any]]:
    """Incidents (manual and automatic) with every column, ``evidence`` parsed, ``opened`` (= ``t``)
    and ``automatic``; ``since`` (inclusive) / ``until`` (exclusive) filter on the opening time."""
    where: list[str] = []
    args: list[Any] = []
    for col, val in (("camera", camera), ("kind", kind), ("zone", zone), ("run_id", run_id)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(str(val))
    if status is not None:
        sts = [status] if isinstance(status, str) else list(status)
        where.append(f"status IN ({', '.join('?' * len(sts))})")
        args += sts
    for op, val in ((">=", since), ("<", until)):
        if val is not None:
            where.append(f"t {op} ?")
            args.append(iso_utc(val) if isinstance(val, datetime) else str(val))
    sql = f"SELECT {', '.join(_COLUMNS)} FROM incidents" + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY t DESC, id DESC" if newest_first else " ORDER BY t, id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [_dict(r) for r in conn.execute(sql, args)]


def incident(conn: sqlite3.Connection, incident_id: int | None = None, *, key: str | None = None) -> dict[str, Any] | None:
    """One incident by id or by key, or None."""
    if (incident_id is None) == (key is None):
        raise ValueError("give an incident id or a key")
    col, val = ("id", int(incident_id)) if incident_id is not None else ("key", key)
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM incidents WHERE {col} = ?", (val,)).fetchone()
    return None if row is None else _dict(row)


def false_alarm_frames(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """The evidence frames of incidents marked false alarms (what a training export should learn
    from, like a rejected review): one entry per (incident, frame) that is stored."""
    out = []
    for d in incidents(conn, status="false_alarm"):
        ids = dict.fromkeys(x for x in (d["first_frame_id"], d["worst_frame_id"], d["last_frame_id"], d["frame_id"])
                            if x)
        for fid in ids:
            if conn.execute("SELECT 1 FROM frames WHERE id = ?", (fid,)).fetchone():
                out.append({"incident_id": d["id"], "frame_id": fid, "kind": d["kind"], "user": d["resolved_by"],
                            "t": d["resolved_at"], "note": d["resolution_note"] or ""})
    return out


__all__ = ["EVIDENCE_ROLES", "STATUSES", "acknowledge", "apply_event", "apply_events", "close", "false_alarm_frames",
           "incident", "incidents", "mark_false_alarm", "record_evidence", "reopen", "set_status"]
