"""Wafer-level MES messages a crashed run never queued, recovered from a real SQLite store: which
wafers qualify, how their dies are rebuilt, which config judges them, and that it happens once."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.config import canonical_json, config_hash, load_config_text
from inspector.core.decision import Decision, Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.mes.hub import MesHub
from inspector.station.inspection import WaferTracker
from inspector.station.judgement import FrameResult
from inspector.station.rules_builder import wafer_layout
from inspector.station.store_sink import StoreSink
from inspector.station.wafer_recovery import die_records, recover_wafers
from inspector.store.db import open_db, transaction
from inspector.store.writer import StoreWriter

NAMES = ("scratch", "particle")
T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
CONFIG = """
station: {{id: fab-1, name: Fab 1, domain: wafer}}
sources: [{{type: folder, id: cam, path: dies}}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
wafer_rules: [{{id: frac, type: defect_die_fraction, max_fraction: {max_fraction}}}]
wafer: {{diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}}
pixel_size_um: 1000
mes: [{{type: filedrop, id: files, folder: mes-out}}, {{type: klarf, id: klarf, folder: klarf-out}}]
"""


def station_cfg(max_fraction=0.9):
    return load_config_text(CONFIG.format(max_fraction=max_fraction))


CFG = station_cfg()
DIES = wafer_layout(CFG).dies


def die(run, wafer, d, i, lot="L1", failed=False) -> FrameResult:
    fid = f"{run}/{lot}_{wafer}_{d[0]}_{d[1]}"
    t = T0 + timedelta(seconds=i)
    frame = Frame(fid, "fab-1", "cam", float(i), t, np.zeros((16, 24, 3), np.uint8),
                  {"lot": lot, "wafer": wafer, "die_x": d[0], "die_y": d[1]})
    if failed:
        dec = Decision(fid, Verdict.FAIL, (Reason("any", Verdict.FAIL, "particle 0.90", (0,)),),
                       Detections([[2, 2, 10, 6]], [0.9], [1], support=[1]), "ms-1", config_hash(CFG), t)
    else:
        dec = Decision(fid, Verdict.PASS, (), Detections.empty(), "ms-1", config_hash(CFG), t)
    return FrameResult(frame, dec)


class Store:
    """Writes runs into one database the way a station does (StoreSink on a StoreWriter)."""

    def __init__(self, tmp_path):
        self.db = tmp_path / "s.sqlite"
        self.data = tmp_path

    def run(self, run_id, wafers, *, station="fab-1", ended=False, judged=(), cfg=CFG, config_text=None,
            fault=None):
        """``wafers``: {wafer: dies}; the first die of each fails. ``judged`` wafers are marked as
        on a live run; ``ended`` records the run end. No MES hub: its start would already recover
        the earlier runs, which is what the tests do themselves."""
        writer = StoreWriter(self.db, None).start()
        sink = StoreSink(writer, run_id, NAMES, store_images="none")
        sink.start_run(station, config_hash(cfg), config_text or canonical_json(cfg), "ms-1")
        for wafer, dies in wafers.items():
            tracker = WaferTracker(cfg)
            for i, d in enumerate(dies):
                r = die(run_id, wafer, d, i, failed=i == 0)
                tracker.add(r.frame, r.decision)
                sink.accept_result(r)
            if wafer in judged:
                sink.accept_wafer(tracker.flush()).result(10)
        sink.flush(10)
        if ended:
            sink.end_run(10, fault=fault)
        sink.close(10)  # without end_run: the process died

    def recover(self, hub, current="run-now"):
        conn = open_db(self.db)
        try:
            with transaction(conn):
                return recover_wafers(conn, hub, "fab-1", current)
        finally:
            conn.close()

    def wafer_messages(self):
        conn = open_db(self.db)
        try:
            return {(r[0], r[1]): json.loads(r[2]) if r[0] == "files" else r[2] for r in conn.execute(
                "SELECT transport, key, body FROM outbox WHERE kind != 'unit'")}
        finally:
            conn.close()

    def marks(self):
        conn = open_db(self.db)
        try:
            return sorted(tuple(r) for r in conn.execute("SELECT run_id, lot, wafer, how FROM mes_wafers"))
        finally:
            conn.close()


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path)


def hub(cfg=CFG):
    return MesHub.from_config(cfg, config_hash(cfg), "run-now", "unused", class_names=NAMES)


def test_die_records_rebuild_one_wafers_dies_in_stored_order(store):
    store.run("run-a", {"W1": DIES[:3], "W2": DIES[:1]})
    store.run("run-b", {"W1": DIES[:2]}, ended=True)  # the same wafer name in another run
    conn = open_db(store.db)
    got = list(die_records(conn, "run-a", "L1", "W1"))
    assert list(die_records(conn, "run-a", "L9", "W1")) == []  # another lot's wafer of the same name
    conn.close()
    assert [f.frame_id for f, _ in got] == [f"run-a/L1_W1_{x}_{y}" for x, y in DIES[:3]]
    frame, dec = got[0]
    assert frame.image.shape == (16, 24) and frame.image.strides == (0, 0)  # the size, no pixels
    assert frame.context["die_x"] == DIES[0][0] and frame.t_utc == T0
    assert dec.verdict is Verdict.FAIL and dec.rule_ids == ("any",) and dec.detections.class_id.tolist() == [1]
    assert [d.verdict for _, d in got[1:]] == [Verdict.PASS, Verdict.PASS] and len(got[1][1].detections) == 0


def test_only_unmarked_wafers_of_this_stations_unended_runs_are_queued_and_only_once(store):
    store.run("run-a", {"W1": DIES[:3], "W2": DIES}, judged=("W2",))  # crashed; W2 was judged live
    store.run("run-b", {"W3": DIES[:2]}, ended=True)                    # ended cleanly (W3 not judged)
    store.run("run-c", {"W4": DIES[:2]}, station="fab-2")              # another station's crash
    store.run("run-now", {"W5": DIES[:2]})                             # the run starting now

    assert store.recover(hub()) == [("run-a", "L1", "W1")]
    assert store.marks() == [("run-a", "L1", "W1", "recovered"), ("run-a", "L1", "W2", "live")]
    msgs = store.wafer_messages()
    body = msgs[("files", "fab-1/run-a/wafer/L1/W1")]
    assert body["run_id"] == "run-a" and body["dies_seen"] == 3
    assert body["verdict"] == "review"  # dies never recorded are not inspected: never passed silently
    assert "fab-1/run-a/klarf/L1/W1" in {k for _, k in msgs}
    assert store.recover(hub()) == [] and store.wafer_messages() == msgs  # a second start adds nothing


def test_nothing_is_queued_without_wafer_level_outputs(store):
    store.run("run-a", {"W1": DIES[:3]})
    assert store.recover(None) == []
    no_outputs = MesHub(CFG, config_hash(CFG), "run-now", [])
    assert not no_outputs.wafer_level and store.recover(no_outputs) == []
    assert store.marks() == [] and store.wafer_messages() == {}


@pytest.mark.parametrize(
    "crashed_max_fraction, config_text, verdict",
    [
        (0.9, None, "pass"),               # the same rules as now
        (0.01, None, "fail"),              # the crashed run's own, stricter rule judges its wafer
        (0.01, "not: [valid", "pass"),     # its stored config no longer loads: the current one
    ],
)
def test_the_crashed_runs_own_config_judges_its_wafer(store, crashed_max_fraction, config_text, verdict):
    store.run("run-a", {"W1": DIES}, cfg=station_cfg(crashed_max_fraction), config_text=config_text)
    assert store.recover(hub()) == [("run-a", "L1", "W1")]
    body = store.wafer_messages()[("files", "fab-1/run-a/wafer/L1/W1")]
    assert body["verdict"] == verdict and body["dies_seen"] == len(DIES)


def test_a_run_that_ended_faulted_has_its_unsent_partial_wafer_recovered_once(store):
    from inspector.store.audit import verify

    # The store refused the rest of W2 and its messages, then took the run end (space came back).
    store.run("run-a", {"W1": DIES, "W2": DIES[:2]}, judged=("W1",), ended=True,
              fault="the store refused the record of frame run-a/L1_W2_x_y (database or disk is full)")
    store.run("run-b", {"W3": DIES[:2]}, ended=True)  # ended cleanly: never looked at

    assert store.recover(hub()) == [("run-a", "L1", "W2")]
    assert store.marks() == [("run-a", "L1", "W1", "live"), ("run-a", "L1", "W2", "recovered")]
    msgs = store.wafer_messages()
    body = msgs[("files", "fab-1/run-a/wafer/L1/W2")]
    assert body["dies_seen"] == 2 and body["verdict"] == "review"  # the unrecorded dies: not inspected
    assert ("files", "fab-1/run-a/wafer/L1/W1") not in msgs  # judged live already (no hub in this test)
    assert store.recover(hub()) == [] and store.wafer_messages() == msgs  # exactly once
    conn = open_db(store.db)
    try:
        (payload,) = conn.execute("SELECT payload_sha256 FROM audit WHERE action = 'run.faulted'"
                                  " AND entity_id = 'run-a'").fetchall()
        assert conn.execute("SELECT ended FROM runs WHERE id = 'run-a'").fetchone()[0] is not None
        assert verify(conn).ok
    finally:
        conn.close()
