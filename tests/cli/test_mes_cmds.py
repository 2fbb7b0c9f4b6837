"""`inspector mes status | replay` on a real store with an outbox."""

from __future__ import annotations

import json

from click.testing import CliRunner

from helpers.mes_testkit import make_record

from inspector.cli import main
from inspector.mes import outbox
from inspector.store.db import open_db
from inspector.store.writer import StoreWriter


def make_store(path, n=6):
    with StoreWriter(path, None, outbox_hook=outbox.write_drafts) as w:
        for f in [w.submit(make_record("run-a", i, i % 2, ["mes", "files"])) for i in range(n)]:
            f.result(10)
    conn = open_db(path)
    ids = [r.id for r in outbox.pending(conn, "mes", 3)]
    outbox.mark_delivered(conn, ids, "2026-04-01T12:00:00.000000+00:00")
    outbox.record_failure(conn, outbox.pending(conn, "mes", 1)[0].id, "POST http://mes/api: HTTP 503 down")
    conn.close()


def test_status_shows_depth_oldest_and_last_error(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db)
    r = CliRunner().invoke(main, ["mes", "status", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert st["mes"]["pending"] == 3 and st["mes"]["delivered"] == 3 and "HTTP 503" in st["mes"]["last_error"]
    assert st["files"]["pending"] == 6 and st["files"]["oldest_age_s"] >= 0
    r = CliRunner().invoke(main, ["mes", "status", "--db", str(db)])
    assert r.exit_code == 0 and "mes: 3 pending" in r.output and "last error" in r.output


def test_replay_requeues_a_time_range_of_one_transport(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db)
    conn = open_db(db)
    created = conn.execute("SELECT MIN(created) FROM outbox").fetchone()[0]
    conn.close()
    r = CliRunner().invoke(main, ["mes", "replay", "--db", str(db), "--since", created, "--transport", "mes"])
    assert r.exit_code == 0, r.output
    assert "3 message(s) queued again for mes" in r.output
    conn = open_db(db)
    assert outbox.depth(conn, "mes")[0] == 6
    conn.close()
    r = CliRunner().invoke(main, ["mes", "replay", "--db", str(db), "--since", "2099-01-01T00:00:00"])
    assert r.exit_code == 0 and "0 message(s)" in r.output


def test_replay_errors_name_the_option(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db)
    r = CliRunner().invoke(main, ["mes", "replay", "--db", str(db), "--since", "yesterday"])
    assert r.exit_code == 2 and "--since" in r.output and "ISO time" in r.output
    r = CliRunner().invoke(main, ["mes", "replay", "--db", str(db), "--since", "2026-01-01", "--transport", "nope"])
    assert r.exit_code == 2 and "'nope'" in r.output and "files, mes" in r.output
    r = CliRunner().invoke(main, ["mes", "status", "--db", str(tmp_path / "missing.sqlite")])
    assert r.exit_code == 1 and "no Inspector database" in r.output
