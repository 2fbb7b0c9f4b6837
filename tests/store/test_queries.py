"""The read API, the human actions (row + audit row in one transaction) and the export."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.store import audit
from inspector.store.audit import verify
from inspector.store.db import StoreError, open_db, transaction
from inspector.store.export import DECISION_COLUMNS, export
from inspector.store.queries import (
    add_incident,
    add_review,
    decisions,
    frame_detections,
    record_event,
    review_queue,
    reviews,
    stats,
)
from inspector.store.sessions import PermissionDenied, Session
from inspector.store.writer import DecisionRecord, write_record

from helpers.sessions import logged_in

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
NAMES = ("particle", "scratch")
# frame id, verdict, lot, wafer, kept classes
ROWS = [
    ("a0", "pass", "L1", "W1", []),
    ("a1", "fail", "L1", "W1", [1, 1]),
    ("a2", "review", "L1", "W2", [0]),
    ("a3", "error", "L2", "W1", []),
    ("a4", "not_inspected", "L2", "W1", []),
    ("a5", "fail", "L2", "W2", [0]),
]


def _record(i: int, fid: str, verdict: str, lot: str, wafer: str, classes: list[int]) -> DecisionRecord:
    t = T0 + timedelta(minutes=i)
    frame = Frame(fid, "st", "cam0", 0.0, t, np.zeros((4, 4), np.uint8),
                  {"lot": lot, "wafer": wafer, "die_x": i, "die_y": 0, "operator_note": np.int64(7)})
    det = Detections([[i, i, i + 5.5, i + 6.25] for _ in classes] or np.zeros((0, 4)), [0.9] * len(classes),
                     classes, -1, [1] * len(classes))
    cited = tuple(range(len(classes)))
    reasons = () if verdict == "pass" else (Reason(f"rule-{verdict}", Verdict(verdict), "why", cited),)
    error = "camera timeout" if verdict == "not_inspected" else None
    dec = Decision(fid, verdict, reasons, det, "ms-7", "cfg-7", t + timedelta(seconds=1), error=error)
    return DecisionRecord(frame, dec, [det.with_model_index(0)], "run-1", NAMES, False)


@pytest.fixture
def ann(conn):
    return logged_in(conn, "engineer", "ann")


@pytest.fixture
def sam(conn):
    return logged_in(conn, "safety_manager", "sam")


@pytest.fixture
def conn(tmp_path):
    c = open_db(tmp_path / "s.sqlite")
    for i, row in enumerate(ROWS):
        with transaction(c):
            write_record(c, _record(i, *row))
    yield c
    c.close()


def ids(rows):
    return [r["frame_id"] for r in rows]


@pytest.mark.parametrize("filters, expected", [
    ({}, ["a0", "a1", "a2", "a3", "a4", "a5"]),
    ({"lot": "L1"}, ["a0", "a1", "a2"]),
    ({"lot": "L2", "wafer": "W1"}, ["a3", "a4"]),
    ({"verdict": "fail"}, ["a1", "a5"]),
    ({"verdict": [Verdict.REVIEW, "error"]}, ["a2", "a3"]),
    ({"since": T0 + timedelta(minutes=2)}, ["a2", "a3", "a4", "a5"]),
    ({"until": T0 + timedelta(minutes=2)}, ["a0", "a1"]),
    ({"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=3)}, ["a1", "a2"]),
    ({"class_name": "particle"}, ["a2", "a5"]),
    ({"class_name": "scratch", "lot": "L2"}, []),
    ({"limit": 2}, ["a0", "a1"]),
])
def test_decision_filters(conn, filters, expected):
    assert ids(decisions(conn, **filters)) == expected


def test_decision_rows_carry_the_trace(conn):
    (d,) = decisions(conn, verdict="fail", lot="L1")
    assert d["rule_ids"] == ["rule-fail"] and d["n_detections"] == 2
    assert (d["model_set_version"], d["config_hash"], d["run_id"]) == ("ms-7", "cfg-7", "run-1")
    assert d["context"] == {"lot": "L1", "wafer": "W1", "die_x": 1, "die_y": 0, "operator_note": 7}
    (e,) = decisions(conn, verdict="not_inspected")
    assert e["error"] == "camera timeout" and e["n_detections"] == 0


def test_frame_detections_round_trip(conn):
    recs = frame_detections(conn, "a1")
    assert [r["class_name"] for r in recs] == ["scratch", "scratch"]
    det = Detections.from_records(recs)
    assert np.allclose(det.xyxy, [[1, 1, 6.5, 7.25]] * 2) and det.model_index.tolist() == [-1, -1]
    assert len(frame_detections(conn, "a1", model_index=0)) == 2
    assert frame_detections(conn, "a1", model_index=3) == [] and frame_detections(conn, "nope") == []


def test_review_queue_holds_unreviewed_flagged_frames(conn, ann):
    assert ids(review_queue(conn)) == ["a5", "a3", "a2", "a1"]  # newest first; pass and not_inspected left out
    assert ids(review_queue(conn, newest_first=False, limit=2)) == ["a1", "a2"]
    rid = add_review(conn, "a2", ann, "change_class", verdict="fail", labels=[{"xyxy": [1, 2, 3, 4], "class": 1}])
    assert ids(review_queue(conn)) == ["a5", "a3", "a1"]
    (r,) = reviews(conn, "a2")
    assert r["id"] == rid and r["labels"] == [{"xyxy": [1, 2, 3, 4], "class": 1}] and r["verdict"] == "fail"
    assert ids(review_queue(conn, lot="L2")) == ["a5", "a3"]


def test_human_actions_append_their_audit_row(conn, ann, sam):
    before = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    rid = add_review(conn, "a1", ann, "reject_false_alarm", note="reflection")
    iid = add_incident(conn, "a5", "missing_helmet", session=sam, severity="high")
    record_event(conn, actor="station", action="wafer.judged", entity="wafer", entity_id="L1-W01",
                 payload={"verdict": "fail", "signature": "edge_ring"})
    rows = conn.execute("SELECT actor, action, entity, entity_id FROM audit WHERE seq > ? ORDER BY seq",
                        (before,)).fetchall()
    assert [tuple(r) for r in rows] == [("ann", "review.reject_false_alarm", "reviews", str(rid)),
                                        ("sam", "incident.add", "incidents", str(iid)),
                                        ("station", "wafer.judged", "wafer", "L1-W01")]
    inc = conn.execute("SELECT camera, zone, severity, status FROM incidents").fetchone()
    assert tuple(inc) == (None, None, "high", "open")
    assert verify(conn).ok


def test_human_action_and_audit_row_commit_together(conn, monkeypatch, ann):
    def broken_append(*a, **k):
        raise OSError("disk gone")

    monkeypatch.setattr(audit, "append", broken_append)
    with pytest.raises(OSError):
        add_review(conn, "a1", ann, "accept")
    assert conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0  # no review without its audit row


@pytest.mark.parametrize("call, error, message", [
    (lambda c, ann, sam: add_review(c, "a1", ann, "approve"), ValueError, "review action must be one of"),
    (lambda c, ann, sam: add_review(c, "ghost", ann, "accept"), StoreError, "frame 'ghost' is not in the store"),
    (lambda c, ann, sam: add_review(c, "a1", ann, "accept", verdict="maybe"), ValueError, "maybe"),
    (lambda c, ann, sam: add_incident(c, "ghost", "fall", session=sam), StoreError, "frame 'ghost'"),
    (lambda c, ann, sam: add_incident(c, "a1", "fall", session=sam, severity="huge"), ValueError, "severity"),
    (lambda c, ann, sam: record_event(c, actor="x", action="y", entity="reviews", entity_id="1", payload={}),
     ValueError, "audited by the function"),
])
def test_bad_human_actions_write_nothing(conn, ann, sam, call, error, message):
    before = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    with pytest.raises(error, match=message):
        call(conn, ann, sam)
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before
    assert conn.execute("SELECT COUNT(*) FROM reviews").fetchone()[0] == 0
    assert not conn.in_transaction


@pytest.mark.parametrize("who", ["ann", Session("ann", "engineer"), Session("ann", "engineer", "forged")])
def test_add_review_without_a_live_session_is_refused(conn, ann, who):
    with pytest.raises(PermissionDenied, match="not a log-in session|not logged in"):
        add_review(conn, "a1", who, "accept")
    assert reviews(conn) == []


def test_the_store_checks_the_role_and_the_account(conn, ann, sam):
    with pytest.raises(PermissionDenied, match="needs role engineer or operator"):
        add_review(conn, "a1", sam, "accept")
    with pytest.raises(PermissionDenied, match="needs role safety_manager"):
        add_incident(conn, "a1", "fall", session=ann)
    conn.execute("UPDATE users SET active = 0 WHERE name = 'ann'")  # even around the actions
    with pytest.raises(PermissionDenied, match="the account is deactivated"):
        add_review(conn, "a1", ann, "accept")
    assert reviews(conn) == [] and conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 0


def test_stats(conn, ann, sam):
    add_review(conn, "a1", ann, "accept")
    add_incident(conn, None, "fall", session=sam, zone="z3")
    s = stats(conn)
    assert (s["frames"], s["decisions"], s["reviews"], s["incidents"], s["runs"]) == (6, 6, 1, 1, 1)
    assert s["verdicts"] == {"pass": 1, "fail": 2, "review": 1, "error": 1, "not_inspected": 1}
    assert s["unreviewed_flagged"] == 3 and s["detections_kept"] == 4
    assert s["audit_rows"] == 2 + 1 + 6 + 2 and s["audit_head"]["seq"] == s["audit_rows"]
    assert s["first_t"] == "2026-05-04T08:00:00.000000+00:00" and s["last_t"] == "2026-05-04T08:05:00.000000+00:00"
    assert s["db_bytes"] > 0
    json.dumps(s)  # plain data


def test_export_csv(conn, tmp_path):
    out = tmp_path / "out" / "decisions.csv"
    assert export(conn, out) == 6
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == DECISION_COLUMNS
    a1 = rows[1]
    assert (a1["frame_id"], a1["verdict"], a1["rule_ids"], a1["n_detections"]) == ("a1", "fail", "rule-fail", "2")
    assert (a1["model_set_version"], a1["config_hash"], a1["lot"], a1["die_x"]) == ("ms-7", "cfg-7", "L1", "1")
    assert json.loads(a1["context"])["wafer"] == "W1"
    assert [p.name for p in out.parent.iterdir()] == ["decisions.csv"]  # no temporary file left


def test_export_jsonl_has_the_boxes(conn, tmp_path):
    out = tmp_path / "d.jsonl"
    assert export(conn, out, fmt="jsonl") == 6
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    a1 = rows[1]
    assert a1["rule_ids"] == ["rule-fail"] and a1["reasons"][0]["detection_indices"] == [0, 1]
    assert len(a1["detections"]) == a1["n_detections"] == 2 and a1["detections"][0]["class_name"] == "scratch"
    assert rows[0]["detections"] == []


def test_export_other_tables_and_bad_arguments(conn, tmp_path, ann):
    add_review(conn, "a1", ann, "relabel", labels=[{"class": 0}])
    assert export(conn, tmp_path / "r.csv", table="reviews") == 1
    assert "relabel" in (tmp_path / "r.csv").read_text()
    with pytest.raises(ValueError, match="report columns"):  # incidents go through the reports' columns
        export(conn, tmp_path / "i.jsonl", fmt="jsonl", table="incidents")
    with pytest.raises(ValueError, match="format"):
        export(conn, tmp_path / "x", fmt="xml")
    with pytest.raises(ValueError, match="table"):
        export(conn, tmp_path / "x", table="audit")
