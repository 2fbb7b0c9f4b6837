"""Delivered outbox rows are pruned after the retention (periodically by the forwarders, on demand
by `inspector mes prune`), in small batches; undelivered rows never are."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from click.testing import CliRunner

from helpers.mes_testkit import make_record

from inspector.cli import main
from inspector.mes import outbox
from inspector.mes.forwarder import Delivery, Forwarder, ForwarderSettings, Retention
from inspector.store.db import iso_utc, open_db
from inspector.store.writer import StoreWriter

OLD = iso_utc(datetime.now(timezone.utc) - timedelta(days=30))
RECENT = iso_utc(datetime.now(timezone.utc) - timedelta(hours=1))


def make_store(path, n: int, transports=("mes",)) -> None:
    with StoreWriter(path, None, outbox_hook=outbox.write_drafts) as w:
        for f in [w.submit(make_record("run-a", i, i % 2, list(transports))) for i in range(n)]:
            f.result(10)


def deliver(conn, transport: str, n: int, when: str) -> list[int]:
    ids = [r.id for r in outbox.pending(conn, transport, n)]
    outbox.mark_delivered(conn, ids, when)
    # a message delivered at `when` was created no later than that
    conn.execute(f"UPDATE outbox SET created = MIN(created, ?) WHERE id IN ({','.join('?' * len(ids))})", [when, *ids])
    return ids


def counts(conn, transport: str = "mes") -> tuple[int, int]:
    st = outbox.status(conn).get(transport, {"pending": 0, "delivered": 0})
    return st["pending"], st["delivered"]


def test_prune_deletes_only_old_delivered_rows_in_batches(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db, 20)
    conn = open_db(db)
    deliver(conn, "mes", 9, OLD)
    deliver(conn, "mes", 5, RECENT)
    # 6 rows still pending, some of them created long ago: age alone never deletes a message
    conn.execute("UPDATE outbox SET created = ? WHERE delivered IS NULL", (OLD,))
    cutoff = datetime.now(timezone.utc) - timedelta(days=7)

    n, more = outbox.prune_some(conn, cutoff, transport="mes", batch=4, budget_s=1e-9)
    assert (n, more) == (4, True)  # the time budget ends the round after one batch; the rest waits
    assert outbox.prune_delivered(conn, cutoff, batch=4) == 5
    assert counts(conn) == (6, 5)
    assert outbox.prune_delivered(conn, cutoff) == 0
    assert outbox.pending(conn, "mes", 100)[0].key.endswith("f00014")  # the queue itself is intact
    conn.close()


def test_prune_of_one_transport_leaves_the_others(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db, 6, ("mes", "files"))
    conn = open_db(db)
    deliver(conn, "mes", 6, OLD)
    deliver(conn, "files", 6, OLD)
    assert outbox.prune_delivered(conn, datetime.now(timezone.utc), transport="files") == 6
    assert counts(conn, "mes") == (0, 6) and counts(conn, "files") == (0, 0)
    conn.close()


class Ack:
    """A transport that acknowledges everything (what is tested here is the forwarder's housekeeping)."""

    name = "mes"
    kinds = frozenset({"unit", "wafer"})

    def deliver(self, rows):
        return Delivery(len(rows))

    def close(self):
        pass


def test_forwarder_prunes_periodically_and_never_in_between(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db, 30)
    conn = open_db(db)
    deliver(conn, "mes", 12, OLD)
    settings = ForwarderSettings(poll_s=0.02, stats_every_s=0.02,
                                 retention=Retention(keep_s=86400, every_s=3600, batch=5))
    fw = Forwarder(db, Ack(), settings).start()
    try:
        assert fw.wait_empty(5)
        deadline = time.monotonic() + 5
        while fw.stats()["pruned"] < 12 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fw.stats()["pruned"] == 12  # the old ones, in batches of 5 within the first round
        assert counts(conn) == (0, 18)     # the ones it just delivered are kept for the retention
        conn.execute("UPDATE outbox SET delivered = ?, created = ?", (OLD, OLD))  # they age ...
        time.sleep(0.3)
        assert counts(conn) == (0, 18) and fw.stats()["pruned"] == 12  # ... but the next round is an hour away
    finally:
        fw.stop(5)
    conn.close()


def test_mes_prune_command(tmp_path):
    db = tmp_path / "s.sqlite"
    make_store(db, 8, ("mes", "files"))
    conn = open_db(db)
    deliver(conn, "mes", 3, OLD)
    deliver(conn, "mes", 2, RECENT)
    deliver(conn, "files", 4, OLD)
    conn.close()
    r = CliRunner().invoke(main, ["mes", "prune", "--db", str(db), "--transport", "mes"])
    assert r.exit_code == 0, r.output
    assert "3 delivered message(s) older than 7 day(s) deleted for mes" in r.output
    r = CliRunner().invoke(main, ["mes", "prune", "--db", str(db), "--older-than-days", "0.01"])
    assert r.exit_code == 0 and "6 delivered message(s)" in r.output  # 2 recent of mes + 4 of files
    conn = open_db(db)
    assert counts(conn, "mes") == (3, 0) and counts(conn, "files") == (4, 0)
    conn.close()

    r = CliRunner().invoke(main, ["mes", "prune", "--db", str(db), "--older-than-days", "0"])
    assert r.exit_code == 2 and "--older-than-days" in r.output
    r = CliRunner().invoke(main, ["mes", "prune", "--db", str(db), "--transport", "nope"])
    assert r.exit_code == 2 and "'nope'" in r.output and "files, mes" in r.output
