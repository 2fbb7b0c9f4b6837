"""Reports and evidence exports for safety managers: role-checked and audited.

``generate_report`` / ``generate_incident_report`` write PDF, CSV or JSON incident reports;
``export_evidence`` exports one incident's evidence anonymised (the default), ``export_unredacted``
with faces in the clear (one incident, a reason, audited).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.station.actions.auth import PermissionDenied, Session, require

if TYPE_CHECKING:  # the reports package loads when a report is made, not with every action
    from datetime import datetime

    from inspector.reports import ReportFilter
    from inspector.util.progress import Progress


# --------------------------------------------------------------------------------------------
# Incident reports (PDF / CSV / JSON); the generation is audited by inspector.reports.generate
# (who, what it covers, the file's sha256).
# --------------------------------------------------------------------------------------------


def _period(conn: sqlite3.Connection, since: datetime | None, until: datetime | None) -> Any:
    """[since, until); an open start begins at the first incident's day, an open end is now."""
    from datetime import datetime, time, timedelta, timezone

    from inspector.reports import Period

    end = until or datetime.now(timezone.utc)
    if since is None:
        first = conn.execute("SELECT MIN(t) FROM incidents").fetchone()[0]
        start = (datetime.combine(datetime.fromisoformat(first).date(), time(), timezone.utc) if first
                 else end - timedelta(days=1))
        since = min(start, end - timedelta(seconds=1))
    return Period(since, end)


def generate_report(conn: sqlite3.Connection, session: Session, *, out: str | Path, fmt: str = "pdf",
                    data_dir: str | Path | None, since: datetime | None = None, until: datetime | None = None,
                    station: str | None = None, camera: str | None = None, zone: str | None = None,
                    kind: str | None = None, states: Any = None, filters: ReportFilter | None = None,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Write a period report (incidents opened in ``[since, until)`` matching the filters, or
    ``filters`` whole) to ``out`` as the session's user (roles with ``reports``: safety manager);
    audited. Returns ``reports.GeneratedReport.as_dict()`` (path, file and content sha256, pages,
    audit seq)."""
    from inspector.reports import ReportFilter, produce  # noqa: F811 (at run time)
    from inspector.util.progress import NO_PROGRESS

    require(session, "reports", f"generate a {fmt} incident report", conn)
    flt = filters or ReportFilter(station=station, camera=camera, zone=zone, kind=kind,
                                  state=tuple(states) if states is not None and not isinstance(states, str) else states)
    return produce(conn, session.user, fmt, out, data_dir=data_dir, period=_period(conn, since, until), flt=flt,
                   progress=progress or NO_PROGRESS).as_dict()


def generate_incident_report(conn: sqlite3.Connection, session: Session, incident_id: int, *, out: str | Path,
                             fmt: str = "pdf", data_dir: str | Path | None,
                             progress: Progress | None = None) -> dict[str, Any]:
    """One incident's report (OSHA 301-style record page and its evidence page) as the session's
    user (``reports``); audited. Returns ``GeneratedReport.as_dict()``."""
    from inspector.reports import produce
    from inspector.util.progress import NO_PROGRESS

    require(session, "reports", f"generate a {fmt} report of incident {incident_id}", conn)
    return produce(conn, session.user, fmt, out, data_dir=data_dir, incident_id=int(incident_id),
                   progress=progress or NO_PROGRESS).as_dict()


def scheduled_report(conn: sqlite3.Connection, session: Session, *, user: str, out: str | Path, fmt: str = "pdf",
                     data_dir: str | Path | None, since: datetime, until: datetime, station: str | None = None,
                     cameras: Any = None, zones: Any = None, kinds: Any = None, states: Any = None,
                     progress: Progress | None = None) -> dict[str, Any]:
    """A period report the station's scheduler writes. No person is logged in: ``session`` must be
    a system session opened for ``reports`` (``actions.system_session``, recorded and audited
    with the schedule as its reason); ``user`` is the schedule's author from the reviewed station
    config, audited as the report's generator. Filters are lists (any of them) or None."""
    from inspector.reports import Period, ReportFilter, produce  # noqa: F811 (at run time)
    from inspector.util.progress import NO_PROGRESS

    require(session, "reports", "write a scheduled report", conn)
    if not session.system:  # a person's report is generate_report, in their own name
        raise PermissionDenied(session.user, session.role, "write a scheduled report",
                               "only the station's scheduler (a system session) writes scheduled reports")
    if not user:
        raise ValueError("a scheduled report names its user")
    flt = ReportFilter(station=station, camera=cameras, zone=zones, kind=kinds, state=states)
    return produce(conn, user, fmt, out, data_dir=data_dir, period=Period(since, until), flt=flt,
                   progress=progress or NO_PROGRESS).as_dict()


# --------------------------------------------------------------------------------------------
# One incident's evidence exported as files, anonymised by default; unredacted only by a safety
# manager's deliberate, audited export with a reason.
# --------------------------------------------------------------------------------------------

EXPORT_EVIDENCE_ACTION = "incident.export_evidence"
EXPORT_UNREDACTED_ACTION = "incident.export_unredacted"
EXPORT_ENTITY = "incident_export"  # audit entity of exports (no row of their own)
MIN_REASON_CHARS = 10


@dataclass(frozen=True)
class EvidenceExport:
    """What an evidence export wrote: the folder, each file's sha256, and the audit row."""

    incident_id: int
    folder: Path
    files: dict[str, str]      # file name -> sha256 of its bytes
    redacted: bool
    audit_seq: int


def _one_incident(conn: sqlite3.Connection, incident_id: int) -> dict[str, Any]:
    if isinstance(incident_id, bool) or not isinstance(incident_id, int):
        raise TypeError(f"an evidence export takes ONE incident id (an int), got {incident_id!r}")
    from inspector.store import incidents

    inc = incidents.incident(conn, incident_id)
    if inc is None:
        raise LookupError(f"incident {incident_id} does not exist")
    return inc


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _publish(conn: sqlite3.Connection, session: Session, tmp: Path, target: Path, action: str, incident_id: int,
             payload: Mapping[str, Any]) -> int:
    """Audit, then move the finished folder into place. The audit row commits first: an export
    that exists is always audited (a failed rename leaves an audited attempt, never the reverse).
    The audit keeps the payload's sha256 (``sha256(canonical_json(payload))``)."""
    from inspector.store import queries
    from inspector.util.atomic import fsync_dir

    seq = queries.record_event(conn, actor=session.user, action=action, entity=EXPORT_ENTITY,
                               entity_id=str(incident_id), payload=payload)
    os.replace(tmp, target)
    try:
        fsync_dir(target.parent)
    except OSError:  # some file systems refuse to fsync a folder; the files are written
        pass
    return seq


def _staging(out_dir: str | Path, name: str) -> tuple[Path, Path]:
    target = Path(out_dir) / name
    if target.exists():
        raise FileExistsError(f"{target} exists; an export never overwrites another")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{name}-{uuid.uuid4().hex}"
    tmp.mkdir()
    return tmp, target


def export_evidence(conn: sqlite3.Connection, session: Session, incident_id: int, out_dir: str | Path, *,
                    data_dir: str | Path, method: str = "pixelate") -> EvidenceExport:
    """Write one incident's evidence images (JPEG) and clip (MP4) with every worker's head
    redacted into ``out_dir/incident-<id>-evidence`` (roles that may export reports); audited."""
    import cv2

    from inspector.station import anonymised_evidence as anon

    require(session, "reports", f"export the evidence of incident {incident_id}", conn)
    inc = _one_incident(conn, incident_id)
    tmp, target = _staging(out_dir, f"incident-{inc['id']}-evidence")
    try:
        files: dict[str, str] = {}
        for a in anon.anonymised_images(conn, data_dir, inc, method=method):  # type: ignore[arg-type]
            name = f"{a.role}.jpg"
            ok, buf = cv2.imencode(".jpg", a.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            if not ok:
                raise ValueError(f"incident {inc['id']}: the {a.role} image could not be encoded")
            (tmp / name).write_bytes(buf.tobytes())
            files[name] = hashlib.sha256(buf.tobytes()).hexdigest()
        if inc.get("clip_path"):
            anon.anonymised_clip(conn, data_dir, inc, tmp / "clip.mp4", method=method)  # type: ignore[arg-type]
            files["clip.mp4"] = _file_sha256(tmp / "clip.mp4")
        if not files:
            raise LookupError(f"incident {inc['id']} has no stored evidence to export")
        seq = _publish(conn, session, tmp, target, EXPORT_EVIDENCE_ACTION, int(inc["id"]),
                       {"incident_id": int(inc["id"]), "key": inc.get("key"), "folder": str(target), "files": files,
                        "redaction": method})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EvidenceExport(int(inc["id"]), target, files, True, seq)


def export_unredacted(conn: sqlite3.Connection, session: Session, incident_id: int, reason: str,
                      out_dir: str | Path, *, data_dir: str | Path) -> EvidenceExport:
    """Copy ONE incident's stored evidence, faces in the clear, into
    ``out_dir/incident-<id>-unredacted`` with a ``manifest.json`` (who, when, why, each file's
    sha256); safety manager only (``reports``), with a reason of at least
    :data:`MIN_REASON_CHARS` characters, audited: the audit row (actor, incident id) carries the
    sha256 of the manifest's canonical JSON, so the manifest proves the reason and files.

    Each file is checked against the sha256 the incident recorded: evidence that changed on disk
    is refused, never exported. Nothing is written for a refused or failed export."""
    require(session, "reports", f"export incident {incident_id} unredacted", conn)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON_CHARS:
        raise ValueError(f"an unredacted export needs a reason (at least {MIN_REASON_CHARS} characters)")
    inc = _one_incident(conn, incident_id)
    data_dir = Path(data_dir)
    sources: list[tuple[str, Path, str | None]] = []
    for role in ("first", "worst", "last"):
        ev = (inc.get("evidence") or {}).get(role)
        if ev and ev.get("path"):
            sources.append((f"{role}{Path(ev['path']).suffix}", data_dir / ev["path"], ev.get("sha256")))
    if inc.get("clip_path"):
        sources.append(("clip.mp4", data_dir / inc["clip_path"], inc.get("clip_sha256")))
    if not sources:
        raise LookupError(f"incident {inc['id']} has no stored evidence to export")
    tmp, target = _staging(out_dir, f"incident-{inc['id']}-unredacted")
    try:
        files: dict[str, str] = {}
        for name, src, recorded in sources:
            shutil.copyfile(src, tmp / name)
            sha = _file_sha256(tmp / name)
            if recorded and sha != recorded:
                raise ValueError(f"incident {inc['id']}: {src} does not match the sha256 the incident recorded")
            files[name] = sha
        from inspector.util.atomic import write_json_atomic
        from inspector.util.canonical import iso_utc

        manifest = {
            "incident_id": int(inc["id"]), "key": inc.get("key"), "camera": inc.get("camera"), "kind": inc.get("kind"),
            "unredacted": True, "exported_by": session.user, "exported_at": iso_utc(), "reason": reason,
            "files": files, "notice": "Faces in the clear: handle under the site's data-protection rules."}
        write_json_atomic(tmp / "manifest.json", manifest)
        # the audited payload is the manifest itself: the file proves who, when, why and what
        seq = _publish(conn, session, tmp, target, EXPORT_UNREDACTED_ACTION, int(inc["id"]), manifest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return EvidenceExport(int(inc["id"]), target, files, False, seq)
