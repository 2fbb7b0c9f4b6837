"""Every result delivered once through an HTTP outage and a producer restart mid-outage."""

from __future__ import annotations

import time

from helpers.mes_testkit import HttpReceiver, Producer, make_record

from inspector.mes import outbox
from inspector.mes.http import HttpTransport
from inspector.store.db import open_db


def test_outage_restart_every_message_once_in_order(tmp_path, http_receiver: HttpReceiver):
    db = tmp_path / "st.sqlite"
    rec = http_receiver
    p = Producer(db, [HttpTransport("mes", rec.url)])
    p.write([make_record("run-a", i, i % 3, ["mes"]) for i in range(30)])
    assert rec.wait_for(30, 10)

    rec.stop()  # the MES goes down ...
    p.write([make_record("run-a", i, i % 3, ["mes"]) for i in range(30, 60)])
    time.sleep(0.3)  # ... the forwarder keeps failing and backing off
    assert len(rec.applied) == 30
    p.close()  # the station restarts in the middle of the outage

    p = Producer(db, [HttpTransport("mes", rec.url)])
    p.write([make_record("run-b", i, i % 3, ["mes"]) for i in range(60, 90)])
    conn = open_db(db)
    st = outbox.status(conn)["mes"]
    assert st["pending"] == 60 and st["last_error"] and "ConnectionRefused" in st["last_error"]
    rec.start()  # the MES comes back
    assert rec.wait_for(90, 20), f"only {len(rec.applied)} of 90 arrived"
    assert p.forwarders[0].wait_empty(10)
    p.close()

    assert sorted(rec.keys) == sorted({m["message_id"] for m in rec.applied}) and len(rec.keys) == 90
    rec.check_order()
    st = outbox.status(conn)["mes"]
    assert st["pending"] == 0 and st["delivered"] == 90
    conn.close()


def test_lost_acknowledgement_is_resent_and_deduplicated(tmp_path, http_receiver: HttpReceiver):
    rec = http_receiver
    recs = [make_record("run-a", i, 0, ["mes"]) for i in range(5)]
    rec.lose_ack_once.add(recs[2].outbox[0].key)  # applied, but the 200 never reaches the station
    p = Producer(tmp_path / "st.sqlite", [HttpTransport("mes", rec.url, token="s3cret")])
    p.write(recs)
    assert rec.wait_for(5, 10)
    assert p.forwarders[0].wait_empty(10)
    p.close()
    assert rec.arrivals[recs[2].outbox[0].key] == 2  # at least once on the wire ...
    assert len(rec.applied) == 5                      # ... exactly once applied
    rec.check_order()
    h = rec.headers[0]
    assert h["Authorization"] == "Bearer s3cret" and h["X-Inspector-Stream"] == "L1/W0"
    assert h["Content-Type"].startswith("application/json")


def test_refused_message_holds_only_its_stream(tmp_path, http_receiver: HttpReceiver):
    rec = http_receiver
    recs = [make_record("run-a", i, i % 2, ["mes"]) for i in range(10)]
    bad = recs[2].outbox[0].key  # stream W0
    rec.reject[bad] = 422
    p = Producer(tmp_path / "st.sqlite", [HttpTransport("mes", rec.url)])
    p.write(recs)
    assert rec.wait_for(6, 10)  # W1 (5) + W0 before the refused one (1: f0) ... and nothing after it in W0
    time.sleep(0.2)
    streams = [m["unit"]["wafer"] for m in rec.applied]
    assert streams.count("W1") == 5 and streams.count("W0") == 1
    assert "HTTP 422" in p.forwarders[0].stats()["last_error"]
    del rec.reject[bad]  # fixed on the MES side: the stream resumes, in order
    assert rec.wait_for(10, 10)
    p.close()
    rec.check_order()
