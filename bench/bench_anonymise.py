"""How much of every visible head the anonymisation covers, measured against the synthetic site's
exact head boxes, and what it costs.

Heads: each worker's exact head box (``camera.truth(i)``) cut to the worker's visible extent (what
lies outside that extent is hidden behind an occluder or another worker and cannot leave in an
image); heads with nothing visible are not counted. Per head: the share of its pixels the
redacted boxes cover; then the share of heads fully covered, the mean and the worst.

Worker boxes from
- ``truth``: the visible worker boxes of the truth (a perfect detector);
- ``model``: the shipped ``site-demo`` model's detections (workers and hard hats, as the store keeps
  them: every box the model keeps at its confidence floor) on the construction demo's two cameras;
- ``demo-db`` (with ``--db``): the real station path on a construction demo database
  (``inspector demo construction --data-dir DIR``): every incident's evidence images and every clip
  frame, redacted by ``inspector.station.anonymised_evidence`` from the stored detections (clip
  frames mapped back to stored frames), against the truth of the frame each one shows.

Cost: anonymising a 30 s 960x540 10 fps clip (decode, redact, encode) with truth boxes.

    python bench/bench_anonymise.py [--frames 40] [--db DIR] [--json] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_md import write_section  # noqa: E402
from inspector.capture.synthetic_site.camera import SiteTruth, SyntheticSiteCamera, render_video  # noqa: E402
from inspector.config import load_config, load_config_text  # noqa: E402
from inspector.reports.anonymise import anonymise_clip, anonymise_frame, head_coverage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "station_configs" / "construction-demo.yaml"




def truth_workers(truth: SiteTruth) -> np.ndarray:
    return np.array([w.visible_box for w in truth.workers if w.visible_box is not None], np.float64).reshape(-1, 4)


def summary(cov: list[float]) -> dict[str, Any]:
    c = np.asarray(cov, np.float64)
    if len(c) == 0:
        return {"heads": 0}
    return {"heads": int(len(c)), "fully_covered": round(float((c >= 1.0).mean()), 4),
            "mean_covered": round(float(c.mean()), 4), "worst": round(float(c.min()), 4),
            "uncovered_pixel_share": round(float(1.0 - c.mean()), 5)}


def cameras(frames: int) -> list[tuple[SyntheticSiteCamera, list[int]]]:
    cfg = load_config(DEMO)
    out = []
    for src in cfg.sources:
        cam = SyntheticSiteCamera.from_config(src)
        out.append((cam, np.linspace(0, cam.n_frames - 1, frames).round().astype(int).tolist()))
    return out


def bench_boxes(frames: int, with_model: bool) -> dict[str, Any]:
    cov: dict[str, list[float]] = {"truth": [], "model": []}
    ensemble, names = None, ()
    if with_model:
        from inspector.station.ensemble_builder import build_ensemble

        cfg = load_config(DEMO)
        ensemble = build_ensemble(cfg)
        names, site = ensemble.class_names, cfg.site
        worker_id, hat_id = names.index(site.classes.worker), names.index(site.classes.hat)
    t_model = 0.0
    for cam, idx in cameras(frames):
        for i in idx:
            image, truth = cam.render_with_truth(i)
            size = (image.shape[1], image.shape[0])
            heads = truth.visible_heads()
            _, boxes = anonymise_frame(image, truth_workers(truth))
            cov["truth"] += head_coverage(heads, boxes, size).tolist()
            if ensemble is not None:
                t0 = time.perf_counter()
                det = ensemble.detect([image]).results[0].fused
                t_model += time.perf_counter() - t0
                _, boxes = anonymise_frame(image, det.xyxy[det.class_id == worker_id],
                                           hat_boxes=det.xyxy[det.class_id == hat_id])
                cov["model"] += head_coverage(heads, boxes, size).tolist()
    out = {k: summary(v) for k, v in cov.items() if v}
    if ensemble is not None:
        out["model"]["model_s"] = round(t_model, 2)
    return out


def bench_clip(seconds: float = 30.0) -> dict[str, Any]:
    src = load_config(DEMO).sources[0].model_copy(update={"duration_s": seconds, "realtime": False})
    cam = SyntheticSiteCamera.from_config(src)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.mp4"
        render_video(raw, src)
        boxes = [truth_workers(cam.truth(i)) for i in range(cam.n_frames)]
        t0 = time.perf_counter()
        res = anonymise_clip(raw, Path(tmp) / "anon.mp4", boxes)
        wall = time.perf_counter() - t0
        cov = []
        for i, b in enumerate(res.boxes):
            cov += head_coverage(cam.truth(i).visible_heads(), b, res.size).tolist()
    return {"clip_s": seconds, "frames": res.frames, "size": list(res.size), "seconds": round(wall, 2),
            "x_realtime": round(seconds / wall, 1), **{f"truth_{k}": v for k, v in summary(cov).items()}}


def bench_demo_db(data_dir: Path, neighbours: int = 1) -> dict[str, Any]:
    """The station path (stored detections, evidence images, clips) on a construction demo database."""
    from inspector.station.anonymised_evidence import anonymised_clip, anonymised_images, clip_frame_ids
    from inspector.store import incidents

    conn = sqlite3.connect(data_dir / "inspector.sqlite")
    conn.row_factory = sqlite3.Row
    cams: dict[tuple[str, str], SyntheticSiteCamera] = {}

    def camera(config_hash: str, name: str) -> SyntheticSiteCamera:
        if (config_hash, name) not in cams:
            cfg = load_config_text(conn.execute("SELECT text FROM configs WHERE hash = ?", (config_hash,)).fetchone()[0])
            src = next(s for s in cfg.sources if getattr(s, "camera", None) == name)
            cams[(config_hash, name)] = SyntheticSiteCamera.from_config(src)
        return cams[(config_hash, name)]

    def index(frame_id: str) -> int:
        return int(json.loads(conn.execute("SELECT context FROM frames WHERE id = ?", (frame_id,)).fetchone()[0])
                   ["frame_index"])

    img_cov, clip_cov, clip_secs, clip_frames, clips = [], [], 0.0, 0, set()
    with tempfile.TemporaryDirectory() as tmp:
        for inc in incidents.incidents(conn):
            if not inc["key"]:
                continue
            cam = camera(inc["config_hash"], inc["camera"])
            for a in anonymised_images(conn, data_dir, inc, neighbours=neighbours):
                truth = cam.truth(index(a.frame_id))
                img_cov += head_coverage(truth.visible_heads(), a.boxes,
                                        (a.image.shape[1], a.image.shape[0])).tolist()
            if not inc["clip_path"] or inc["clip_path"] in clips:
                continue
            clips.add(inc["clip_path"])
            res = anonymised_clip(conn, data_dir, inc, Path(tmp) / f"{inc['id']}.mp4", neighbours=neighbours)
            clip_secs += res.seconds
            clip_frames += res.frames
            for fid, b in zip(clip_frame_ids(conn, inc, res.frames), res.boxes):
                clip_cov += head_coverage(cam.truth(index(fid)).visible_heads(), b, res.size).tolist()
    return {"incidents_images": summary(img_cov), "clips": len(clips), "clip_frames": clip_frames,
            "clip_seconds": round(clip_secs, 2), "clip_frames_heads": summary(clip_cov)}


def _line(name: str, s: dict[str, Any]) -> str:
    if not s.get("heads"):
        return f"| {name} | 0 | - | - | - |"
    return (f"| {name} | {s['heads']} | {100 * s['fully_covered']:.1f} % | {100 * s['mean_covered']:.2f} % "
            f"| {100 * s['worst']:.1f} % |")


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = ["## Anonymised evidence: head coverage against exact heads (synthetic site)", "",
             f"`python bench/bench_anonymise.py` on {m['cpu']} ({m['cores']} cores): pixelated head regions (top 0.3 of each worker box, "
             "padded 0.15, plus the head under each hard-hat box); heads = exact head boxes cut to the "
             "worker's visible extent. Demo database rows: the station path (stored detections of the frame "
             "and of the camera's stored frames either side; clip frames mapped back to stored frames), "
             "then the same with the frame's own boxes only.", "",
             "| worker boxes from | heads | fully covered | mean covered | worst head |", "| --- | --- | --- | --- | --- |",
             _line("truth (visible worker boxes)", res["boxes"]["truth"])]
    if "model" in res["boxes"]:
        lines.append(_line("shipped site-demo model", res["boxes"]["model"]))
    for key, what in (("demo_db", "demo database"), ("demo_db_0", "demo database, own frame's boxes only")):
        if key in res:
            d = res[key]
            lines += [_line(f"{what}: evidence images", d["incidents_images"]),
                      _line(f"{what}: {d['clips']} clips, {d['clip_frames']} frames", d["clip_frames_heads"])]
    c = res["clip"]
    lines += ["", f"Anonymising a {c['clip_s']:.0f} s {c['size'][0]}x{c['size'][1]} clip ({c['frames']} frames: "
              f"decode, redact, encode): {c['seconds']} s ({c['x_realtime']}x real time)."]
    return "\n".join(lines)




def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40, help="Frames per camera (evenly spread over its video).")
    ap.add_argument("--db", type=Path, help="A construction demo data folder to measure the station path on.")
    ap.add_argument("--no-model", action="store_true", help="Truth boxes only (no shipped model).")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="Do not update bench/RESULTS.md.")
    args = ap.parse_args(argv)
    from bench.run import machine

    res: dict[str, Any] = {"machine": machine(), "boxes": bench_boxes(args.frames, not args.no_model),
                           "clip": bench_clip()}
    if args.db:
        res["demo_db"] = bench_demo_db(args.db)
        res["demo_db_0"] = bench_demo_db(args.db, neighbours=0)
    print(markdown(res))
    if not args.no_write:
        write_section(ROOT / "bench" / "RESULTS.md", "bench_anonymise", markdown(res))
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
