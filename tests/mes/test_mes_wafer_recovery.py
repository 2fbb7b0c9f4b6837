"""A station that crashes before judging its last wafer: the next start queues that wafer's
result and KLARF file, exactly once, under the crashed run's id."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import cv2
import numpy as np

from inspector.config import canonical_json, config_hash, load_config_text
from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.mes import outbox
from inspector.mes.hub import MesHub
from inspector.mes.klarf import parse_klarf
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.judgement import FrameResult
from inspector.station.rules_builder import wafer_layout
from inspector.station.station import Station
from inspector.station.store_sink import StoreSink
from inspector.store.db import open_db
from inspector.store.writer import StoreWriter

REGEX = r"(?P<lot>L\d+)_(?P<wafer>W\d+)_(?P<die_x>-?\d+)_(?P<die_y>-?\d+)"
CRASHED = "run-20260401T000000Z-crash1"


class Bright:
    class_names = ("scratch", "particle")

    def detect(self, images):
        return [Detections([[2, 2, 10, 6]], [0.9], [1]) if img.mean() > 100 else Detections.empty() for img in images]


def station_cfg(folder):
    return load_config_text(f"""
station: {{id: fab-1, name: Fab 1, domain: wafer}}
sources: [{{type: folder, id: cam, path: '{folder}', context_regex: '{REGEX}'}}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
wafer_rules: [{{id: frac, type: defect_die_fraction, max_fraction: 0.9}}]
wafer: {{diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}}
pixel_size_um: 1000
mes: [{{type: filedrop, id: files, folder: mes-out}}, {{type: klarf, id: klarf, folder: klarf-out}}]
""")


def crashed_run(cfg, data, dies) -> int:
    """What a station leaves behind when it dies right after committing a wafer's dies: the dies
    and their unit messages, no wafer-level message, no run end. Returns the defects recorded."""
    chash = config_hash(cfg)
    hub = MesHub.from_config(cfg, chash, CRASHED, data, class_names=("scratch", "particle"))
    data.mkdir(parents=True, exist_ok=True)
    writer = StoreWriter(data / cfg.storage.db_name, None, outbox_hook=outbox.write_drafts).start()
    sink = StoreSink(writer, CRASHED, ("scratch", "particle"), store_images="none", mes=hub)
    sink.start_run("fab-1", chash, canonical_json(cfg), "ms-1")
    t0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
    defects = 0
    for i, (x, y) in enumerate(dies):
        fid = f"{CRASHED}/cam/L1_W3_{x}_{y}"
        frame = Frame(fid, "fab-1", "cam", float(i), t0 + timedelta(seconds=i), np.zeros((16, 16, 3), np.uint8),
                      {"lot": "L1", "wafer": "W3", "die_x": x, "die_y": y})
        if i % 3 == 0:
            defects += 1
            dec = Decision(fid, Verdict.FAIL, (Reason("any", Verdict.FAIL, "particle 0.90", (0,)),),
                           Detections([[2, 2, 10, 6]], [0.9], [1]), "ms-1", chash, t0 + timedelta(seconds=i))
        else:
            dec = Decision(fid, Verdict.PASS, (), Detections.empty(), "ms-1", chash, t0 + timedelta(seconds=i))
        sink.accept_result(FrameResult(frame, dec))
    sink.flush()
    sink.close()  # ... and the process is gone: no wafer flush, no run end
    return defects


def write_dies(folder, wafer, dies):
    folder.mkdir(parents=True, exist_ok=True)
    for i, (x, y) in enumerate(dies):
        cv2.imwrite(str(folder / f"L1_{wafer}_{x}_{y}.png"), np.full((16, 16, 3), 200 if i % 3 == 0 else 20, np.uint8))


def wafer_rows(conn, wafer: str) -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT transport, key, kind, delivered IS NOT NULL FROM outbox"
                                           " WHERE stream = ? AND kind != 'unit' ORDER BY transport", (f"L1/{wafer}",))]


def test_next_start_queues_the_crashed_runs_wafer_exactly_once(tmp_path):
    cfg = station_cfg(tmp_path / "dies")
    dies = wafer_layout(cfg).dies
    data = tmp_path / "data"
    partial = dies[: len(dies) - 2]  # it crashed two dies before the end of the wafer
    n_defects = crashed_run(cfg, data, partial)
    db = data / cfg.storage.db_name

    conn = open_db(db)
    assert wafer_rows(conn, "W3") == []  # the gap: dies (and their unit messages) but no wafer message
    assert outbox.depth(conn, "files")[0] == len(partial)
    conn.close()

    write_dies(tmp_path / "dies", "W4", dies)
    ens = Ensemble([Member("m", "3", "ab" * 32, Bright())])
    s = Station.from_config(cfg, config_hash(cfg), data_dir=data, ensemble=ens).run()
    assert s["mes"]["files"]["pending"] == 0 and s["mes"]["klarf"]["pending"] == 0

    conn = open_db(db)
    assert wafer_rows(conn, "W3") == [("files", f"fab-1/{CRASHED}/wafer/L1/W3", "wafer", 1),
                                      ("klarf", f"fab-1/{CRASHED}/klarf/L1/W3", "klarf", 1)]
    assert [tuple(r) for r in conn.execute("SELECT how FROM mes_wafers WHERE run_id = ? AND wafer = 'W3'",
                                           (CRASHED,))] == [("recovered",)]
    assert len(wafer_rows(conn, "W4")) == 2  # the new run's own wafer, as usual
    conn.close()

    k = parse_klarf((data / "klarf-out" / f"L1_W3_{CRASHED}.klarf").read_text())
    assert (k.lot_id, k.wafer_id) == ("L1", "W3") and k.station[2] == CRASHED
    assert len(k.sample_plan) == len(partial) and len(k.defects) == n_defects
    assert k.defects[0].xsize_um == 8000.0 and k.setup_id == config_hash(cfg)[:32]
    msg = next(json.loads(f.read_text()) for f in (data / "mes-out").glob("*.json")
               if json.loads(f.read_text())["kind"] == "wafer" and json.loads(f.read_text())["unit"]["wafer"] == "W3")
    assert msg["run_id"] == CRASHED and msg["dies_seen"] == len(partial)
    assert msg["verdict"] == "review"  # two dies never inspected: a partial wafer is never passed silently

    # Later starts, even after the delivered rows were pruned, do not send W3 again.
    conn = open_db(db)
    assert outbox.prune_delivered(conn, datetime.now(timezone.utc) + timedelta(days=1)) > 0
    conn.close()
    (tmp_path / "dies").joinpath("L1_W4_0_0.png").unlink()  # any next run will do
    Station.from_config(cfg, config_hash(cfg), data_dir=data, ensemble=ens).run()
    conn = open_db(db)
    assert wafer_rows(conn, "W3") == []
    assert conn.execute("SELECT COUNT(*) FROM mes_wafers WHERE wafer = 'W3'").fetchone()[0] == 1
    conn.close()
    assert len(list((data / "klarf-out").glob("L1_W3_*.klarf"))) == 1


def test_clean_runs_mark_their_wafers_so_nothing_is_recovered(tmp_path):
    cfg = station_cfg(tmp_path / "dies")
    dies = wafer_layout(cfg).dies
    write_dies(tmp_path / "dies", "W1", dies)
    data = tmp_path / "data"
    ens = Ensemble([Member("m", "3", "ab" * 32, Bright())])
    first = Station.from_config(cfg, config_hash(cfg), data_dir=data, ensemble=ens).run()
    Station.from_config(cfg, config_hash(cfg), data_dir=data, ensemble=ens).run()
    conn = open_db(data / cfg.storage.db_name)
    marks = [tuple(r) for r in conn.execute("SELECT run_id, how FROM mes_wafers ORDER BY queued")]
    assert marks[0] == (first["run_id"], "live") and {h for _, h in marks} == {"live"} and len(marks) == 2
    assert len(wafer_rows(conn, "W1")) == 4  # wafer JSON + KLARF of each run, none recovered
    conn.close()
