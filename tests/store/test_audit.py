"""The audit hash chain: every kind of tampering is found and named; an untouched store verifies."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.store import audit
from inspector.store.audit import audit_head, row_hash, verify
from inspector.store.db import open_db, transaction
from inspector.store.queries import add_incident, add_review, set_incident_status
from inspector.store.writer import DecisionRecord, write_record

from helpers.sessions import logged_in

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
NAMES = ("particle", "scratch")
VERDICTS = ["pass", "fail", "review", "error", "pass", "not_inspected"]


def record(i: int, verdict: str) -> DecisionRecord:
    fid = f"f{i:03d}"
    frame = Frame(fid, "st-1", "cam0", float(i), T0 + timedelta(minutes=i), np.zeros((4, 4), np.uint8),
                  {"lot": "L1", "wafer": "W1", "die_x": i, "die_y": 0})
    det = Detections([[1, 2, 3, 4], [5, 6, 7, 8]], [0.9, 0.6], [0, 1], -1, [3, 1])
    reasons = () if verdict == "pass" else (Reason(f"rule-{verdict}", Verdict(verdict), "because"),)
    dec = Decision(fid, verdict, reasons, det, "ms-1", "cfg-1", T0 + timedelta(minutes=i, seconds=1))
    return DecisionRecord(frame, dec, [det.with_model_index(0)], "run-1", NAMES, False)


@pytest.fixture
def conn(tmp_path):
    c = open_db(tmp_path / "store.sqlite")
    for i, v in enumerate(VERDICTS):
        with transaction(c):
            write_record(c, record(i, v))
    add_review(c, "f001", logged_in(c, "operator", "ann"), "reject_false_alarm", verdict="pass", note="dust")
    add_incident(c, "f002", "no_helmet", session=logged_in(c, "safety_manager", "sam"), zone="gate")
    yield c
    c.close()


def seq_of(conn, entity: str, entity_id: str) -> int:
    sql = "SELECT MAX(seq) FROM audit WHERE entity = ? AND entity_id = ?"
    return conn.execute(sql, (entity, entity_id)).fetchone()[0]


def drop_triggers(conn) -> None:
    # What an attacker with the file does first: the triggers are not what verify relies on.
    for t in ("decisions", "reviews", "audit"):
        conn.execute(f"DROP TRIGGER {t}_no_update")
        conn.execute(f"DROP TRIGGER {t}_no_delete")


def test_hash_forms_are_pinned():
    # Stored audit hashes depend on these exact bytes: numpy values, datetimes, sets, tuples and
    # non-ASCII text in a payload, and the row fields chained to the previous hash.
    payload = {"é": np.float32(0.5), "n": np.int64(3), "a": np.arange(3), "s": {"x"}, "tup": (1, "ü"), "z": "日本",
               "t": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)}
    assert audit.canonical_json(payload) == ('{"a":[0,1,2],"n":3,"s":["x"],"t":"2024-01-02T03:04:05.000000+00:00",'
                                             '"tup":[1,"ü"],"z":"日本","é":0.5}')
    ps = audit.sha256_text(audit.canonical_json(payload))
    assert ps == "91346f1e70651fc2b78515055f04d44fc0f8d85e1a47e4ab54bf76402773c8eb"
    assert row_hash(audit.GENESIS, 1, "2024-01-02T03:04:05.000000+00:00", "op", "review.accept", "reviews", "7",
                    ps) == "4cd71b7dd2e87001eb2a3ef16cbfddb8311c21c6dce57fb9666407385fde0be5"


def test_untouched_store_verifies(conn):
    r = verify(conn)
    assert r.ok and r.problems == () and r.first is None
    n_audit = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
    # run start, decisions, the two users who log in, review, incident
    assert r.audit_rows == n_audit == 1 + len(VERDICTS) + 2 + 2
    assert r.entities_checked == 1 + len(VERDICTS) + 2 + 2
    assert r.message.startswith(f"ok: {n_audit} audit rows")


def test_chain_links_every_row_to_the_previous_one(conn):
    rows = conn.execute("SELECT seq, t, actor, action, entity, entity_id, payload_sha256, prev_hash, hash"
                        " FROM audit ORDER BY seq").fetchall()
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["prev_hash"] == audit.GENESIS
    for prev, row in zip(rows, rows[1:]):
        assert row["prev_hash"] == prev["hash"]
    assert audit_head(conn) == (rows[-1]["seq"], rows[-1]["hash"])


def test_edited_decision_verdict_is_found_and_named(conn):
    drop_triggers(conn)
    conn.execute("UPDATE decisions SET verdict = 'pass' WHERE frame_id = 'f001'")
    r = verify(conn)
    seq = seq_of(conn, "decisions", "f001")
    assert not r.ok and r.first_seq == seq and (r.first.entity, r.first.entity_id) == ("decisions", "f001")
    assert r.message == f"audit row {seq}: decision frame f001 was modified after it was recorded"


@pytest.mark.parametrize("sql", [
    "UPDATE detections SET score = 0.1 WHERE frame_id = 'f002' AND model_index = -1 AND idx = 0",
    "DELETE FROM detections WHERE frame_id = 'f002' AND model_index = 0",
    "UPDATE frames SET image_sha256 = 'forged' WHERE id = 'f002'",
    "UPDATE frames SET lot = 'L9', context = '{\"lot\":\"L9\"}' WHERE id = 'f002'",
])
def test_edits_around_a_decision_count_as_modifying_it(conn, sql):
    conn.execute(sql)  # detections and frames have no triggers: only the hash protects them
    r = verify(conn)
    assert not r.ok and "decision frame f002 was modified" in r.message


def test_retention_fields_are_not_part_of_the_hash(conn):
    conn.execute("UPDATE frames SET image_pruned = 1, image_path = NULL WHERE id = 'f000'")
    assert verify(conn).ok


def test_deleted_review_is_found(conn):
    drop_triggers(conn)
    conn.execute("DELETE FROM reviews")
    r = verify(conn)
    assert not r.ok and r.message.startswith(f"audit row {seq_of(conn, 'reviews', '1')}: review 1 was deleted")


def test_edited_audit_row_is_found(conn):
    drop_triggers(conn)
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    r = verify(conn)
    assert not r.ok and r.first_seq == 3
    assert r.message.startswith("audit row 3 was modified after it was written")


def test_rewritten_audit_row_with_a_recomputed_hash_breaks_the_next_link(conn):
    drop_triggers(conn)
    row = conn.execute("SELECT * FROM audit WHERE seq = 3").fetchone()
    forged = row_hash(row["prev_hash"], 3, row["t"], "mallory", row["action"], row["entity"], row["entity_id"],
                      row["payload_sha256"])
    conn.execute("UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = 3", (forged,))
    r = verify(conn)
    assert not r.ok and r.first_seq == 4 and "row 3 was rewritten" in r.message


def test_deleted_last_audit_row_is_found(conn):
    drop_triggers(conn)
    conn.execute("DELETE FROM audit WHERE seq = (SELECT MAX(seq) FROM audit)")  # the incident's row
    r = verify(conn)
    assert not r.ok and r.message.startswith("incident 1 has no audit row")


def test_deleted_middle_audit_row_is_found(conn):
    drop_triggers(conn)
    conn.execute("DELETE FROM audit WHERE seq = 4")
    r = verify(conn)
    assert not r.ok and r.first_seq == 4
    assert r.message.startswith("audit row 4 is missing (seq jumps from 3 to 5)")
    assert any("has no audit row" in p.message for p in r.problems)  # the decision it covered


def test_decision_inserted_without_audit_is_found(conn):
    conn.execute("INSERT INTO frames (id, run_id, station_id, source, t_utc, width, height)"
                 " VALUES ('sneaky', 'run-1', 'st-1', 'cam0', '2026-03-02T07:00:00.000000+00:00', 4, 4)")
    conn.execute("INSERT INTO decisions VALUES ('sneaky', 'pass', '[]', 'ms-1', 'cfg-1', 't', NULL, '{}')")
    r = verify(conn)
    assert not r.ok and r.message.startswith("decision frame sneaky has no audit row")


def test_incident_status_changes_are_audited_and_direct_edits_are_not(conn):
    set_incident_status(conn, 1, "closed", session=logged_in(conn, "safety_manager", "sam"))
    assert verify(conn).ok
    conn.execute("UPDATE incidents SET status = 'open' WHERE id = 1")  # reopened behind the store's back
    r = verify(conn)
    seq = seq_of(conn, "incidents", "1")
    assert not r.ok and r.message == f"audit row {seq}: incident 1 was modified after it was recorded"


def test_truncated_tail_needs_an_anchor(conn):
    head = audit_head(conn)
    drop_triggers(conn)
    # Remove the newest row together with what it covers: the shorter chain is self-consistent ...
    conn.execute("DELETE FROM incidents")
    conn.execute("DELETE FROM audit WHERE seq = ?", (head[0],))
    assert verify(conn).ok
    # ... so only a head published elsewhere catches it.
    r = verify(conn, anchor=head)
    assert not r.ok and r.first_seq == head[0] and "truncated" in r.message


def test_damaged_file_fails_verification(tmp_path):
    path = tmp_path / "s.sqlite"
    c = open_db(path)
    for i in range(40):
        with transaction(c):
            write_record(c, record(i, "pass"))
    c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    data = bytearray(path.read_bytes())
    page = 4096
    damaged = 0
    for p in range(1, len(data) // page):  # scramble the cells of well-filled index leaf pages
        base = p * page
        if data[base] == 0x0A and int.from_bytes(data[base + 3:base + 5], "big") > 10:
            start = int.from_bytes(data[base + 5:base + 7], "big")
            for k in range(start + 4, page, 13):
                data[base + k] ^= 0x55
            damaged += 1
    assert damaged
    path.write_bytes(bytes(data))
    c = open_db(path, create=False)
    r = verify(c)
    assert not r.ok and "damaged" in r.message


def test_append_needs_the_writing_transaction_and_an_existing_row(conn):
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit.append(conn, actor="x", action="y", entity="users", entity_id="u", payload={})
    with pytest.raises(LookupError, match="review 99 does not exist"), transaction(conn):
        audit.append(conn, actor="x", action="review.accept", entity="reviews", entity_id=99)
