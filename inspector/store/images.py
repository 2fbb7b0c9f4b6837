"""Content-addressed frame images, and the retention that prunes old ones without losing evidence.

Files live at ``root/ab/cd/<sha256>.<ext>`` where the sha256 is that of the encoded file bytes
(so ``sha256sum`` verifies a file against the database). The same image is stored once.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from inspector.store import audit
from inspector.store.db import transaction
from inspector.util.atomic import PRIVATE_FILE, fsync_dir, make_private_dirs, write_bytes_atomic
from inspector.util.canonical import iso_utc

log = logging.getLogger(__name__)

_EXT = {"png": ".png", "jpeg": ".jpg"}


class ImageStore:
    """Writes images atomically (``write_bytes_atomic``: tmp + fsync + os.replace, then the folder is
    fsynced) under ``root``; PNG is lossless."""

    def __init__(self, root: str | Path, fmt: str = "png", jpeg_quality: int = 90) -> None:
        if fmt not in _EXT:
            raise ValueError(f"image format must be 'png' or 'jpeg', got {fmt!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be 1..100, got {jpeg_quality}")
        self.root = Path(root)
        self.fmt = fmt
        self.jpeg_quality = int(jpeg_quality)

    def encode(self, image: np.ndarray) -> bytes:
        import cv2  # lazy: the CLI's read commands never need OpenCV

        image = np.ascontiguousarray(image)
        if self.fmt == "png":
            if image.dtype not in (np.uint8, np.uint16):
                raise ValueError(f"PNG stores uint8 or uint16 images, got {image.dtype}")
            # Fixed parameters: the same pixels give the same bytes, hence the same file.
            ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
        else:
            if image.dtype != np.uint8:
                raise ValueError(f"JPEG stores uint8 images, got {image.dtype}")
            ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError(f"could not encode a {image.shape} {image.dtype} image as {self.fmt}")
        return buf.tobytes()

    def put(self, image: np.ndarray) -> tuple[str, str]:
        """Store ``image``; returns (sha256 of the file bytes, path relative to ``root``)."""
        data = self.encode(image)
        sha = hashlib.sha256(data).hexdigest()
        rel = f"{sha[:2]}/{sha[2:4]}/{sha}{_EXT[self.fmt]}"
        target = self.root / rel
        if target.exists():  # content-addressed: same name, same bytes
            return sha, rel
        make_private_dirs(target.parent)  # images of people: the station user's only (0700 / 0600)
        write_bytes_atomic(target, data, mode=PRIVATE_FILE)  # a reader never sees a half-written image
        try:
            fsync_dir(target.parent)  # the new name survives a power cut too
        except OSError:  # some file systems refuse to fsync a folder; the image itself is synced
            pass
        return sha, rel

    def path(self, rel: str) -> Path:
        return self.root / rel

    def load(self, rel: str) -> np.ndarray:
        import cv2

        data = np.fromfile(self.root / rel, dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"{self.root / rel}: not a readable image")
        return image


# --------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneReport:
    frames_pruned: int        # frames marked image_pruned = 1 (their file is deleted)
    files_deleted: int
    files_missing: int        # already gone from disk
    bytes_freed: int
    frames_kept_needed: int   # old frames kept: flagged verdict, reviewed, or cited by an incident
    files_kept_shared: int    # old pass images kept because a kept frame has the same image


# A frame's image is needed as evidence unless it passed, no person ever touched it and no
# incident cites it (opening, first, worst or last frame). A frame
# with no decision at all is kept too (it should not exist; keep the evidence until it is understood).
_NEEDED = """(
    d.verdict IS NULL OR d.verdict != 'pass'
    OR EXISTS (SELECT 1 FROM reviews r WHERE r.frame_id = f.id)
    OR EXISTS (SELECT 1 FROM incidents i WHERE i.frame_id = f.id)
    OR EXISTS (SELECT 1 FROM incidents i WHERE f.id IN (i.first_frame_id, i.worst_frame_id, i.last_frame_id))
)"""


def retention(conn: sqlite3.Connection, root: str | Path, older_than: datetime, *,
              actor: str = "retention") -> PruneReport:
    """Delete the image files of frames older than ``older_than`` that are not needed.

    Never deletes a file that a kept frame (needed, or newer) also points at. The database is
    updated first (and audited), then files are removed: a crash in between leaves an orphan
    file, never a frame that claims an image that is gone.
    """
    cutoff = iso_utc(older_than)
    root = Path(root)
    with transaction(conn):
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS _prune (id TEXT PRIMARY KEY, sha TEXT, path TEXT)")
        conn.execute("DELETE FROM _prune")
        conn.execute(
            f"INSERT INTO _prune SELECT f.id, f.image_sha256, f.image_path FROM frames f"
            f" LEFT JOIN decisions d ON d.frame_id = f.id"
            f" WHERE f.t_utc < ? AND f.image_path IS NOT NULL AND f.image_pruned = 0 AND NOT {_NEEDED}", (cutoff,))
        needed = conn.execute(
            f"SELECT COUNT(*) FROM frames f LEFT JOIN decisions d ON d.frame_id = f.id"
            f" WHERE f.t_utc < ? AND f.image_path IS NOT NULL AND f.image_pruned = 0 AND {_NEEDED}",
            (cutoff,)).fetchone()[0]
        # Files still used by a frame that keeps its image (needed, newer, or anything not pruned now).
        # The path derives from the hash, so the same hash means the same file.
        shared = conn.execute(
            "SELECT COUNT(DISTINCT p.path) FROM _prune p WHERE EXISTS (SELECT 1 FROM frames f"
            " WHERE f.image_pruned = 0 AND f.id NOT IN (SELECT id FROM _prune)"
            " AND f.image_sha256 = p.sha)").fetchone()[0]
        conn.execute(
            "DELETE FROM _prune WHERE EXISTS (SELECT 1 FROM frames f WHERE f.image_pruned = 0"
            " AND f.id NOT IN (SELECT id FROM _prune) AND f.image_sha256 = _prune.sha)")
        paths = [r[0] for r in conn.execute("SELECT DISTINCT path FROM _prune ORDER BY path")]
        pruned = conn.execute("UPDATE frames SET image_pruned = 1 WHERE id IN (SELECT id FROM _prune)").rowcount
        conn.execute("DELETE FROM _prune")
        audit.append(conn, actor=actor, action="images.prune", entity="frames", entity_id="retention",
                     payload={"older_than": cutoff, "frames": pruned, "files": len(paths)})
    deleted, missing, freed = delete_stored(root, paths)
    return PruneReport(pruned, deleted, missing, freed, int(needed), int(shared))


def delete_stored(root: Path, paths: list[str]) -> tuple[int, int, int]:
    """Delete files stored under ``root`` by relative path: (deleted, already missing, bytes freed).

    A path that resolves outside ``root`` is never deleted (logged): a stored path must not reach out.
    """
    root = Path(root).resolve()
    deleted = missing = freed = 0
    for rel in paths:
        p = (root / rel).resolve()
        if not p.is_relative_to(root):
            log.warning("retention: %s is outside %s; not deleted", rel, root)
            continue
        try:
            size = p.stat().st_size
            p.unlink()
        except FileNotFoundError:
            missing += 1
            continue
        deleted += 1
        freed += size
    return deleted, missing, freed
