"""The pages about one incident: its evidence page (facts, anonymised evidence images, the steps people
took) and, for a single-incident report, an OSHA 301-style record page (where, when, what happened,
what the person was doing, what PPE was missing, actions taken).
"""

from __future__ import annotations

from collections.abc import Sequence

from fpdf.enums import XPos, YPos

from inspector.reports.charts import kind_colour, kind_label
from inspector.reports.evidence_images import ShownImage, prepare
from inspector.reports.incident_data import AuditStep, IncidentDetail
from inspector.reports.pdf_doc import MUTED, PANEL, SEVERITY_COLOURS, STATUS_COLOURS, ReportPDF, hex_rgb, when
from inspector.reports.summary import duration_text
from inspector.reports.tables import IncidentRow

DASH = "\u2014"
MISSING_PPE = {"no_hard_hat": "Hard hat", "no_vest": "High-visibility vest"}
STEP_TEXT = {
    "incident.new": "opened by the incident engine", "incident.update": "stronger evidence recorded",
    "incident.end": "violation ended", "incident.evidence": "evidence clip and images stored",
    "incident.acknowledged": "acknowledged", "incident.closed": "closed", "incident.false_alarm": "marked a false alarm",
    "incident.open": "reopened", "incident.add": "recorded by hand", "incident.status": "status changed",
}
MAX_STEPS = 14   # on the evidence page; the audit keeps them all


def _where(row: IncidentRow) -> str:
    parts = [f"station {row.station}" if row.station else "", f"camera {row.camera}" if row.camera else "",
             f"zone {row.zone}" if row.zone else "outside any zone"]
    return " \u00b7 ".join(p for p in parts if p)


def _rule_text(d: IncidentDetail, row: IncidentRow) -> str:
    if d.rule is None:
        return f"{row.rule_id or DASH} ({row.severity or 'no'} severity)"
    r = d.rule
    zones = f", in zones {', '.join(r['zones'])}" if r.get("zones") else ""
    return (f"{r.get('id')}: {kind_label(str(r.get('kind')))} for {r.get('persist_s')} s opens it, "
            f"{r.get('clear_s')} s clear ends it{zones}; severity {r.get('severity')}")


def _models_text(d: IncidentDetail, row: IncidentRow) -> str:
    models = "; ".join(f"{m.name} v{m.version} (sha256 {m.sha256[:12]}\u2026)" if m.version else f"{m.name}"
                       for m in d.models) or "\u2014"
    return f"{models} \u00b7 model set {row.model_set_version or DASH}"


def _status_text(row: IncidentRow) -> str:
    parts = [row.status.replace("_", " ")]
    if row.acknowledged_by:
        parts.append(f"acknowledged by {row.acknowledged_by} at {when(row.acknowledged_at)}")
    if row.resolved_by:
        verb = "closed" if row.status == "closed" else "resolved"
        parts.append(f"{verb} by {row.resolved_by} at {when(row.resolved_at)}")
    return "; ".join(parts)


def _step_rows(steps: Sequence[AuditStep]) -> list[list[str]]:
    return [[when(s.t), s.actor, STEP_TEXT.get(s.action, s.action)] for s in steps]


def _title(pdf: ReportPDF, d: IncidentDetail, row: IncidentRow, prefix: str) -> None:
    y = pdf.get_y()
    pdf.set_fill_color(*hex_rgb(kind_colour(row.kind)))
    pdf.rect(pdf.l_margin, y, 2.2, 10, style="F")
    pdf.set_xy(pdf.l_margin + 4, y)
    pdf.font(15, "B")
    pdf.cell(110, 10, f"{prefix} #{row.id} \u00b7 {kind_label(row.kind)}")
    x = pdf.w - pdf.r_margin
    for text, colour in ((row.status.replace("_", " ").upper(), STATUS_COLOURS.get(row.status, MUTED)),
                         ((row.severity or "").upper(), SEVERITY_COLOURS.get(row.severity or "", MUTED))):
        if text:
            pdf.font(8, "B")
            x -= pdf.get_string_width(text) + 4
            pdf.chip(text, colour, x, y + 2.2)
            x -= 2
    pdf.set_xy(pdf.l_margin, y + 12)


def _image(pdf: ReportPDF, shot: ShownImage | None, x: float, y: float, w: float, caption: str) -> float:
    """An evidence image (or a grey panel saying why there is none) with its caption; returns its height."""
    h = w * 9 / 16 if shot is None or not shot.jpeg else w * shot.size[1] / shot.size[0]
    if shot is not None and shot.jpeg:
        pdf.png(shot.jpeg, x, y, w, h)
    else:
        pdf.set_fill_color(*PANEL)
        pdf.rect(x, y, w, h, style="F")
        pdf.set_xy(x, y + h / 2 - 2)
        pdf.font(8, "I", MUTED)
        pdf.cell(w, 4, shot.note if shot is not None else "no evidence frame", align="C")
    pdf.set_xy(x, y + h + 0.6)
    pdf.font(7, "", MUTED)
    note = f" \u00b7 {shot.note}" if shot is not None and shot.jpeg and shot.note else ""
    pdf.cell(w, 3.5, caption + note)
    pdf.font(9)
    return h + 4.5


def evidence_block(pdf: ReportPDF, d: IncidentDetail) -> None:
    """Worst frame large on the left, first and last stacked on the right; heads redacted."""
    shots = {e.role: prepare(e) for e in d.evidence}
    y0 = pdf.get_y() + 1
    big, small, gap = 118.0, pdf.width - 118.0 - 4, 4.0
    fid = {e.role: (e.frame_id or "").rsplit("/", 1)[-1] for e in d.evidence}
    h_big = _image(pdf, shots.get("worst"), pdf.l_margin, y0, big, f"Strongest evidence \u00b7 {fid.get('worst', '')}")
    h1 = _image(pdf, shots.get("first"), pdf.l_margin + big + gap, y0, small, f"Violation began \u00b7 {fid.get('first', '')}")
    h2 = _image(pdf, shots.get("last"), pdf.l_margin + big + gap, y0 + h1, small, f"Last seen \u00b7 {fid.get('last', '')}")
    pdf.set_xy(pdf.l_margin, y0 + max(h_big, h1 + h2) + 0.5)
    redacted = sum(s.redacted for s in shots.values())
    pdf.font(7.5, "I", MUTED)
    pdf.multi_cell(pdf.width, 3.6, f"Anonymised: the heads of every person in these frames are pixelated "
                   f"({redacted} regions); the worker this incident is about is outlined in red. The unredacted "
                   f"clip stays on the station ({d.row.get('clip_path') or 'no clip'}).", align="L",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.font(9)


def incident_page(pdf: ReportPDF, d: IncidentDetail, row: IncidentRow) -> None:
    """One page: the facts, the anonymised evidence, the steps taken."""
    pdf.add_page()
    _title(pdf, d, row, "Incident")
    duration = duration_text(row.duration_s) if row.duration_s is not None else "still open"
    pdf.fields([
        ("Where", _where(row)),
        ("Opened", f"{when(row.opened)} (violation began {when(row.started)})"),
        ("Ended", f"{when(row.ended)} \u00b7 {row.end_reason or 'not ended'} \u00b7 lasted {duration}"),
        ("Worker", f"track {row.track_id} (a tracking number, not an identity) \u00b7 evidence strength "
                   f"{row.worst_score:.2f}" if row.track_id is not None and row.worst_score is not None
         else (row.note or "\u2014")),
        ("Rule", _rule_text(d, row)),
        ("Models", _models_text(d, row)),
        ("Config", row.config_hash or "\u2014"),
        ("Status", _status_text(row)),
        ("Note", row.resolution_note or row.note or "\u2014"),
    ])
    pdf.ln(1.5)
    evidence_block(pdf, d)
    pdf.heading("Actions taken", size=10, gap=1.5)
    steps = list(d.steps)
    rows = _step_rows(steps[:MAX_STEPS])
    pdf.table_rows(["When", "Who", "What"], rows, (48, 40, pdf.width - 88), size=7.5)
    if len(steps) > MAX_STEPS:
        pdf.font(7.5, "I", MUTED)
        pdf.cell(0, 4, f"and {len(steps) - MAX_STEPS} more steps in the station's audit log")
        pdf.font(9)


def _section(pdf: ReportPDF, number: int, question: str, answer: str) -> None:
    pdf.font(8.5, "B", MUTED)
    pdf.cell(0, 5, f"{number}. {question}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_fill_color(*PANEL)
    pdf.font(10)
    pdf.multi_cell(pdf.width, 5.4, answer, fill=True, align="L", padding=(1.5, 2.5), new_x=XPos.LMARGIN,
                   new_y=YPos.NEXT)
    pdf.ln(2.2)


def _doing(d: IncidentDetail, row: IncidentRow) -> str:
    where = f"in zone {row.zone}" if row.zone else "in the camera's view, outside any zone"
    if row.kind == "in_danger_zone":
        return (f"The worker (track {row.track_id}) was {where}, a danger zone, on camera {row.camera}. "
                f"The station sees position and movement, not the task being done: see the evidence frames.")
    if row.track_id is None:
        return row.note or "Recorded by hand: see the note."
    return (f"The worker (track {row.track_id}) was moving {where} on camera {row.camera}. The station sees "
            f"position and movement, not the task being done: see the evidence frames.")


def record_page(pdf: ReportPDF, d: IncidentDetail, row: IncidentRow) -> None:
    """The single-incident record, in the manner of an OSHA 301 form (no injury fields: these are
    near-misses seen by a camera)."""
    pdf.add_page()
    pdf.font(8, "B", MUTED)
    pdf.cell(0, 5, "SAFETY INCIDENT RECORD (OSHA 301-STYLE)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _title(pdf, d, row, "Incident")
    meta = pdf.meta
    pdf.fields([("Station", f"{meta.get('station_name') or ''} ({row.station or DASH})".strip()),
                ("Generated", f"{when(meta['generated_at'])} by {meta['generated_by']}"),
                ("Content sha256", meta["content_sha256"])], label_w=30)
    pdf.ln(3)
    lasted = duration_text(row.duration_s) if row.duration_s is not None else "still going on when recorded"
    missing = MISSING_PPE.get(row.kind)
    what = (f"{kind_label(row.kind)}: rule {row.rule_id or DASH} ({row.severity or DASH} severity) opened "
            f"this incident after the violation persisted; it lasted {lasted}"
            f"{f' and ended: {row.end_reason}' if row.end_reason else ''}.")
    actions = [f"{when(s.t)}: {s.actor} {STEP_TEXT.get(s.action, s.action)}" for s in d.steps
               if s.actor != "station"]
    if row.resolution_note:
        actions.append(f"Note: {row.resolution_note}")
    _section(pdf, 1, "Where did it happen?", _where(row))
    _section(pdf, 2, "When did it happen?",
             f"Date {when(row.started or row.opened)[:10]}. Violation began {when(row.started)}; incident opened "
             f"{when(row.opened)}; ended {when(row.ended)}.")
    _section(pdf, 3, "What happened?", what)
    _section(pdf, 4, "What was the person doing?", _doing(d, row))
    _section(pdf, 5, "What PPE was missing?",
             missing or ("None recorded: this is a danger-zone incident." if row.kind == "in_danger_zone"
                         else "\u2014"))
    _section(pdf, 6, "What actions were taken?",
             "\n".join(actions) if actions else f"None yet: the incident is {row.status.replace('_', ' ')}.")
    _section(pdf, 7, "How was it recorded?",
             f"Automatically by Inspector: {_models_text(d, row)}; config {(row.config_hash or DASH)[:16]}\u2026; "
             f"clip {row.clip_path or 'none'}. Evidence images follow, anonymised.")


__all__ = ["evidence_block", "incident_page", "record_page"]
