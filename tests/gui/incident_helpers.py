"""Helpers for the incidents tests: automatic incidents stored the way the station stores them
(``inspector.store.incidents``), with evidence images and an MP4 clip."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from inspector.core.site.types import IncidentEvent
from inspector.store import incidents as store_incidents
from inspector.store.db import open_db, transaction
from inspector.store.images import ImageStore

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)


def site_image(i: int, w: int = 320, h: int = 180) -> np.ndarray:
    """A small site-like frame: earth, sky, and a worker that moves with ``i``."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (70, 110, 140)
    img[: h // 3] = (200, 170, 120)
    x = 20 + (i * 7) % (w - 60)
    img[h // 3: h // 3 + 90, x: x + 24] = (40, 140, 240)       # an orange vest-ish body
    img[h // 3 - 14: h // 3, x + 4: x + 20] = (150, 180, 210)  # the head, no hat
    return img


def write_clip(path: Path, frames: int = 20, fps: float = 10.0, size=(320, 180)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert vw.isOpened()
    for i in range(frames):
        vw.write(site_image(i, *size))
    vw.release()
    return path


def add_site_incidents(data_dir: Path, db_path: Path, specs: list[dict], *, clip_frames: int = 20) -> list[int]:
    """One automatic incident per spec (camera, kind, track_id, zone; ``clip``: write one; ``ended``),
    opened a minute apart; returns their ids in the order given."""
    images = ImageStore(data_dir / "images")
    conn = open_db(db_path)
    ids = []
    try:
        for n, spec in enumerate(specs):
            cam, kind, track = spec.get("camera", "cam-a"), spec.get("kind", "no_hard_hat"), spec.get("track_id", n)
            t = T0 + timedelta(minutes=n)
            key = f"{cam}/run-1/{track}/{kind}/{n}"
            ev = IncidentEvent("new", key, 0, cam, track, kind, f"rule-{kind}", spec.get("severity", "high"),
                               spec.get("zone"), t, f"run-1/{cam}/f{n}0", f"run-1/{cam}/f{n}0", f"run-1/{cam}/f{n}5",
                               0.9, t - timedelta(seconds=2))
            evidence = {}
            for k, role in enumerate(("first", "worst", "last")):
                sha, rel = images.put(site_image(n * 3 + k))
                evidence[role] = {"frame_id": f"run-1/{cam}/f{n}{k}", "sha256": sha, "path": rel}
            clip_rel = None
            if spec.get("clip", True):
                clip_rel = f"clips/{cam}-{n}.mp4"
                write_clip(data_dir / clip_rel, clip_frames)
            with transaction(conn):
                store_incidents.apply_event(conn, ev, run_id="run-1")
                if spec.get("ended"):
                    end = IncidentEvent("end", key, 1, cam, track, kind, ev.rule_id, ev.severity, ev.zone,
                                        t + timedelta(seconds=9), f"run-1/{cam}/f{n}9", ev.first_frame_id,
                                        ev.worst_frame_id, 0.9, ev.started_utc, "cleared")
                    store_incidents.apply_event(conn, end, run_id="run-1")
                store_incidents.record_evidence(conn, key, clip_path=clip_rel, clip_sha256=None, images=evidence)
            ids.append(int(store_incidents.incident(conn, key=key)["id"]))
    finally:
        conn.close()
    return ids
