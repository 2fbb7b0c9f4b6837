"""Scheduled reports through the file drop: the folder gets the report's own bytes."""

from __future__ import annotations

import base64
import json

from inspector.mes.filedrop import FileDropTransport
from inspector.mes.outbox import KINDS, OutboxRow


def _row(kind: str, body: dict, meta: dict) -> OutboxRow:
    return OutboxRow(id=7, transport="drop", key="st/report/daily-2026-12-03", stream="st/reports", kind=kind,
                     body=json.dumps(body), meta=meta, created="2026-12-04T06:00:00+00:00", attempts=0)


def test_a_report_lands_as_its_own_file_and_other_kinds_as_json(tmp_path):
    assert "report" in KINDS
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"
    drop = FileDropTransport("drop", tmp_path)
    rows = [_row("report", {"kind": "report", "content_base64": base64.b64encode(pdf).decode()},
                 {"file": "incidents-2026-12-03.pdf"}),
            _row("incident.new", {"kind": "incident.new", "key": "k"}, {})]
    assert drop.deliver(rows).delivered == 2
    assert (tmp_path / "incidents-2026-12-03.pdf").read_bytes() == pdf
    (json_file,) = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    assert json.loads(json_file.read_text())["kind"] == "incident.new"
