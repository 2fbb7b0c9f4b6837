"""MES messages carry the audit chain's head, and the outbox bodies themselves are in the chain."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from helpers.audit_attacks import delete_tail, drop_triggers, recompute_chain, write_with_messages
from helpers.mes_testkit import make_record
from inspector.mes import outbox
from inspector.mes.payload import UNIT_RESULT_SCHEMA, check_unit_payload
from inspector.store.anchors import current_anchor, message_anchors, outbox_anchors
from inspector.store.audit import verify
from inspector.store.db import open_db, transaction
from inspector.store.writer import write_record


def store(tmp_path, n=4, transports=("http", "drop")):
    conn = open_db(tmp_path / "s.sqlite")
    write_with_messages(conn, [make_record("run", i, 0, list(transports)) for i in range(n)], outbox.write_drafts)
    return conn


def test_a_message_carries_the_head_including_its_decision_then_is_audited_itself(tmp_path):
    conn = store(tmp_path, 2)
    rows = conn.execute("SELECT seq, hash, action, entity, entity_id FROM audit ORDER BY seq").fetchall()
    decision = next(r for r in rows if r[3] == "decisions" and r[4] == "run/f00001")
    bodies = conn.execute("SELECT id, body FROM outbox WHERE key LIKE '%f00001' ORDER BY id").fetchall()
    assert len(bodies) == 2 and bodies[0][1] == bodies[1][1]  # one body for every transport
    body = json.loads(bodies[0][1])
    # The head of the decision's own transaction: its audit row is the newest one the body names ...
    assert body["audit_head"] == {"seq": decision[0], "hash": decision[1]}
    # ... and each outbox row's audit row follows it (it hashes the body, so it cannot be inside it).
    after = [r for r in rows if r[0] > decision[0]]
    assert [(r[2], r[3], r[4]) for r in after] == [("outbox.queue", "outbox", str(i)) for i, _ in bodies]
    assert check_unit_payload(body) == [] and "audit_head" in UNIT_RESULT_SCHEMA["properties"]
    r = verify(conn, anchors=outbox_anchors(conn))
    assert r.ok and len(r.anchors) == 2, r.message


def test_an_edited_outbox_body_is_found(tmp_path):
    conn = store(tmp_path)
    row_id, body = conn.execute("SELECT id, body FROM outbox ORDER BY id LIMIT 1").fetchone()
    forged = json.loads(body) | {"verdict": "pass", "reasons": []}
    conn.execute("UPDATE outbox SET body = ? WHERE id = ?", (json.dumps(forged), row_id))
    r = verify(conn)
    assert not r.ok and f"MES outbox message {row_id} was modified after it was recorded" in r.message


def test_delivery_bookkeeping_replay_and_pruning_are_not_tampering(tmp_path):
    conn = store(tmp_path)
    ids = [r[0] for r in conn.execute("SELECT id FROM outbox ORDER BY id")]
    outbox.record_failure(conn, ids[0], "receiver down")
    outbox.mark_delivered(conn, ids[:4], when="2000-01-01T00:00:00.000000+00:00")
    outbox.replay(conn, "1999-01-01T00:00:00+00:00")
    outbox.mark_delivered(conn, ids[:4], when="2000-01-01T00:00:00.000000+00:00")
    assert outbox.prune_delivered(conn, datetime.now(timezone.utc) + timedelta(days=1)) == 4
    assert verify(conn).ok


def test_a_database_from_before_outbox_auditing_still_verifies(tmp_path):
    # What the earlier Inspector wrote: decisions and their audit rows, outbox rows without any.
    conn = open_db(tmp_path / "old.sqlite")
    for i in range(3):
        rec = make_record("old", i, 0, ["drop"])
        with transaction(conn):
            write_record(conn, rec)
            conn.execute("INSERT INTO outbox (transport, key, stream, kind, body, meta, created)"
                         " VALUES (?,?,?,?,?,?,?)", ("drop", rec.outbox[0].key, "s", "unit", "{}", "{}", "t"))
    assert verify(conn).ok
    # The same store keeps running with this Inspector: new rows are audited, old ones stay as they were.
    write_with_messages(conn, [make_record("new", i, 0, ["drop"]) for i in range(2)], outbox.write_drafts)
    assert len(outbox_anchors(conn)) == 2  # the old bodies carry no head: nothing to check there
    assert verify(conn, anchors=outbox_anchors(conn)).ok
    # From the first audited outbox row on, a row without an audit row was written around the store.
    conn.execute("INSERT INTO outbox (transport, key, stream, kind, body, meta, created) VALUES"
                 " ('drop', 'forged', 's', 'unit', '{}', '{}', 't')")
    r = verify(conn)
    assert not r.ok and "has no audit row" in r.message


def test_a_deleted_tail_is_caught_by_the_heads_a_receiver_kept(tmp_path):
    conn = store(tmp_path, 3)
    keep = current_anchor(conn)["seq"]
    write_with_messages(conn, [make_record("run", i, 0, ["http", "drop"]) for i in range(3, 6)], outbox.write_drafts)
    received = tmp_path / "receiver"
    received.mkdir()
    for row_id, key, body in conn.execute("SELECT id, key, body FROM outbox WHERE transport = 'drop'"):
        (received / f"{row_id:012d}.json").write_text(body)  # what a file drop delivered
    (received / "log.jsonl").write_text("\n".join(r[0] for r in conn.execute("SELECT body FROM outbox")))
    newest = json.loads(conn.execute("SELECT body FROM outbox ORDER BY id DESC LIMIT 1").fetchone()[0])["audit_head"]
    drop_triggers(conn)
    delete_tail(conn, keep)  # the last decisions with their messages and every audit row about them
    assert verify(conn, anchors=outbox_anchors(conn)).ok  # nothing left inside the file to tell
    anchors = message_anchors([received], stations=["st-1"])
    r = verify(conn, anchors=anchors)
    assert not r.ok and any(f"audit row {newest['seq']} is missing" in p.message for p in r.problems)
    assert message_anchors([received], stations=["another-station"]) == []


def test_a_recomputed_chain_is_caught_by_the_heads_in_the_outbox(tmp_path):
    conn = store(tmp_path)
    drop_triggers(conn)
    conn.execute("UPDATE decisions SET verdict = 'pass' WHERE frame_id = 'run/f00001'")
    recompute_chain(conn)
    assert verify(conn).ok
    r = verify(conn, anchors=outbox_anchors(conn))
    assert not r.ok and "differs from the published hash (outbox row" in r.message
