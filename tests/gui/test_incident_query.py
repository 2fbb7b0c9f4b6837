"""gui/models/incident_query.py: evidence paths (the incident's own images, else its frames'), clips on disk."""

from __future__ import annotations

from gui.incident_helpers import add_site_incidents

from inspector.gui.models.incident_query import IncidentFilter, clip_file, evidence_refs, load_evidence, load_incidents


def test_evidence_and_clip_of_a_stored_incident(ctx):
    (iid,) = add_site_incidents(ctx.data_dir, ctx.db_path, [{"camera": "cam-a"}])
    conn = ctx.connect()
    try:
        (row,) = load_incidents(conn, IncidentFilter(camera="cam-a"))
        assert row["id"] == iid and load_incidents(conn, IncidentFilter(camera="nope")) == []
        imgs = load_evidence(conn, row, ctx.images_root, max_side=100)
        assert all(imgs[r] is not None and max(imgs[r].shape[:2]) == 100 for r in ("first", "worst", "last"))
        assert clip_file(row, ctx.data_dir) == ctx.data_dir / row["clip_path"]
        # No evidence recorded: the frames' stored images stand in; none stored: None, not an error.
        bare = {**row, "evidence": {}, "first_frame_id": "nope", "worst_frame_id": None, "last_frame_id": None}
        assert evidence_refs(conn, bare) == {"first": None, "worst": None, "last": None}
        assert load_evidence(conn, bare, ctx.images_root) == {"first": None, "worst": None, "last": None}
        assert clip_file({**row, "clip_path": "clips/gone.mp4"}, ctx.data_dir) is None
        assert clip_file({**row, "clip_path": None}, ctx.data_dir) is None
    finally:
        conn.close()
