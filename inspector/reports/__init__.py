"""Incident reports for safety managers: the incidents of a period read from the store
(:mod:`.incident_data`), their numbers (:mod:`.summary`), charts (:mod:`.charts`), tables as CSV / JSON
(:mod:`.tables`), the PDF (:mod:`.pdf`, with anonymised evidence: :mod:`.anonymise`,
:mod:`.evidence_images`), one report value with its content hash (:mod:`.report`) and its audited
generation (:mod:`.generate`). Columns and contents: docs/reports.md.

An adapter layer: it reads the store, never the station, the GUI or the command line.
"""

from inspector.reports.generate import AUDIT_ACTION, GeneratedReport, generate, generations, produce
from inspector.reports.incident_data import IncidentData, Period, ReportFilter, gather, gather_one
from inspector.reports.report import (
    FORMATS,
    Report,
    build_incident_report,
    build_period_report,
    content_hash_of_document,
    render,
)
from inspector.reports.tables import COLUMNS, IncidentRow, read_csv, read_json

__all__ = [
    "AUDIT_ACTION", "COLUMNS", "FORMATS", "GeneratedReport", "IncidentData", "IncidentRow", "Period", "Report",
    "ReportFilter", "build_incident_report", "build_period_report", "content_hash_of_document", "gather",
    "gather_one", "generate", "generations", "produce", "read_csv", "read_json", "render",
]
