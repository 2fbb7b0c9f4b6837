"""Signed audit checkpoints: the attacks a chain kept in its own database cannot see are caught by them."""

from __future__ import annotations

import json
import os
import stat
import time
from types import SimpleNamespace

import pytest

from helpers.audit_attacks import delete_tail, drop_triggers, recompute_chain, write_with_messages
from helpers.mes_testkit import make_record
from inspector.mes import outbox
from inspector.store import checkpoints as cp
from inspector.store.audit import audit_head, verify
from inspector.store.db import open_db
from inspector.store.writer import StoreWriter


@pytest.fixture
def key(tmp_path):
    priv, pub, _ = cp.generate_keypair(tmp_path / "keys" / "station.key")
    return priv, pub


def store(path, n=6):
    conn = open_db(path)
    write_with_messages(conn, [make_record("run", i, 0, ["drop"]) for i in range(n)], outbox.write_drafts)
    return conn


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path):
    priv, pub, kid = cp.generate_keypair(tmp_path / "k" / "station.key")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert pub == tmp_path / "k" / "station.key.pub" and b"PUBLIC KEY" in pub.read_bytes()
    assert kid == cp.key_id(cp.load_public_key(pub)) == cp.key_id(cp.load_private_key(priv).public_key())
    with pytest.raises(FileExistsError):  # a new key would orphan the checkpoints signed with the old one
        cp.generate_keypair(priv)


def test_checkpoints_every_n_decisions_and_at_close_each_signed(tmp_path, key):
    path = tmp_path / "data" / "audit-checkpoints.jsonl"
    c = cp.Checkpointer(path, cp.load_private_key(key[0]), "st-1", every_decisions=4, every_s=3600)
    conn = store(tmp_path / "s.sqlite", 0)
    for i in range(10):
        write_with_messages(conn, [make_record("run", i, 0, ["drop"])], outbox.write_drafts)
        c.after_commit(conn, 1)
    c.wait()
    assert c.written == 2  # after the 4th and the 8th decision
    c.close(conn)
    c.close(conn)  # the head did not move: no second line for it
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 3 and [ln["seq"] for ln in lines][-1] == audit_head(conn)[0]
    public = cp.load_public_key(key[1])
    assert all(cp.signature_ok(ln, public) for ln in lines)
    assert set(lines[0]) == {"seq", "hash", "t", "station", "key_id", "signature"} and lines[0]["station"] == "st-1"
    rep = cp.read_checkpoints(path, [public])
    assert rep.problems == () and rep.signatures_checked and len(rep.anchors) == 3
    assert verify(conn, anchors=rep.anchors).ok


def test_checkpoints_every_t_seconds(tmp_path, key):
    now = [0.0]
    c = cp.Checkpointer(tmp_path / "c.jsonl", cp.load_private_key(key[0]), "st-1", every_decisions=1000,
                        every_s=60, clock=lambda: now[0])
    conn = store(tmp_path / "s.sqlite", 1)
    c.after_commit(conn, 1)
    assert c.written == 0
    now[0] = 61.0
    c.after_commit(conn, 1)
    c.wait()
    assert c.written == 1


def test_a_recomputed_chain_passes_alone_and_is_caught_by_a_checkpoint_naming_the_seq(tmp_path, key):
    conn = store(tmp_path / "s.sqlite")
    c = cp.Checkpointer(tmp_path / "c.jsonl", cp.load_private_key(key[0]), "st-1")
    c.checkpoint(conn)
    anchored = audit_head(conn)[0]
    drop_triggers(conn)
    conn.execute("UPDATE decisions SET verdict = 'pass', reasons = '[]' WHERE frame_id = 'run/f00002'")
    recompute_chain(conn)
    assert verify(conn).ok  # the attack the chain alone cannot see
    rep = cp.read_checkpoints(tmp_path / "c.jsonl", [cp.load_public_key(key[1])])
    r = verify(conn, anchors=rep.anchors)
    assert not r.ok and r.first_seq == anchored
    assert f"audit row {anchored} differs from the published hash (checkpoint c.jsonl line 1)" in r.message


def test_a_deleted_tail_is_caught_by_a_checkpoint(tmp_path, key):
    conn = store(tmp_path / "s.sqlite", 3)
    keep = audit_head(conn)[0]
    write_with_messages(conn, [make_record("run", i, 0, ["drop"]) for i in range(3, 6)], outbox.write_drafts)
    c = cp.Checkpointer(tmp_path / "c.jsonl", cp.load_private_key(key[0]), "st-1")
    c.checkpoint(conn)
    head = audit_head(conn)[0]
    drop_triggers(conn)
    delete_tail(conn, keep)
    assert verify(conn).ok
    r = verify(conn, anchors=cp.read_checkpoints(tmp_path / "c.jsonl").anchors)
    assert not r.ok and r.first_seq == head and f"audit row {head} is missing (the chain ends at {keep})" in r.message


def test_a_line_forged_without_the_key_has_a_bad_signature(tmp_path, key):
    conn = store(tmp_path / "s.sqlite")
    path = tmp_path / "c.jsonl"
    cp.Checkpointer(path, cp.load_private_key(key[0]), "st-1").checkpoint(conn)
    line = json.loads(path.read_text())
    # The attacker re-anchors a rewritten chain: edits the hash but cannot re-sign it ...
    edited = {**line, "hash": "0" * 64}
    # ... or signs with a key of their own.
    other, _, _ = cp.generate_keypair(tmp_path / "other.key")
    own = cp.sign_line(line["seq"], "1" * 64, line["t"], "st-1", cp.load_private_key(other))
    with path.open("a") as f:
        f.write(json.dumps(edited) + "\n" + json.dumps(own) + "\n")
    rep = cp.read_checkpoints(path, [cp.load_public_key(key[1])])
    assert len(rep.anchors) == 1 and rep.anchors[0].hash == line["hash"]
    assert any("line 2" in p and "bad signature" in p for p in rep.problems)
    assert any("line 3" in p and "not by the given public key" in p for p in rep.problems)


def test_the_station_refuses_a_key_in_the_data_folder_or_readable_by_others(tmp_path, key):
    data = tmp_path / "data"
    cfg = SimpleNamespace(checkpoint_key=None, checkpoint_file="audit-checkpoints.jsonl",
                          checkpoint_every_decisions=10, checkpoint_every_s=60.0)
    assert cp.checkpointer_for(cfg, "st-1", data) is None
    inside, _, _ = cp.generate_keypair(data / "keys" / "k")
    with pytest.raises(cp.CheckpointKeyError, match="inside the data folder"):
        cp.checkpointer_for(SimpleNamespace(**{**vars(cfg), "checkpoint_key": str(inside)}), "st-1", data)
    os.chmod(key[0], 0o644)
    with pytest.raises(cp.CheckpointKeyError, match="readable by other users"):
        cp.checkpointer_for(SimpleNamespace(**{**vars(cfg), "checkpoint_key": str(key[0])}), "st-1", data)
    os.chmod(key[0], 0o600)
    c = cp.checkpointer_for(SimpleNamespace(**{**vars(cfg), "checkpoint_key": str(key[0])}), "st-1", data)
    assert c is not None and c.path == data.resolve() / "audit-checkpoints.jsonl" and c.every_decisions == 10


def test_the_writer_checkpoints_after_commits_and_when_it_closes(tmp_path, key):
    path = tmp_path / "c.jsonl"
    c = cp.Checkpointer(path, cp.load_private_key(key[0]), "st-1", every_decisions=5, every_s=3600)
    with StoreWriter(tmp_path / "s.sqlite", None, outbox_hook=outbox.write_drafts, checkpoints=c) as w:
        for i in range(12):  # one commit each: checkpoints after the 5th and the 10th
            w.submit(make_record("run", i, 0, ["drop"])).result(10)
        c.wait()
        assert c.written == 2
    conn = open_db(tmp_path / "s.sqlite")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert c.written == 3 and lines[-1]["seq"] == audit_head(conn)[0]  # the last one: the head at close


def test_checkpoint_write_and_head_lookup_cost_milliseconds_not_more(tmp_path, key):
    conn = store(tmp_path / "s.sqlite", 200)
    c = cp.Checkpointer(tmp_path / "c.jsonl", cp.load_private_key(key[0]), "st-1", every_decisions=10**9)
    t0 = time.perf_counter()
    for _ in range(200):
        audit_head(conn)
    head_ms = (time.perf_counter() - t0) / 200 * 1e3
    t0 = time.perf_counter()
    for _ in range(1000):  # what a commit between checkpoints costs
        c.after_commit(conn, 1)
    between_us = (time.perf_counter() - t0) / 1000 * 1e6
    due = []
    for i in range(20):
        write_with_messages(conn, [make_record("run", 1000 + i, 0, ["drop"])], outbox.write_drafts)
        t0 = time.perf_counter()
        c.checkpoint(conn, wait=False)  # what the writer's thread pays at a checkpoint
        due.append(time.perf_counter() - t0)
        c.wait()
    write_ms = sorted(c.write_s)[len(c.write_s) // 2] * 1e3
    due_ms = sorted(due)[len(due) // 2] * 1e3
    print(f"head lookup {head_ms:.3f} ms; at a checkpoint the writer thread pays p50 {due_ms:.3f} ms, the "
          f"signer thread (sign + fsynced append) p50 {write_ms:.2f} ms; a commit between checkpoints "
          f"{between_us:.2f} us")
    # Generous bounds (a shared CI machine): the point is the order of magnitude.
    assert head_ms < 5 and due_ms < 5 and write_ms < 100 and between_us < 50
