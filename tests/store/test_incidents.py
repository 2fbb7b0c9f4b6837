"""Automatic incidents as records: engine events applied with their decision, human steps with
who / when, everything audited; old databases migrate and still verify."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.core.site.types import IncidentEvent
from inspector.store import audit, incidents
from inspector.store.audit import verify
from inspector.store.db import MIGRATIONS, StoreError, open_db, schema_version, transaction
from inspector.store.queries import add_incident, set_incident_status
from inspector.store.writer import DecisionRecord, write_record
from inspector.store.sessions import PermissionDenied, Session
from inspector.util.canonical import canonical_json, iso_utc, sha256_text

from helpers.sessions import logged_in

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
RUN = "run-1"
KEY = "gate/run-1/7/no_hard_hat/1"


def frame_id(i: int) -> str:
    return f"{RUN}/gate/{i:05d}"


def event(kind: str, seq: int, at: int, *, worst: int = 2, score: float = 0.8, reason: str = "",
          key: str = KEY, last: int | None = None) -> IncidentEvent:
    return IncidentEvent(kind, key, seq, "gate", 7, "no_hard_hat", "hat-rule", "high", None,
                         T0 + timedelta(seconds=at), frame_id(at), frame_id(0), frame_id(worst), score,
                         T0, reason, "" if last is None else frame_id(last))


def record(i: int, events=()) -> DecisionRecord:
    fid = frame_id(i)
    frame = Frame(fid, "site-1", "gate", float(i), T0 + timedelta(seconds=i), np.zeros((4, 4, 3), np.uint8),
                  {"camera": "gate", "frame_index": i})
    verdict = "fail" if events else "pass"
    reasons = (Reason("hat-rule", Verdict.FAIL, "no hard hat"),) if events else ()
    dec = Decision(fid, verdict, reasons, Detections.empty(), "ms-1", "cfg-1", T0 + timedelta(seconds=i))
    return DecisionRecord(frame, dec, None, RUN, ("hat", "vest", "worker"), False, incidents=tuple(events))


def write(conn, rec: DecisionRecord) -> None:
    with transaction(conn):
        write_record(conn, rec)


@pytest.fixture
def sam(conn):
    return logged_in(conn, "safety_manager", "sam")


@pytest.fixture
def ann(conn):
    return logged_in(conn, "safety_manager", "ann")


@pytest.fixture
def conn(tmp_path):
    c = open_db(tmp_path / "s.sqlite")
    write(c, record(0))
    write(c, record(1))
    write(c, record(2, [event("new", 0, 2)]))
    yield c
    c.close()


def actions_of(conn, incident_id: int) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute("SELECT actor, action FROM audit WHERE entity = 'incidents' AND"
                                           " entity_id = ? ORDER BY seq", (str(incident_id),))]


def test_an_incident_lives_through_its_events_in_the_decisions_transactions(conn):
    write(conn, record(3, [event("update", 1, 3, worst=3, score=0.95)]))
    write(conn, record(4))
    write(conn, record(5, [event("end", 2, 5, worst=3, score=0.95, reason="cleared", last=4)]))
    (inc,) = incidents.incidents(conn)
    assert inc["key"] == KEY and inc["automatic"] and inc["status"] == "open"
    assert (inc["camera"], inc["track_id"], inc["kind"], inc["rule_id"], inc["severity"]) == (
        "gate", 7, "no_hard_hat", "hat-rule", "high")
    assert inc["frame_id"] == frame_id(2) and inc["opened"] == inc["t"] == iso_utc(T0 + timedelta(seconds=2))
    assert (inc["first_frame_id"], inc["worst_frame_id"], inc["last_frame_id"]) == (frame_id(0), frame_id(3),
                                                                                    frame_id(4))
    assert inc["worst_score"] == pytest.approx(0.95) and inc["seq"] == 2
    assert inc["ended"] == iso_utc(T0 + timedelta(seconds=5)) and inc["end_reason"] == "cleared"
    assert (inc["run_id"], inc["model_set_version"], inc["config_hash"]) == (RUN, "ms-1", "cfg-1")
    assert actions_of(conn, inc["id"]) == [("station", "incident.new"), ("station", "incident.update"),
                                           ("station", "incident.end")]
    assert verify(conn).ok


def test_a_replayed_event_changes_nothing_and_an_orphan_update_still_makes_a_row(conn):
    with transaction(conn):
        assert incidents.apply_event(conn, event("new", 0, 2), run_id=RUN) is None
    assert conn.execute("SELECT COUNT(*) FROM incidents").fetchone()[0] == 1
    other = "gate/run-1/9/no_hard_hat/1"
    with transaction(conn):  # its `new` was lost (a record that failed): the event carries enough
        iid = incidents.apply_event(conn, event("update", 3, 2, key=other), run_id=RUN)
    assert incidents.incident(conn, key=other)["id"] == iid and incidents.incident(conn, iid)["seq"] == 3
    assert verify(conn).ok


def test_an_incident_rolls_back_with_its_decision(conn):
    rec = record(3, [event("update", 1, 3, worst=3)])
    with pytest.raises(sqlite3.IntegrityError):
        with transaction(conn):
            write_record(conn, rec)
            conn.execute("INSERT INTO frames (id) VALUES (NULL)")  # the batch fails after the events
    assert incidents.incident(conn, key=KEY)["seq"] == 0


def test_human_steps_keep_who_and_when_and_are_audited(conn, sam, ann):
    iid = incidents.incident(conn, key=KEY)["id"]
    t1, t2 = T0 + timedelta(minutes=5), T0 + timedelta(minutes=9)
    incidents.acknowledge(conn, iid, session=sam, t=t1)
    incidents.close(conn, iid, session=sam, note="talked to the worker", t=t2)
    inc = incidents.incident(conn, iid)
    assert (inc["status"], inc["acknowledged_by"], inc["acknowledged_at"]) == ("closed", "sam", iso_utc(t1))
    assert (inc["resolved_by"], inc["resolved_at"], inc["resolution_note"]) == ("sam", iso_utc(t2),
                                                                                "talked to the worker")
    incidents.reopen(conn, iid, session=sam)
    incidents.mark_false_alarm(conn, iid, session=ann, note="hat under the hood")
    assert actions_of(conn, iid)[1:] == [("sam", "incident.acknowledged"), ("sam", "incident.closed"),
                                         ("sam", "incident.open"), ("ann", "incident.false_alarm")]
    assert incidents.incident(conn, iid)["status"] == "false_alarm"
    assert incidents.incidents(conn, status=["false_alarm"], camera="gate") != []
    assert incidents.incidents(conn, camera="yard") == [] and incidents.incidents(conn, status="open") == []
    assert verify(conn).ok


@pytest.mark.parametrize("step, message", [
    (lambda c, i, sam: incidents.reopen(c, i, session=sam), "is open; it cannot become open"),
    (lambda c, i, sam: incidents.acknowledge(c, i, session=Session("sam", "safety_manager")), "not logged in"),
    (lambda c, i, sam: incidents.acknowledge(c, i, session="sam"), "not a log-in session"),
    (lambda c, i, sam: incidents.acknowledge(c, 999, session=sam), "incident 999 does not exist"),
    (lambda c, i, sam: set_incident_status(c, i, "gone", session=sam), "status must be one of"),
])
def test_bad_steps_write_nothing(conn, sam, step, message):
    iid = incidents.incident(conn, key=KEY)["id"]
    before = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    with pytest.raises((StoreError, ValueError, PermissionDenied), match=message):
        step(conn, iid, sam)
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == before
    assert incidents.incident(conn, iid)["status"] == "open" and not conn.in_transaction


def test_a_closed_incident_cannot_be_acknowledged(conn, sam):
    iid = incidents.incident(conn, key=KEY)["id"]
    incidents.close(conn, iid, session=sam)
    with pytest.raises(StoreError, match="is closed; it cannot become acknowledged"):
        incidents.acknowledge(conn, iid, session=sam)


@pytest.mark.parametrize("column, value", [("clip_sha256", "0" * 64), ("worst_frame_id", "x"), ("key", None)])
def test_editing_any_new_column_behind_the_store_is_found(conn, column, value):
    conn.execute(f"UPDATE incidents SET {column} = ?", (value,))
    r = verify(conn)
    assert not r.ok and r.message.endswith("incident 1 was modified after it was recorded")


def test_evidence_is_recorded_on_its_incident(conn):
    images = {"worst": {"frame_id": frame_id(2), "sha256": "a" * 64, "path": "images/aa/aa/x.png"}}
    with transaction(conn):
        incidents.record_evidence(conn, KEY, clip_path="clips/ab/cd/c.mp4", clip_sha256="c" * 64, images=images)
    inc = incidents.incident(conn, key=KEY)
    assert (inc["clip_path"], inc["clip_sha256"], inc["evidence"]) == ("clips/ab/cd/c.mp4", "c" * 64, images)
    assert actions_of(conn, inc["id"])[-1] == ("station", "incident.evidence")
    with pytest.raises(StoreError, match="not stored"), transaction(conn):
        incidents.record_evidence(conn, "nope", clip_path=None, clip_sha256=None, images={})
    with pytest.raises(ValueError, match="roles"), transaction(conn):
        incidents.record_evidence(conn, KEY, clip_path=None, clip_sha256=None, images={"best": {}})
    assert verify(conn).ok


def test_false_alarms_name_their_stored_evidence_frames(conn, ann):
    iid = incidents.incident(conn, key=KEY)["id"]
    assert incidents.false_alarm_frames(conn) == []
    incidents.mark_false_alarm(conn, iid, session=ann, note="reflective jacket")
    frames = incidents.false_alarm_frames(conn)
    assert {f["frame_id"] for f in frames} == {frame_id(0), frame_id(2)}
    assert {(f["incident_id"], f["user"], f["note"]) for f in frames} == {(iid, "ann", "reflective jacket")}


def test_a_version_5_database_with_manual_incidents_migrates_and_still_verifies(tmp_path):
    path = tmp_path / "v5.sqlite"
    raw = sqlite3.connect(path, isolation_level=None)
    for sql in MIGRATIONS[:5]:
        raw.executescript(sql)
    raw.execute("PRAGMA user_version = 5")
    raw.execute("INSERT INTO incidents (frame_id, kind, zone, camera, t, severity, note, status)"
                " VALUES (NULL, 'fall', 'z3', NULL, 't0', 'high', 'old', 'acknowledged')")
    # The audit row as Inspector 5 wrote it: the nine columns it knew.
    row = dict(zip(audit.ENTITIES["incidents"].columns, (1, None, "fall", "z3", None, "t0", "high", "old",
                                                         "acknowledged")))
    payload = sha256_text(canonical_json({"row": row}))
    h = audit.row_hash(audit.GENESIS, 1, "t1", "sam", "incident.add", "incidents", "1", payload)
    raw.execute("INSERT INTO audit VALUES (1, 't1', 'sam', 'incident.add', 'incidents', '1', ?, ?, ?)",
                (payload, audit.GENESIS, h))
    raw.close()

    conn = open_db(path)
    assert schema_version(conn) == len(MIGRATIONS) >= 6
    assert verify(conn).ok
    set_incident_status(conn, 1, "closed", session=logged_in(conn, "safety_manager", "sam"), note="fixed")
    assert incidents.incident(conn, 1)["resolved_by"] == "sam" and verify(conn).ok
    assert {"analysis_segments"} <= {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()


def test_manual_incidents_still_work(conn, sam):
    iid = add_incident(conn, frame_id(1), "near_miss", session=sam, severity="low")
    inc = incidents.incident(conn, iid)
    assert not inc["automatic"] and inc["camera"] == "gate" and inc["evidence"] == {}
    assert [i["id"] for i in incidents.incidents(conn, newest_first=True, limit=1)] == [iid]
    assert verify(conn).ok

