"""`inspector db verify | stats | export | prune` on real store files."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from inspector.cli import main
from inspector.config import default_config_path, load_config
from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.store.audit import audit_head
from inspector.store.db import open_db, transaction
from inspector.store.writer import DecisionRecord, write_record

T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)


def make_store(path, n=3):
    conn = open_db(path)
    for i in range(n):
        fid = f"d{i}"
        verdict = "fail" if i % 2 else "pass"
        reasons = (Reason("any-defect", Verdict.FAIL, "x"),) if i % 2 else ()
        frame = Frame(fid, "st", "cam", 0.0, T0, np.zeros((4, 4), np.uint8), {"lot": "L1"})
        dec = Decision(fid, verdict, reasons, Detections([[0, 0, 1, 1]], [0.9], [0], -1), "ms", "cfg", T0)
        with transaction(conn):
            write_record(conn, DecisionRecord(frame, dec, None, "run", ("particle",), False))
    return conn


def run(*args, **kw):
    return CliRunner().invoke(main, ["db", *args], **kw)


def test_verify_ok_then_tampered(tmp_path):
    db = tmp_path / "s.sqlite"
    conn = make_store(db)
    r = run("verify", "--db", str(db))
    assert r.exit_code == 0 and r.output.startswith("ok: 4 audit rows")

    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("UPDATE decisions SET verdict = 'pass' WHERE frame_id = 'd1'")
    conn.close()
    r = run("verify", "--db", str(db))
    assert r.exit_code == 1
    assert "TAMPERED: audit row 3: decision frame d1 was modified after it was recorded" in r.output


def test_verify_with_anchor(tmp_path):
    db = tmp_path / "s.sqlite"
    conn = make_store(db)
    seq, digest = audit_head(conn)
    conn.close()
    assert run("verify", "--db", str(db), "--anchor", f"{seq}:{digest}").exit_code == 0
    r = run("verify", "--db", str(db), "--anchor", f"{seq + 5}:{digest}")
    assert r.exit_code == 1 and f"audit row {seq + 5} is missing" in r.output
    r = run("verify", "--db", str(db), "--anchor", f"{seq}:{'0' * 64}")
    assert r.exit_code == 1 and f"audit row {seq} differs from the published hash" in r.output
    assert run("verify", "--db", str(db), "--anchor", "nonsense").exit_code == 2


def test_stats_text_and_json(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db).close()
    r = run("stats", "--db", str(db), "--json")
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["decisions"] == 3 and s["verdicts"]["fail"] == 1 and s["audit_rows"] == 4
    r = run("stats", "--db", str(db))
    assert r.exit_code == 0 and "decisions 3 (pass 2, fail 1" in r.output and "audit rows 4, head 4:" in r.output


def test_export(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db).close()
    out = tmp_path / "d.jsonl"
    r = run("export", "--db", str(db), "--out", str(out), "--format", "jsonl")
    assert r.exit_code == 0 and "3 decisions written" in r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["frame_id"] for x in rows] == ["d0", "d1", "d2"] and rows[1]["rule_ids"] == ["any-defect"]
    r = run("export", "--db", str(db), "--out", str(tmp_path / "d.csv"))
    assert r.exit_code == 0 and (tmp_path / "d.csv").read_text().startswith("frame_id,")


@pytest.mark.parametrize("command", [["verify"], ["stats"], ["export", "--out", "x.csv"]])
def test_missing_database_is_named_and_not_created(tmp_path, command):
    db = tmp_path / "nope.sqlite"
    r = run(*command, "--db", str(db))
    assert r.exit_code == 1 and f"no Inspector database at {db}" in r.output
    assert not db.exists()


def test_not_a_database(tmp_path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("hello, this is not sqlite" * 100)
    r = run("stats", "--db", str(bogus))
    assert r.exit_code == 1 and "not a readable Inspector database" in r.output


def test_database_of_a_config(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "data"))
    cfg = load_config(default_config_path())
    make_store(tmp_path / "data" / cfg.storage.db_name).close()
    r = run("stats", "--config", str(default_config_path()), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["decisions"] == 3


def test_no_database_given(tmp_path):
    r = run("verify")
    assert r.exit_code == 2 and "--db PATH" in r.output


def test_prune_keeps_evidence_and_deletes_old_pass_images(tmp_path):
    from inspector.store.images import ImageStore

    db, images = tmp_path / "s.sqlite", ImageStore(tmp_path / "images")
    conn = open_db(db)
    paths = {}
    for i, verdict in enumerate(("pass", "fail")):
        fid = f"p{i}"
        img = np.full((8, 8, 3), 40 * (i + 1), np.uint8)
        sha, rel = images.put(img)
        paths[verdict] = tmp_path / "images" / rel
        reasons = (Reason("any-defect", Verdict.FAIL, "x"),) if verdict == "fail" else ()
        frame = Frame(fid, "st", "cam", 0.0, T0, img, {"lot": "L1"})
        dec = Decision(fid, verdict, reasons, Detections.empty(), "ms", "cfg", T0)
        with transaction(conn):
            write_record(conn, DecisionRecord(frame, dec, None, "run", ("particle",), True), sha, rel)
    conn.close()
    assert run("prune", "--db", str(db)).exit_code == 2  # no limit given: usage error
    r = run("prune", "--db", str(db), "--older-than-days", "30")
    assert r.exit_code == 0, r.output
    assert "pruned 1 frame image(s)" in r.output and "kept 1 needed" in r.output
    assert not paths["pass"].exists() and paths["fail"].exists()   # the failed die's image is evidence
    assert run("verify", "--db", str(db)).exit_code == 0            # pruning is not tampering


def test_verify_json_ok_then_tampered_exits_1(tmp_path):
    db = tmp_path / "s.sqlite"
    conn = make_store(db)
    r = run("verify", "--db", str(db), "--json")
    assert r.exit_code == 0 and r.stderr == ""
    ok = json.loads(r.stdout)
    assert ok["ok"] and ok["audit_rows"] == 4 and ok["problems"] == [] and ok["message"].startswith("ok: 4 audit rows")
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("UPDATE decisions SET verdict = 'pass' WHERE frame_id = 'd1'")
    conn.close()
    r = run("verify", "--db", str(db), "--json")
    assert r.exit_code == 1
    bad = json.loads(r.stdout)  # the JSON alone, even when the check fails
    assert not bad["ok"] and bad["problems"][0]["seq"] == 3 and bad["problems"][0]["entity_id"] == "d1"
    assert "modified after it was recorded" in bad["problems"][0]["message"]


def test_export_reports_rows_as_json_lines_and_nothing_when_piped(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db).close()
    r = run("export", "--db", str(db), "--out", str(tmp_path / "d.csv"), "--progress", "json")
    assert r.exit_code == 0 and r.stdout == f"3 decisions written to {tmp_path / 'd.csv'}\n"
    lines = [json.loads(x) for x in r.stderr.splitlines()]
    assert [x["event"] for x in (lines[0], lines[-1])] == ["start", "end"]
    assert {x["progress"] for x in lines} == {"export"} and lines[0]["total"] == 3 and lines[-1]["done"] == 3
    quiet = run("export", "--db", str(db), "--out", str(tmp_path / "e.csv"))  # auto: stderr is no terminal
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_store_commands_log_into_the_data_folder(tmp_path):
    import logging

    db = tmp_path / "data" / "s.sqlite"
    db.parent.mkdir()
    make_store(db).close()
    assert run("stats", "--db", str(db)).exit_code == 0
    logging.getLogger("inspector.test").info("after db stats")
    assert "after db stats" in (tmp_path / "data" / "logs" / "inspector.log").read_text()
