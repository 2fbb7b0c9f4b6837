"""Archive analysis speed and what motion gating costs in incidents (`inspector analyze`).

A 1080p 25 fps synthetic site recording (S1's renderer; about 2 minutes) with still stretches (the
yard empty: breaks, nights) and busy ones, analysed three ways through the real archive path
(decode, gate, the site judge, the store):

- ``full``:    every frame inferred (stride 1, no gate): the reference for incidents;
- ``stride``:  every ``stride``-th frame (about 5 per second), no motion gate;
- ``gated``:   every ``stride``-th frame where the motion gate sees motion (``inspector analyze``'s default).

Per mode: multiple of real time, frames inferred per second, share of frames skipped, incidents by
kind, and the recall of the full-rate incidents (same kind, overlapping in time within ``--tol-s``;
one-to-one). Targets: >= 5x real time and recall >= 0.98 on the 2-core reference machine.

The model is the registry's ``site-demo`` when it is there. Without it, detections are the synthetic
ground truth, and the shipped wafer-demo ONNX model runs on every inferred frame purely for its cost
(the output is discarded): the speed then stands for a small model of that size, and the report says so.

    python bench/bench_analyze.py [--seconds 120] [--json] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results_md import write_section  # noqa: E402
from inspector.capture.synthetic_site.camera import CLASS_NAMES, SyntheticSiteCamera  # noqa: E402
from inspector.config import config_hash, load_config  # noqa: E402
from inspector.config.schema import StationConfig  # noqa: E402
from inspector.core.detections import Detections  # noqa: E402
from inspector.runtime.ensemble import Ensemble, Member  # noqa: E402
from inspector.station.archive import AnalyzeOptions, ArchiveAnalysis, default_judge_factory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "station_configs" / "construction-demo.yaml"
W, H, FPS = 1920, 1080, 25.0


def busy(t_s: float, seconds: float) -> bool:
    """Workers on site in the 2nd and 4th fifth of the recording (arriving and leaving at once,
    like a cut); the yard is empty and still otherwise."""
    f = t_s / seconds
    return 0.2 <= f < 0.45 or 0.65 <= f < 0.9


def bench_config(seconds: float) -> StationConfig:
    """The construction demo's ``gate`` camera at 1080p 25 fps (zones scaled), the only source."""
    cfg = load_config(DEMO)
    src = next(s for s in cfg.sources if s.camera == "gate")
    k = W / src.width
    zones = [z.model_copy(update={"polygon": [(x * k, y * k) for x, y in z.polygon]}) for z in src.zones]
    src = src.model_copy(update={"width": W, "height": H, "fps": FPS, "duration_s": seconds, "realtime": False,
                                 "zones": zones})
    data = cfg.model_dump(mode="json")
    data["sources"] = [src.model_dump(mode="json")]
    kept = {z.id for z in zones}
    for rule in data["site"]["incidents"]:  # the other camera's zones are gone with it
        if rule.get("zones"):
            rule["zones"] = [z for z in rule["zones"] if z in kept]
    return StationConfig.model_validate(data)


def cameras(cfg: StationConfig) -> tuple[SyntheticSiteCamera, SyntheticSiteCamera]:
    """The same scene empty and busy (same seed: same background, occluders, lighting, noise)."""
    src = cfg.sources[0]
    busy_cam = SyntheticSiteCamera.from_config(src)
    empty = SyntheticSiteCamera.from_config(src.model_copy(update={"workers": 0}))
    return empty, busy_cam


def render(path: Path, cfg: StationConfig, seconds: float) -> dict[str, Any]:
    import cv2

    meta = path.with_suffix(".json")
    if path.exists() and meta.exists() and json.loads(meta.read_text()).get("seconds") == seconds:
        return json.loads(meta.read_text())
    empty, busy_cam = cameras(cfg)
    n = int(round(seconds * FPS))
    path.parent.mkdir(parents=True, exist_ok=True)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (W, H))
    t0 = time.perf_counter()
    for i in range(n):
        w.write((busy_cam if busy(i / FPS, seconds) else empty).render(i))
    w.release()
    info = {"seconds": seconds, "frames": n, "render_s": round(time.perf_counter() - t0, 1)}
    meta.write_text(json.dumps(info))
    return info


class TruthDetector:
    """Ground-truth boxes of the frames being judged (score 0.9), plus an optional real model run
    on the same images for its cost only."""

    class_names = CLASS_NAMES

    def __init__(self, cfg: StationConfig, seconds: float, cost: Any | None) -> None:
        self.empty, self.busy = cameras(cfg)
        self.seconds, self.cost = seconds, cost
        self.indices: list[int] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if self.cost is not None:
            self.cost.detect(images)
        out = []
        for i in self.indices:
            cam = self.busy if busy(i / FPS, self.seconds) else self.empty
            d = cam.truth(i).detections(min_visibility=0.3)
            out.append(Detections(d.xyxy, np.full(len(d), 0.9, np.float32), d.class_id))
        return out


class RecordingJudge:
    """Wraps the site judge: tells the truth detector which frames it judges, keeps every incident."""

    def __init__(self, inner: Any, truth: TruthDetector | None) -> None:
        self.inner, self.truth = inner, truth
        self.incidents: dict[str, dict[str, Any]] = {}

    def _events(self, events: Sequence[Any]) -> None:
        for e in events:
            rec = self.incidents.setdefault(e.key, {"kind": e.kind, "start": e.started_utc, "end": None})
            if e.event == "end":
                rec["end"] = e.t_utc

    def judge(self, frames: Sequence[Any]) -> Any:
        if self.truth is not None:
            self.truth.indices = [int(f.context["frame_index"]) for f in frames]
        j = self.inner.judge(frames)
        for r in j.results:
            if r.site is not None:
                self._events(r.site.events)
        self._events(j.events)
        return j

    def finish(self) -> Any:
        j = self.inner.finish()
        self._events(j.events)
        return j


def recall(reference: list[dict], found: list[dict], tol_s: float) -> float | None:
    """Share of reference incidents matched one-to-one by a found one of the same kind overlapping in time."""
    if not reference:
        return None
    free = list(found)
    hits = 0
    for ref in sorted(reference, key=lambda r: r["start"]):
        for f in free:
            if f["kind"] == ref["kind"] and _overlap(ref, f, tol_s):
                free.remove(f)
                hits += 1
                break
    return hits / len(reference)


def _overlap(a: dict, b: dict, tol_s: float) -> bool:
    a0, a1 = a["start"].timestamp(), (a["end"] or a["start"]).timestamp()
    b0, b1 = b["start"].timestamp(), (b["end"] or b["start"]).timestamp()
    return a0 - tol_s <= b1 and b0 <= a1 + tol_s


def build_ensemble_for(cfg: StationConfig, seconds: float, with_cost: bool = True
                       ) -> tuple[Ensemble, TruthDetector | None, str]:
    from inspector.station.ensemble_builder import build_ensemble

    try:
        return build_ensemble(cfg), None, "site-demo (registry, production)"
    except Exception as e:  # noqa: BLE001 - no shipped site model yet: ground truth + a real model's cost
        reason = f"{type(e).__name__}"
    cost, cost_name = None, "none (incidents reference only)"
    try:
        if not with_cost:
            raise LookupError("no cost wanted")
        from inspector.config import default_config_path

        wafer = build_ensemble(load_config(default_config_path()))
        cost, cost_name = wafer.members[0].detector, f"wafer-demo@{wafer.members[0].version}"
    except Exception:  # noqa: BLE001
        pass
    truth = TruthDetector(cfg, seconds, cost)
    return (Ensemble([Member("site-truth", "0", "00" * 32, truth)]), truth,
            f"synthetic ground truth (site-demo not loadable: {reason}); inference cost of {cost_name}")


def run_mode(name: str, cfg: StationConfig, video: Path, data: Path, seconds: float, *, stride: int | None,
             gate: bool) -> dict[str, Any]:
    # The full-rate reference only has to find the incidents: with ground truth it skips the cost model.
    ensemble, truth, model = build_ensemble_for(cfg, seconds, with_cost=name != "full")
    make_inner = default_judge_factory(cfg, ensemble, config_hash(cfg))
    judges: list[RecordingJudge] = []

    def make(run_id: str) -> RecordingJudge:
        judges.append(RecordingJudge(make_inner(run_id), truth))
        return judges[-1]

    a = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=ensemble, data_dir=data / name, judge_factory=make,
                        options=AnalyzeOptions(motion_gate=gate, stride=stride, batch=8, store_images="flagged"))
    s = a.analyze(video)
    s["mode"], s["model"] = name, model
    s["incident_list"] = list(judges[0].incidents.values())
    return s




def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    rows = ["| mode | x real time | frames inferred | inferred / s | skipped | incidents (kind: n) | recall vs full |",
            "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
    for s in res["modes"]:
        inc = ", ".join(f"{k} {n}" for k, n in sorted(s["incidents"].items())) or "none"
        rec = "-" if s["recall"] is None else f"{s['recall']:.3f}"
        rows.append(f"| {s['mode']} | {s['x_realtime']:.1f}x | {s['inferred']} / {s['frames']} | "
                    f"{s['inferred_per_s']:.1f} | {100 * s['skipped'] / s['frames']:.0f} % | {inc} | {rec} |")
    g = next(s for s in res["modes"] if s["mode"] == "gated")
    return "\n".join([
        "## Archive analysis (`inspector analyze`)",
        "",
        f"Measured {res['date']} on {m['cpu']}, {m['cores']} cores, with "
        f"`python bench/bench_analyze.py --seconds {res['seconds']:g}`: a {res['seconds']:g} s synthetic site "
        f"recording, 1920x1080 at 25 fps (MPEG-4 'mp4v'), workers on site in two stretches and the yard empty "
        "in between; the store records every inferred frame (images of flagged ones, JPEG).",
        f"Model: {g['model']}. Stride {g['stride']} (about 5 samples per second); motion gate defaults "
        "(256 px grey, 4 robust sigmas, 0.05 % of the image, at least one look per second, 0.5 s hold).",
        "",
        *rows,
        "",
        f"Gated skipped by reason: {', '.join(f'{k} {n}' for k, n in sorted(g['skipped_by_reason'].items()))}; "
        f"recall: same kind, overlapping in time within {res['tol_s']:g} s, one-to-one. Decoding alone "
        "(`grab()` every frame, `retrieve()` one in 5) runs at about 10x real time here: it bounds the speed.",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="Length of the recording.")
    ap.add_argument("--video-dir", type=Path, default=ROOT / "data" / "bench", help="Where the video is cached.")
    ap.add_argument("--tol-s", type=float, default=2.0, help="Time tolerance when matching incidents.")
    ap.add_argument("--modes", default="full,stride,gated", help="Modes to run (full is the recall reference).")
    ap.add_argument("--json", action="store_true", help="Print the results as JSON on stdout.")
    ap.add_argument("--no-write", action="store_true", help="Do not update bench/RESULTS.md.")
    args = ap.parse_args(argv)
    from bench.run import machine

    cfg = bench_config(args.seconds)
    video = args.video_dir / f"site-1080p-{args.seconds:g}s.mp4"
    info = render(video, cfg, args.seconds)
    print(f"video {video}: {info}", file=sys.stderr)
    modes = {"full": (1, False), "stride": (None, False), "gated": (None, True)}
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as tmp:
        for name in args.modes.split(","):
            stride, gate = modes[name]
            s = run_mode(name, cfg, video, Path(tmp), args.seconds, stride=stride, gate=gate)
            print(f"{name}: {s['x_realtime']}x real time, inferred {s['inferred']}/{s['frames']}, "
                  f"incidents {s['incidents']}", file=sys.stderr)
            out.append(s)
    ref = next((s for s in out if s["mode"] == "full"), None)
    for s in out:
        s["recall"] = None if ref is None else recall(ref["incident_list"], s["incident_list"], args.tol_s)
    for s in out:
        s["incident_list"] = [{**r, "start": r["start"].isoformat(), "end": r["end"] and r["end"].isoformat()}
                              for r in s["incident_list"]]
    res = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "seconds": args.seconds, "tol_s": args.tol_s,
           "video": str(video), "modes": out}
    if not args.no_write and {"full", "gated"} <= {s["mode"] for s in out}:
        write_section(ROOT / "bench" / "RESULTS.md", "bench_analyze", markdown(res))
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
