"""Helpers for the GUI tests: a store filled fast with raw SQL, images, screenshots."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from inspector.store.db import open_db, transaction

DEMO_CLASSES = ("particle", "scratch", "residue", "pattern", "edge_chip")


def fill_store(db_path: Path, n: int, *, verdicts=("fail", "review", "pass"), lot="L1", wafer="W1",
               images: dict[int, str] | None = None, boxes: bool = True, run_id: str = "run-test",
               dies: list[tuple[int, int, str]] | None = None, t0: datetime | None = None) -> list[str]:
    """``n`` frames with decisions (and one kept box each) in one transaction; returns frame ids.

    ``dies``: (x, y, verdict) per frame instead of the verdict cycle (wafer maps)."""
    conn = open_db(db_path)
    t0 = t0 or datetime(2025, 1, 1, tzinfo=timezone.utc)
    ids, frames, decisions, dets = [], [], [], []
    for i in range(n):
        fid = f"{run_id}/f{i:06d}"
        ids.append(fid)
        t = (t0 + timedelta(seconds=i)).isoformat(timespec="microseconds").replace("+00:00", "Z")
        if dies is not None:
            dx, dy, v = dies[i]
        else:
            dx, dy, v = i % 9 - 4, i // 9 % 9 - 4, verdicts[i % len(verdicts)]
        img = (images or {}).get(i)
        ctx = {"lot": lot, "wafer": wafer, "die_x": dx, "die_y": dy}
        frames.append((fid, run_id, "wafer-demo", "synthetic", t, None, img, 320, 320, json.dumps(ctx), lot, wafer,
                       dx, dy, None, None))
        reasons = json.dumps([{"rule_id": "any-defect", "verdict": v, "message": "m", "detection_indices": [0]}]
                             if v != "pass" else [])
        decisions.append((fid, v, reasons, "ms-test", "cfg", t, None, "{}"))
        if boxes and v != "pass":
            c = i % len(DEMO_CLASSES)
            dets.append((fid, -1, 0, 100.0, 120.0, 140.0, 150.0, 0.8, c, DEMO_CLASSES[c], 1))
    with transaction(conn):
        conn.execute("INSERT OR IGNORE INTO stations (id, created) VALUES ('wafer-demo', 'now')")
        conn.execute("INSERT OR IGNORE INTO runs (id, station_id, started) VALUES (?, 'wafer-demo', 'now')",
                     (run_id,))
        conn.executemany("INSERT INTO frames (id, run_id, station_id, source, t_utc, image_sha256, image_path, width,"
                         " height, context, lot, wafer, die_x, die_y, camera, zone)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", frames)
        conn.executemany("INSERT INTO decisions (frame_id, verdict, reasons, model_set_version, config_hash,"
                         " t_decided, error, extras) VALUES (?,?,?,?,?,?,?,?)", decisions)
        conn.executemany("INSERT INTO detections (frame_id, model_index, idx, x0, y0, x1, y1, score, class_id,"
                         " class_name, support) VALUES (?,?,?,?,?,?,?,?,?,?,?)", dets)
    conn.close()
    return ids


def put_image(root: Path, seed: int = 0) -> str:
    from inspector.store.images import ImageStore

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (320, 320, 3), dtype=np.uint8)
    img[120:150, 100:140] = (0, 0, 255)
    return ImageStore(root).put(img)[1]


def save_shot(widget, folder: Path, name: str) -> Path:
    """Grab a widget to PNG; check it is non-empty and not a blank window (pixel variance)."""
    from PySide6.QtGui import QImage

    widget.repaint()
    path = folder / f"{name}.png"
    assert widget.grab().save(str(path)), path
    img = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert path.stat().st_size > 0 and img.width() > 0
    ptr = img.constBits()
    arr = np.frombuffer(ptr, np.uint8, img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    assert float(arr[:, : img.width() * 3].std()) > 5.0, f"{name}: screenshot looks blank"
    return path
