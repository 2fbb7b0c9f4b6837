"""inspector.store.export: rows to CSV / JSON Lines, with the rows written reported as progress."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame
from inspector.store.db import open_db, transaction
from inspector.store.export import export
from inspector.store.writer import DecisionRecord, write_record
from inspector.util.progress import JsonProgress

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _store(path, n):
    conn = open_db(path)
    with transaction(conn):
        for i in range(n):
            fid = f"f{i:04d}"
            frame = Frame(fid, "st", "cam", 0.0, T0, np.zeros((4, 4), np.uint8), {"lot": "L1"})
            dec = Decision(fid, "pass", (), Detections.empty(), "ms", "cfg", T0)
            write_record(conn, DecisionRecord(frame, dec, None, "run", ("particle",), False))
    return conn


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_progress_counts_every_row_against_the_total(tmp_path, fmt):
    conn = _store(tmp_path / "s.sqlite", 300)  # more than one report interval (256 rows)
    out = io.StringIO()
    n = export(conn, tmp_path / f"d.{fmt}", fmt=fmt, progress=JsonProgress(out, interval_s=0))
    conn.close()
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    assert n == 300 and {x["progress"] for x in lines} == {"export"} and {x["total"] for x in lines} == {300}
    assert [x["done"] for x in lines] == [0, 256, 300, 300]  # start, every 256 rows, the last count, end
    assert lines[-1]["event"] == "end" and lines[0]["unit"] == "row"


def test_an_unknown_table_is_refused_before_anything_is_written_or_reported(tmp_path):
    conn = _store(tmp_path / "s.sqlite", 2)
    out = io.StringIO()
    with pytest.raises(ValueError):
        export(conn, tmp_path / "d.csv", table="nothing", progress=JsonProgress(out))
    conn.close()
    assert not (tmp_path / "d.csv").exists() and out.getvalue() == ""
