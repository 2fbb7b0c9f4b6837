"""What an archive analysis looked at: stretches of a video file, inferred or skipped, and why.

Rows of ``analysis_segments`` (created by migration 6): one per stretch of consecutive frames
with the same action and reason, so a report can say which minutes of a recording were examined
by a model, which were skipped as static and which could not be decoded. A file is known by
``video_identity``: the sha256 of its first MiB and its size, which tells files apart without
reading months of video again.

Plain functions between rows and records; the writer calls ``insert_segments`` inside its
transaction (:meth:`inspector.store.writer.StoreWriter.submit_job`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

_HEAD_BYTES = 1 << 20
ACTIONS = ("inferred", "skipped")
_COLUMNS = "run_id, video, video_sha256, camera, first_frame, last_frame, t0_s, t1_s, action, reason"


@dataclass(frozen=True, slots=True)
class Segment:
    """Frames ``first_frame``..``last_frame`` (inclusive, 0-based) of one video, video time
    ``t0_s``..``t1_s``, all ``action`` for ``reason``."""

    run_id: str
    video: str
    video_sha256: str
    camera: str
    first_frame: int
    last_frame: int
    t0_s: float
    t1_s: float
    action: str
    reason: str

    @property
    def frames(self) -> int:
        return self.last_frame - self.first_frame + 1


def video_identity(path: str | Path) -> str:
    """sha256 of the first MiB of the file followed by its size in bytes (decimal, after a NUL)."""
    p = Path(path)
    h = hashlib.sha256()
    with p.open("rb") as f:
        h.update(f.read(_HEAD_BYTES))
    h.update(b"\0" + str(p.stat().st_size).encode("ascii"))
    return h.hexdigest()


def insert_segments(conn: sqlite3.Connection, segments: Iterable[Segment]) -> int:
    """Insert the stretches (inside the caller's transaction); returns how many."""
    rows = [astuple(s) for s in segments]
    for r in rows:
        if r[8] not in ACTIONS:
            raise ValueError(f"segment action must be one of {', '.join(ACTIONS)}, got {r[8]!r}")
    conn.executemany(f"INSERT INTO analysis_segments ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    return len(rows)


def segments(conn: sqlite3.Connection, *, run_id: str | None = None, video_sha256: str | None = None,
             video: str | None = None) -> list[Segment]:
    """Stored stretches, filtered, in run / video / frame order."""
    where, args = [], []
    for col, val in (("run_id", run_id), ("video_sha256", video_sha256), ("video", video)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    sql = f"SELECT {_COLUMNS} FROM analysis_segments"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY run_id, video, first_frame"
    return [Segment(*row) for row in conn.execute(sql, args)]


def coverage(rows: Iterable[Segment]) -> dict[str, dict[str, int]]:
    """Frames per action and reason: ``{"inferred": {"motion": 120}, "skipped": {"static": 900}}``."""
    out: dict[str, Counter] = {a: Counter() for a in ACTIONS}
    for s in rows:
        out.setdefault(s.action, Counter())[s.reason] += s.frames
    return {a: dict(c) for a, c in out.items()}


def check_contiguous(rows: Iterable[Segment]) -> list[str]:
    """Gaps or overlaps between the stretches of each (run, video): empty when every frame from
    the first to the last is accounted for exactly once."""
    problems: list[str] = []
    last: dict[tuple[str, str], int] = {}
    for s in sorted(rows, key=lambda s: (s.run_id, s.video, s.first_frame)):
        key = (s.run_id, s.video)
        if s.last_frame < s.first_frame:
            problems.append(f"{s.video}: stretch {s.first_frame}..{s.last_frame} is empty")
        if key in last and s.first_frame != last[key] + 1:
            problems.append(f"{s.video} (run {s.run_id}): frame {last[key] + 1} follows frame {last[key]}, "
                            f"got {s.first_frame}")
        last[key] = max(s.last_frame, last.get(key, -1))
    return problems


__all__ = ["ACTIONS", "Segment", "check_contiguous", "coverage", "insert_segments", "segments", "video_identity"]
