"""`inspector db export --table incidents`: every incident with the columns of the incident reports.

The rows come from the report code itself (``inspector.reports.tables.row_of`` over
``incident_data.gather``), so the export and a report's CSV share one column definition and one way
of computing each value (duration, time to close, evidence images, models).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from inspector.util.progress import NO_PROGRESS, Progress


def incident_rows(conn: sqlite3.Connection) -> tuple[tuple[str, ...], int, Iterator[dict[str, Any]]]:
    """(columns, number of rows, rows) of every incident, oldest first."""
    from inspector.reports.incident_data import Period, gather
    from inspector.reports.tables import COLUMNS, rows_of

    lo, hi = conn.execute("SELECT MIN(t), MAX(t) FROM incidents").fetchone()
    if lo is None:
        return COLUMNS, 0, iter(())
    # The whole record as one period: from the first opening to just after the last one.
    period = Period(datetime.fromisoformat(lo), datetime.fromisoformat(hi) + timedelta(microseconds=1))
    rows = rows_of(gather(conn, period, with_evidence=False))
    return COLUMNS, len(rows), (r.model_dump() for r in rows)


def export_incidents(conn: sqlite3.Connection, out: str | Path, fmt: str = "csv",
                     progress: Progress = NO_PROGRESS) -> int:
    from inspector.store.export import write_rows

    columns, n, rows = incident_rows(conn)
    return write_rows(out, columns, rows, fmt, progress=progress, total=n)


__all__ = ["export_incidents", "incident_rows"]
