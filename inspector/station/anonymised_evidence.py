"""An incident's evidence as it may leave the station: images and clip with every worker's head
redacted (``inspector.reports.anonymise``), the boxes taken from the store.

Evidence images: each is a stored frame, so its boxes are that frame's stored detections (every
ensemble member's and the kept set, workers and hard hats: a box dropped by fusion is still a
person). Clip frames: a clip holds no frame ids, so :func:`clip_frame_ids` rebuilds which stored
frames it holds by replaying the evidence recorder's sampling (``inspector.station.evidence``:
every frame the recorder saw is stored; one is sampled when at least 1 / ``clip_fps`` after the
last; the clip starts with the sampled frames of the last ``pre_s`` before the incident opened).
Each image and clip frame is redacted with the boxes of its frame and of ``neighbours`` stored
frames of the camera either side (default 1): a worker the model missed in one frame is covered
where it found it in the next, and a clip frame mapped one frame off still has its heads covered.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from inspector.config.schema.site import EvidenceConfig, SiteClasses
from inspector.reports.anonymise import ClipResult, Method, anonymise_clip, anonymise_frame
from inspector.store.clips import probe
from inspector.store.images import ImageStore

log = logging.getLogger(__name__)


class EvidenceUnavailable(LookupError):
    """The incident has no such evidence stored, or its frames cannot be matched."""


@dataclass(frozen=True)
class AnonymisedImage:
    """One evidence image with its heads redacted, and the boxes redacted."""

    role: str
    frame_id: str
    image: np.ndarray
    boxes: np.ndarray


def _site(conn: sqlite3.Connection, config_hash: str | None) -> tuple[SiteClasses, EvidenceConfig]:
    """The incident's own site classes and evidence settings (defaults when its config is not stored)."""
    row = conn.execute("SELECT text FROM configs WHERE hash = ?", (config_hash,)).fetchone() if config_hash else None
    if row is not None:
        try:
            from inspector.config import load_config_text

            site = load_config_text(row[0], f"config {str(config_hash)[:12]}").site
            if site is not None:
                return site.classes, site.evidence
        except Exception as e:  # noqa: BLE001 - an old config still leaves the defaults
            log.warning("config %s does not load (%s); default site classes and evidence", str(config_hash)[:12], e)
    return SiteClasses(), EvidenceConfig()


def stored_boxes(conn: sqlite3.Connection, frame_id: str, classes: SiteClasses | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(worker boxes, hard-hat boxes) stored for a frame, over every model and the kept set."""
    classes = classes or SiteClasses()
    rows = conn.execute("SELECT x0, y0, x1, y1, class_name FROM detections WHERE frame_id = ? AND class_name IN (?, ?)",
                        (frame_id, classes.worker, classes.hat)).fetchall()
    workers = np.array([r[:4] for r in rows if r[4] == classes.worker], np.float64).reshape(-1, 4)
    hats = np.array([r[:4] for r in rows if r[4] == classes.hat], np.float64).reshape(-1, 4)
    return workers, hats


def _incident(conn: sqlite3.Connection, incident: int | Mapping[str, Any]) -> Mapping[str, Any]:
    if isinstance(incident, Mapping):
        return incident
    from inspector.store import incidents

    found = incidents.incident(conn, int(incident))
    if found is None:
        raise EvidenceUnavailable(f"incident {incident} does not exist")
    return found


def _frame_time(context: str, t_utc: str) -> float:
    t = json.loads(context or "{}").get("t_video_s")
    return float(t) if t is not None else datetime.fromisoformat(t_utc).timestamp()


def camera_frames(conn: sqlite3.Connection, run_id: str | None, camera: str | None) -> list[tuple[float, str]]:
    """(time, frame id) of every stored frame of one camera in one run, in time order (the video
    time of the frame when it has one, else its capture time)."""
    rows = conn.execute("SELECT id, context, t_utc FROM frames WHERE run_id = ? AND camera = ?",
                        (run_id, camera)).fetchall()
    return sorted(((_frame_time(c, t), fid) for fid, c, t in rows), key=lambda x: x[0])


def _near(ids: list[str], i: int, neighbours: int) -> list[str]:
    return ids[max(0, i - neighbours): i + neighbours + 1]


def _union(conn: sqlite3.Connection, frame_ids: list[str], classes: SiteClasses) -> tuple[np.ndarray, np.ndarray]:
    got = [stored_boxes(conn, fid, classes) for fid in frame_ids]
    return (np.concatenate([w for w, _ in got] or [np.zeros((0, 4))], axis=0),
            np.concatenate([h for _, h in got] or [np.zeros((0, 4))], axis=0))


def anonymised_images(conn: sqlite3.Connection, data_dir: str | Path, incident: int | Mapping[str, Any], *,
                      neighbours: int = 1, method: Method = "pixelate") -> list[AnonymisedImage]:
    """The incident's stored evidence images (first / worst / last, those with a file), redacted
    with the boxes of their frame and of ``neighbours`` stored frames of the camera either side (a
    worker the model missed in that frame is still covered where it found it in the next)."""
    inc = _incident(conn, incident)
    classes, _ = _site(conn, inc.get("config_hash"))
    store = ImageStore(Path(data_dir))
    ids = [fid for _, fid in camera_frames(conn, inc.get("run_id"), inc.get("camera"))] if neighbours else []
    out = []
    for role in ("first", "worst", "last"):
        ev = (inc.get("evidence") or {}).get(role)
        if not ev or not ev.get("path"):
            continue
        image = store.load(ev["path"])
        fid = ev["frame_id"]
        near = _near(ids, ids.index(fid), neighbours) if fid in ids else [fid]
        workers, hats = _union(conn, near, classes)
        red, boxes = anonymise_frame(image, workers, hat_boxes=hats, method=method)
        out.append(AnonymisedImage(role, fid, red, boxes))
    return out


def clip_frame_ids(conn: sqlite3.Connection, incident: int | Mapping[str, Any], n_frames: int | None = None,
                   evidence: EvidenceConfig | None = None) -> list[str]:
    """The stored frame behind each frame of the incident's clip, in clip order (see the module doc).

    ``n_frames`` is the clip's frame count (all sampled frames from the clip's start when None).
    The replay is checked at both ends: the clip must also stop where the recorder stops one (the
    first sampled frame ``post_s`` after the incident ended, or ``max_clip_s`` after the clip
    began, or the run's last frame). Raises :class:`EvidenceUnavailable` when the stored frames
    cannot account for the clip (frames missing, other evidence settings than the stored config's)."""
    inc = _incident(conn, incident)
    if not inc.get("run_id") or not inc.get("frame_id"):
        raise EvidenceUnavailable(f"incident {inc.get('id')} is not an automatic one with a run and frame")
    if evidence is None:
        evidence = _site(conn, inc.get("config_hash"))[1]
    frames = camera_frames(conn, inc["run_id"], inc["camera"])
    sampled: list[tuple[float, str]] = []
    for t, fid in frames:  # the recorder's rule (EvidenceRecorder._sample)
        if not sampled or t - sampled[-1][0] >= 1.0 / evidence.clip_fps - 1e-6:
            sampled.append((t, fid))
    opened = next((i for i, (_, fid) in enumerate(sampled) if fid == inc["frame_id"]), None)
    if opened is None:
        raise EvidenceUnavailable(f"incident {inc['id']}: the frame that opened it is not among the sampled frames")
    t_open = sampled[opened][0]
    start = opened
    while start > 0 and t_open - sampled[start - 1][0] <= evidence.pre_s:
        start -= 1
    ids = [fid for _, fid in sampled[start:]]
    if n_frames is None:
        return ids
    expected = _clip_length(conn, inc, sampled, start, evidence)
    if expected != n_frames:
        raise EvidenceUnavailable(f"incident {inc['id']}: the clip has {n_frames} frames, the stored frames account "
                                  f"for {expected}; its frames cannot be matched")
    return ids[:n_frames]


def _clip_length(conn: sqlite3.Connection, inc: Mapping[str, Any], sampled: list[tuple[float, str]], start: int,
                 evidence: EvidenceConfig) -> int:
    """How many frames the recorder put in the clip starting at ``sampled[start]``."""
    t_end = None
    if inc.get("ended"):  # the frame of the end event carries the incident's end time
        row = conn.execute("SELECT id, context, t_utc FROM frames WHERE run_id = ? AND camera = ? AND t_utc = ?",
                           (inc["run_id"], inc["camera"], inc["ended"])).fetchone()
        t_end = None if row is None else _frame_time(row[1], row[2])
    t_start = sampled[start][0]
    for j in range(start, len(sampled)):
        t = sampled[j][0]
        if t - t_start >= evidence.max_clip_s or (t_end is not None and t >= t_end + evidence.post_s):
            return j - start + 1
    return len(sampled) - start  # the run ended first


def anonymised_clip(conn: sqlite3.Connection, data_dir: str | Path, incident: int | Mapping[str, Any],
                    dst: str | Path, *, neighbours: int = 1, method: Method = "pixelate") -> ClipResult:
    """Write the incident's clip to ``dst`` with every worker's head redacted (see the module doc)."""
    inc = _incident(conn, incident)
    if not inc.get("clip_path"):
        raise EvidenceUnavailable(f"incident {inc.get('id')} has no clip")
    src = Path(data_dir) / inc["clip_path"]
    classes, evidence = _site(conn, inc.get("config_hash"))
    n = probe(src)[0]
    ids = clip_frame_ids(conn, inc, n, evidence)
    workers, hats = [], []
    for i in range(n):
        w, h = _union(conn, _near(ids, i, neighbours), classes)
        workers.append(w)
        hats.append(h)
    return anonymise_clip(src, dst, workers, hat_boxes_per_frame=hats, method=method)


__all__ = ["AnonymisedImage", "EvidenceUnavailable", "anonymised_clip", "anonymised_images", "camera_frames",
           "clip_frame_ids", "stored_boxes"]
