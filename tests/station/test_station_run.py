"""A station from config to database: corrupt and oversized frames as records, traceability,
graceful stop, wafer events."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import cv2
import numpy as np
import pytest

from inspector.config import canonical_json, config_hash, load_config_text
from inspector.core.detections import Detections
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.rules_builder import wafer_layout
from inspector.station.station import Station, StationError, die_map_ascii, stop_on_signals
from inspector.station.store_sink import StoreSink
from inspector.store import queries
from inspector.store.audit import verify
from inspector.store.db import open_db
from helpers.big_images import constant_png

NAMES = ("scratch", "particle")
SHA = "ab" * 32


def config(folder, *, loop=False, store_images="all", extra="", regex=None, domain="generic"):
    src = f"{{type: folder, id: cam, path: '{folder}', loop: {str(loop).lower()}"
    src += f", context_regex: '{regex}'}}" if regex else "}"
    return load_config_text(f"""
version: 1
station: {{id: line-1, name: Line 1, domain: {domain}}}
sources: [{src}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
flow: {{mode: inspection, queue_size: 4, batch_size: 2}}
storage: {{store_images: {store_images}}}
{extra}
""")


class Bright:
    """Fails bright images: a box scoring 0.9 when the mean grey is above 100."""

    class_names = NAMES

    def __init__(self, delay=0.0):
        self.delay = delay

    def detect(self, images):
        if self.delay:
            time.sleep(self.delay)
        return [Detections([[1, 1, 9, 9]], [0.9], [1]) if img.mean() > 100 else Detections.empty()
                for img in images]


def ensemble(delay=0.0):
    return Ensemble([Member("m", "3", SHA, Bright(delay))])


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i, grey in enumerate([10, 200, 30, 220, 50, 60]):
        cv2.imwrite(str(d / f"img_{i}.png"), np.full((16, 16, 3), grey, np.uint8))
    return d


def db_rows(summary):
    conn = open_db(summary["db"], create=False)
    try:
        return conn, queries.decisions(conn)
    except Exception:
        conn.close()
        raise


def test_a_run_is_traceable_and_unreadable_or_oversized_units_are_recorded_with_their_reason(folder, tmp_path):
    (folder / "img_3b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # unreadable: NOT_INSPECTED
    (folder / "img_3c.png").write_bytes(constant_png(20000, 20000))      # 1.2 GB as BGR: ERROR, not decoded
    cfg = config(folder, store_images="flagged")
    h = config_hash(cfg)
    ens = ensemble()
    t0 = time.monotonic()
    s = Station.from_config(cfg, h, data_dir=tmp_path / "data-bad", ensemble=ens).run()
    assert time.monotonic() - t0 < 10  # the 20000 x 20000 image alone took 15 s to decode
    assert s["complete"] and s["state"] == "stopped"
    assert s["frames"] == s["decisions"] == s["stored"] == 8 and s["corrupt"] == 1
    assert s["verdicts"] == {"pass": 4, "fail": 2, "review": 0, "error": 1, "not_inspected": 1}
    conn, rows = db_rows(s)
    try:
        by_file = {r["frame_id"].rsplit(":", 1)[1]: r for r in rows}
        assert by_file["img_3b.png"]["verdict"] == "not_inspected" and "PNG header" in by_file["img_3b.png"]["error"]
        assert by_file["img_3c.png"]["verdict"] == "error"
        assert "20000 x 20000" in by_file["img_3c.png"]["error"] and "max_megapixels" in by_file["img_3c.png"]["error"]
    finally:
        conn.close()
    for unit in ("img_3b.png", "img_3c.png"):
        (folder / unit).unlink()
    s = Station.from_config(cfg, h, data_dir=tmp_path / "data", ensemble=ens).run()
    assert s["frames"] == s["decisions"] == s["stored"] == 6 and s["corrupt"] == 0
    assert s["verdicts"] == {"pass": 4, "fail": 2, "review": 0, "error": 0, "not_inspected": 0}
    assert s["config_hash"] == h and s["model_set_version"] == ens.version and s["latency_ms"]["p50"] is not None
    conn, rows = db_rows(s)
    try:
        assert len(rows) == 6 and {r["config_hash"] for r in rows} == {h}
        assert {r["model_set_version"] for r in rows} == {ens.version}
        assert all(r["run_id"] == s["run_id"] and r["frame_id"].startswith(s["run_id"] + "/") for r in rows)
        # store_images: flagged -> only the failed frames keep their image
        assert {r["verdict"]: bool(r["image_path"]) for r in rows} == {"fail": True, "pass": False}
        run = conn.execute("SELECT config_hash, model_set_version, ended FROM runs WHERE id = ?",
                           (s["run_id"],)).fetchone()
        assert tuple(run)[:2] == (h, ens.version) and run[2] is not None
        assert conn.execute("SELECT text FROM configs WHERE hash = ?", (h,)).fetchone()[0] == canonical_json(cfg)
        assert tuple(conn.execute("SELECT name, version FROM models WHERE sha256 = ?", (SHA,)).fetchone()) == ("m", "3")
        # the per-model boxes are stored too (model_index 0), next to the kept ones (-1)
        fail = next(r for r in rows if r["verdict"] == "fail")
        assert len(queries.frame_detections(conn, fail["frame_id"], 0)) == 1
        assert verify(conn).ok
    finally:
        conn.close()
    assert (tmp_path / "data" / "runs" / f"{s['run_id']}.json").is_file()


def test_graceful_stop_flushes_every_accepted_frame_to_the_store(folder, tmp_path):
    cfg = config(folder, loop=True)
    st = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble(delay=0.004))
    st.start()
    deadline = time.monotonic() + 10
    while st.metrics.counter("decided") < 8:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert st.stop() is True
    s = st.summary()
    conn, rows = db_rows(s)
    conn.close()
    assert len(rows) == s["frames"] == s["decisions"] == s["stored"] >= 8
    assert s["verdicts"]["not_inspected"] == 0
    assert st.stop() is True  # idempotent


def test_sigterm_stops_a_run_gracefully():
    """A real SIGTERM, in a process of its own: the full suite's process holds hundreds of library
    threads by then, and a signal there ended the fresh-clone run with a segfault in the next test."""
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, INSPECTOR_SIGTERM_CHILD="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"{__file__}::test_sigterm_body"], env=env, cwd=Path(__file__).resolve().parents[2],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]


def test_sigterm_body(folder, tmp_path):
    if os.environ.get("INSPECTOR_SIGTERM_CHILD") != "1":
        pytest.skip("the body of test_sigterm_stops_a_run_gracefully, which runs it in a process of its own")
    cfg = config(folder, loop=True)
    st = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble(delay=0.004))
    before = signal.getsignal(signal.SIGTERM)
    ran, lock = threading.Event(), threading.Lock()

    def term_while_running():
        # Only while the run is live: a SIGTERM after the handler is restored would end pytest itself.
        # To the main thread only (as a terminal's or systemd's SIGTERM is handled there): a
        # process-wide kill lets any of the hundreds of library threads a long test session has
        # started (ONNX Runtime, OpenVINO, FFmpeg pools) take the signal.
        with lock:
            if not ran.is_set():
                signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)

    with stop_on_signals(st):
        timer = threading.Timer(0.4, term_while_running)
        timer.start()
        try:
            s = st.run()  # a looping source: only the signal ends this run
        finally:
            with lock:
                ran.set()
            timer.cancel()
    assert signal.getsignal(signal.SIGTERM) is before
    conn, rows = db_rows(s)
    conn.close()
    assert s["complete"] and len(rows) == s["frames"] > 0 and s["verdicts"]["not_inspected"] == 0


def test_wafers_are_summarised_mapped_and_audited(tmp_path):
    extra = """wafer: {diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}
wafer_rules: [{id: frac, type: defect_die_fraction, max_fraction: 0.5, verdict: fail}]"""
    regex = r"(?P<lot>L\d+)_(?P<wafer>W\d+)_(?P<die_x>-?\d+)_(?P<die_y>-?\d+)"
    probe = config(tmp_path, extra=extra, regex=regex, domain="wafer")
    dies = wafer_layout(probe).dies
    d = tmp_path / "dies"
    d.mkdir()
    for w in ("W1", "W2"):
        for i, (x, y) in enumerate(dies):
            if w == "W2" and i == 0:
                continue  # W2 misses a die: never passed silently
            grey = 200 if (w, i) == ("W1", 1) else 20
            cv2.imwrite(str(d / f"L1_{w}_{x}_{y}.png"), np.full((16, 16, 3), grey, np.uint8))
    cfg = config(d, extra=extra, regex=regex, domain="wafer")
    s = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble()).run()
    assert s["lots"] == 1 and s["dies"] == s["frames"] == 2 * len(dies) - 1
    w1, w2 = s["wafers"]["W1"], s["wafers"]["W2"]
    assert w1["verdict"] == "pass" and w1["dies"] == {"pass": len(dies) - 1, "fail": 1}
    assert w2["verdict"] == "review" and w2["dies"]["not_inspected"] == 1
    assert "X" in "".join(w1["map"]) and "-" in "".join(w2["map"]) and w1["audit_seq"] < w2["audit_seq"]
    conn = open_db(s["db"], create=False)
    try:
        events = conn.execute("SELECT entity_id, action, seq FROM audit WHERE entity = 'wafer' ORDER BY seq").fetchall()
        assert [(e[0], e[1]) for e in events] == [("L1/W1", "wafer.judged"), ("L1/W2", "wafer.judged")]
        last_die = conn.execute("SELECT MAX(seq) FROM audit WHERE entity = 'decisions'").fetchone()[0]
        assert events[0][2] > conn.execute(
            "SELECT MAX(a.seq) FROM audit a JOIN frames f ON f.id = a.entity_id WHERE f.wafer = 'W1'").fetchone()[0]
        assert events[1][2] > last_die  # each wafer event follows its dies in the chain
        assert verify(conn).ok
    finally:
        conn.close()


def test_die_map_ascii_marks_each_verdict():
    cfg = config("x", extra="wafer: {diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25}", domain="wafer")
    layout = wafer_layout(cfg)
    dm = {d: "pass" for d in layout.dies}
    dm[layout.dies[0]] = "fail"
    rows = die_map_ascii(layout, dm)
    assert len(rows) == layout.grid_shape[0] and "".join(rows).count("X") == 1
    assert "".join(rows).count(".") == len(layout.dies) - 1


def test_errors_name_what_is_wrong(folder, tmp_path):
    cfg = config(folder)
    with pytest.raises(StationError, match="config hash"):
        Station.from_config(cfg, "0" * 64, data_dir=tmp_path, ensemble=ensemble())
    with pytest.raises(StationError, match=r"models\[0\] \(m\)"):
        Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path, registry_root=tmp_path / "empty")
    with pytest.raises(StationError, match="frame sources"):
        bad = config(tmp_path / "missing")
        Station.from_config(bad, config_hash(bad), data_dir=tmp_path, ensemble=ensemble())


# --- a store that stops accepting (disk full) ----------------------------------------------------

REGEX = r"(?P<lot>L\d+)_(?P<wafer>W\d+)_(?P<die_x>-?\d+)_(?P<die_y>-?\d+)"
WAFER_EXTRA = """
wafer_rules: [{id: frac, type: defect_die_fraction, max_fraction: 0.9}]
wafer: {diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}
pixel_size_um: 1000
mes: [{type: filedrop, id: files, folder: mes-out}]
"""


class Counting(Bright):
    calls = 0

    def detect(self, images):
        type(self).calls += len(images)
        return super().detect(images)


def fill_disk_after(monkeypatch, n_acks):
    """The store connection gets SQLITE_FULL ("database or disk is full") once ``n_acks`` records
    are committed: its max_page_count is pinned to the pages it holds, on the writer thread."""
    from inspector.store import writer as writer_mod

    conns = []
    real = writer_mod.open_db

    def open_db_kept(*a, **kw):
        conns.append(real(*a, **kw))
        return conns[-1]

    monkeypatch.setattr(writer_mod, "open_db", open_db_kept)
    acks = []

    def on_ack(frame_id):
        acks.append(frame_id)
        if len(acks) == n_acks:  # after this commit, on the writer's own thread and connection
            conns[0].execute("VACUUM")  # no free page left to fill
            pages = conns[0].execute("PRAGMA page_count").fetchone()[0]
            conns[0].execute(f"PRAGMA max_page_count = {pages}")

    return on_ack


def test_a_full_disk_faults_an_inspection_run_and_nothing_is_judged_or_reported_beyond_it(tmp_path, monkeypatch):
    from inspector.station.pipeline import Pipeline

    d = tmp_path / "dies"
    d.mkdir()
    layout = wafer_layout(config(d, extra=WAFER_EXTRA, regex=REGEX, domain="wafer"))
    # 60 wafers of 5 dies: more than the queues (store writer 64, record batch 64, ...) can hold
    # while the failing commit is retried.
    for w in [f"W{i}" for i in range(1, 61)]:
        for x, y in layout.dies:
            cv2.imwrite(str(d / f"L1_{w}_{x}_{y}.png"), np.full((16, 16, 3), 20, np.uint8))
    cfg = config(d, extra=WAFER_EXTRA, regex=REGEX, domain="wafer", store_images="none")
    total = len(list(d.iterdir()))
    Counting.calls = 0
    judged_at_fault = []
    real_fault = Pipeline.fault
    monkeypatch.setattr(Pipeline, "fault", lambda self, why: (judged_at_fault.append(Counting.calls),
                                                              real_fault(self, why))[-1])
    st = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data",
                             ensemble=Ensemble([Member("m", "3", SHA, Counting())]),
                             on_ack=fill_disk_after(monkeypatch, 8))
    s = st.run()

    assert s["state"] == "faulted" and not s["complete"] and "database or disk is full" in s["fault"]
    assert st.store.writer.retries >= 1  # the commit was retried (bounded) before the fault
    assert len(judged_at_fault) == 1 and Counting.calls == judged_at_fault[0]  # nothing judged after the fault
    assert s["frames"] < total  # it stopped taking units
    # Every unit taken is accounted for: recorded, or named as not recorded.
    assert s["stored"] + s["unrecorded"]["count"] == s["decisions"] == s["frames"]
    assert s["unrecorded"]["count"] == s["store_failed"] > 0 and len(s["unrecorded"]["frames"]) == s["store_failed"]
    conn = open_db(s["db"], create=False)
    try:
        assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == s["stored"]
        # No wafer result reports a die the store does not hold.
        results = conn.execute("SELECT body FROM outbox WHERE kind = 'wafer'").fetchall()
        assert results  # the wafers before the fault were reported
        for (body,) in results:
            msg = json.loads(body)
            lot, wafer = msg["unit"]["lot"], msg["unit"]["wafer"]
            held = conn.execute("SELECT COUNT(*) FROM frames f JOIN decisions x ON x.frame_id = f.id WHERE lot = ?"
                                " AND wafer = ?", (lot, str(wafer))).fetchone()[0]
            assert msg["dies_seen"] == held
    finally:
        conn.close()
    saved = json.loads((tmp_path / "data" / "runs" / f"{s['run_id']}.json").read_text())
    assert saved["state"] == "faulted" and saved["unrecorded"]["count"] == s["store_failed"]


def test_the_gap_a_full_store_could_not_hold_is_recorded_at_the_next_start(tmp_path, monkeypatch):
    import sqlite3

    from inspector.store import events as station_events

    cfg, total = wafer_dies(tmp_path, wafers=30)
    data = tmp_path / "data"
    first = Station.from_config(cfg, config_hash(cfg), data_dir=data, ensemble=Ensemble([Member("m", "3", SHA, Counting())]),
                                on_ack=fill_disk_after(monkeypatch, 8))
    real_event = station_events.record_event

    def no_room_for_the_gap(conn, run_id, kind, *a, **kw):
        # The small gap event often still fits in a page's slack; on a really full disk it does not.
        if kind == "store_gap":
            raise sqlite3.OperationalError("database or disk is full")
        return real_event(conn, run_id, kind, *a, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(station_events, "record_event", no_room_for_the_gap)
        s = first.run()
    assert s["state"] == "faulted" and s["store_failed"] > 0
    assert s["unrecorded"]["t_first"] <= s["unrecorded"]["t_last"]

    def gaps(run_id):
        conn = open_db(data / cfg.storage.db_name, create=False)
        try:
            return [json.loads(r[0]) | {"t": r[1], "t_end": r[2]} for r in conn.execute(
                "SELECT detail, t, t_end FROM station_events WHERE kind = 'store_gap' AND run_id = ?", (run_id,))]
        finally:
            conn.close()

    assert gaps(s["run_id"]) == []  # the store could not take the run's own gap event
    # Space is back: the next start records the gap from the first run's summary file, once.
    for _ in range(2):
        nxt = Station.from_config(cfg, config_hash(cfg), data_dir=data,
                                  ensemble=Ensemble([Member("m", "3", SHA, Counting())]))
        assert nxt.run(max_frames=3)["state"] == "stopped"
    (gap,) = gaps(s["run_id"])
    assert gap["frames_not_recorded"] == s["store_failed"] and gap["frames"] == s["unrecorded"]["frames"]
    assert gap["recovered_from"].endswith(f"runs/{s['run_id']}.json") and "database or disk is full" in gap["error"]
    assert gap["t"] <= gap["t_end"] and gap["t"].startswith(s["unrecorded"]["t_first"][:19])
    conn = open_db(data / cfg.storage.db_name, create=False)
    try:
        held = conn.execute(f"SELECT COUNT(*) FROM decisions WHERE frame_id IN ({','.join('?' * len(gap['frames']))})",
                            gap["frames"]).fetchone()[0]
        assert held == 0
        assert verify(conn).ok
    finally:
        conn.close()


def wafer_dies(tmp_path, wafers=60):
    """A folder of ``wafers`` wafers of 5 dies each (more than the queues hold) and its config."""
    d = tmp_path / "dies"
    d.mkdir()
    layout = wafer_layout(config(d, extra=WAFER_EXTRA, regex=REGEX, domain="wafer"))
    for w in [f"W{i}" for i in range(1, wafers + 1)]:
        for x, y in layout.dies:
            cv2.imwrite(str(d / f"L1_{w}_{x}_{y}.png"), np.full((16, 16, 3), 20, np.uint8))
    return config(d, extra=WAFER_EXTRA, regex=REGEX, domain="wafer", store_images="none"), len(list(d.iterdir()))


def watch_failed_commits(monkeypatch, station, space_back_at=None):
    """Units the station had taken at each failed commit of the store (the writer rolls back each
    one); with ``space_back_at`` = n, the disk has room again right after the n-th failed commit."""
    from inspector.store import writer as writer_mod

    taken = []
    real = writer_mod._rollback

    def rollback(conn):
        real(conn)
        taken.append(station.metrics.counter("accepted"))
        if len(taken) == space_back_at:
            conn.execute("PRAGMA max_page_count = 1073741823")

    monkeypatch.setattr(writer_mod, "_rollback", rollback)
    return taken


def test_the_first_failed_commit_holds_the_sources_and_every_unit_in_flight_is_named(tmp_path, monkeypatch):
    cfg, total = wafer_dies(tmp_path)
    Counting.calls = 0
    st = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data",
                             ensemble=Ensemble([Member("m", "3", SHA, Counting())]),
                             on_ack=fill_disk_after(monkeypatch, 8))
    taken = watch_failed_commits(monkeypatch, st)
    s = st.run()
    assert s["state"] == "faulted" and taken and st.store.holds >= 1, (s["state"], taken[:3], st.store.holds)
    # Held before the retry: no unit taken behind the failed commit (at most the one the source
    # was returning at that instant), where the queues used to fill up during the ~2 s of retries.
    assert s["frames"] - taken[0] <= 1 and s["frames"] < total, (taken[:3], s["frames"], total)
    assert st.metrics.counter("capture_holds") == 1
    # Whatever was in flight is accounted for: recorded, or named as not recorded.
    assert s["stored"] + s["unrecorded"]["count"] == s["frames"] == s["decisions"], s
    assert len(set(s["unrecorded"]["frames"])) == s["unrecorded"]["count"] > 0


def test_a_commit_that_succeeds_on_retry_holds_the_sources_only_meanwhile(tmp_path, monkeypatch):
    cfg, total = wafer_dies(tmp_path, wafers=40)
    # A model slower than the store: the queues ahead of the writer are nearly empty at the failure,
    # so without a hold the source would go on at the model's pace through the whole retry.
    st = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble(delay=0.004),
                             on_ack=fill_disk_after(monkeypatch, 8))
    released = []
    real_trouble = StoreSink._store_trouble

    def trouble(sink, state, err):
        if state == "recovered":
            released.append(st.metrics.counter("accepted"))
        return real_trouble(sink, state, err)

    monkeypatch.setattr(StoreSink, "_store_trouble", trouble)
    taken = watch_failed_commits(monkeypatch, st, space_back_at=2)  # the second retry commits (~0.6 s)
    s = st.run()
    assert s["complete"] and s["state"] == "stopped" and s["fault"] is None
    assert s["frames"] == s["stored"] == total and s["store_failed"] == 0
    assert len(taken) == 2 and st.store.writer.retries == 2 and st.store.holds == 1
    assert released and released[0] - taken[0] <= 1, (taken, released)  # nothing taken while retried


def test_the_partial_wafer_of_a_run_that_ended_faulted_is_sent_once_at_the_next_start(tmp_path, monkeypatch):
    import sqlite3

    from inspector.mes import outbox
    from inspector.store import writer as writer_mod

    cfg, total = wafer_dies(tmp_path, wafers=6)
    refusing = {"on": False}

    def refuse_writes(action, *args):
        return sqlite3.SQLITE_DENY if action in (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE) else sqlite3.SQLITE_OK

    real_write = writer_mod.write_record

    def write_record(conn, *a, **kw):  # writer thread: from the first record after W2's first commit on
        if refusing["on"] == "asked":
            refusing["on"] = "refusing"
            conn.set_authorizer(refuse_writes)
        return real_write(conn, *a, **kw)

    monkeypatch.setattr(writer_mod, "write_record", write_record)

    def on_ack(frame_id):
        if "_W2_" in frame_id and not refusing["on"]:
            refusing["on"] = "asked"

    real_end = StoreSink.end_run

    def end_run(sink, *a, **kw):  # space came back before the run end
        sink.writer.submit_job(lambda c: c.set_authorizer(None), "space back").result(10)
        return real_end(sink, *a, **kw)

    monkeypatch.setattr(StoreSink, "end_run", end_run)
    # A slow model: the writer's batches hold a few records each.
    s = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble(delay=0.02),
                            on_ack=on_ack).run()
    assert s["state"] == "faulted" and s["store_failed"] > 0
    monkeypatch.setattr(StoreSink, "end_run", real_end)

    conn = open_db(s["db"], create=False)
    try:
        assert conn.execute("SELECT ended FROM runs WHERE id = ?", (s["run_id"],)).fetchone()[0] is not None
        assert conn.execute("SELECT COUNT(*) FROM audit WHERE action = 'run.faulted' AND entity_id = ?",
                            (s["run_id"],)).fetchone()[0] == 1
        unsent = outbox.unmarked_wafers(conn, [s["run_id"]])
        held = {w: n for w, n in conn.execute(
            "SELECT wafer, COUNT(*) FROM frames f JOIN decisions d ON d.frame_id = f.id WHERE run_id = ?"
            " GROUP BY wafer", (s["run_id"],))}
    finally:
        conn.close()
    # The wafers whose messages the store refused (the one in progress at the fault, partial as a rule).
    unsent = {w for _, _, w in unsent}
    assert unsent and all(held[w] >= 1 for w in unsent)

    def wafer_messages():
        c = open_db(s["db"], create=False)
        try:
            return [json.loads(b) for (b,) in c.execute("SELECT body FROM outbox WHERE kind = 'wafer' AND key LIKE ?",
                                                        (f"%/{s['run_id']}/%",))]
        finally:
            c.close()

    for _ in range(2):  # the next starts: the first sends it, the second adds nothing
        Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble()).run(max_frames=0)
        msgs = {m["unit"]["wafer"]: m for m in wafer_messages()}
        assert len(msgs) == len(wafer_messages()) == len(held)  # one per wafer with a recorded die
        assert all(m["dies_seen"] == held[w] for w, m in msgs.items())
        # Unrecorded dies count as not inspected: a partial wafer is never passed.
        assert all(msgs[w]["verdict"] == "review" for w in unsent if held[w] < 5)
    conn = open_db(s["db"], create=False)
    try:
        assert verify(conn).ok
    finally:
        conn.close()


# --- monitoring flow: stalls and freezes are stored events --------------------------------------


def video_config(uri, freeze_frames=5):
    return load_config_text(f"""
version: 1
station: {{id: cam-1, name: Cam 1, domain: generic}}
sources: [{{type: video, id: gate, camera: gate, uri: '{uri}', freeze_frames: {freeze_frames},
           reconnect: {{stall_timeout_s: 0.3, backoff_initial_s: 0.05}}}}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
flow: {{mode: monitoring, queue_size: 4, batch_size: 1}}
storage: {{store_images: none}}
""")


def station_events(summary):
    from inspector.store import events

    conn = open_db(summary["db"], create=False)
    try:
        return events.list_events(conn, summary["run_id"])
    finally:
        conn.close()


def test_a_frozen_video_is_a_stored_freeze_event_and_its_repeats_are_not_judged(tmp_path):
    path = tmp_path / "frozen.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
    for i in range(30):  # 5 moving pictures, 20 of one picture, 5 moving again
        w.write(np.full((48, 64, 3), 40 if 5 <= i < 25 else 8 * i, np.uint8))
    w.release()
    cfg = video_config(path)
    s = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble()).run()
    assert s["events"]["counts"] == {"freeze": 1}
    # of the 20 repeats 4 were judged before the freeze was certain (monitoring flow: a loaded machine
    # may drop some, in the pipeline or in the reader's own buffer, and every drop is counted)
    assert s["decisions"] + s["dropped"] == 30 - 16, {k: s[k] for k in ("frames", "decisions", "dropped", "drops")}
    (ev,) = station_events(s)
    assert (ev["kind"], ev["source"], ev["detail"]["frames"]) == ("freeze", "gate", 5)
    assert ev["t_end"] is not None and ev["t_end"] >= ev["t"] and ev["detail"]["until"] == "new picture"


def test_a_stall_is_a_stored_event_ended_by_the_reconnect(tmp_path):
    from inspector.capture.video import VideoSource

    reads = {"n": 0}
    gate = threading.Event()

    class Stalling:
        """Delivers 5 pictures, then hangs in read(); the reopened capture delivers 5 more and ends."""

        def __init__(self, first):
            self.first, self.i = first, 0

        def isOpened(self):  # noqa: N802
            return True

        def read(self):
            self.i += 1
            reads["n"] += 1
            if self.first and self.i > 5:
                gate.wait(5)
                return False, None
            if not self.first and self.i > 5:
                return False, None
            time.sleep(0.01)
            return True, np.full((8, 8, 3), reads["n"], np.uint8)

        def set(self, prop, value):
            return True

        def release(self):
            pass

    opens = []
    cfg = video_config("gate.avi")
    src = VideoSource("gate.avi", camera="gate", source_id="gate", stall_timeout_s=0.3, backoff_initial_s=0.05,
                      live=False, open_capture=lambda uri: (opens.append(uri), Stalling(len(opens) == 1))[1])
    try:
        s = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble(),
                                sources=[src]).run()
    finally:
        gate.set()
    assert s["events"]["counts"] == {"stall": 1, "reconnect": 1} and not s["events"]["open"]
    stall, reconnect = sorted(station_events(s), key=lambda e: e["id"])
    assert stall["kind"] == "stall" and stall["t_end"] is not None and stall["detail"]["until"] == "reconnected"
    assert reconnect["kind"] == "reconnect" and reconnect["detail"]["after"] == "stall"
    assert s["frames"] == 10
