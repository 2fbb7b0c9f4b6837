"""The construction station end to end: the shipped demo config on its synthetic cameras (judged
from their exact truth, no trained model needed), monitoring flow with drops counted, incidents
closed at the run's end, the summary's site section and tracking scores; and a video file played
at its own rate through the live-stream path."""

from __future__ import annotations

import time

import numpy as np
from helpers.site_fakes import truth_station_parts

from inspector.config import config_hash, load_config, load_config_text
from inspector.core.detections import Detections
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.demo import demo_config_path
from inspector.station.station import Station
from inspector.store import queries
from inspector.store.db import open_db
from inspector.store.incidents import incidents


FPS = 5  # the shipped demo's cameras: a site camera's analytics stream rate


def demo_config(duration_s=3.0, realtime=True, cameras=2):
    """The shipped construction demo, shortened to ``duration_s`` of video per camera."""
    cfg = load_config(demo_config_path("construction"))
    sources = [s.model_copy(update={"duration_s": duration_s, "realtime": realtime}) for s in cfg.sources[:cameras]]
    return cfg.model_copy(update={"sources": sources})


def run(cfg, tmp_path, *, delay=0.0):
    sources, ensemble, det = truth_station_parts(cfg, delay)
    station = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", sources=sources,
                                  ensemble=ensemble)
    return station.run(), det


def test_the_demo_config_is_a_monitoring_site_station_with_both_zone_kinds_and_all_incident_kinds():
    cfg = load_config(demo_config_path("construction"))
    assert cfg.station.domain == "construction" and cfg.flow.mode == "monitoring"
    assert cfg.storage.image_format == "jpeg" and cfg.models[0].registry == "site-demo"
    assert {z.kind for s in cfg.sources for z in s.zones} == {"restricted", "ppe_required"}
    assert {r.kind for r in cfg.site.incidents} == {"no_hard_hat", "no_vest", "in_danger_zone"}
    assert len({s.camera for s in cfg.sources}) == len(cfg.sources) >= 2
    assert {s.fps for s in cfg.sources} == {FPS}


def test_the_construction_demo_runs_headless_and_its_summary_has_the_site_numbers(tmp_path):
    cfg = demo_config(duration_s=3.0)
    t0 = time.monotonic()
    s, det = run(cfg, tmp_path)
    assert time.monotonic() - t0 < 30
    assert s["complete"] is True and s["mode"] == "monitoring" and s["inspected"] is True and det.unknown == 0
    site = s["site"]
    assert set(site["cameras"]) == {"gate", "yard"}
    for cam in site["cameras"].values():
        # Every frame of the 3 s (5 fps: 15) was either judged or dropped (latest wins), none lost.
        assert cam["frames"] + cam["dropped"] == round(3.0 * FPS) and cam["frames"] > 0
        assert cam["tracks"] >= 1
        assert set(cam["incidents"]) >= {"no_hard_hat", "no_vest", "in_danger_zone"}
        t = cam["tracking"]
        assert t is not None and t["frames"] == cam["frames"]
        assert t["mota"] > 0.7  # perfect detections: what is lost is the tracker's (start-up, occlusion)
        assert "idf1" in t
    assert site["frames"] == s["decisions"] and site["dropped"] == s["dropped"]
    # Whatever opened was closed: by clearing, by losing the track, or by the run's end.
    assert sum(site["incidents_closed"].values()) == site["incidents_total"]
    assert site["incidents_total"] >= 1  # the demo's cameras show hatless, vestless and trespassing workers
    conn = open_db(s["db"], create=False)
    try:
        assert len(queries.decisions(conn)) == s["decisions"]
        stored = incidents(conn, run_id=s["run_id"])
    finally:
        conn.close()
    # Every incident is in the store, ended (the run's end reached the store sink), with its clip.
    assert len(stored) == site["incidents_total"]
    assert all(i["ended"] and i["end_reason"] and i["clip_path"] for i in stored)


def test_a_slow_model_drops_the_oldest_frames_and_every_drop_is_counted(tmp_path):
    cfg = demo_config(duration_s=2.0, cameras=1)
    s, _ = run(cfg, tmp_path, delay=0.4)  # 2.5 frames/s of capacity for 5 frames/s of video
    gate = s["site"]["cameras"]["gate"]
    assert gate["dropped"] > 0 and gate["frames"] + gate["dropped"] == round(2.0 * FPS)
    assert s["drops"] == {"gate": gate["dropped"]} and s["frames"] == round(2.0 * FPS)
    assert s["complete"] is True


class OneWorker:
    """Sees one hatless worker in the middle of every image."""

    class_names = ("hat", "vest", "worker")

    def __init__(self, delay):
        self.delay = delay

    def detect(self, images):
        time.sleep(self.delay)
        return [Detections([[300, 200, 360, 400]], [0.9], [2]) for _ in images]


def test_a_video_file_played_at_its_own_rate_runs_live_and_counts_its_drops(tmp_path):
    from inspector.capture.synthetic_site import render_video

    site_src = demo_config(duration_s=3.0, cameras=1).sources[0]
    video = render_video(tmp_path / "gate.mp4", site_src)  # 15 frames at 5 fps
    cfg = load_config_text(f"""
version: 1
station: {{id: site-live, name: Site live, domain: construction}}
sources:
  - type: video
    uri: '{video["path"]}'
    camera: gate
    fps_limit: {video["fps"]}    # a file is paced, not read as fast as it decodes
models: [{{name: m, registry: m, imgsz: 480, class_names: [hat, vest, worker]}}]
site:
  incidents: [{{id: no-hard-hat, kind: no_hard_hat, persist_s: 0.5, clear_s: 0.5}}]
flow: {{mode: monitoring, queue_size: 1, batch_size: 1}}
storage: {{image_format: jpeg, store_images: none}}
""")
    ens = Ensemble([Member("m", "1", "ab" * 32, OneWorker(delay=0.4))])
    station = Station.from_config(cfg, config_hash(cfg), data_dir=tmp_path / "data", ensemble=ens)
    t0 = time.monotonic()
    s = station.run()
    elapsed = time.monotonic() - t0
    assert elapsed >= 2.5  # played at 5 fps, not decoded at full speed
    gate = s["site"]["cameras"]["gate"]
    assert gate["frames"] == s["decisions"] > 0
    assert gate["dropped"] > 0 and gate["frames"] + gate["dropped"] == video["frames"] == round(3.0 * FPS)
    assert gate["tracks"] == 1 and gate["incidents"]["no_hard_hat"] == 1 and gate["tracking"] is None
    assert s["site"]["incidents_closed"]["no_hard_hat"] == 1  # closed by the run's end (finish)
    assert s["complete"] is True and np.isfinite(s["seconds"])


def test_a_report_from_the_demo_database_opens_with_one_page_per_incident(tmp_path):
    """The safety manager's path end to end: a construction run, then `inspector report` on its store."""
    import json
    from datetime import datetime, timedelta, timezone

    from click.testing import CliRunner
    from pypdf import PdfReader

    from inspector.cli import main
    from inspector.store import audit

    s, _ = run(demo_config(duration_s=3.0), tmp_path)
    conn = open_db(s["db"], create=False)
    try:
        n = len(incidents(conn, run_id=s["run_id"]))
    finally:
        conn.close()
    assert n >= 1
    today = datetime.now(timezone.utc).date()
    period = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    pdf, csv_path = tmp_path / "r.pdf", tmp_path / "r.csv"
    r = CliRunner().invoke(main, ["report", "incidents", "--db", s["db"], *period, "--format", "pdf",
                                  "--out", str(pdf), "--json"])
    assert r.exit_code == 0, r.output
    facts = json.loads(r.stdout)
    reader = PdfReader(str(pdf))
    assert len(reader.pages) >= n + 1  # summary page(s), then one page per incident
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert all(f"Incident #{k}" in text for k in range(1, n + 1))
    r = CliRunner().invoke(main, ["report", "incidents", "--db", s["db"], *period, "--format", "csv",
                                  "--out", str(csv_path)])
    assert r.exit_code == 0, r.output
    assert len(csv_path.read_text(encoding="utf-8").strip().splitlines()) == n + 1  # header + one row each
    conn = open_db(s["db"], create=False)
    try:
        assert audit.verify(conn).ok
        actions = [row[0] for row in conn.execute("SELECT action FROM audit WHERE entity = 'reports'")]
    finally:
        conn.close()
    assert actions.count("report.generate") == 2 and facts
