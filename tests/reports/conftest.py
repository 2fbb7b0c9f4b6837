"""A small site store built with the store's own functions (faster than running the construction
demo): one run, two cameras, stored frames with images and worker / hat boxes, three incidents
(one closed by a safety manager, one a false alarm, one open) and one in the previous week."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.core.site.types import IncidentEvent
from inspector.store import incidents, sessions, users
from inspector.store.db import open_db, transaction
from inspector.store.images import ImageStore
from inspector.store.writer import DecisionRecord, write_record

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)
RUN = "run-1"
CLASSES = ("hat", "vest", "worker")
HEAD = (100, 60, 140, 100)          # the face of the worker in every frame: bright, so leaks show
WORKER = (90, 50, 150, 230)


def frame_image() -> np.ndarray:
    img = np.full((270, 480, 3), 90, np.uint8)
    x0, y0, x1, y1 = HEAD
    img[y0:y1, x0:x1] = np.indices((y1 - y0, x1 - x0)).sum(0)[..., None] * 6 % 255  # detail to redact
    return img


def _record(i: int, camera: str, t: datetime, events=(), kind_rule=("no_hard_hat", "no-hard-hat")) -> DecisionRecord:
    fid = f"{RUN}/{camera}-{i:05d}"
    frame = Frame(fid, "site-1", camera, float(i), t, frame_image(), {"camera": camera, "frame_index": i})
    dets = Detections(np.array([WORKER], np.float32), np.array([0.9], np.float32), np.array([2], np.int32))
    reasons = (Reason(kind_rule[1], Verdict.FAIL, f"{kind_rule[0]}: worker 7 (incident {events[0].key})", (0,)),) \
        if events else ()
    dec = Decision(fid, "fail" if events else "pass", reasons, dets, "ms-1", "cfg-1", t)
    return DecisionRecord(frame, dec, None, RUN, CLASSES, True, incidents=tuple(events))


def _event(kind: str, camera: str, key: str, t: datetime, fid: str, rule: str, zone=None) -> IncidentEvent:
    return IncidentEvent("new", key, 0, camera, 7, kind, rule, "high", zone, t, fid, fid, fid, 0.9,
                         t - timedelta(seconds=3), "", fid)


def build_store(data_dir: Path) -> Path:
    db = data_dir / "inspector.sqlite"
    conn = open_db(db)
    images = ImageStore(data_dir / "images", "png")
    specs = [  # (camera, day offset, kind, rule, zone)
        ("gate", 0, "no_hard_hat", "no-hard-hat", None),
        ("gate", 0, "in_danger_zone", "danger-zone", "crane-swing"),
        ("yard", 1, "no_vest", "no-vest", "yard-ppe-area"),
        ("yard", -5, "no_vest", "no-vest", "yard-ppe-area"),      # the previous period
    ]
    for n, (camera, day, kind, rule, zone) in enumerate(specs):
        t = T0 + timedelta(days=day, minutes=n)
        key = f"{camera}/{RUN}/7/{kind}/{n}"
        rec = _record(n, camera, t, [_event(kind, camera, key, t, f"{RUN}/{camera}-{n:05d}", rule, zone)],
                      (kind, rule))
        sha, rel = images.put(rec.frame.image)
        with transaction(conn):
            write_record(conn, rec, sha, rel)
            incidents.record_evidence(conn, key, clip_path=None, clip_sha256=None,
                                      images={"worst": {"frame_id": rec.frame.frame_id, "sha256": sha,
                                                        "path": f"images/{rel}"}})
    users.add_user(conn, "sam", "safety_manager", "a-long-password-1", actor="test")
    users.add_user(conn, "olga", "operator", "a-long-password-2", actor="test")
    sam = sessions.log_in(conn, "sam", "a-long-password-1")
    incidents.acknowledge(conn, 1, session=sam, t=T0 + timedelta(minutes=10))
    incidents.close(conn, 1, session=sam, note="spoke to the worker", t=T0 + timedelta(minutes=40))
    incidents.mark_false_alarm(conn, 2, session=sam, note="a shadow", t=T0 + timedelta(hours=2))
    conn.close()
    return db


@pytest.fixture
def site_store(tmp_path) -> Path:
    """The database path; its folder is the data folder."""
    return build_store(tmp_path / "data")
