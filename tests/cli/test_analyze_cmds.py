"""`inspector analyze`: files in, one run each, a JSON summary alone on stdout, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from inspector.capture.synthetic_site.camera import render_video
from inspector.cli import main
from inspector.config.schema import SyntheticSiteSource
from helpers.tiny_models import register_production, tiny_onnx

CLASSES = ["hat", "vest", "worker"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("analyze")
    registry = root / "models"
    # 3 x 224^2 values reshape into 4 + 3 rows: a loadable model that finds nothing.
    register_production(registry, "site-tiny", tiny_onnx(root / "m.onnx", CLASSES, imgsz=224, bias=-100.0, sigmoid=True),
                        CLASSES, 224)
    source = {"type": "synthetic_site", "camera": "gate", "seed": 5, "width": 320, "height": 180, "fps": 10,
              "duration_s": 3, "workers": 2,
              "zones": [{"id": "pit", "kind": "restricted", "polygon": [[0, 90], [320, 90], [320, 180], [0, 180]]}]}
    cfg = {"station": {"id": "site-cli", "name": "CLI site", "domain": "construction"},
           "sources": [source],
           "models": [{"name": "site-tiny", "registry": "site-tiny", "imgsz": 224, "class_names": CLASSES}],
           "flow": {"mode": "monitoring"},
           "storage": {"store_images": "none"},
           "site": {"incidents": [{"id": "danger", "kind": "in_danger_zone"}]}}
    config = root / "site.yaml"
    config.write_text(yaml.safe_dump(cfg))
    video = root / "gate.mp4"
    render_video(video, SyntheticSiteSource.model_validate(source))
    return {"registry": registry, "config": config, "video": video, "data": root / "data"}


def _invoke(setup, *args):
    return CliRunner().invoke(main, ["analyze", "--config", str(setup["config"]), "--registry",
                                     str(setup["registry"]), "--data-dir", str(setup["data"]), *map(str, args)])


def test_json_summary_per_file(setup):
    r = _invoke(setup, setup["video"], setup["video"], "--json", "--progress", "none", "--stride", "2",
                "--no-motion-gate", "--start-utc", "2026-05-01T06:00:00Z")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["station"] == "site-cli" and out["failed"] == []
    a, b = out["files"]
    assert a["run_id"] != b["run_id"] and a["video_sha256"] == b["video_sha256"]
    assert a["frames"] == 30 and a["inferred"] == 15 and a["skipped_by_reason"] == {"stride": 15}
    assert a["camera"] == "gate" and a["stride"] == 2 and a["motion_gate"] is False
    for key in ("seconds", "x_realtime", "inferred_per_s", "incidents", "verdicts"):
        assert key in a
    assert a["errors"] == []


def test_text_summary_and_progress_on_stderr(setup):
    r = _invoke(setup, setup["video"], "--progress", "json")
    assert r.exit_code == 0, r.output
    assert "x real time" in r.stdout and "inferred" in r.stdout
    lines = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    assert lines and lines[-1]["event"] == "end" and lines[-1]["done"] == 30 and lines[-1]["unit"] == "frame"


@pytest.mark.parametrize("args, message", [
    (["--camera", "nope"], "camera 'nope' is not a source"),
    (["--start-utc", "yesterday"], "ISO 8601"),
    (["--start-utc", "2026-05-01T06:00:00"], "with its zone"),
])
def test_bad_options_say_what(setup, args, message):
    r = _invoke(setup, setup["video"], *args)
    assert r.exit_code != 0 and message in r.output


def test_a_file_that_is_no_video_fails_that_file_only(setup, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    r = _invoke(setup, junk, setup["video"], "--json", "--progress", "none")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert [f["video"] for f in out["failed"]] == [str(junk)] and len(out["files"]) == 1


def test_stored_runs_and_segments(setup):
    from inspector.store import analysis
    from inspector.store.db import open_db

    r = _invoke(setup, setup["video"], "--json", "--progress", "none")
    run_id = json.loads(r.stdout)["files"][0]["run_id"]
    conn = open_db(Path(setup["data"]) / "inspector.sqlite")
    try:
        segs = analysis.segments(conn, run_id=run_id)
    finally:
        conn.close()
    assert segs and analysis.check_contiguous(segs) == [] and segs[-1].last_frame == 29
