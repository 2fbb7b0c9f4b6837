"""`inspector run` and `inspector demo` end to end: config -> station -> database -> summary."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.tiny_models import register_production as register
from helpers.tiny_models import tiny_onnx

from inspector.cli import main
from inspector.store import queries
from inspector.store.db import open_db

DEMO_CLASSES = ("particle", "scratch", "residue", "pattern", "edge_chip")


def blank_detector_onnx(path: Path, class_names, imgsz: int, anchors: int = 64, dynamic: bool = False) -> Path:
    """A YOLO-shaped model (1, 4+nc, anchors) of any class count that finds nothing (all zeros);
    ``dynamic``: any input height and width (what ``rect: true`` needs)."""
    import onnx
    from onnx import TensorProto, helper

    c = 4 + len(class_names)
    hw = ["height", "width"] if dynamic else [imgsz, imgsz]
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, *hw])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, c, anchors])
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
             helper.make_tensor("flat", TensorProto.INT64, [3], [1, 1, -1]),
             helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
             helper.make_tensor("ends", TensorProto.INT64, [1], [c * anchors]),
             helper.make_tensor("axes", TensorProto.INT64, [1], [2]),
             helper.make_tensor("shape", TensorProto.INT64, [3], [1, c, anchors])]
    nodes = [helper.make_node("Mul", ["images", "zero"], ["z"]),
             helper.make_node("Reshape", ["z", "flat"], ["f"]),
             helper.make_node("Slice", ["f", "starts", "ends", "axes"], ["s"]),
             helper.make_node("Reshape", ["s", "shape"], ["output0"])]
    model = helper.make_model(helper.make_graph(nodes, "blank", [x], [y], initializer=inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in {"names": str(dict(enumerate(class_names))), "imgsz": str([imgsz, imgsz]), "task": "detect",
                 "stride": "32"}.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.save(model, path)
    return path


def db_decisions(db: str):
    conn = open_db(db, create=False)
    try:
        return queries.decisions(conn)
    finally:
        conn.close()


@pytest.fixture
def station_config(tmp_path):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(5):
        cv2.imwrite(str(imgs / f"part_{i}.png"), np.full((40, 48, 3), 30 * i, np.uint8))
    reg = tmp_path / "reg"
    register(reg, "parts", tiny_onnx(tmp_path / "m.onnx", ("scratch", "particle"), 32), ("scratch", "particle"), 32)
    cfg = tmp_path / "station.yaml"
    cfg.write_text(f"""
version: 1
station: {{id: parts-line, name: Parts line, domain: generic}}
sources: [{{type: folder, id: cam, path: '{imgs}'}}]
models: [{{name: parts, registry: parts, imgsz: 32, class_names: [scratch, particle]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
flow: {{mode: inspection, queue_size: 4, batch_size: 1}}
""")
    return cfg, reg


def test_run_headless_json(station_config, tmp_path):
    cfg, reg = station_config
    data = tmp_path / "data"
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--headless", "--max-frames", "3", "--json",
                                  "--data-dir", str(data), "--registry", str(reg)])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["frames"] == s["decisions"] == s["stored"] == 3 and s["complete"] and s["inspected"]
    assert sum(s["verdicts"].values()) == 3 and s["model_set_version"].startswith("ms-")
    assert s["db"] == str(data / "inspector.sqlite") and s["throughput_fps"] > 0
    rows = db_decisions(s["db"])
    assert len(rows) == 3 and {r["model_set_version"] for r in rows} == {s["model_set_version"]}
    assert {r["config_hash"] for r in rows} == {s["config_hash"]}


def test_run_without_a_display_runs_headless_and_says_why(station_config, tmp_path, monkeypatch):
    cfg, reg = station_config
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    r = CliRunner().invoke(main, ["run", str(cfg), "--max-frames", "2", "--data-dir", str(tmp_path / "d"),
                                  "--registry", str(reg)])
    assert r.exit_code == 0, r.output
    assert r.stderr.count("\n") == 1 and "running headless: no display" in r.stderr
    assert "verdicts:" in r.stdout and "parts-line" in r.stdout


def test_run_refuses_a_missing_model_naming_it(station_config, tmp_path):
    cfg, _ = station_config
    r = CliRunner().invoke(main, ["run", "--config", str(cfg), "--headless", "--data-dir", str(tmp_path / "d"),
                                  "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 1 and "models[0] (parts)" in r.output
    r = CliRunner().invoke(main, ["run", "--headless"])
    assert r.exit_code == 2 and "--config" in r.output


def test_demo_end_to_end_with_a_registered_model(tmp_path):
    reg = tmp_path / "reg"
    register(reg, "wafer-demo", blank_detector_onnx(tmp_path / "w.onnx", DEMO_CLASSES, 320), DEMO_CLASSES, 320)
    data = tmp_path / "data"
    r = CliRunner().invoke(main, ["demo", "--max-frames", "20", "--json", "--data-dir", str(data),
                                  "--registry", str(reg)])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["inspected"] and s["frames"] == s["decisions"] == s["stored"] == s["dies"] == 20
    assert s["verdicts"]["pass"] == 20 and s["lots"] == 1 and s["data_dir"] == str(data)
    (wafer,) = s["wafers"].values()
    # 20 of the wafer's dies were inspected: the rest count as not inspected, so it goes to review.
    assert wafer["verdict"] == "review" and wafer["dies"]["pass"] == 20 and wafer["truth_signature"]
    assert len(db_decisions(s["db"])) == 20
    text = CliRunner().invoke(main, ["demo", "--headless", "--max-frames", "3", "--data-dir", str(data),
                                     "--registry", str(reg)])
    assert text.exit_code == 0 and "NOT INSPECTED" not in text.output and "verdicts: pass 3" in text.output
    assert len(db_decisions(s["db"])) == 23  # a second run of the same dies is stored beside the first


def test_demo_without_a_model_records_every_die_as_not_inspected(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--max-frames", "4", "--json", "--data-dir", str(tmp_path / "d"),
                                  "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert not s["inspected"] and "no model could be loaded" in s["note"]
    assert s["verdicts"]["not_inspected"] == s["decisions"] == 4
    assert [r["verdict"] for r in db_decisions(s["db"])] == ["not_inspected"] * 4
