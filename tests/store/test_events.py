"""Station events: stored with their times, closed once, counted per kind, every step audited."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from inspector.store import events
from inspector.store.audit import verify
from inspector.store.db import open_db, transaction

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)


@pytest.fixture()
def conn(tmp_path):
    c = open_db(tmp_path / "s.sqlite")
    yield c
    c.close()


def test_an_event_is_stored_closed_once_and_audited(conn):
    with transaction(conn):
        eid = events.record_event(conn, "run-1", "freeze", T0, source="gate", detail={"frames": 5})
    assert events.get_event(conn, eid)["t_end"] is None
    with transaction(conn):
        assert events.end_event(conn, "run-1", "gate", "freeze", T0 + timedelta(seconds=3),
                                detail={"repeated": 40}) == eid
        # Nothing open any more: a second end is no event.
        assert events.end_event(conn, "run-1", "gate", "freeze", T0 + timedelta(seconds=4)) is None
    ev = events.get_event(conn, eid)
    assert ev["t"].startswith("2026-05-04T08:00:00") and ev["t_end"].startswith("2026-05-04T08:00:03")
    assert ev["detail"] == {"frames": 5, "repeated": 40} and ev["source"] == "gate"
    actions = [r[0] for r in conn.execute("SELECT action FROM audit WHERE entity = 'station_events' ORDER BY seq")]
    assert actions == ["event.freeze", "event.freeze.end"]
    assert verify(conn).ok


def test_counts_and_listing_per_run_and_kind(conn):
    with transaction(conn):
        events.record_event(conn, "run-1", "stall", T0, source="gate")
        events.record_event(conn, "run-1", "reconnect", T0 + timedelta(seconds=1), source="gate")
        events.record_event(conn, "run-1", "store_gap", T0, t_end=T0 + timedelta(seconds=9),
                            detail={"frames_not_recorded": 12})
        events.record_event(conn, "run-2", "stall", T0, source="gate")
    assert events.count_by_kind(conn, "run-1") == {"reconnect": 1, "stall": 1, "store_gap": 1}
    assert [e["kind"] for e in events.list_events(conn, "run-1")] == ["stall", "store_gap", "reconnect"]
    assert len(events.list_events(conn, kind="stall")) == 2


def test_an_unknown_kind_is_refused(conn):
    with transaction(conn), pytest.raises(ValueError, match="kind must be one of"):
        events.record_event(conn, "run-1", "meltdown", T0)


# --- events in the audit chain: `db verify` re-reads the rows -----------------------------------


@pytest.mark.parametrize("sql, what", [
    ("UPDATE station_events SET t_end = '2026-05-04T08:00:01+00:00' WHERE kind = 'stall'", "modified"),
    ("UPDATE station_events SET detail = '{\"frames\":1}' WHERE kind = 'freeze'", "modified"),
    ("UPDATE station_events SET detail = 'not json' WHERE kind = 'freeze'", "modified"),
    ("DELETE FROM station_events WHERE kind = 'store_gap'", "deleted"),
])
def test_an_edited_or_deleted_event_row_is_found_by_verify(conn, sql, what):
    with transaction(conn):
        events.record_event(conn, "run-1", "stall", T0, source="gate")
        events.record_event(conn, "run-1", "freeze", T0, source="gate", detail={"frames": 5})
        events.record_event(conn, "run-1", "store_gap", T0, detail={"frames_not_recorded": 3})
    with transaction(conn):
        events.end_event(conn, "run-1", "gate", "stall", T0 + timedelta(seconds=9))
    assert verify(conn).ok
    conn.execute(sql)
    r = verify(conn)
    assert not r.ok and r.first.entity == "station_events" and f"was {what} after it was recorded" in r.message


def test_an_event_row_written_around_the_store_is_found(conn):
    conn.execute("INSERT INTO station_events (run_id, t, source, kind) VALUES ('run-1', '2026-05-04T08:00:00Z',"
                 " 'gate', 'stall')")
    r = verify(conn)
    assert not r.ok and r.first.entity == "station_events" and "has no audit row" in r.message


def test_a_store_whose_events_were_audited_before_they_were_audited_entities_still_verifies(conn, monkeypatch):
    from inspector.store import audit

    # The way the first release of station events wrote their audit rows: the row content as the
    # payload, the table not in audit.ENTITIES.
    with monkeypatch.context() as m:
        m.delitem(audit.ENTITIES, "station_events", raising=False)
        with transaction(conn):
            for kind in ("freeze", "stall"):
                cur = conn.execute("INSERT INTO station_events (run_id, t, source, kind, detail) VALUES"
                                   " ('run-0', '2026-05-04T07:00:00.000000Z', 'gate', ?, '{\"frames\":5}')", (kind,))
                audit.append(conn, actor="station", action=f"event.{kind}", entity="station_events",
                             entity_id=cur.lastrowid, payload=events.get_event(conn, cur.lastrowid))
    with transaction(conn):
        events.record_event(conn, "run-1", "reconnect", T0, source="gate")
    r = verify(conn)
    assert r.ok and r.entities_checked == 3, r.message
    conn.execute("UPDATE station_events SET source = 'yard' WHERE run_id = 'run-0' AND kind = 'stall'")
    assert "was modified after it was recorded" in verify(conn).message
