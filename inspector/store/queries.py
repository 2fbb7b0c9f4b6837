"""The read API (shared by the GUI, the CLI and training) and the human actions.

Reads return plain dicts. Human actions (``add_review``, ``add_incident``,
``set_incident_status``) take the acting :class:`~inspector.store.sessions.Session`, check it
(``sessions.check``: a live log-in whose role holds the permission) and write their row and its
audit row in one transaction; ``record_event`` audits what a checked caller did.
Use connections from :func:`inspector.store.db.open_db` (autocommit mode).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from inspector.core.decision import Verdict
from inspector.store import audit, sessions
from inspector.store import incidents as store_incidents
from inspector.store.db import StoreError, schema_version, transaction
from inspector.util.canonical import canonical_json, iso_utc

REVIEW_ACTIONS = ("accept", "reject_false_alarm", "change_class", "relabel")
SEVERITIES = ("low", "medium", "high", "critical")
INCIDENT_STATUSES = store_incidents.STATUSES
_NEEDS_HUMAN = tuple(v.value for v in Verdict if v.needs_human)  # fail, review, error

_DECISION_SELECT = """
SELECT f.id AS frame_id, f.run_id, f.station_id, f.source, f.t_utc, f.lot, f.wafer, f.die_x, f.die_y,
       f.camera, f.zone, f.context, f.image_sha256, f.image_path, f.image_pruned, f.width, f.height,
       d.verdict, d.reasons, d.model_set_version, d.config_hash, d.t_decided, d.error, d.extras,
       (SELECT COUNT(*) FROM detections x WHERE x.frame_id = f.id AND x.model_index = -1) AS n_detections
FROM decisions d JOIN frames f ON f.id = d.frame_id
"""


def _time(t: datetime | str) -> str:
    return iso_utc(t) if isinstance(t, datetime) else str(t)


def _values(v: Any) -> list[str]:
    items = [v] if isinstance(v, (str, Verdict)) else list(v)
    return [x.value if isinstance(x, Verdict) else str(x) for x in items]


def _decision_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["context"] = json.loads(d["context"])
    d["reasons"] = json.loads(d["reasons"])
    d["rule_ids"] = [r["rule_id"] for r in d["reasons"]]
    d["extras"] = json.loads(d["extras"])
    d["image_pruned"] = bool(d["image_pruned"])
    return d


def _filters(*, lot: str | None = None, wafer: str | None = None, verdict: Any = None,
             since: datetime | str | None = None, until: datetime | str | None = None,
             class_name: str | None = None, camera: str | None = None,
             zone: str | None = None) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for col, val in (("f.lot", lot), ("f.wafer", wafer), ("f.camera", camera), ("f.zone", zone)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(str(val))
    if verdict is not None:
        vs = _values(verdict)
        where.append(f"d.verdict IN ({', '.join('?' * len(vs))})")
        args += vs
    if since is not None:  # capture time, inclusive
        where.append("f.t_utc >= ?")
        args.append(_time(since))
    if until is not None:  # exclusive
        where.append("f.t_utc < ?")
        args.append(_time(until))
    if class_name is not None:  # frames whose kept (fused) boxes include this class
        where.append("EXISTS (SELECT 1 FROM detections x WHERE x.frame_id = f.id AND x.model_index = -1"
                     " AND x.class_name = ?)")
        args.append(class_name)
    return where, args


def iter_decisions(conn: sqlite3.Connection, *, limit: int | None = None, newest_first: bool = False,
                   **filters: Any) -> Iterator[dict[str, Any]]:
    """Stream decisions with their frame context (oldest first unless ``newest_first``)."""
    where, args = _filters(**filters)
    sql = _DECISION_SELECT + (" WHERE " + " AND ".join(where) if where else "")
    sql += " ORDER BY f.t_utc DESC, f.id DESC" if newest_first else " ORDER BY f.t_utc, f.id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    for row in conn.execute(sql, args):
        yield _decision_dict(row)


def decisions(conn: sqlite3.Connection, *, lot: str | None = None, wafer: str | None = None, verdict: Any = None,
              since: datetime | str | None = None, until: datetime | str | None = None,
              class_name: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Decisions with frame context, verdict, rule ids and number of kept detections.

    ``verdict`` is one verdict or several; ``since`` (inclusive) / ``until`` (exclusive) filter on
    the capture time; ``class_name`` keeps frames whose kept boxes include that class.
    """
    return list(iter_decisions(conn, lot=lot, wafer=wafer, verdict=verdict, since=since, until=until,
                               class_name=class_name, limit=limit))


def review_queue(conn: sqlite3.Connection, newest_first: bool = True, *, limit: int | None = None,
                 verdicts: Iterable[str | Verdict] = _NEEDS_HUMAN, lot: str | None = None,
                 camera: str | None = None, zone: str | None = None) -> list[dict[str, Any]]:
    """Flagged frames (fail / review / error by default) that no one has reviewed yet."""
    where, args = _filters(verdict=list(verdicts), lot=lot, camera=camera, zone=zone)
    where.append("NOT EXISTS (SELECT 1 FROM reviews r WHERE r.frame_id = f.id)")
    sql = _DECISION_SELECT + " WHERE " + " AND ".join(where)
    sql += " ORDER BY f.t_utc DESC, f.id DESC" if newest_first else " ORDER BY f.t_utc, f.id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [_decision_dict(r) for r in conn.execute(sql, args)]


def frame_detections(conn: sqlite3.Connection, frame_id: str, model_index: int = -1) -> list[dict[str, Any]]:
    """Stored boxes of one frame (-1: the kept set; i: ensemble member i), in
    ``Detections.to_records`` form plus ``class_name`` (so ``Detections.from_records`` reads them)."""
    rows = conn.execute("SELECT x0, y0, x1, y1, score, class_id, class_name, model_index, support FROM detections"
                        " WHERE frame_id = ? AND model_index = ? ORDER BY idx", (frame_id, int(model_index)))
    return [{"xyxy": [r[0], r[1], r[2], r[3]], "score": r[4], "class_id": r[5], "class_name": r[6],
             "model_index": r[7], "support": r[8]} for r in rows]


def reviews(conn: sqlite3.Connection, frame_id: str | None = None) -> list[dict[str, Any]]:
    """Reviews (of one frame, or all), oldest first, with labels parsed."""
    sql = "SELECT id, frame_id, user, t, action, verdict, labels, note FROM reviews"
    rows = conn.execute(sql + " WHERE frame_id = ? ORDER BY id" if frame_id else sql + " ORDER BY id",
                        (frame_id,) if frame_id else ())
    out = []
    for r in rows:
        d = dict(r)
        d["labels"] = None if d["labels"] is None else json.loads(d["labels"])
        out.append(d)
    return out


def incidents(conn: sqlite3.Connection, *, kind: str | None = None, zone: str | None = None,
              since: datetime | str | None = None, until: datetime | str | None = None,
              status: str | None = None, camera: str | None = None, run_id: str | None = None,
              limit: int | None = None, newest_first: bool = False) -> list[dict[str, Any]]:
    """Incidents, manual and automatic (:func:`inspector.store.incidents.incidents`)."""
    return store_incidents.incidents(conn, kind=kind, zone=zone, since=since, until=until, status=status,
                                     camera=camera, run_id=run_id, limit=limit, newest_first=newest_first)


def stats(conn: sqlite3.Connection) -> dict[str, Any]:
    """Counts and extent of the store (CLI `db stats`, GUI status bar)."""
    def one(sql: str) -> Any:
        return conn.execute(sql).fetchone()[0]

    verdicts = {v.value: 0 for v in Verdict}
    for verdict, n in conn.execute("SELECT verdict, COUNT(*) FROM decisions GROUP BY verdict"):
        verdicts[verdict] = n
    first, last = conn.execute("SELECT MIN(t_utc), MAX(t_utc) FROM frames").fetchone()
    head = audit.audit_head(conn)
    return {
        "schema_version": schema_version(conn),
        "frames": one("SELECT COUNT(*) FROM frames"),
        "decisions": one("SELECT COUNT(*) FROM decisions"),
        "verdicts": verdicts,
        "detections_kept": one("SELECT COUNT(*) FROM detections WHERE model_index = -1"),
        "reviews": one("SELECT COUNT(*) FROM reviews"),
        "unreviewed_flagged": one(
            f"SELECT COUNT(*) FROM decisions d WHERE d.verdict IN ({', '.join(repr(v) for v in _NEEDS_HUMAN)})"
            " AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.frame_id = d.frame_id)"),
        "incidents": one("SELECT COUNT(*) FROM incidents"),
        "audit_rows": one("SELECT COUNT(*) FROM audit"),
        "audit_head": None if head is None else {"seq": head[0], "hash": head[1]},
        "runs": one("SELECT COUNT(*) FROM runs"),
        "configs": one("SELECT COUNT(*) FROM configs"),
        "models": one("SELECT COUNT(*) FROM models"),
        "images_pruned": one("SELECT COUNT(*) FROM frames WHERE image_pruned = 1"),
        "first_t": first,
        "last_t": last,
        "db_bytes": _db_bytes(conn),
    }


def _db_bytes(conn: sqlite3.Connection) -> int:
    """Main file plus its WAL (the WAL can hold much of a busy store until a checkpoint)."""
    path = next((r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")
    if not path:  # in-memory database
        return int(conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0])
    return sum(p.stat().st_size for p in (Path(path), Path(path + "-wal")) if p.exists())


# --------------------------------------------------------------------------------------------
# Human actions: row + audit row in one transaction
# --------------------------------------------------------------------------------------------


def _need_frame(conn: sqlite3.Connection, frame_id: str, what: str) -> sqlite3.Row:
    row = conn.execute("SELECT id, camera, zone FROM frames WHERE id = ?", (frame_id,)).fetchone()
    if row is None:
        raise StoreError(f"frame {frame_id!r} is not in the store; {what} not recorded")
    return row


def add_review(conn: sqlite3.Connection, frame_id: str, session: sessions.Session, action: str,
               verdict: str | Verdict | None = None, labels: list[Mapping[str, Any]] | None = None, note: str = "",
               *, t: datetime | None = None) -> int:
    """Record a review of a frame as ``session``'s user (checked: relabel needs ``relabel``, the
    others ``review``); returns the review id."""
    if action not in REVIEW_ACTIONS:
        raise ValueError(f"review action must be one of {', '.join(REVIEW_ACTIONS)}, got {action!r}")
    v = None if verdict is None else Verdict(verdict).value
    with transaction(conn):
        user = sessions.check(conn, session, sessions.REVIEW_PERMISSION[action], f"review.{action} frame {frame_id}")
        _need_frame(conn, frame_id, "review")
        cur = conn.execute("INSERT INTO reviews (frame_id, user, t, action, verdict, labels, note)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (frame_id, user, iso_utc(t), action, v, None if labels is None else canonical_json(labels),
                            note))
        review_id = int(cur.lastrowid)
        audit.append(conn, actor=user, action=f"review.{action}", entity="reviews", entity_id=review_id)
    return review_id


def add_incident(conn: sqlite3.Connection, frame_id: str | None, kind: str, *, session: sessions.Session,
                 zone: str | None = None, camera: str | None = None, t: datetime | None = None,
                 severity: str = "medium", note: str = "") -> int:
    """Record an incident as ``session``'s user (checked: ``incidents``); zone / camera default to
    the frame's; returns its id."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    if not kind:
        raise ValueError("an incident needs a kind")
    with transaction(conn):
        user = sessions.check(conn, session, "incidents", f"record a {kind!r} incident")
        if frame_id is not None:
            fr = _need_frame(conn, frame_id, "incident")
            zone = fr["zone"] if zone is None else zone
            camera = fr["camera"] if camera is None else camera
        cur = conn.execute("INSERT INTO incidents (frame_id, kind, zone, camera, t, severity, note, status)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, 'open')",
                           (frame_id, kind, zone, camera, iso_utc(t), severity, note))
        incident_id = int(cur.lastrowid)
        audit.append(conn, actor=user, action="incident.add", entity="incidents", entity_id=incident_id)
    return incident_id


def set_incident_status(conn: sqlite3.Connection, incident_id: int, status: str, *, session: sessions.Session,
                        note: str = "") -> None:
    """Move an incident to open / acknowledged / closed / false_alarm (audited, with who and when;
    the allowed steps are :mod:`inspector.store.incidents`')."""
    if status not in INCIDENT_STATUSES:
        raise ValueError(f"incident status must be one of {', '.join(INCIDENT_STATUSES)}, got {status!r}")
    store_incidents.set_status(conn, incident_id, status, session=session, note=note)


def record_event(conn: sqlite3.Connection, *, actor: str, action: str, entity: str, entity_id: str,
                 payload: Mapping[str, Any]) -> int:
    """Audit a human action that has no row of its own (a user added, a role changed); returns its seq."""
    if entity in audit.ENTITIES:
        raise ValueError(f"{entity} rows are audited by the function that writes them")
    with transaction(conn):
        return audit.append(conn, actor=actor, action=action, entity=entity, entity_id=entity_id, payload=payload)
