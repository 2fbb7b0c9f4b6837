"""The exports the incidents view offers (plain Python, no Qt): a period report of the current
filter (PDF / CSV), one incident's PDF, and one incident unredacted with a reason.

Each runs on a worker thread with its own connection and goes through the role-checked, audited
actions of ``inspector.station.actions.reports`` (the report's author is the logged-in user).
Files go to ``<data dir>/reports/exports/`` under names that say what they hold, so an export
never asks for a path in a modal dialog; the view announces where each one went.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.gui.models.incident_query import IncidentFilter
from inspector.store.db import open_db
from inspector.util.progress import NO_PROGRESS, Progress

KINDS = ("period_pdf", "period_csv", "incident_pdf", "unredacted")


@dataclass(frozen=True)
class ExportRequest:
    kind: str                       # one of KINDS
    db_path: Path
    data_dir: Path
    session: Any                    # actions.Session of the logged-in user
    out: Path
    filter: IncidentFilter | None = None
    incident_id: int | None = None
    reason: str = ""


def exports_folder(data_dir: Path) -> Path:
    return Path(data_dir) / "reports" / "exports"


def _slug(v: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(v)).strip("-") or "x"


def out_path(data_dir: Path, kind: str, *, flt: IncidentFilter | None = None, incident_id: int | None = None,
             now: datetime | None = None) -> Path:
    """A file name that says what the export holds (and when it was made, so none is overwritten)."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    if kind == "incident_pdf":
        return exports_folder(data_dir) / f"incident-{incident_id}_{stamp}.pdf"
    if kind == "unredacted":  # a folder: the action writes incident-<id>-unredacted/ (files + manifest) in it
        return exports_folder(data_dir) / f"UNREDACTED-incident-{incident_id}_{stamp}"
    flt = flt or IncidentFilter()
    parts = ["incidents"]
    parts += [f"{flt.since:%Y%m%d}" if flt.since else "start", f"{flt.until:%Y%m%d}" if flt.until else "now"]
    parts += [_slug(v) for v in (flt.camera, flt.zone, flt.kind) if v]
    if isinstance(flt.status, str):
        parts.append(_slug(flt.status))
    return exports_folder(data_dir) / f"{'_'.join(parts)}_{stamp}.{'pdf' if kind == 'period_pdf' else 'csv'}"


def run_export(req: ExportRequest, progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Write the export; returns what the action says about it, with ``out`` (the file written)."""
    from inspector.station.actions import reports as report_actions  # heavy (PDF, charts): loaded on first use

    if req.kind not in KINDS:
        raise ValueError(f"export kind must be one of {', '.join(KINDS)}, got {req.kind!r}")
    (req.out if req.kind == "unredacted" else req.out.parent).mkdir(parents=True, exist_ok=True)
    conn = open_db(req.db_path)
    try:
        if req.kind == "unredacted":
            with progress.stage("copy evidence", total=1, unit="incident") as s:
                done = report_actions.export_unredacted(conn, req.session, int(req.incident_id or 0), req.reason,
                                                        req.out, data_dir=req.data_dir)
                s.advance()
            result = {"out": str(done.folder), "files": dict(done.files), "audit_seq": done.audit_seq}
        elif req.kind == "incident_pdf":
            result = report_actions.generate_incident_report(conn, req.session, int(req.incident_id or 0), out=req.out,
                                                             fmt="pdf", data_dir=req.data_dir, progress=progress)
        else:
            flt = req.filter or IncidentFilter()
            # Open ends: the action starts at the first incident's day and ends now.
            result = report_actions.generate_report(
                conn, req.session, out=req.out, fmt="pdf" if req.kind == "period_pdf" else "csv", data_dir=req.data_dir,
                since=flt.since, until=flt.until, camera=flt.camera, zone=flt.zone, kind=flt.kind, states=flt.status,
                progress=progress)
    finally:
        conn.close()
    out = dict(result)
    out.setdefault("out", str(out.get("path") or req.out))
    return out

