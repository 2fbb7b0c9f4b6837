"""Reads behind the incidents view (plain Python, no Qt): the filtered list, the filter choices,
and where an incident's evidence frames and clip lie on disk.

Each function takes its own connection: the view calls them on a worker thread
(:mod:`inspector.gui.background`), where the GUI thread's connection must not be used.
Rows are :func:`inspector.store.incidents.incidents` dicts (every column, ``evidence`` parsed;
the automatic-incident columns are None on manual incidents).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.store import incidents as store_incidents

STATES = store_incidents.STATUSES
EVIDENCE = ("first", "worst", "last")
MAX_ROWS = 2000  # newest first; a site keeps months: filters narrow, the list never loads them all


@dataclass(frozen=True)
class IncidentFilter:
    camera: str | None = None
    kind: str | None = None
    status: str | tuple[str, ...] | None = None   # one state, or any of several
    limit: int = MAX_ROWS
    zone: str | None = None
    since: datetime | None = None                  # opened at or after (UTC)
    until: datetime | None = None                  # opened before (UTC)

    def with_(self, **kw: Any) -> IncidentFilter:
        return replace(self, **kw)


def load_incidents(conn: sqlite3.Connection, flt: IncidentFilter) -> list[dict[str, Any]]:
    """Incidents matching ``flt``, newest opened first (the store's read, every column)."""
    return store_incidents.incidents(conn, camera=flt.camera, kind=flt.kind, status=flt.status, zone=flt.zone,
                                     since=flt.since, until=flt.until, limit=flt.limit, newest_first=True)


def parse_when(text: str, *, end: bool = False) -> datetime | None:
    """A typed date or time as UTC: '2025-03-01' (a whole day: its start, or with ``end`` the next
    midnight, so 'to 2025-03-07' includes the 7th) or an ISO time; '' is None. Raises ValueError."""
    text = text.strip()
    if not text:
        return None
    if len(text) == 10:  # a date alone
        day = datetime.strptime(text, "%Y-%m-%d").date() + timedelta(days=1 if end else 0)
        return datetime.combine(day, time(0, 0), tzinfo=timezone.utc)
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def load_incident(conn: sqlite3.Connection, incident_id: int) -> dict[str, Any] | None:
    return store_incidents.incident(conn, int(incident_id))


def choices(conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Distinct cameras, kinds and zones in the store (the filter combos' items)."""
    out = {}
    for col in ("camera", "kind", "zone"):
        out[col] = [r[0] for r in conn.execute(
            f"SELECT DISTINCT {col} FROM incidents WHERE {col} IS NOT NULL ORDER BY {col}")]
    return out


def _evidence_ref(value: Any) -> str | None:
    """An evidence entry as stored: a relative image path, or a dict holding one."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for k in ("image_path", "path", "rel"):
            if isinstance(value.get(k), str) and value[k]:
                return value[k]
    return None


def evidence_refs(conn: sqlite3.Connection, row: dict[str, Any]) -> dict[str, str | None]:
    """first / worst / last -> image path relative to the image store (None when not stored).

    The incident's own evidence images come first; else the stored image of the frame it names.
    """
    stored = row.get("evidence") or {}
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            stored = {}
    out: dict[str, str | None] = {}
    for which in EVIDENCE:
        ref = _evidence_ref(stored.get(which)) if isinstance(stored, dict) else None
        fid = row.get(f"{which}_frame_id") or (row.get("frame_id") if which == "worst" else None)
        if ref is None and fid:
            r = conn.execute("SELECT image_path FROM frames WHERE id = ?", (fid,)).fetchone()
            ref = r[0] if r and r[0] else None
        out[which] = ref
    return out


def load_evidence(conn: sqlite3.Connection, row: dict[str, Any], images_root: Path,
                  max_side: int = 480) -> dict[str, np.ndarray | None]:
    """first / worst / last images, shrunk to ``max_side`` (thumbnails; a missing file is None)."""
    out: dict[str, np.ndarray | None] = {}
    cache: dict[str, np.ndarray | None] = {}
    for which, ref in evidence_refs(conn, row).items():
        if ref is None:
            out[which] = None
            continue
        if ref not in cache:
            cache[ref] = _read_small(_image_file(images_root, ref), max_side)
        out[which] = cache[ref]
    return out


def _image_file(images_root: Path, ref: str) -> Path:
    """An evidence path as the station records it (relative to the data folder: 'images/ab/...'),
    or as older rows and the frames table do (relative to the image store)."""
    in_data = images_root.parent / ref
    return in_data if in_data.is_file() else images_root / ref


def _read_small(path: Path, max_side: int) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    h, w = img.shape[:2]
    s = max_side / max(h, w)
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return img


def clip_file(row: dict[str, Any], data_dir: Path) -> Path | None:
    """The incident's clip on disk (``clip_path`` is relative to the data folder), if it exists."""
    rel = row.get("clip_path")
    if not rel:
        return None
    p = Path(rel)
    p = p if p.is_absolute() else data_dir / p
    return p if p.exists() else None
