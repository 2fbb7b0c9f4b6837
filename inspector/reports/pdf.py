"""Reports as PDF (fpdf2). A period report: summary pages (the numbers, the charts, the breakdowns and
an index of the incidents), then one page per incident with its anonymised evidence. A
single-incident report: its OSHA 301-style record page, then its evidence page.

Every page carries the station, the period, who generated it and the content hash (the footer);
the first page says it in full. :func:`layout_pdf` returns the bytes with the page counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from fpdf.enums import XPos, YPos

from inspector.reports import charts
from inspector.reports.pdf_doc import ACCENT, MUTED, STATUS_COLOURS, ReportPDF, when
from inspector.reports.pdf_incident import incident_page, record_page
from inspector.reports.report import Report
from inspector.reports.summary import Count, Summary, duration_text
from inspector.util.progress import NO_PROGRESS, Progress

TITLES = {"period": "Site safety incident report", "incident": "Incident record"}


def _change(n: int, previous: int) -> str:
    if previous == 0:
        return "new" if n else "\u2014"
    d = n - previous
    return f"{'+' if d > 0 else ''}{d} ({100.0 * d / previous:+.0f}%)"


def _cover(pdf: ReportPDF, report: Report) -> None:
    meta = report.meta
    pdf.add_page()
    pdf.font(20, "B")
    pdf.cell(0, 10, TITLES[report.kind], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.font(12, "", ACCENT)
    station = meta.get("station_name") or meta.get("station") or "all stations"
    sid = f" ({meta['station']})" if meta.get("station") and meta.get("station_name") else ""
    pdf.cell(0, 7, f"{station}{sid} \u00b7 {meta['period']['label']} (UTC)", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    filters = ", ".join(f"{k} = {', '.join(v) if isinstance(v, list) else v}" for k, v in meta["filters"].items()
                        if k != "station")
    pdf.ln(1)
    pdf.fields([("Incidents", filters or "all (no filter)"),
                ("Generated", f"{when(meta['generated_at'])} by {meta['generated_by']}"),
                ("Content sha256", meta["content_sha256"])], label_w=30)
    pdf.ln(2)


def _kpis(pdf: ReportPDF, s: Summary) -> None:
    y, gap = pdf.get_y(), 3.0
    w = (pdf.width - 4 * gap) / 5
    trend = ("no previous data" if s.previous_total == 0 and s.total == 0 else
             f"{_change(s.total, s.previous_total)} vs {s.previous_total} before")
    boxes = [
        (str(s.total), "Incidents", trend, (33, 37, 41)),
        (str(s.open), "Open", f"{s.by_status.get('acknowledged', 0)} acknowledged", STATUS_COLOURS["open"]),
        (str(s.closed), "Closed", f"{s.false_alarms} false alarm(s)", STATUS_COLOURS["closed"]),
        (duration_text(s.time_to_close_median_s), "Median time to close",
         f"of {s.closed_measured} closed" if s.closed_measured else "none closed", (33, 37, 41)),
        (duration_text(s.time_to_close_p90_s), "90% closed within", "p90 time to close", (33, 37, 41)),
    ]
    for i, (value, label, note, colour) in enumerate(boxes):
        pdf.kpi(pdf.l_margin + i * (w + gap), y, w, 21, value, label, note, colour)
    pdf.set_xy(pdf.l_margin, y + 24)


def _count_rows(counts: tuple[Count, ...], label=str) -> list[list[str]]:
    return [[label(c.name), str(c.n), str(c.previous), _change(c.n, c.previous)] for c in counts]


def _summary_pages(pdf: ReportPDF, report: Report, pictures: dict[str, bytes], pages: dict[int, int]) -> None:
    s = report.summary
    assert s is not None
    _cover(pdf, report)
    _kpis(pdf, s)
    pdf.set_y(pdf.get_y() + pdf.png(pictures["daily"], pdf.l_margin, pdf.get_y(), pdf.width) + 3)
    half = (pdf.width - 4) / 2
    y = pdf.get_y()
    h = max(pdf.png(pictures["kind"], pdf.l_margin, y, half), pdf.png(pictures["zone"], pdf.l_margin + half + 4, y, half))
    pdf.set_y(y + h + 2)
    pdf.font(7.5, "I", MUTED)
    pdf.multi_cell(pdf.width, 3.6, "Grey bars: the previous period of the same length "
                   f"({report.data.period.previous().label()}). Times are UTC. Incidents count where they "
                   "opened: a violation that persisted long enough under its rule.", align="L",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.add_page()
    pdf.heading("Breakdown", gap=0)
    w = (pdf.width - 6) / 2
    cols = (w * 0.46, w * 0.14, w * 0.16, w * 0.24)
    aligns = ("LEFT", "RIGHT", "RIGHT", "RIGHT")
    y0 = pdf.get_y()
    pdf.table_rows(["Kind", "Now", "Before", "Change"], _count_rows(s.by_kind, charts.kind_label), cols, aligns)
    pdf.ln(3)
    pdf.table_rows(["Camera", "Now", "Before", "Change"], _count_rows(s.by_camera), cols, aligns)
    y_left = pdf.get_y()
    pdf.set_xy(pdf.l_margin + w + 6, y0)
    pdf.set_left_margin(pdf.l_margin + w + 6)
    pdf.table_rows(["Zone", "Now", "Before", "Change"], _count_rows(s.by_zone), cols, aligns)
    pdf.ln(3)
    pdf.table_rows(["State", "Incidents"], [[k.replace("_", " "), str(v)] for k, v in s.by_status.items()],
                   (cols[0], cols[1] + cols[2]), aligns[:2])
    y_right = pdf.get_y()
    pdf.set_left_margin(15)
    pdf.set_xy(pdf.l_margin, max(y_left, y_right) + 2)

    pdf.heading("Incidents in this report", size=11)
    if not report.rows:
        pdf.font(9, "I", MUTED)
        pdf.cell(0, 6, "No incident matches this period and these filters.")
        pdf.font(9)
        return
    rows = [[str(r.id), when(r.opened, seconds=False).replace(" UTC", ""), r.camera or "", r.zone or "\u2014",
             charts.kind_label(r.kind), r.severity or "", r.status.replace("_", " "), str(pages.get(r.id, ""))]
            for r in report.rows]
    widths = (12, 32, 22, 32, 30, 17, 22, 13)
    pdf.table_rows(["#", "Opened (UTC)", "Camera", "Zone", "Kind", "Severity", "State", "Page"], rows, widths,
                   ("RIGHT", "LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "LEFT", "RIGHT"), size=7.5)


@dataclass(frozen=True)
class RenderedPdf:
    data: bytes
    pages: int
    summary_pages: int          # pages before the incident pages (a single-incident report: its record page)


def _charts(s: Summary) -> dict[str, bytes]:
    return {"daily": charts.daily_chart(s), "kind": charts.compare_chart(s.by_kind, "By kind", by_kind=True),
            "zone": charts.compare_chart(s.by_zone, "By zone")}


def layout_pdf(report: Report, progress: Progress = NO_PROGRESS) -> RenderedPdf:
    """The report laid out as PDF, with its page counts."""
    if report.kind == "incident":
        pdf = ReportPDF({**report.meta, "title": TITLES["incident"]})
        (detail,), (row,) = report.data.incidents, report.rows
        record_page(pdf, detail, row)
        incident_page(pdf, detail, row)
        return RenderedPdf(bytes(pdf.output()), pdf.page_no(), 1)
    assert report.summary is not None
    pictures = _charts(report.summary)
    # The index names each incident's page, so lay the summary out once to count its pages (its
    # rows are one line each whatever the numbers: the count does not depend on them).
    probe = ReportPDF({**report.meta, "title": TITLES["period"]})
    _summary_pages(probe, report, pictures, {})
    front = probe.page_no()
    pages = {r.id: front + i + 1 for i, r in enumerate(report.rows)}
    pdf = ReportPDF({**report.meta, "title": TITLES["period"]})
    _summary_pages(pdf, report, pictures, pages)
    with progress.stage("pdf", total=len(report.rows), unit="incident") as stage:
        for detail, row in zip(report.data.incidents, report.rows):
            incident_page(pdf, detail, row)
            stage.advance()
    return RenderedPdf(bytes(pdf.output()), pdf.page_no(), front)


def render_pdf(report: Report, progress: Progress = NO_PROGRESS) -> bytes:
    """The report as PDF bytes (see the module doc)."""
    return layout_pdf(report, progress).data


__all__ = ["TITLES", "RenderedPdf", "layout_pdf", "render_pdf"]
