"""Generating a report is an audited act: the file is written and the audit row (``report.generate``,
entity ``reports``, id = the report's content hash) commits in one transaction, so an audited report
exists on disk and a report on disk was audited (a failed commit removes the file).

The audit payload names the report type, station, period, filters, format, file name, file sha256
and the number of incidents; the row's actor is who generated it.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.reports.incident_data import Period, ReportFilter
from inspector.reports.report import FORMATS, Report, build_incident_report, build_period_report, render
from inspector.store import audit
from inspector.store.db import transaction
from inspector.util.atomic import write_bytes_atomic
from inspector.util.progress import NO_PROGRESS, Progress

AUDIT_ACTION = "report.generate"
AUDIT_ENTITY = "reports"


@dataclass(frozen=True)
class GeneratedReport:
    path: str
    format: str
    bytes: int
    file_sha256: str
    content_sha256: str
    incidents: int
    pages: int | None          # PDF only
    summary_pages: int | None  # PDF only: pages before the incident pages
    audit_seq: int
    meta: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def generate(conn: sqlite3.Connection, report: Report, fmt: str, out: str | Path, *,
             progress: Progress = NO_PROGRESS) -> GeneratedReport:
    """Render ``report`` as ``fmt`` into ``out`` (atomically) and audit it (see the module doc)."""
    if fmt not in FORMATS:
        raise ValueError(f"report format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    pages = summary_pages = None
    if fmt == "pdf":
        from inspector.reports.pdf import layout_pdf

        laid = layout_pdf(report, progress)
        data, pages, summary_pages = laid.data, laid.pages, laid.summary_pages
    else:
        data = render(report, fmt, progress)
    out = Path(out)
    file_sha = hashlib.sha256(data).hexdigest()
    meta = report.meta
    payload = {"type": meta["type"], "station": meta.get("station"), "period": meta["period"],
               "filters": meta["filters"], "incident_id": meta.get("incident_id"), "format": fmt,
               "file": out.name, "file_sha256": file_sha, "incidents": len(report.rows),
               "generated_at": meta["generated_at"]}
    out.parent.mkdir(parents=True, exist_ok=True)
    written = False
    try:
        with transaction(conn):
            seq = audit.append(conn, actor=meta["generated_by"], action=AUDIT_ACTION, entity=AUDIT_ENTITY,
                               entity_id=report.content_sha256, payload=payload)
            write_bytes_atomic(out, data)
            written = True
    except BaseException:
        if written:  # the commit failed after the file landed: no unaudited report stays behind
            out.unlink(missing_ok=True)
        raise
    return GeneratedReport(str(out), fmt, len(data), file_sha, report.content_sha256, len(report.rows), pages,
                           summary_pages, seq, dict(meta))


def produce(conn: sqlite3.Connection, generated_by: str, fmt: str, out: str | Path, *, data_dir: str | Path | None,
            period: Period | None = None, flt: ReportFilter = ReportFilter(), incident_id: int | None = None,
            progress: Progress = NO_PROGRESS) -> GeneratedReport:
    """Build a period report (``period`` and ``flt``) or a single-incident one (``incident_id``) and
    :func:`generate` it: the one call behind the command, the role-checked action and the scheduler."""
    if (period is None) == (incident_id is None):
        raise ValueError("a report covers either a period or one incident")
    if incident_id is not None:
        report = build_incident_report(conn, incident_id, data_dir=data_dir, generated_by=generated_by)
    else:
        assert period is not None
        report = build_period_report(conn, period, flt, data_dir=data_dir, generated_by=generated_by,
                                     with_evidence=fmt == "pdf")
    return generate(conn, report, fmt, out, progress=progress)


def generations(conn: sqlite3.Connection, content_sha256: str | None = None) -> list[dict[str, Any]]:
    """Audit rows of report generations (newest last), optionally of one content hash."""
    sql = "SELECT seq, t, actor, entity_id FROM audit WHERE action = ? AND entity = ?"
    args: list[Any] = [AUDIT_ACTION, AUDIT_ENTITY]
    if content_sha256:
        sql += " AND entity_id = ?"
        args.append(content_sha256)
    return [{"seq": s, "t": t, "actor": a, "content_sha256": e} for s, t, a, e in conn.execute(sql + " ORDER BY seq", args)]


__all__ = ["AUDIT_ACTION", "AUDIT_ENTITY", "GeneratedReport", "generate", "generations", "produce"]
