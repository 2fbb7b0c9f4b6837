"""`inspector db keygen` and `db verify` against every published head: checkpoints, MES messages, the outbox."""

from __future__ import annotations

import json
import os
import stat

import pytest
from click.testing import CliRunner

from helpers.audit_attacks import delete_tail, drop_triggers, recompute_chain
from inspector.cli import main
from inspector.cli.run_summary import finish
from inspector.station.demo import demo_config_path
from inspector.store.anchors import outbox_anchors
from inspector.store.audit import audit_head, verify
from inspector.store.db import open_db


def cli(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def station_run(tmp_path_factory):
    """A wafer demo run (no model: every die recorded as not inspected) that signs checkpoints,
    with its file drop, checkpoint file and key pair."""
    tmp = tmp_path_factory.mktemp("anchored")
    key = tmp / "keys" / "station.key"
    r = cli("db", "keygen", "--key", str(key), "--json")
    assert r.exit_code == 0, r.output
    cfg = tmp / "station.yaml"
    cfg.write_text(demo_config_path("wafer").read_text()
                   + f"\naudit:\n  checkpoint_key: '{key}'\n  checkpoint_every_decisions: 5\n")
    data = tmp / "data"
    r = cli("demo", "--config", str(cfg), "--json", "--max-frames", "12", "--data-dir", str(data),
            "--registry", str(tmp / "empty"))
    assert r.exit_code == 0, r.output
    return {"key": key, "pub": key.with_name("station.key.pub"), "data": data, "cfg": cfg,
            "summary": json.loads(r.stdout), "keygen": json.loads(cli("db", "keygen", "--key", str(tmp / "k2"),
                                                                         "--json").output)}


def copy_store(src_data, dst):
    """The attacker's working copy of the database (the run's own stays clean for the other tests)."""
    import sqlite3

    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src_data / "inspector.sqlite") as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def test_keygen_creates_a_0600_private_key_and_its_public_key(station_run):
    k = station_run["keygen"]
    assert stat.S_IMODE(os.stat(k["private_key"]).st_mode) == 0o600
    assert k["public_key"].endswith(".pub") and len(k["key_id"]) == 16
    r = cli("db", "keygen", "--key", k["private_key"])
    assert r.exit_code == 1 and "already exists" in r.output


def test_a_run_publishes_its_head_in_the_summary_the_checkpoints_and_every_message(station_run):
    data, s = station_run["data"], station_run["summary"]
    conn = open_db(data / "inspector.sqlite")
    seq, digest = audit_head(conn)
    conn.close()
    assert s["audit_head"] == {"seq": seq, "hash": digest}
    lines = [json.loads(x) for x in (data / "audit-checkpoints.jsonl").read_text().splitlines()]
    assert len(lines) >= 2 and lines[-1]["seq"] == seq  # every 5 decisions, and the run end
    bodies = [json.loads(p.read_text()) for p in (data / "mes-out").glob("*.json")]
    assert bodies and all(b["audit_head"]["seq"] < seq for b in bodies)


def test_verify_json_lists_every_anchor_it_checked(station_run, tmp_path):
    data = station_run["data"]
    conn = open_db(data / "inspector.sqlite")
    seq, digest = audit_head(conn)
    conn.close()
    r = cli("db", "verify", "--db", str(data / "inspector.sqlite"), "--public-key", str(station_run["pub"]),
            "--mes-messages", str(data / "mes-out"), "--anchor", f"{seq}:{digest}", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    kinds = {g["kind"]: g for g in out["anchors"]}
    assert set(kinds) == {"checkpoint", "outbox", "mes-message", "argument"}
    assert all(g["checked"] == g["held"] > 0 and g["failed_seqs"] == [] for g in kinds.values())
    assert kinds["checkpoint"]["signatures"] == "verified" and kinds["checkpoint"]["newest"]["seq"] == seq
    # With the config: its checkpoint file, the .pub beside its key and its file-drop folder, found alone.
    r = cli("db", "verify", "--config", str(station_run["cfg"]), "--db", str(data / "inspector.sqlite"), "--json")
    assert r.exit_code == 0, r.output
    groups = json.loads(r.output)["anchors"]
    assert {g["kind"] for g in groups} == {"checkpoint", "outbox", "mes-message"}
    assert next(g for g in groups if g["kind"] == "checkpoint")["signatures"] == "verified"


def test_a_recomputed_chain_fails_verify_naming_the_checkpointed_seq(station_run, tmp_path):
    db = copy_store(station_run["data"], tmp_path / "data" / "inspector.sqlite")
    (tmp_path / "data" / "audit-checkpoints.jsonl").write_bytes(
        (station_run["data"] / "audit-checkpoints.jsonl").read_bytes())
    conn = open_db(db)
    drop_triggers(conn)
    frame = conn.execute("SELECT frame_id FROM decisions ORDER BY t_decided LIMIT 1").fetchone()[0]
    conn.execute("UPDATE decisions SET verdict = 'pass' WHERE frame_id = ?", (frame,))
    recompute_chain(conn, rewrite_messages=True)  # the heads in its own outbox rewritten too
    assert verify(conn, anchors=outbox_anchors(conn)).ok  # nothing inside the file tells any more
    conn.close()
    first = json.loads((tmp_path / "data" / "audit-checkpoints.jsonl").read_text().splitlines()[0])
    r = cli("db", "verify", "--db", str(db), "--public-key", str(station_run["pub"]))
    assert r.exit_code == 1
    assert f"TAMPERED: audit row {first['seq']} differs from the published hash (checkpoint" in r.output


def test_a_deleted_tail_fails_verify_by_checkpoint_and_by_a_delivered_message(station_run, tmp_path):
    db = copy_store(station_run["data"], tmp_path / "data" / "inspector.sqlite")
    conn = open_db(db)
    drop_triggers(conn)
    # Keep the chain up to the second unit decision: everything after it goes, with its rows.
    seqs = [r[0] for r in conn.execute("SELECT seq FROM audit WHERE action = 'decision.record' ORDER BY seq")]
    delete_tail(conn, seqs[1])
    conn.close()
    assert cli("db", "verify", "--db", str(db)).exit_code == 0  # alone, the shorter chain holds
    r = cli("db", "verify", "--db", str(db), "--mes-messages", str(station_run["data"] / "mes-out"), "--json")
    out = json.loads(r.output)
    assert r.exit_code == 1 and next(g for g in out["anchors"] if g["kind"] == "mes-message")["failed_seqs"]
    r = cli("db", "verify", "--db", str(db), "--checkpoints", str(station_run["data"] / "audit-checkpoints.jsonl"),
            "--public-key", str(station_run["pub"]), "--json")
    out = json.loads(r.output)
    assert r.exit_code == 1 and "is missing" in out["message"] and "truncated" in out["message"]


def test_a_checkpoint_line_forged_without_the_key_is_a_bad_signature(station_run, tmp_path):
    path = tmp_path / "audit-checkpoints.jsonl"
    lines = (station_run["data"] / "audit-checkpoints.jsonl").read_text().splitlines()
    forged = json.loads(lines[-1]) | {"hash": "f" * 64}
    path.write_text("\n".join([*lines, json.dumps(forged)]) + "\n")
    r = cli("db", "verify", "--db", str(station_run["data"] / "inspector.sqlite"), "--checkpoints", str(path),
            "--public-key", str(station_run["pub"]), "--json")
    out = json.loads(r.output)
    assert r.exit_code == 1 and not out["ok"]
    assert any(f"line {len(lines) + 1}" in p["message"] and "bad signature" in p["message"] for p in out["problems"])


def test_the_summary_json_carries_the_audit_head(tmp_path, capsys):
    conn = open_db(tmp_path / "s.sqlite")
    conn.close()
    finish({"db": str(tmp_path / "s.sqlite"), "state": "stopped", "complete": True}, as_json=True)
    assert json.loads(capsys.readouterr().out)["audit_head"] is None  # an empty chain
    finish({"db": str(tmp_path / "missing.sqlite"), "state": "stopped", "complete": True}, as_json=True)
    assert json.loads(capsys.readouterr().out)["audit_head"] is None and not (tmp_path / "missing.sqlite").exists()
