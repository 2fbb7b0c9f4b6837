"""Viewing decisions, reviewing flagged frames, and recording incidents."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from inspector.core.decision import Verdict
from inspector.station.actions.auth import REVIEW_PERMISSION, Session, require
from inspector.store import incidents, queries


# --------------------------------------------------------------------------------------------
# Viewing and reviewing
# --------------------------------------------------------------------------------------------


def view_decisions(conn: sqlite3.Connection, session: Session, **filters: Any) -> list[dict[str, Any]]:
    """``queries.decisions`` for roles that may view decisions."""
    require(session, "view", "view decisions", conn)
    return queries.decisions(conn, **filters)


def review_queue(conn: sqlite3.Connection, session: Session, **kwargs: Any) -> list[dict[str, Any]]:
    """``queries.review_queue`` for roles that review."""
    require(session, "review", "open the review queue", conn)
    return queries.review_queue(conn, **kwargs)


def review(conn: sqlite3.Connection, session: Session, frame_id: str, action: str, *,
           verdict: str | Verdict | None = None, labels: list[Mapping[str, Any]] | None = None,
           note: str = "") -> int:
    """Record a review of a frame as the session's user; returns the review id.

    accept / reject_false_alarm / change_class need ``review`` (operator, engineer); relabel
    needs ``relabel`` (engineer).
    """
    if action not in REVIEW_PERMISSION:
        raise ValueError(f"review action must be one of {', '.join(REVIEW_PERMISSION)}, got {action!r}")
    require(session, REVIEW_PERMISSION[action], f"review.{action} frame {frame_id}", conn)
    return queries.add_review(conn, frame_id, session, action, verdict, labels, note)


# --------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------


def add_incident(conn: sqlite3.Connection, session: Session, frame_id: str | None, kind: str, *,
                 zone: str | None = None, camera: str | None = None, severity: str = "medium",
                 note: str = "") -> int:
    """Record an incident as the session's user (safety manager); returns its id."""
    require(session, "incidents", f"record a {kind!r} incident", conn)
    return queries.add_incident(conn, frame_id, kind, session=session, zone=zone, camera=camera,
                                severity=severity, note=note)


def set_incident_status(conn: sqlite3.Connection, session: Session, incident_id: int, status: str,
                        note: str = "") -> None:
    """Move an incident to open / acknowledged / closed / false_alarm (safety manager)."""
    require(session, "incidents", f"set incident {incident_id} to {status!r}", conn)
    queries.set_incident_status(conn, incident_id, status, session=session, note=note)


def view_incidents(conn: sqlite3.Connection, session: Session, **filters: Any) -> list[dict[str, Any]]:
    """``incidents.incidents`` (filters: camera, kind, zone, status, run_id, since, until, limit,
    newest_first) for roles that may view."""
    require(session, "view", "view incidents", conn)
    return incidents.incidents(conn, **filters)


def acknowledge_incident(conn: sqlite3.Connection, session: Session, incident_id: int) -> None:
    """Open -> acknowledged, as the session's user (safety manager)."""
    require(session, "incidents", f"acknowledge incident {incident_id}", conn)
    incidents.acknowledge(conn, incident_id, session=session)


def close_incident(conn: sqlite3.Connection, session: Session, incident_id: int, note: str) -> None:
    """Open / acknowledged -> closed, with a note saying what was done (safety manager)."""
    if not note.strip():
        raise ValueError("closing an incident needs a note saying what was done")
    require(session, "incidents", f"close incident {incident_id}", conn)
    incidents.close(conn, incident_id, session=session, note=note)


def mark_false_alarm(conn: sqlite3.Connection, session: Session, incident_id: int, note: str = "") -> None:
    """Open / acknowledged -> false_alarm (safety manager); its evidence frames become training
    material like a rejected review (``incidents.false_alarm_frames``)."""
    require(session, "incidents", f"mark incident {incident_id} a false alarm", conn)
    incidents.mark_false_alarm(conn, incident_id, session=session, note=note)
