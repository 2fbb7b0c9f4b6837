"""Paged SQL over decisions for the review queue and history (plain Python, no Qt).

Keyset paging on ``(frames.t_utc, frames.id)``: page N costs the same as page 1 however deep the
operator scrolls (OFFSET would rescan every skipped row), and rows added meanwhile never shift a
page. SQLite walks the ``frames_t`` index in order and stops after ``limit`` matches.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

NEEDS_HUMAN = ("fail", "review", "error")

# The page is chosen first (inner query: indexed columns only, ORDER BY + LIMIT), the per-row
# subqueries run on the page's rows only (outer query).
_INNER = """
SELECT f.id AS frame_id, f.run_id, f.source, f.t_utc, f.lot, f.wafer, f.die_x, f.die_y, f.camera, f.zone,
       f.image_path, f.width, f.height, d.verdict, d.reasons
FROM frames f JOIN decisions d ON d.frame_id = f.id
"""
_OUTER = """
SELECT p.*,
       (SELECT group_concat(DISTINCT x.class_name) FROM detections x
         WHERE x.frame_id = p.frame_id AND x.model_index = -1) AS classes,
       (SELECT r.user || ' ' || r.action FROM reviews r WHERE r.frame_id = p.frame_id ORDER BY r.id DESC LIMIT 1)
         AS last_review
FROM ({inner}) p ORDER BY p.t_utc {order}, p.frame_id {order}
"""


@dataclass(frozen=True)
class DecisionFilter:
    """What a list shows. ``unreviewed``: only frames nobody has reviewed (the review queue)."""

    verdicts: tuple[str, ...] | None = None
    lot: str | None = None
    wafer: str | None = None
    camera: str | None = None
    zone: str | None = None
    class_name: str | None = None
    since: str | None = None          # ISO UTC, inclusive (capture time)
    until: str | None = None          # ISO UTC, exclusive
    reviewer: str | None = None
    run_id: str | None = None
    unreviewed: bool = False
    newest_first: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def with_(self, **kw: Any) -> DecisionFilter:
        return replace(self, **kw)


REVIEW_QUEUE = DecisionFilter(verdicts=NEEDS_HUMAN, unreviewed=True)


def where_clause(flt: DecisionFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    for col, val in (("f.lot", flt.lot), ("f.wafer", flt.wafer), ("f.camera", flt.camera), ("f.zone", flt.zone),
                     ("f.run_id", flt.run_id)):
        if val:
            where.append(f"{col} = ?")
            args.append(str(val))
    if flt.verdicts:
        # Unary +: keep SQLite off the verdict index (it would sort every flagged frame to show 200);
        # walking frames_t in time order stops after one page.
        where.append(f"+d.verdict IN ({', '.join('?' * len(flt.verdicts))})")
        args += list(flt.verdicts)
    if flt.since:
        where.append("f.t_utc >= ?")
        args.append(flt.since)
    if flt.until:
        where.append("f.t_utc < ?")
        args.append(flt.until)
    if flt.class_name:
        where.append("EXISTS (SELECT 1 FROM detections x WHERE x.frame_id = f.id AND x.model_index = -1"
                     " AND x.class_name = ?)")
        args.append(flt.class_name)
    if flt.reviewer:
        where.append("EXISTS (SELECT 1 FROM reviews r WHERE r.frame_id = f.id AND r.user = ?)")
        args.append(flt.reviewer)
    if flt.unreviewed:
        where.append("NOT EXISTS (SELECT 1 FROM reviews r WHERE r.frame_id = f.id)")
    return where, args


def _row(r: sqlite3.Row) -> dict[str, Any]:
    d = dict(r)
    reasons = json.loads(d.pop("reasons") or "[]")
    d["rule_ids"] = [x.get("rule_id") for x in reasons]
    d["classes"] = sorted(set((d.get("classes") or "").split(","))) if d.get("classes") else []
    return d


def fetch_page(conn: sqlite3.Connection, flt: DecisionFilter, *, after: tuple[str, str] | None = None,
               before: tuple[str, str] | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Up to ``limit`` rows in list order, after the key ``after`` (the last row shown). ``before``
    asks for rows that would come before the first row shown (new arrivals), in list order."""
    where, args = where_clause(flt)
    desc = flt.newest_first
    if after is not None:
        where.append("(f.t_utc, f.id) < (?, ?)" if desc else "(f.t_utc, f.id) > (?, ?)")
        args += list(after)
    if before is not None:
        where.append("(f.t_utc, f.id) > (?, ?)" if desc else "(f.t_utc, f.id) < (?, ?)")
        args += list(before)
    order = "DESC" if desc else ""
    inner = _INNER + (" WHERE " + " AND ".join(where) if where else "")
    inner += f" ORDER BY f.t_utc {order}, f.id {order} LIMIT ?"
    args.append(int(limit))
    sql = _OUTER.format(inner=inner, order=order)
    return [_row(r) for r in conn.execute(sql, args)]


def count(conn: sqlite3.Connection, flt: DecisionFilter) -> int:
    """How many rows match (a full scan on big stores: call it off the GUI thread)."""
    where, args = where_clause(flt)
    sql = "SELECT COUNT(*) FROM frames f JOIN decisions d ON d.frame_id = f.id"
    sql += (" WHERE " + " AND ".join(where) if where else "")
    return int(conn.execute(sql, args).fetchone()[0])


def iter_all(conn: sqlite3.Connection, flt: DecisionFilter, page: int = 2000):
    """Every matching row, page by page (CSV export)."""
    after = None
    while True:
        rows = fetch_page(conn, flt, after=after, limit=page)
        yield from rows
        if len(rows) < page:
            return
        after = (rows[-1]["t_utc"], rows[-1]["frame_id"])


CSV_COLUMNS: Sequence[str] = ("frame_id", "run_id", "t_utc", "source", "lot", "wafer", "die_x", "die_y", "camera",
                              "zone", "verdict", "rule_ids", "classes", "last_review", "image_path")


def distinct_values(conn: sqlite3.Connection, column: str, limit: int = 500) -> list[str]:
    """Values seen in an indexed frames column (lot, wafer, camera, zone) for filter pickers."""
    if column not in ("lot", "wafer", "camera", "zone", "run_id"):
        raise ValueError(f"no filter on {column!r}")
    rows = conn.execute(f"SELECT DISTINCT {column} FROM frames WHERE {column} IS NOT NULL ORDER BY {column} LIMIT ?",
                        (limit,))
    return [str(r[0]) for r in rows]
