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


def test_evidence_recorded_relative_to_the_data_folder_is_found(tmp_path):
    """The station records evidence paths as 'images/ab/..' (relative to the data folder)."""
    import numpy as np

    from inspector.gui.models.incident_query import load_evidence
    from inspector.store.images import ImageStore

    data = tmp_path / "data"
    _sha, rel = ImageStore(data / "images").put(np.full((40, 60, 3), 90, np.uint8))
    row = {"evidence": {"first": {"path": f"images/{rel}"}, "worst": {"path": rel}}, "frame_id": None}
    out = load_evidence(None, row, data / "images")
    assert out["first"] is not None and out["worst"] is not None and out["last"] is None
