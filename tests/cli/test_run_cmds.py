"""`inspector demo` / `run` headless: the summary, the log file in the data folder, progress.

(The end-to-end runs with a registered model live in tests/test_cli_run.py, whose helpers the GUI
tests share.)"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from helpers.tiny_models import register_production, tiny_onnx

from inspector.cli import main


@pytest.fixture
def parts_line(tmp_path):
    """A folder of 5 images and a tiny model that asks for TensorRT first (absent here: a fallback)."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for i in range(5):
        cv2.imwrite(str(imgs / f"part_{i}.png"), np.full((40, 48, 3), 30 * i, np.uint8))
    reg = tmp_path / "reg"
    register_production(reg, "parts", tiny_onnx(tmp_path / "m.onnx"), ("scratch", "particle"), 32)
    cfg = tmp_path / "station.yaml"
    cfg.write_text(f"""
version: 1
station: {{id: parts-line, name: Parts line, domain: generic}}
sources: [{{type: folder, id: cam, path: '{imgs}'}}]
models: [{{name: parts, registry: parts, imgsz: 32, class_names: [scratch, particle], providers: [tensorrt, cpu]}}]
rules: [{{id: any, type: any_defect, min_score: 0.5, verdict: fail}}]
flow: {{mode: inspection, queue_size: 4, batch_size: 1}}
""")
    return cfg, reg


def _run(cfg, reg, data, *extra):
    return CliRunner().invoke(main, ["run", "--config", str(cfg), "--headless", "--data-dir", str(data),
                                     "--registry", str(reg), *extra])


def test_run_logs_the_provider_choice_into_the_data_folder_not_stderr(parts_line, tmp_path, monkeypatch):
    monkeypatch.delenv("INSPECTOR_LOG_LEVEL", raising=False)
    cfg, reg = parts_line
    data = tmp_path / "data"
    r = _run(cfg, reg, data, "--max-frames", "2", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decisions"] == 2
    log = (data / "logs" / "inspector.log").read_text()
    # logged at INFO by the runtime while the station was built (inspector.runtime.onnx_detector)
    assert "INFO inspector.runtime.onnx_detector: parts: execution providers:" in log
    assert "execution providers" not in r.stderr  # stderr keeps warnings only by default
    r = _run(cfg, reg, data, "--max-frames", "1", "--json", "--log-level", "info")
    assert r.exit_code == 0 and "execution providers" in r.stderr
    json.loads(r.stdout)  # logs never reach stdout


def test_run_progress_json_lines_count_frames_decided_and_recorded(parts_line, tmp_path):
    cfg, reg = parts_line
    r = _run(cfg, reg, tmp_path / "data", "--max-frames", "4", "--json", "--progress", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decisions"] == 4
    lines = [json.loads(x) for x in r.stderr.splitlines()]
    assert lines[0]["event"] == "start" and lines[0]["total"] == 4 and lines[0]["unit"] == "frame"
    end = lines[-1]
    assert end["event"] == "end" and end["progress"] == "run"
    assert end["done"] == end["captured"] == end["recorded"] == 4


def test_run_progress_is_silent_when_piped(parts_line, tmp_path):
    cfg, reg = parts_line
    r = _run(cfg, reg, tmp_path / "data", "--max-frames", "2")  # --progress auto; stderr is no terminal
    assert r.exit_code == 0, r.output
    assert r.stderr == "" and "verdicts:" in r.stdout


def test_demo_progress_json(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--max-frames", "3", "--json", "--progress", "json",
                                  "--data-dir", str(tmp_path / "d"), "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decisions"] == 3
    end = json.loads(r.stderr.splitlines()[-1])
    assert end["progress"] == "run" and end["event"] == "end" and end["done"] == end["recorded"] == 3
    assert (tmp_path / "d" / "logs" / "inspector.log").is_file()


def test_demo_json_summary(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "data"))
    r = CliRunner().invoke(main, ["demo", "--json", "--max-frames", "12", "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["frames"] == 12 and s["station"] == "wafer-demo" and s["lots"] == 1
    assert set(s["verdicts"]) == {"pass", "fail", "review", "error", "not_inspected"}
    assert {"decisions", "throughput_fps", "db", "inspected"} <= set(s)
    assert s["data_dir"] == str(tmp_path / "data")
    assert (tmp_path / "data" / "configs" / f"{s['config_hash']}.json").exists()


def test_demo_without_a_model_says_it_did_not_inspect(tmp_path, monkeypatch):
    monkeypatch.setenv("INSPECTOR_DATA", str(tmp_path / "data"))
    r = CliRunner().invoke(main, ["demo", "--headless", "--max-frames", "3", "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0 and "NOT INSPECTED" in r.output and "wafer-demo" in r.output


def test_demo_construction_runs_the_site_station_with_the_shipped_config(tmp_path):
    from test_cli_run import blank_detector_onnx

    classes = ("hat", "vest", "worker")
    reg = tmp_path / "reg"  # a site-demo model that sees nobody: the path runs end to end, fast
    register_production(reg, "site-demo", blank_detector_onnx(tmp_path / "s.onnx", classes, 480, dynamic=True),
                        classes, 480)  # dynamic input: the shipped config runs it with rect: true
    r = CliRunner().invoke(main, ["demo", "construction", "--max-frames", "8", "--json", "--data-dir",
                                  str(tmp_path / "d"), "--registry", str(reg)])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["station"] == "site-demo" and s["mode"] == "monitoring" and s["inspected"] and s["complete"]
    site = s["site"]
    assert set(site["cameras"]) == {"gate", "yard"} and site["frames"] == s["decisions"]
    assert site["frames"] + site["dropped"] == s["frames"] == 8 and site["tracks"] == 0
    assert site["incidents"] == {"no_hard_hat": 0, "no_vest": 0, "in_danger_zone": 0}
    for cam in site["cameras"].values():  # scored against the synthetic truth: nobody found, all missed
        if cam["frames"]:
            assert cam["tracking"]["mota"] <= 0 and cam["tracking"]["misses"] > 0
    text = CliRunner().invoke(main, ["demo", "construction", "--headless", "--max-frames", "4", "--data-dir",
                                     str(tmp_path / "d"), "--registry", str(reg)])
    assert text.exit_code == 0, text.output
    assert "camera gate" in text.output and "MOTA" in text.output and "from 2 camera(s)" in text.output


def test_demo_takes_a_name_or_a_config_not_both(tmp_path):
    from inspector.station.demo import demo_config_path

    path = str(demo_config_path("construction"))
    r = CliRunner().invoke(main, ["demo", "construction", "--config", path])
    assert r.exit_code == 2 and "not both" in r.output
    r = CliRunner().invoke(main, ["demo", "--config", path, "--json",
                                  "--max-frames", "2", "--data-dir", str(tmp_path / "d"),
                                  "--registry", str(tmp_path / "empty")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["station"] == "site-demo" and not s["inspected"] and s["site"]["tracks"] == 0
    assert set(s["site"]["cameras"]) == {"gate", "yard"}  # listed, though none of their frames was judged
    assert all(c["tracking"] is None for c in s["site"]["cameras"].values())
