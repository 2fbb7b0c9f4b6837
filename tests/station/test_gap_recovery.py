"""The store gap of a run whose store stayed full, recorded at the next start from its summary file:
which runs qualify, what is refused, and that it happens once (a real SQLite store)."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.core.decision import Decision, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.station.gap_recovery import recover_gaps
from inspector.station.judgement import FrameResult
from inspector.station.store_sink import StoreSink
from inspector.store.audit import verify
from inspector.store.db import open_db, transaction
from inspector.store.writer import StoreWriter

T0 = datetime(2026, 4, 1, 8, tzinfo=timezone.utc)


class Store:
    def __init__(self, tmp_path):
        self.db = tmp_path / "s.sqlite"
        self.runs = tmp_path / "runs"
        self.runs.mkdir()

    def run(self, run_id, recorded=2, *, ended=False, fault=None, station="line-1"):
        """A run with ``recorded`` decisions; its run end only when ``ended`` (with ``fault``: faulted)."""
        writer = StoreWriter(self.db, None).start()
        sink = StoreSink(writer, run_id, ("scratch",), store_images="none")
        sink.start_run(station, "cfg", "{}", "ms-1")
        for i in range(recorded):
            fid = f"{run_id}/u{i}"
            t = T0 + timedelta(seconds=i)
            sink.accept_result(FrameResult(Frame(fid, station, "cam", float(i), t, np.zeros((8, 8, 3), np.uint8), {}),
                                           Decision(fid, Verdict.PASS, (), Detections.empty(), "ms-1", "cfg", t)))
        sink.flush(10)
        if ended:
            sink.end_run(10, fault=fault)
        sink.close(10)

    def summary(self, run_id, refused, *, fault="database or disk is full", claims=None):
        frames = [f"{run_id}/r{i}" for i in range(refused)]
        body = {"run_id": claims or run_id, "state": "faulted", "fault": fault,
                "unrecorded": {"count": refused, "frames": frames, "t_first": (T0 + timedelta(seconds=5)).isoformat(),
                               "t_last": (T0 + timedelta(seconds=9)).isoformat()}}
        (self.runs / f"{run_id}.json").write_text(json.dumps(body))
        return frames

    def recover(self, current="run-now", station="line-1"):
        conn = open_db(self.db)
        try:
            with transaction(conn):
                return recover_gaps(conn, self.runs, station, current)
        finally:
            conn.close()

    def gaps(self):
        conn = open_db(self.db)
        try:
            return {r[0]: json.loads(r[1]) | {"t": r[2], "t_end": r[3]} for r in conn.execute(
                "SELECT run_id, detail, t, t_end FROM station_events WHERE kind = 'store_gap'")}
        finally:
            conn.close()


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path)


def test_a_run_that_never_ended_gets_the_gap_its_summary_names_once(store):
    store.run("run-a")
    frames = store.summary("run-a", 3)
    assert len(store.recover()) == 1
    assert store.recover() == []  # the gap is on record now: never twice
    gap = store.gaps()["run-a"]
    assert gap["frames_not_recorded"] == 3 and gap["frames"] == frames
    assert gap["first_frame"] == frames[0] and gap["last_frame"] == frames[-1]
    assert gap["recovered_from"] == str(store.runs / "run-a.json") and gap["error"] == "database or disk is full"
    assert gap["t"].startswith("2026-04-01T08:00:05") and gap["t_end"].startswith("2026-04-01T08:00:09")
    conn = open_db(store.db)
    try:
        assert verify(conn).ok  # audited like any event
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'event.store_gap'").fetchone()[0] == 1
    finally:
        conn.close()


def test_a_run_that_ended_faulted_qualifies_and_a_clean_one_is_never_looked_at(store):
    store.run("run-faulted", ended=True, fault="store full")
    store.summary("run-faulted", 2)
    store.run("run-clean", ended=True)
    store.summary("run-clean", 4)  # a clean end means the run stored its own account
    store.recover()
    assert set(store.gaps()) == {"run-faulted"}


def test_runs_without_refused_units_or_without_a_summary_or_of_other_stations_get_nothing(store):
    store.run("run-killed")  # killed: no summary file
    store.run("run-none")
    store.summary("run-none", 0)
    store.run("run-other", station="line-2")
    store.summary("run-other", 2)
    store.run("run-now")
    store.summary("run-now", 2)  # the run starting now is not an earlier run
    assert store.recover() == [] and store.gaps() == {}


def test_a_summary_that_names_a_recorded_frame_or_another_run_is_not_trusted(store, caplog):
    store.run("run-a", recorded=2)
    store.summary("run-a", 1)
    body = json.loads((store.runs / "run-a.json").read_text())
    body["unrecorded"]["frames"] = ["run-a/u1"]  # on record: not refused
    (store.runs / "run-a.json").write_text(json.dumps(body))
    store.run("run-b")
    store.summary("run-b", 2, claims="run-x")  # another run's file under this name
    with caplog.at_level(logging.ERROR, "inspector.station.gap_recovery"):
        assert store.recover() == []
    assert "names 1 frame(s) the store holds (first run-a/u1)" in caplog.text


def test_an_unreadable_summary_is_skipped_with_a_warning(store, caplog):
    store.run("run-a")
    (store.runs / "run-a.json").write_text("{not json")
    with caplog.at_level(logging.WARNING, "inspector.station.gap_recovery"):
        assert store.recover() == []
    assert "run-a.json does not read" in caplog.text
