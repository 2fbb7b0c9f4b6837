"""`inspector db export --table incidents`: the columns and values of the incident reports' CSV."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
from click.testing import CliRunner

from helpers.sessions import logged_in

from inspector.cli import main
from inspector.core import Decision, Detections, Frame
from inspector.reports.incident_data import Period, gather
from inspector.reports.tables import COLUMNS, rows_of, to_csv
from inspector.store.db import open_db, transaction
from inspector.store.incidents import mark_false_alarm
from inspector.store.queries import add_incident
from inspector.store.writer import DecisionRecord, write_record

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _store(path):
    conn = open_db(path)
    for i in range(2):
        fid = f"f{i}"
        frame = Frame(fid, "st", "gate", 0.0, T0, np.zeros((4, 4), np.uint8), {"camera": "gate", "zone": "z1"})
        with transaction(conn):
            write_record(conn, DecisionRecord(frame, Decision(fid, "pass", (), Detections.empty(), "ms", "cfg", T0),
                                              None, "run", ("worker",), False))
    sam = logged_in(conn, "safety_manager", "sam")
    add_incident(conn, "f0", "no_hard_hat", session=sam, severity="high", note="seen from the crane",
                 t=datetime(2026, 6, 1, 8, tzinfo=timezone.utc))
    second = add_incident(conn, "f1", "in_danger_zone", session=sam, t=datetime(2026, 6, 2, 9, tzinfo=timezone.utc))
    mark_false_alarm(conn, second, session=sam, note="a mannequin")
    return conn


def test_incidents_csv_is_the_reports_table(tmp_path):
    db, out = tmp_path / "s.sqlite", tmp_path / "incidents.csv"
    conn = _store(db)
    expected = to_csv(rows_of(gather(conn, Period(T0, datetime(2026, 6, 3, tzinfo=timezone.utc)),
                                     with_evidence=False)))
    conn.close()
    r = CliRunner().invoke(main, ["db", "export", "--db", str(db), "--table", "incidents", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 incidents written" in r.output
    text = out.read_bytes().decode("utf-8")
    assert text.splitlines()[0].split(",") == list(COLUMNS)
    assert text == expected  # same columns, same values, same cell format as a report's CSV


def test_incidents_jsonl_has_the_report_fields_and_an_empty_store_exports_a_header(tmp_path):
    db = tmp_path / "s.sqlite"
    _store(db).close()
    out = tmp_path / "incidents.jsonl"
    r = CliRunner().invoke(main, ["db", "export", "--db", str(db), "--table", "incidents", "--format", "jsonl",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [tuple(row) for row in rows] == [tuple(sorted(COLUMNS))] * 2
    assert [row["status"] for row in rows] == ["open", "false_alarm"] and rows[1]["resolution_note"] == "a mannequin"

    empty = tmp_path / "empty.sqlite"
    open_db(empty).close()
    r = CliRunner().invoke(main, ["db", "export", "--db", str(empty), "--table", "incidents", "--out",
                                  str(tmp_path / "none.csv")])
    assert r.exit_code == 0 and (tmp_path / "none.csv").read_text().splitlines() == [",".join(COLUMNS)]
