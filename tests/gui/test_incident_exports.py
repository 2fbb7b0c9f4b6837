"""gui/models/incident_exports.py: file names, and the exports through the real, audited actions
(``inspector.station.actions.reports``) the way the incidents view's worker runs them."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from gui.incident_helpers import add_site_incidents

from inspector.gui.models.incident_exports import ExportRequest, out_path, run_export
from inspector.gui.models.incident_query import IncidentFilter
from inspector.store.audit import verify

NOW = datetime(2025, 3, 9, 12, 0, tzinfo=timezone.utc)


def test_names_say_what_an_export_holds(tmp_path):
    flt = IncidentFilter(camera="gate", zone="crane swing", status="open",
                         since=datetime(2025, 3, 1, tzinfo=timezone.utc), until=datetime(2025, 3, 8, tzinfo=timezone.utc))
    assert out_path(tmp_path, "period_pdf", flt=flt, now=NOW).name == \
        "incidents_20250301_20250308_gate_crane-swing_open_20250309T120000Z.pdf"
    assert out_path(tmp_path, "period_csv", now=NOW).name == "incidents_start_now_20250309T120000Z.csv"
    assert out_path(tmp_path, "incident_pdf", incident_id=7, now=NOW).name == "incident-7_20250309T120000Z.pdf"
    u = out_path(tmp_path, "unredacted", incident_id=7, now=NOW)
    assert u.parent == tmp_path / "reports" / "exports" and u.name.startswith("UNREDACTED-incident-7")


def _as_the_station_records(ctx, iid):
    """Evidence paths relative to the data folder ('images/..'), as station/evidence.py writes them
    (the helper writes them relative to the image store)."""
    from inspector.store import incidents as store_incidents
    from inspector.store.db import transaction

    conn = ctx.connect()
    try:
        row = store_incidents.incident(conn, iid)
        images = {role: {**ev, "path": f"images/{ev['path']}"} for role, ev in row["evidence"].items()}
        with transaction(conn):
            store_incidents.record_evidence(conn, row["key"], clip_path=row["clip_path"], clip_sha256=None,
                                            images=images)
    finally:
        conn.close()


def test_an_unredacted_export_is_written_and_audited(ctx, sessions):
    (iid,) = add_site_incidents(ctx.data_dir, ctx.db_path, [{"camera": "cam-a"}])
    _as_the_station_records(ctx, iid)
    req = ExportRequest("unredacted", ctx.db_path, ctx.data_dir, sessions["safety_manager"],
                        out_path(ctx.data_dir, "unredacted", incident_id=iid), incident_id=iid,
                        reason="insurer asked for the original footage")
    result = run_export(req)
    folder = req.out / f"incident-{iid}-unredacted"
    assert result["out"] == str(folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["exported_by"] == "safety" and manifest["reason"].startswith("insurer")
    assert set(result["files"]) == {"first.png", "worst.png", "last.png", "clip.mp4"}
    conn = ctx.connect()
    try:
        row = conn.execute("SELECT actor, action FROM audit WHERE entity_id = ? AND action LIKE '%unredacted%'",
                           (str(iid),)).fetchone()
        assert tuple(row) == ("safety", "incident.export_unredacted") and verify(conn).ok
    finally:
        conn.close()


def test_an_engineer_is_refused_underneath_the_view(ctx, sessions):
    from inspector.station.actions import PermissionDenied

    (iid,) = add_site_incidents(ctx.data_dir, ctx.db_path, [{"camera": "cam-a"}])
    req = ExportRequest("unredacted", ctx.db_path, ctx.data_dir, sessions["engineer"],
                        out_path(ctx.data_dir, "unredacted", incident_id=iid), incident_id=iid,
                        reason="curiosity, not a reason")
    with pytest.raises(PermissionDenied):
        run_export(req)
    assert not any(req.out.iterdir())


def test_a_period_csv_of_the_filter_and_an_incident_pdf_through_the_audited_action(ctx, sessions):
    from inspector.reports import read_csv

    ids = add_site_incidents(ctx.data_dir, ctx.db_path, [{"camera": "cam-a"}, {"camera": "cam-b", "kind": "no_vest"}])
    for iid in ids:
        _as_the_station_records(ctx, iid)
    flt = IncidentFilter(camera="cam-b")
    req = ExportRequest("period_csv", ctx.db_path, ctx.data_dir, sessions["safety_manager"],
                        out_path(ctx.data_dir, "period_csv", flt=flt), filter=flt)
    result = run_export(req)
    rows = read_csv(req.out.read_text(encoding="utf-8"))
    assert result["out"] == str(req.out) and result["incidents"] == 1 and len(rows) == 1
    one = ExportRequest("incident_pdf", ctx.db_path, ctx.data_dir, sessions["safety_manager"],
                        out_path(ctx.data_dir, "incident_pdf", incident_id=ids[0]), incident_id=ids[0])
    pdf = run_export(one)
    assert one.out.read_bytes()[:5] == b"%PDF-" and pdf["pages"] >= 1
    conn = ctx.connect()
    try:
        actors = [r[0] for r in conn.execute("SELECT actor FROM audit WHERE action = 'report.generate'")]
        assert actors == ["safety", "safety"] and verify(conn).ok
    finally:
        conn.close()
