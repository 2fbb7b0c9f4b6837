"""Content-addressed images (atomic, idempotent, PNG lossless) and evidence-preserving retention."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.store.audit import verify
from inspector.store.db import open_db, transaction
from inspector.store.images import ImageStore, retention
from inspector.store.queries import add_incident, add_review
from inspector.store.writer import DecisionRecord, write_record

from helpers.sessions import logged_in

T0 = datetime(2026, 2, 1, tzinfo=timezone.utc)


def test_png_is_lossless_and_content_addressed(tmp_path):
    store = ImageStore(tmp_path / "img")
    rng = np.random.default_rng(0)
    for image in (rng.integers(0, 256, (31, 17, 3), dtype=np.uint8), rng.integers(0, 256, (9, 5), dtype=np.uint8),
                  rng.integers(0, 65536, (6, 7), dtype=np.uint16)):
        sha, rel = store.put(image)
        path = tmp_path / "img" / rel
        assert rel == f"{sha[:2]}/{sha[2:4]}/{sha}.png" and path.is_file()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha  # sha256sum checks a file against the db
        back = store.load(rel)
        assert back.dtype == image.dtype and np.array_equal(back, image)


def test_put_is_idempotent_and_leaves_no_temporary_files(tmp_path):
    store = ImageStore(tmp_path)
    image = np.arange(64, dtype=np.uint8).reshape(8, 8)
    first = store.put(image)
    mtime = (tmp_path / first[1]).stat().st_mtime_ns
    assert store.put(image.copy()) == first
    assert (tmp_path / first[1]).stat().st_mtime_ns == mtime  # not rewritten
    assert store.put(image + 1) != first
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 2 and not any(p.name.startswith(".tmp") for p in files)


def test_jpeg_store_and_bad_arguments(tmp_path):
    store = ImageStore(tmp_path, fmt="jpeg", jpeg_quality=80)
    image = np.full((16, 16, 3), 120, np.uint8)
    sha, rel = store.put(image)
    assert rel.endswith(f"{sha}.jpg") and store.load(rel).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="png' or 'jpeg"):
        ImageStore(tmp_path, fmt="bmp")
    with pytest.raises(ValueError, match="1..100"):
        ImageStore(tmp_path, fmt="jpeg", jpeg_quality=0)
    with pytest.raises(ValueError, match="uint8"):
        store.put(np.zeros((4, 4), np.float32))


# --- retention --------------------------------------------------------------------------------


def _record(fid: str, verdict: str, t: datetime, pixel: int) -> DecisionRecord:
    frame = Frame(fid, "st", "cam", 0.0, t, np.full((6, 6), pixel, np.uint8), {"camera": "c1", "zone": "z1"})
    reasons = () if verdict == "pass" else (Reason("r", Verdict(verdict), "why"),)
    return DecisionRecord(frame, Decision(fid, verdict, reasons, Detections.empty(), "ms", "cfg", t), None, "run", ())


# frame id, verdict, age in days, pixel value (same value = same image file)
FRAMES = [
    ("old-pass", "pass", 40, 1),          # pruned
    ("old-pass-2", "pass", 40, 2),        # pruned
    ("old-fail", "fail", 40, 3),          # kept: flagged
    ("old-review", "review", 40, 4),      # kept
    ("old-error", "error", 40, 5),        # kept
    ("old-noinsp", "not_inspected", 40, 6),  # kept
    ("old-reviewed", "pass", 40, 7),      # kept: an operator reviewed it
    ("old-incident", "pass", 40, 8),      # kept: cited by an incident
    ("old-shares-fail", "pass", 40, 3),   # same image as old-fail: its file must stay
    ("old-shares-new", "pass", 40, 9),    # same image as new-pass: its file must stay
    ("new-pass", "pass", 1, 9),           # newer than the cutoff
    ("twin-a", "pass", 40, 10),           # two prunable frames, one file: deleted once
    ("twin-b", "pass", 40, 10),
]


@pytest.fixture
def populated(tmp_path):
    images = ImageStore(tmp_path / "images")
    conn = open_db(tmp_path / "s.sqlite")
    now = T0 + timedelta(days=60)
    for fid, verdict, age, pixel in FRAMES:
        rec = _record(fid, verdict, now - timedelta(days=age), pixel)
        sha, rel = images.put(rec.frame.image)
        with transaction(conn):
            write_record(conn, rec, sha, rel)
    add_review(conn, "old-reviewed", logged_in(conn, "operator", "ann"), "accept")
    add_incident(conn, "old-incident", "near_miss", session=logged_in(conn, "safety_manager", "sam"))
    return conn, images, now


def _path(conn, images, fid):
    return images.path(conn.execute("SELECT image_path FROM frames WHERE id = ?", (fid,)).fetchone()[0])


def test_retention_deletes_only_images_nobody_needs(populated):
    conn, images, now = populated
    paths = {fid: _path(conn, images, fid) for fid, *_ in FRAMES}
    report = retention(conn, images.root, now - timedelta(days=30))

    pruned = {r[0] for r in conn.execute("SELECT id FROM frames WHERE image_pruned = 1")}
    assert pruned == {"old-pass", "old-pass-2", "twin-a", "twin-b"}
    for fid, *_ in FRAMES:
        assert paths[fid].exists() == (fid not in pruned), fid
    assert (report.frames_pruned, report.files_deleted, report.files_missing) == (4, 3, 0)
    assert report.frames_kept_needed == 6 and report.files_kept_shared == 2
    assert report.bytes_freed > 0
    assert verify(conn).ok  # retention is audited and does not disturb the chain
    assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'images.prune'").fetchone()[0] == 1


def test_retention_runs_again_without_harm(populated):
    conn, images, now = populated
    retention(conn, images.root, now - timedelta(days=30))
    again = retention(conn, images.root, now - timedelta(days=30))
    assert (again.frames_pruned, again.files_deleted) == (0, 0)
    later = retention(conn, images.root, now)  # the cutoff moves past new-pass: now old-shares-new goes too
    assert later.frames_pruned == 2 and later.files_deleted == 1
    assert not _path(conn, images, "new-pass").exists() and _path(conn, images, "old-fail").exists()


def test_retention_counts_files_already_gone(populated):
    conn, images, now = populated
    _path(conn, images, "old-pass").unlink()
    report = retention(conn, images.root, now - timedelta(days=30))
    assert report.files_missing == 1 and report.files_deleted == 2 and report.frames_pruned == 4
