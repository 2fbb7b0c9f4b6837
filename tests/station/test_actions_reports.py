"""R2's actions: one incident's evidence exported anonymised (the default), or unredacted by a
safety manager with a reason, audited; refused exports write nothing and no audit row."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers.site_evidence_store import build

from inspector.reports.anonymise import head_coverage
from inspector.station import actions
from inspector.station.actions import PermissionDenied, Session
from inspector.station.actions import reports as ra
from inspector.station.anonymised_evidence import anonymised_images
from inspector.store import audit, incidents, users
from inspector.util.canonical import canonical_json, sha256_text

S: dict[str, Session] = {}  # live log-ins, made by the site fixture
REASON = "police request 2026-114 about the crane incident"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    s = build(tmp_path_factory.mktemp("site"))
    users.add_user(s.conn, "sam", "safety_manager", "pw-sam-123456", actor="admin")
    users.add_user(s.conn, "eve", "engineer", "pw-eve-123456", actor="admin")
    users.add_user(s.conn, "op", "operator", "pw-op-1234567", actor="admin")
    S.update(sm=actions.login(s.conn, "sam", "pw-sam-123456"), eng=actions.login(s.conn, "eve", "pw-eve-123456"),
             op=actions.login(s.conn, "op", "pw-op-1234567"), forged=Session("sam", "safety_manager"))
    yield s
    s.conn.close()


def _audit(conn, action):
    return conn.execute("SELECT actor, entity, entity_id, seq FROM audit WHERE action = ? ORDER BY seq",
                        (action,)).fetchall()


def _nothing_written(out):
    return not out.exists() or not any(out.iterdir())


def test_unredacted_export_copies_the_recorded_evidence_and_is_audited(site, tmp_path):
    out = tmp_path / "out"
    res = ra.export_unredacted(site.conn, S["sm"], site.incident_id, REASON, out, data_dir=site.data_dir)
    inc = incidents.incident(site.conn, site.incident_id)
    assert res.folder == out / f"incident-{site.incident_id}-unredacted" and not res.redacted
    assert sorted(p.name for p in res.folder.iterdir()) == ["clip.mp4", "first.jpg", "last.jpg", "manifest.json",
                                                            "worst.jpg"]
    # the very bytes the incident recorded
    assert res.files["clip.mp4"] == inc["clip_sha256"]
    assert res.files["worst.jpg"] == inc["evidence"]["worst"]["sha256"]
    manifest = json.loads((res.folder / "manifest.json").read_text())
    assert manifest["unredacted"] and manifest["exported_by"] == "sam" and manifest["reason"] == REASON
    rows = _audit(site.conn, ra.EXPORT_UNREDACTED_ACTION)
    assert [(r["actor"], r["entity"], r["entity_id"], r["seq"]) for r in rows][-1] == (
        "sam", ra.EXPORT_ENTITY, str(site.incident_id), res.audit_seq)
    stored = site.conn.execute("SELECT payload_sha256 FROM audit WHERE seq = ?", (res.audit_seq,)).fetchone()[0]
    assert stored == sha256_text(canonical_json(manifest))  # the manifest is what was audited
    assert audit.verify(site.conn).ok
    # never overwrites an earlier export
    with pytest.raises(FileExistsError):
        ra.export_unredacted(site.conn, S["sm"], site.incident_id, REASON, out, data_dir=site.data_dir)


@pytest.mark.parametrize("session, reason, incident, error", [
    ("eng", REASON, None, PermissionDenied),                      # safety managers only
    ("op", REASON, None, PermissionDenied),
    ("forged", REASON, None, PermissionDenied),                   # a hand-made session
    ("sm", "  ", None, ValueError),                               # a reason is required
    ("sm", "because", None, ValueError),                          # ... and a real one
    ("sm", REASON, [1, 2], TypeError),                            # ONE incident
    ("sm", REASON, 999, LookupError),
])
def test_refused_unredacted_exports_write_nothing(site, tmp_path, session, reason, incident, error):
    before = site.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    with pytest.raises(error):
        ra.export_unredacted(site.conn, S[session], site.incident_id if incident is None else incident, reason,
                             tmp_path / "out", data_dir=site.data_dir)
    assert _nothing_written(tmp_path / "out")
    assert site.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before


def test_evidence_changed_on_disk_is_not_exported(site, tmp_path):
    inc = incidents.incident(site.conn, site.incident_id)
    path = site.data_dir / inc["evidence"]["first"]["path"]
    original = path.read_bytes()
    try:
        path.write_bytes(original + b"x")
        with pytest.raises(ValueError, match="sha256"):
            ra.export_unredacted(site.conn, S["sm"], site.incident_id, REASON, tmp_path / "out", data_dir=site.data_dir)
        assert _nothing_written(tmp_path / "out")
    finally:
        path.write_bytes(original)


def test_default_export_is_anonymised_and_no_head_leaves(site, tmp_path):
    res = ra.export_evidence(site.conn, S["sm"], site.incident_id, tmp_path / "out", data_dir=site.data_dir)
    assert res.redacted and sorted(res.files) == ["clip.mp4", "first.jpg", "last.jpg", "worst.jpg"]
    assert _audit(site.conn, ra.EXPORT_EVIDENCE_ACTION)[-1]["seq"] == res.audit_seq
    inc = incidents.incident(site.conn, site.incident_id)
    for a in anonymised_images(site.conn, site.data_dir, site.incident_id):
        exported = cv2.imread(str(res.folder / f"{a.role}.jpg")).astype(int)
        stored = cv2.imread(str(site.data_dir / inc["evidence"][a.role]["path"])).astype(int)
        heads = site.heads(a.frame_id)
        assert (head_coverage(heads, a.boxes, (exported.shape[1], exported.shape[0])) >= 1).all()
        # pixels: the exported file is the redacted image (up to JPEG), not the stored one
        for x0, y0, x1, y1 in np.floor(heads).astype(int):
            head_now = exported[y0:y1 + 1, x0:x1 + 1]
            assert np.abs(head_now - a.image[y0:y1 + 1, x0:x1 + 1]).mean() < 4
        assert np.abs(exported - stored).max() > 40  # and the heads did change
    assert audit.verify(site.conn).ok


def test_viewers_may_not_export_evidence(site, tmp_path):
    with pytest.raises(PermissionDenied):
        ra.export_evidence(site.conn, S["eng"], site.incident_id, tmp_path / "out", data_dir=site.data_dir)
    assert _nothing_written(tmp_path / "out")


def test_a_hand_made_session_exports_no_evidence(site, tmp_path):
    before = site.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    with pytest.raises(PermissionDenied, match="not logged in"):
        ra.export_evidence(site.conn, S["forged"], site.incident_id, tmp_path / "out", data_dir=site.data_dir)
    assert _nothing_written(tmp_path / "out")
    assert site.conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before
