"""Durability under SIGKILL (bench/durability.py): the real station killed at random moments while
it logs loses no acknowledged decision, and the database and its audit chain stay sound. The
construction station too: the incident events of acknowledged frames (committed in their
decision's transaction) are all in the store with their MES messages, none applied twice, and a
restarted run ends cleanly with its incidents closed.

Scope: a process kill leaves the OS page cache intact, so this proves the application protocol
(acknowledge only after COMMIT, atomic batches, a chain consistent across torn runs), not
power-loss durability. The negative control (acknowledging before the store has the record) shows
the harness does catch a station that promises too early.
"""

from __future__ import annotations

import importlib.util
import sqlite3
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from inspector.core.decision import Decision, Verdict
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent
from inspector.mes.outbox import Draft, enqueue
from inspector.store import audit
from inspector.store.db import open_db, transaction
from inspector.store.incidents import apply_event
from inspector.station.judgement import FrameResult
from inspector.station.store_sink import StoreSink
from inspector.store.writer import StoreWriter

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _harness():
    """bench/durability.py (bench/ is not an installed package)."""
    name = "inspector_bench_durability"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "durability.py")
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod  # its dataclasses resolve their annotations through sys.modules
        spec.loader.exec_module(mod)
    return sys.modules[name]


def _result(frame_id: str) -> FrameResult:
    t = datetime.now(timezone.utc)
    frame = Frame(frame_id, "line-1", "cam", 0.0, t, np.zeros((8, 8, 3), np.uint8))
    return FrameResult(frame, Decision.unjudged(frame_id, Verdict.NOT_INSPECTED, "test", "ms-1", "cfg-1", t))


def test_on_ack_is_called_only_once_the_decision_is_committed(tmp_path):
    db = tmp_path / "s.sqlite"
    seen: list[tuple[str, bool]] = []

    def on_ack(frame_id: str) -> None:  # look from another connection: committed means visible
        conn = sqlite3.connect(db)
        try:
            seen.append((frame_id, conn.execute("SELECT 1 FROM decisions WHERE frame_id = ?",
                                                (frame_id,)).fetchone() is not None))
        finally:
            conn.close()
        if frame_id == "r/b":
            raise RuntimeError("a failing listener")  # logged; the record's bookkeeping goes on

    writer = StoreWriter(db, None).start()
    sink = StoreSink(writer, "r", ("a",), store_images="none", on_ack=on_ack)
    futures = [sink.accept_result(_result(f"r/{x}")) for x in "abc"]
    dup = sink.accept_result(_result("r/a"))  # refused (duplicate frame id): never acknowledged
    for f in futures:
        f.result(10)
    with pytest.raises(Exception, match="already stored"):
        dup.result(10)
    sink.close(10)
    assert sorted(seen) == [("r/a", True), ("r/b", True), ("r/c", True)]
    assert (sink.acked, sink.failed) == (3, 1)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_decision():
    res = _harness().run(20, seed=1)
    details = res["details"]
    assert res["kills"] == 20 and not res["errors"], res["errors"]
    assert res["lost"] == 0, res["lost_ids"]
    assert res["integrity_ok"] and res["chain_ok"] and res["atomic_ok"] and res["images_ok"], \
        [(d["index"], d["chain_message"]) for d in details if d["chain_message"]]
    assert res["ok"]
    assert all(d["exit"] == -9 for d in details)  # every round really ended by SIGKILL
    # The kills landed while the station was logging, with records on their way to the store ...
    assert sum(d["acknowledged"] > 0 for d in details) >= 10
    assert res["kills_with_records_in_flight"] >= 5
    assert res["acknowledged"] <= res["decisions_in_db"]
    # ... and some during start-up (database open, run records, warm-up), into a growing database.
    assert res["kills_in_startup"] >= 1
    assert res["wafer_events"] > 0 and res["audit_rows"] > res["decisions_in_db"]
    assert "page cache" in res["scope"]


@pytest.mark.slow
def test_the_harness_detects_a_station_that_acknowledges_before_commit():
    # Negative control: the child promises each decision before the store even has it, so a kill
    # leaves promised decisions out of the database, and the harness must say so.
    res = _harness().run(4, seed=2, unsafe_ack_before_commit=True, startup_fraction=0.0)
    assert res["acknowledged"] > 0 and res["lost"] > 0 and not res["ok"]
    # The store itself stayed sound: only the promise was false.
    assert res["integrity_ok"] and res["chain_ok"] and res["atomic_ok"]


@pytest.mark.slow
def test_sigkill_of_the_construction_station_loses_no_acknowledged_incident_event():
    res = _harness().run(3, domain="construction", seed=3)
    details = res["details"]
    assert res["kills"] == 3 and not res["errors"], res["errors"]
    assert res["lost"] == 0 and res["integrity_ok"] and res["chain_ok"] and res["atomic_ok"] and res["images_ok"], \
        [(d["index"], d["chain_message"]) for d in details if d["chain_message"]]
    inc = res["incidents"]
    # Incidents opened and closed in the killed runs, and every one the station promised is stored
    # with its outbox message, applied once.
    assert inc["by_event"]["new"] > 0 and inc["by_event"]["update"] > 0 and inc["by_event"]["end"] > 0
    assert inc["lost"] == 0 and inc["doubled"] == 0 and inc["gapped"] == 0 and inc["missing_messages"] == 0, inc
    assert inc["recorded"] == inc["acknowledged"] > 0 and inc["offered"] >= inc["acknowledged"]
    assert [d["exit"] for d in details] == [-9, -9, -9, 0]  # three SIGKILLs, then a run that ended by itself
    # The restarted run on the same database completed cleanly and its run end closed every incident it opened.
    assert res["restart"]["ok"] and res["restart"]["open_after_clean_end"] == 0 and res["restart"]["decisions"] > 0
    assert res["ok"]


@pytest.mark.slow
def test_the_harness_detects_a_construction_station_that_acknowledges_before_commit():
    res = _harness().run(2, domain="construction", seed=4, unsafe_ack_before_commit=True, startup_fraction=0.0)
    assert res["lost"] > 0 and res["incidents"]["lost"] > 0 and not res["ok"]
    assert res["restart"] is None  # no clean-restart round for a station that lies
    assert res["integrity_ok"] and res["chain_ok"] and res["atomic_ok"]


def _event(key: str, seq: int, event: str = "new") -> IncidentEvent:
    t = datetime.now(timezone.utc)
    return IncidentEvent(event, key, seq, "gate", 1, "no_hard_hat", "no-hard-hat", "high", None, t, "r/f1", "r/f1",
                         "r/f1", 0.9, t)


def _apply(conn, e: IncidentEvent, station: str) -> None:
    with transaction(conn):
        apply_event(conn, e, run_id="r")
        enqueue(conn, [Draft("drop", f"{station}/{e.key}/{e.seq}", "incidents/gate", f"incident.{e.event}", {})])


def test_the_incident_check_finds_lost_missing_doubled_and_gapped_events(tmp_path):
    site = _harness().site
    conn = open_db(tmp_path / "s.sqlite")
    try:
        for e in (_event("a", 0), _event("a", 1, "update"), _event("a", 2, "end"), _event("b", 0)):
            _apply(conn, e, site.STATION_ID)
        promised = [site.Promised("r/f1", "new", "a", 0), site.Promised("r/f2", "update", "a", 1),
                    site.Promised("-", "end", "a", 2), site.Promised("r/f1", "new", "b", 0)]
        ok = site.check_incidents(conn, promised)
        assert (ok.recorded, ok.lost, ok.doubled, ok.gapped, ok.missing_messages) == (4, [], 0, 0, 0) and ok.ok
        assert (ok.incidents_in_db, ok.events_in_db) == (2, 4)

        # An event promised but never stored, an end promised for an incident still open: lost.
        bad = site.check_incidents(conn, promised + [site.Promised("r/f3", "new", "c", 0),
                                                     site.Promised("r/f4", "end", "b", 1)])
        assert sorted(bad.lost) == ["b/1", "c/0"] and not bad.ok
        # An event applied twice (a second audit row for b) is doubled; a message gone is missing.
        with transaction(conn):
            audit.append(conn, actor="station", action="incident.new", entity="incidents",
                         entity_id=conn.execute("SELECT id FROM incidents WHERE key = 'b'").fetchone()[0])
            conn.execute("DELETE FROM outbox WHERE key = ?", (f"{site.STATION_ID}/a/1",))
        worse = site.check_incidents(conn, promised)
        assert worse.doubled == 1 and worse.missing_messages == 1 and worse.gapped == 1 and not worse.ok
    finally:
        conn.close()
