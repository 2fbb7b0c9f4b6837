"""Export decisions (or reviews) to CSV or JSON Lines, and the one table writer other exports use.

One row per decision with its frame context, verdict, rule ids, number of kept detections,
model-set version and config hash; JSON Lines also carry the reasons and the kept boxes. The
file is written next to its target and renamed into place, so a reader never sees half a file.

Incidents are exported with the columns of the incident reports (``inspector.reports.tables``,
one definition for both), which the store cannot import: ``inspector db export --table
incidents`` builds those rows and writes them with :func:`write_rows`.
"""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from inspector.store.audit import canonical_json
from inspector.store.queries import frame_detections, iter_decisions, reviews
from inspector.util.progress import NO_PROGRESS, Progress

DECISION_COLUMNS = (
    "frame_id", "run_id", "station_id", "source", "t_utc", "lot", "wafer", "die_x", "die_y", "camera", "zone",
    "context", "image_sha256", "image_path", "verdict", "rule_ids", "n_detections", "model_set_version",
    "config_hash", "t_decided", "error",
)
REVIEW_COLUMNS = ("id", "frame_id", "user", "t", "action", "verdict", "labels", "note")
TABLES = ("decisions", "reviews")
_REPORT_EVERY = 256  # rows between progress reports: a bar redrawn per row would cost more than the row


def _count(conn: sqlite3.Connection, table: str) -> int:
    """Rows ``table`` will export (the progress total): one per decision joined to its frame."""
    if table == "decisions":
        sql = "SELECT COUNT(*) FROM decisions d JOIN frames f ON f.id = d.frame_id"
    else:
        sql = f"SELECT COUNT(*) FROM {table}"  # table is one of TABLES, checked by _rows
    return int(conn.execute(sql).fetchone()[0])


def _rows(conn: sqlite3.Connection, table: str, fmt: str) -> tuple[tuple[str, ...], Iterator[dict[str, Any]]]:
    if table == "decisions":
        def decisions() -> Iterator[dict[str, Any]]:
            for d in iter_decisions(conn):
                row = {k: d[k] for k in DECISION_COLUMNS if k in d}
                row["rule_ids"] = d["rule_ids"]
                if fmt == "jsonl":
                    row["reasons"] = d["reasons"]
                    row["detections"] = frame_detections(conn, d["frame_id"])
                yield row
        return DECISION_COLUMNS, decisions()
    if table == "reviews":
        return REVIEW_COLUMNS, iter(reviews(conn))
    if table == "incidents":
        raise ValueError("incidents are exported with the report columns: use `inspector db export --table "
                         "incidents` (inspector.cli.incident_export)")
    raise ValueError(f"export table must be one of {', '.join(TABLES)}, got {table!r}")


def _csv_cell(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"  # as the report tables write them
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return ";".join(v)  # rule ids: readable in a spreadsheet
    if isinstance(v, (dict, list)):
        return canonical_json(v)
    return "" if v is None else v


def export(conn: sqlite3.Connection, out_path: str | Path, fmt: str = "csv", table: str = "decisions",
           progress: Progress = NO_PROGRESS) -> int:
    """Write ``table`` to ``out_path`` as ``csv`` or ``jsonl``; returns the number of rows.
    ``progress`` hears how many rows are written so far (stage ``export``, unit ``row``)."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format must be 'csv' or 'jsonl', got {fmt!r}")
    columns, rows = _rows(conn, table, fmt)
    total = None if progress is NO_PROGRESS else _count(conn, table)  # nobody watching: skip the count
    return write_rows(out_path, columns, rows, fmt, progress=progress, total=total)


def write_rows(out_path: str | Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]], fmt: str = "csv",
               *, progress: Progress = NO_PROGRESS, total: int | None = None) -> int:
    """Write ``rows`` to ``out_path`` atomically: CSV with ``columns`` as the header (null is an empty
    cell, booleans true / false), or JSON Lines; returns the number of rows."""
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"export format must be 'csv' or 'jsonl', got {fmt!r}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh, \
                progress.stage("export", total=total, unit="row") as stage:
            if fmt == "csv":
                w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
                w.writeheader()
                for row in rows:
                    w.writerow({k: _csv_cell(row.get(k)) for k in columns})
                    n += 1
                    if n % _REPORT_EVERY == 0:
                        stage.update(done=n)
            else:
                for row in rows:
                    fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
                    n += 1
                    if n % _REPORT_EVERY == 0:
                        stage.update(done=n)
            stage.update(done=n)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return n
