"""A report as one value: what it covers (station, period, filters), who generated it, its numbers,
its rows and the content hash that names its data; rendered as PDF, CSV or JSON.

The content hash is the sha256 of the canonical JSON (:func:`inspector.util.canonical.sha256_json`) of
``{"report": <what it covers>, "summary": <numbers>, "incidents": <rows>}``, where "what it covers"
leaves out who generated it and when: the same data gives the same hash whoever renders it, and
a JSON report can be checked by recomputing it (:func:`content_hash_of_document`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from inspector.reports.incident_data import IncidentData, Period, ReportFilter, gather, gather_one
from inspector.reports.summary import Summary, summarise
from inspector.reports.tables import IncidentRow, ReportDocument, rows_of, to_csv, to_json
from inspector.util.canonical import iso_utc, sha256_json
from inspector.util.progress import NO_PROGRESS, Progress

Format = Literal["pdf", "csv", "json"]
FORMATS: tuple[str, ...] = ("pdf", "csv", "json")
MEDIA_TYPES = {"pdf": "application/pdf", "csv": "text/csv", "json": "application/json"}
# Fields of the report's description that the content hash leaves out (who and when, and itself).
_NOT_HASHED = ("generated_by", "generated_at", "content_sha256")


@dataclass(frozen=True)
class Report:
    meta: dict[str, Any]            # type, station, station_name, period, filters, [incident_id], generated_by,
                                    # generated_at, content_sha256
    summary: Summary | None         # period reports
    rows: tuple[IncidentRow, ...]
    data: IncidentData              # everything the PDF shows (evidence, steps, rule, models)

    @property
    def content_sha256(self) -> str:
        return self.meta["content_sha256"]

    @property
    def kind(self) -> str:
        return self.meta["type"]


def content_hash(meta: dict[str, Any], summary: dict[str, Any] | None, rows: list[dict[str, Any]]) -> str:
    """The content hash of a report's data (see the module doc); ``rows`` as JSON values."""
    covered = {k: v for k, v in meta.items() if k not in _NOT_HASHED}
    return sha256_json({"report": covered, "summary": summary, "incidents": rows})


def content_hash_of_document(doc: ReportDocument) -> str:
    """Recompute a JSON report's content hash (equal to its ``report.content_sha256`` when intact)."""
    return content_hash(doc.report, doc.summary, [r.model_dump(mode="json") for r in doc.incidents])


def _finish(meta: dict[str, Any], summary: Summary | None, data: IncidentData, generated_by: str,
            now: datetime | None) -> Report:
    rows = tuple(rows_of(data))
    summary_json = None if summary is None else summary.as_dict()
    meta = {**meta, "generated_by": generated_by, "generated_at": iso_utc(now)}
    meta["content_sha256"] = content_hash(meta, summary_json, [r.model_dump(mode="json") for r in rows])
    return Report(meta, summary, rows, data)


def _covers(data: IncidentData, kind: str) -> dict[str, Any]:
    return {"type": kind, "station": data.station, "station_name": data.station_name,
            "period": {**data.period.as_dict(), "label": data.period.label()}, "filters": data.filter.as_dict()}


def build_period_report(conn: sqlite3.Connection, period: Period, flt: ReportFilter = ReportFilter(), *,
                        data_dir: str | Path | None, generated_by: str, now: datetime | None = None,
                        with_evidence: bool = True) -> Report:
    """The incidents opened in ``period`` matching ``flt``, with their summary against the previous
    period. ``with_evidence=False`` skips the evidence look-ups (CSV / JSON need none)."""
    if not generated_by:
        raise ValueError("a report names who generated it")
    data = gather(conn, period, flt, data_dir=data_dir, with_evidence=with_evidence)
    last_day = (period.end - timedelta(microseconds=1)).astimezone(timezone.utc).date()
    summary = summarise([d.row for d in data.incidents], data.previous,
                        period.start.astimezone(timezone.utc).date(), last_day)
    return _finish(_covers(data, "period"), summary, data, generated_by, now)


def build_incident_report(conn: sqlite3.Connection, incident_id: int, *, data_dir: str | Path | None,
                          generated_by: str, now: datetime | None = None) -> Report:
    """One incident's record (OSHA 301-style page, then its evidence page)."""
    if not generated_by:
        raise ValueError("a report names who generated it")
    data = gather_one(conn, incident_id, data_dir=data_dir)
    return _finish({**_covers(data, "incident"), "incident_id": int(incident_id)}, None, data, generated_by, now)


def render(report: Report, fmt: str, progress: Progress = NO_PROGRESS) -> bytes:
    """The report's file content in ``fmt`` (pdf, csv or json)."""
    if fmt == "csv":
        return to_csv(report.rows).encode("utf-8")
    if fmt == "json":
        summary = None if report.summary is None else report.summary.as_dict()
        return to_json(report.meta, summary, report.rows).encode("utf-8")
    if fmt == "pdf":
        from inspector.reports import pdf  # fpdf2 and matplotlib load only for PDFs

        return pdf.render_pdf(report, progress)
    raise ValueError(f"report format must be one of {', '.join(FORMATS)}, got {fmt!r}")


__all__ = ["FORMATS", "MEDIA_TYPES", "Format", "Report", "build_incident_report", "build_period_report",
           "content_hash", "content_hash_of_document", "render"]
