"""A wafer station with file-drop and KLARF outputs: one JSON per die and wafer, one KLARF per wafer."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from inspector.config import config_hash, load_config_text
from inspector.core.detections import Detections
from inspector.mes import outbox
from inspector.mes.klarf import parse_klarf
from inspector.mes.payload import check_unit_payload
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.rules_builder import wafer_layout
from inspector.station.station import Station, StationError
from inspector.store.db import open_db

REGEX = r"(?P<lot>L\d+)_(?P<wafer>W\d+)_(?P<die_x>-?\d+)_(?P<die_y>-?\d+)"


class Bright:
    class_names = ("scratch", "particle")

    def detect(self, images):
        return [Detections([[2, 2, 10, 6]], [0.9], [1]) if img.mean() > 100 else Detections.empty() for img in images]


def cfg_text(folder, mes: str) -> str:
    return f"""
version: 1
station: {{id: fab-1, name: Fab 1, domain: wafer}}
sources: [{{type: folder, id: cam, path: '{folder}', context_regex: '{REGEX}'}}]
models: [{{name: m, registry: m, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
wafer: {{diameter_mm: 100, die_pitch_x_mm: 25, die_pitch_y_mm: 25, edge_exclusion_mm: 3}}
pixel_size_um: 1000
mes: {mes}
"""


def test_station_delivers_unit_wafer_and_klarf_files(tmp_path):
    probe = load_config_text(cfg_text(tmp_path, "[]"))
    dies = wafer_layout(probe).dies
    d = tmp_path / "dies"
    d.mkdir()
    for w in ("W1", "W2"):
        for i, (x, y) in enumerate(dies):
            grey = 200 if i % 3 == 0 else 20
            cv2.imwrite(str(d / f"L1_{w}_{x}_{y}.png"), np.full((16, 16, 3), grey, np.uint8))
    cfg = load_config_text(cfg_text(d, "[{type: filedrop, id: files, folder: mes-out},"
                                       " {type: klarf, id: klarf, folder: klarf-out}]"))
    data = tmp_path / "data"
    ens = Ensemble([Member("m", "3", "ab" * 32, Bright())])
    s = Station.from_config(cfg, config_hash(cfg), data_dir=data, ensemble=ens).run()
    n = 2 * len(dies)
    assert s["frames"] == n and s["mes"]["files"]["pending"] == 0

    files = sorted((data / "mes-out").glob("*.json"))
    msgs = [json.loads(f.read_text()) for f in files]
    units = [m for m in msgs if m["kind"] == "unit"]
    wafers = [m for m in msgs if m["kind"] == "wafer"]
    assert len(units) == n and len(wafers) == 2 and not list((data / "mes-out").glob(".*"))
    assert all(not check_unit_payload(m) for m in units)
    # file names sort in delivery order: W1's dies, W1's result, W2's dies, W2's result
    assert [m["unit"]["wafer"] for m in msgs] == ["W1"] * (len(dies) + 1) + ["W2"] * (len(dies) + 1)
    failed = [m for m in units if m["verdict"] == "fail"]
    assert failed and failed[0]["defects"][0]["size_um"] == {"w": 8000.0, "h": 4000.0, "max": 8000.0}
    assert failed[0]["image"]["sha256"] and (data / failed[0]["image"]["path"]).is_file()
    assert failed[0]["models"] == [{"name": "m", "version": "3", "sha256": "ab" * 32}]

    klarfs = sorted((data / "klarf-out").glob("*.klarf"))
    assert len(klarfs) == 2
    k = parse_klarf(klarfs[0].read_text())
    assert (k.lot_id, k.wafer_id) == ("L1", "W1") and k.die_pitch_um == (25000.0, 25000.0)
    assert len(k.sample_plan) == len(dies) and len(k.defects) == len([m for m in failed if m["unit"]["wafer"] == "W1"])
    assert k.classes == ("scratch", "particle") and k.class_name(k.defects[0].class_number) == "particle"
    assert k.defects[0].xsize_um == 8000.0 and k.defects[0].yrel_um == 12000.0  # (16 - 4) px * 1000 um, y up

    conn = open_db(s["db"], create=False)
    st = outbox.status(conn)
    assert st["files"]["delivered"] == n + 2 and st["klarf"]["delivered"] == 2
    # the outbox row is in the decision's transaction: every decision has exactly its message
    assert conn.execute("SELECT COUNT(*) FROM decisions d LEFT JOIN outbox o ON o.key = 'fab-1/' || d.frame_id"
                        " AND o.transport = 'files' WHERE o.id IS NULL").fetchone()[0] == 0
    conn.close()


@pytest.mark.parametrize("mes, field, words", [
    ("[{type: http, id: h, url: 'https://mes.example/api', token_env: INSPECTOR_TEST_NO_SUCH_TOKEN}]",
     "mes[0].token_env", "INSPECTOR_TEST_NO_SUCH_TOKEN is not set"),
    ("[{type: http, id: h, url: 'https://mes.example/api', ca_file: /nonexistent/ca.pem}]",
     "mes[0].ca_file", "not found"),
    ("[{type: filedrop, id: f, folder: out}, {type: http, id: h, url: 'https://x', cert_file: /nonexistent/c.pem}]",
     "mes[1].cert_file", "client certificate /nonexistent/c.pem not found"),
    ("[{type: mqtt, id: m, host: broker, tls: true, ca_file: '{not_pem}'}]",
     "mes[0].ca_file", "cannot load CA file"),
    ("[{type: mqtt, id: m, host: broker, password_env: INSPECTOR_TEST_NO_SUCH_PW}]",
     "mes[0].password_env", "INSPECTOR_TEST_NO_SUCH_PW"),
])
def test_unusable_mes_output_fails_before_the_run_naming_the_field(tmp_path, mes, field, words):
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("this is not a certificate\n")
    cfg = load_config_text(cfg_text(tmp_path, mes.replace("{not_pem}", str(not_pem))))
    with pytest.raises(StationError, match=r"MES output") as e:
        Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", sources=[],
                            ensemble=Ensemble([Member("m", "3", "ab" * 32, Bright())]))
    assert field in str(e.value) and words in str(e.value)
    assert not (tmp_path / "data").exists()  # nothing was written
