"""The single writer thread: acknowledged only after COMMIT, batched, one bad record fails alone."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.store.audit import verify
from inspector.store.db import MIGRATIONS, SchemaTooNewError, open_db
from inspector.store.images import ImageStore
from inspector.store.writer import DecisionRecord, RecordError, Stored, StoreWriter

T0 = datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc)
NAMES = ("particle", "scratch", "residue")


def record(i: int, verdict: str = "pass", *, frame_id: str | None = None, image: bool = True,
           run: str = "run-1") -> DecisionRecord:
    fid = frame_id or f"f{i:03d}"
    frame = Frame(fid, "st-1", "cam0", float(i), T0 + timedelta(seconds=i), np.full((8, 8, 3), i % 256, np.uint8),
                  {"lot": "L1", "wafer": "W1", "die_x": i, "die_y": 1})
    kept = Detections([[10, 10, 20, 20]], [0.8], [1], -1, [0b11])
    reasons = () if verdict == "pass" else (Reason("any-defect", Verdict(verdict), "scratch 0.80"),)
    per_model = [Detections([[10, 10, 20, 20]], [0.8], [1]),
                 Detections([[11, 10, 20, 21], [0, 0, 2, 2]], [0.7, 0.3], [1, 2], 1)]  # as the ensemble attributes them
    dec = Decision(fid, verdict, reasons, kept, "ms-1", "cfg-1", T0 + timedelta(seconds=i, milliseconds=5))
    return DecisionRecord(frame, dec, per_model, run, NAMES, image)


def count(db, sql="SELECT COUNT(*) FROM decisions"):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


def test_future_resolves_after_the_commit(tmp_path):
    db = tmp_path / "s.sqlite"
    with StoreWriter(db, ImageStore(tmp_path / "img")) as w:
        futures = [w.submit(record(i)) for i in range(5)]
        for i, fut in enumerate(futures):
            stored = fut.result(timeout=10)
            assert isinstance(stored, Stored) and stored.frame_id == f"f{i:03d}" and stored.image_error is None
            # Another connection sees it as soon as the station is acknowledged: it was committed.
            assert count(db, f"SELECT COUNT(*) FROM decisions WHERE frame_id = 'f{i:03d}'") == 1
            assert (tmp_path / "img" / stored.image_path).is_file()
    assert w.committed == 5 and w.failed == 0


def test_rows_hold_the_record(tmp_path):
    db = tmp_path / "s.sqlite"
    with StoreWriter(db) as w:
        w.submit(record(3, "fail", image=False)).result(timeout=10)
    conn = open_db(db, create=False)
    f = conn.execute("SELECT * FROM frames").fetchone()
    assert (f["lot"], f["wafer"], f["die_x"], f["die_y"], f["width"], f["height"]) == ("L1", "W1", 3, 1, 8, 8)
    assert f["image_path"] is None and f["t_utc"] == "2026-04-01T12:00:03.000000+00:00"
    d = conn.execute("SELECT * FROM decisions").fetchone()
    assert (d["verdict"], d["model_set_version"], d["config_hash"]) == ("fail", "ms-1", "cfg-1")
    assert '"rule_id":"any-defect"' in d["reasons"]
    dets = [tuple(r) for r in conn.execute(
        "SELECT model_index, idx, class_name, support, round(score, 2) FROM detections ORDER BY model_index, idx")]
    assert dets == [(-1, 0, "scratch", 3, 0.8), (0, 0, "scratch", 1, 0.8), (1, 0, "scratch", 2, 0.7),
                    (1, 1, "residue", 2, 0.3)]
    assert conn.execute("SELECT station_id FROM runs WHERE id = 'run-1'").fetchone()[0] == "st-1"  # auto-created
    assert verify(conn).ok


def test_records_are_batched(tmp_path):
    db = tmp_path / "s.sqlite"
    w = StoreWriter(db, batch_max=8, batch_wait_s=1.0).start()
    futures = [w.submit(record(i, image=False)) for i in range(16)]
    w.flush(timeout=20)
    assert all(f.done() and not f.exception() for f in futures)
    assert w.batches <= 4  # 16 records, up to 8 per transaction (timing leaves room for a split batch)
    w.close()


def test_a_bad_record_fails_alone_and_names_its_frame(tmp_path):
    db = tmp_path / "s.sqlite"
    with StoreWriter(db, batch_max=16, batch_wait_s=0.5) as w:
        w.submit(record(0, image=False)).result(timeout=10)
        futures = [w.submit(record(1, image=False)), w.submit(record(0, image=False)),  # already stored
                   w.submit(record(2, image=False)), w.submit(record(2, image=False)),  # twice in this batch
                   w.submit(record(3, image=False))]
        w.flush(timeout=20)
    errors = [f.exception() for f in futures]
    assert [e is None for e in errors] == [True, False, True, False, True]
    for e in (errors[1], errors[3]):
        assert isinstance(e, RecordError) and "already stored" in str(e)
    assert "'f000'" in str(errors[1]) and "'f002'" in str(errors[3])
    assert count(db) == 4 and w.failed == 2
    assert verify(open_db(db, create=False)).ok


def test_mismatched_frame_and_decision_is_refused(tmp_path):
    rec = record(1, image=False)
    bad = DecisionRecord(rec.frame, record(2).decision, None, "run-1", NAMES, False)
    with StoreWriter(tmp_path / "s.sqlite") as w:
        with pytest.raises(RecordError, match="frame 'f001': its decision is for frame 'f002'"):
            w.submit(bad).result(timeout=10)


def test_close_drains_everything_accepted(tmp_path):
    db = tmp_path / "s.sqlite"
    w = StoreWriter(db, batch_max=4, batch_wait_s=5.0).start()
    futures = [w.submit(record(i, image=False)) for i in range(10)]
    w.close()
    assert all(f.done() and f.exception() is None for f in futures)
    assert count(db) == 10
    with pytest.raises(RuntimeError, match="closed; frame 'f011' was not accepted"):
        w.submit(record(11))


def test_an_image_failure_still_records_the_decision(tmp_path):
    class FullDisk(ImageStore):
        def put(self, image):
            raise OSError(28, "No space left on device")

    with StoreWriter(tmp_path / "s.sqlite", FullDisk(tmp_path / "img")) as w:
        stored = w.submit(record(1)).result(timeout=10)
    assert stored.image_path is None and "No space left" in stored.image_error
    assert count(tmp_path / "s.sqlite") == 1


def test_start_reports_an_unusable_database(tmp_path):
    db = tmp_path / "s.sqlite"
    open_db(db).close()
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    raw.close()
    w = StoreWriter(db)
    with pytest.raises(SchemaTooNewError):
        w.start()
    with pytest.raises(RuntimeError, match="closed"):
        w.submit(record(1))


def test_helpers_are_idempotent_through_the_writer(tmp_path):
    db = tmp_path / "s.sqlite"
    with StoreWriter(db) as w:
        assert w.record_config("c" * 64, "station: {id: x}").result(timeout=10) is True
        assert w.record_config("c" * 64, "station: {id: x}").result(timeout=10) is False
        assert w.record_model("a" * 64, "det", "1", "models/det.onnx").result(timeout=10) is True
        assert w.record_model("a" * 64, "det", "1", "models/det.onnx").result(timeout=10) is False
        assert w.record_run_start("run-9", "st-1", config_hash="c" * 64, model_set_version="ms").result(timeout=10)
        assert w.record_run_start("run-9", "st-1").result(timeout=10) is False
        w.submit(record(1, run="run-9", image=False)).result(timeout=10)
        w.record_run_end("run-9").result(timeout=10)
    conn = open_db(db, create=False)
    assert [tuple(r) for r in conn.execute("SELECT COUNT(*) FROM configs UNION ALL SELECT COUNT(*) FROM models"
                                           " UNION ALL SELECT COUNT(*) FROM runs")] == [(1,), (1,), (1,)]
    assert verify(conn).ok


def test_submitters_on_many_threads_all_get_acknowledged(tmp_path):
    db = tmp_path / "s.sqlite"
    results: list = []
    with StoreWriter(db, batch_max=8, batch_wait_s=0.01) as w:
        def producer(base: int) -> None:
            results.extend(w.submit(record(base + i, image=False)) for i in range(10))

        threads = [threading.Thread(target=producer, args=(k * 100,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 30 and all(f.result(timeout=10).audit_seq > 0 for f in results)
    conn = open_db(db, create=False)
    assert count(db) == 30 and verify(conn).ok
