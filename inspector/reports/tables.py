"""Incidents as tables: one row per incident, with stable, documented column names (docs/reports.md),
written as CSV or JSON and read back to the same values.

The columns are the fields of :class:`IncidentRow` in order; a pydantic model, so a CSV or JSON
file is validated on reading (types, states) and the JSON schema comes for free.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from inspector.reports.incident_data import IncidentData, IncidentDetail
from inspector.reports.summary import close_times_s

Status = Literal["open", "acknowledged", "closed", "false_alarm"]


class IncidentRow(BaseModel):
    """One incident as a report row. Times are ISO-8601 UTC text; empty CSV cells are null."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(description="Incident id in the station's store.")
    key: Optional[str] = Field(description="Unique key of an automatic incident (camera / run / track / kind); null for manual ones.")
    station: Optional[str] = Field(description="Station id.")
    camera: Optional[str] = Field(description="Camera (source) that saw it.")
    zone: Optional[str] = Field(description="Zone it happened in (danger zone, PPE zone); null outside zones.")
    kind: str = Field(description="no_hard_hat, no_vest, in_danger_zone (automatic) or a manual kind.")
    rule_id: Optional[str] = Field(description="Incident rule of the station config that opened it.")
    severity: Optional[str] = Field(description="Severity of that rule (low / medium / high).")
    track_id: Optional[int] = Field(description="Tracked worker id (per camera and run; not a person's identity).")
    opened: str = Field(description="When the incident opened (the violation had persisted long enough).")
    started: Optional[str] = Field(description="When the violation began (before persistence).")
    ended: Optional[str] = Field(description="When the violation ended (cleared, track lost or run ended).")
    end_reason: Optional[str] = Field(description="Why it ended: cleared, track lost, run ended.")
    duration_s: Optional[float] = Field(description="started -> ended, seconds.")
    status: Status = Field(description="open, acknowledged, closed or false_alarm.")
    acknowledged_by: Optional[str] = Field(description="Who acknowledged it.")
    acknowledged_at: Optional[str] = Field(description="When.")
    resolved_by: Optional[str] = Field(description="Who closed it or marked it a false alarm.")
    resolved_at: Optional[str] = Field(description="When.")
    resolution_note: Optional[str] = Field(description="What was done (closing note).")
    time_to_close_s: Optional[float] = Field(description="opened -> closed, seconds (closed incidents only).")
    worst_score: Optional[float] = Field(description="Strength of the strongest evidence (0..1).")
    first_frame_id: Optional[str] = Field(description="Frame where the violation began.")
    worst_frame_id: Optional[str] = Field(description="Frame with the strongest evidence.")
    last_frame_id: Optional[str] = Field(description="Last frame that showed the violation.")
    evidence_images: int = Field(description="How many of the first / worst / last evidence images are stored.")
    clip_path: Optional[str] = Field(description="Evidence clip (MP4), relative to the data folder.")
    clip_sha256: Optional[str] = Field(description="sha256 of the clip file.")
    models: Optional[str] = Field(description="Models that ran: name@version, separated by '; '.")
    model_set_version: Optional[str] = Field(description="Id of the exact model set.")
    config_hash: Optional[str] = Field(description="sha256 of the station config that ran.")
    run_id: Optional[str] = Field(description="Station run.")
    note: Optional[str] = Field(description="Note recorded with a manual incident.")
    automatic: bool = Field(description="True when the incident engine opened it, false when a person recorded it.")


COLUMNS: tuple[str, ...] = tuple(IncidentRow.model_fields)


def _duration(a: str | None, b: str | None) -> float | None:
    if not a or not b:
        return None
    return round(max(0.0, (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()), 3)


def row_of(d: IncidentDetail) -> IncidentRow:
    r = d.row
    ttc = close_times_s([r])
    stored = r.get("evidence") or {}
    images = sum(1 for e in d.evidence if e.path is not None) if d.evidence else sum(
        1 for v in stored.values() if isinstance(v, dict) and v.get("path"))
    return IncidentRow(
        id=int(r["id"]), key=r.get("key"), station=d.station, camera=r.get("camera"), zone=r.get("zone"),
        kind=str(r["kind"]), rule_id=r.get("rule_id"), severity=r.get("severity"), track_id=r.get("track_id"),
        opened=str(r["opened"]), started=r.get("started"), ended=r.get("ended"), end_reason=r.get("end_reason"),
        duration_s=_duration(r.get("started"), r.get("ended")), status=r["status"],
        acknowledged_by=r.get("acknowledged_by"), acknowledged_at=r.get("acknowledged_at"),
        resolved_by=r.get("resolved_by"), resolved_at=r.get("resolved_at"), resolution_note=r.get("resolution_note"),
        time_to_close_s=round(ttc[0], 3) if ttc else None,
        worst_score=None if r.get("worst_score") is None else round(float(r["worst_score"]), 4),
        first_frame_id=r.get("first_frame_id"), worst_frame_id=r.get("worst_frame_id"),
        last_frame_id=r.get("last_frame_id"), evidence_images=images, clip_path=r.get("clip_path"),
        clip_sha256=r.get("clip_sha256"),
        models="; ".join(f"{m.name}@{m.version}" if m.version else m.name for m in d.models) or None,
        model_set_version=r.get("model_set_version") or None, config_hash=r.get("config_hash") or None,
        run_id=r.get("run_id"), note=r.get("note") or None, automatic=bool(r.get("automatic")),
    )


def rows_of(data: IncidentData) -> list[IncidentRow]:
    return [row_of(d) for d in data.incidents]


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_csv(rows: Iterable[IncidentRow]) -> str:
    """RFC 4180 CSV (header = :data:`COLUMNS`; CRLF line ends, as spreadsheets expect); null is an
    empty cell, booleans are true / false."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([_cell(getattr(r, c)) for c in COLUMNS])
    return buf.getvalue()


def read_csv(text: str) -> list[IncidentRow]:
    """Rows back from :func:`to_csv` text (validated; ValueError names a bad row)."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"not an incident table: columns {reader.fieldnames} differ from {list(COLUMNS)}")
    out = []
    for n, raw in enumerate(reader, start=2):
        values = {k: (None if v == "" else v) for k, v in raw.items()}
        values["evidence_images"] = values["evidence_images"] or 0
        try:
            out.append(IncidentRow.model_validate(values))
        except ValueError as e:
            raise ValueError(f"line {n}: {e}") from None
    return out


# --------------------------------------------------------------------------------------------
# JSON
# --------------------------------------------------------------------------------------------


class ReportDocument(BaseModel):
    """The JSON report: what it covers (``report``), its numbers (``summary``) and one row per incident."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["inspector.incident-report/1"] = "inspector.incident-report/1"
    report: dict[str, Any] = Field(description="Station, period, filters, who generated it and when, content_sha256.")
    summary: Optional[dict[str, Any]] = Field(None, description="Counts, trend and closing times (period reports).")
    incidents: list[IncidentRow]


def to_json(meta: Mapping[str, Any], summary: Mapping[str, Any] | None, rows: Sequence[IncidentRow]) -> str:
    doc = ReportDocument(report=dict(meta), summary=None if summary is None else dict(summary), incidents=list(rows))
    return json.dumps(doc.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"


def read_json(text: str) -> ReportDocument:
    """A JSON report, validated (pydantic's ValidationError, a ValueError, when it is not one)."""
    return ReportDocument.model_validate_json(text)


__all__ = ["COLUMNS", "IncidentRow", "ReportDocument", "read_csv", "read_json", "row_of", "rows_of", "to_csv",
           "to_json"]
