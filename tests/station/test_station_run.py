"""A station from config to database: corrupt frames, traceability, graceful stop, wafer events."""

from __future__ import annotations

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
from inspector.store import queries
from inspector.store.audit import verify
from inspector.store.db import open_db

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
    (d / "img_3b.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")  # corrupt: counted and skipped
    return d


def db_rows(summary):
    conn = open_db(summary["db"], create=False)
    try:
        return conn, queries.decisions(conn)
    except Exception:
        conn.close()
        raise


def test_a_run_is_traceable_and_a_corrupt_frame_is_counted(folder, tmp_path):
    cfg = config(folder, store_images="flagged")
    h = config_hash(cfg)
    ens = ensemble()
    s = Station.from_config(cfg, h, data_dir=tmp_path / "data", ensemble=ens).run()
    assert s["complete"] and s["state"] == "stopped"
    assert s["frames"] == s["decisions"] == s["stored"] == 6 and s["corrupt"] == 1
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


def test_sigterm_stops_a_run_gracefully(folder, tmp_path):
    cfg = config(folder, loop=True)
    st = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ensemble(delay=0.004))
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(st):
        threading.Timer(0.4, os.kill, (os.getpid(), signal.SIGTERM)).start()
        s = st.run()  # a looping source: only the signal ends this run
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
