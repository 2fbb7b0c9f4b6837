"""Archive analysis speed and what motion gating costs in incidents (`inspector analyze`).

A 1080p 25 fps synthetic site recording (S1's renderer, written as H.264 with a keyframe every 2 s
like a CCTV recorder; about 2 minutes) with still stretches (the
yard empty: breaks, nights) and busy ones, analysed three ways through the real archive path
(decode, gate, the site judge, the store):

- ``full``:    every frame inferred (stride 1, no gate): the reference for incidents;
- ``stride``:  every ``stride``-th frame (about 5 per second; denser while a violation is pending), no motion gate;
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
import os
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


GOP = 50  # a keyframe every 2 s, as CCTV recorders write H.264 (1-2 s at 25 fps)


def render(path: Path, cfg: StationConfig, seconds: float) -> dict[str, Any]:
    """H.264 (libx264 through PyAV, 'veryfast', CRF 23, no B-frames, a keyframe every ``GOP`` frames):
    what a CCTV recorder writes; the keyframe interval decides what the archive can skip undecoded."""
    import av

    meta = path.with_suffix(".json")
    want = {"seconds": seconds, "codec": "h264", "gop": GOP}
    if path.exists() and meta.exists() and {k: json.loads(meta.read_text()).get(k) for k in want} == want:
        return json.loads(meta.read_text())
    empty, busy_cam = cameras(cfg)
    n = int(round(seconds * FPS))
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=int(FPS))
        st.width, st.height, st.pix_fmt = W, H, "yuv420p"
        st.options = {"preset": "veryfast", "crf": "23", "g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0",
                      "bf": "0"}
        for i in range(n):
            img = (busy_cam if busy(i / FPS, seconds) else empty).render(i)
            for pkt in st.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    info = {**want, "frames": n, "render_s": round(time.perf_counter() - t0, 1)}
    meta.write_text(json.dumps(info))
    return info


def decode_only(video: Path, gate_width: int = 256) -> dict[str, float]:
    """Frames of video per second of decoding alone, 1080p: OpenCV read / grab, PyAV threaded (all frames; plus
    the gate's small grey image of every 5th), PyAV keyframes only (what an idle stretch costs)."""
    import av
    import cv2

    from inspector.capture.video_decode import open_video

    out: dict[str, float] = {}

    def timed(name: str, fn: Any) -> None:
        t = time.perf_counter()
        n = fn()
        out[name] = round(n / (time.perf_counter() - t), 1)

    def cv(read: bool) -> int:
        cap, n = cv2.VideoCapture(str(video)), 0
        while (cap.read()[0] if read else cap.grab()):
            n += 1
        cap.release()
        return n

    def pyav(grey: bool) -> int:
        d, n = open_video(str(video)), 0
        for f in d.frames():
            if grey and f.index % 5 == 0:
                f.grey(gate_width, round(gate_width * H / W))
            n += 1
        d.close()
        return n

    def keyframes() -> int:  # as the archive skips: other packets are read, never decoded; per frame of video
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            s.thread_type = "AUTO"
            packets = 0
            for p in c.demux(s):
                if p.size:
                    packets += 1
                    if p.is_keyframe:
                        s.codec_context.decode(p)
            s.codec_context.decode(None)
            return packets

    timed("cv2_read", lambda: cv(True))
    timed("cv2_grab", lambda: cv(False))
    timed("pyav_all", lambda: pyav(False))
    timed("pyav_all_grey_1in5", lambda: pyav(True))
    timed("pyav_keyframes_only_video_fps", keyframes)
    return out


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
             gate: bool, dense_stride: int | None = None) -> dict[str, Any]:
    # The full-rate reference only has to find the incidents: with ground truth it skips the cost model.
    ensemble, truth, model = build_ensemble_for(cfg, seconds, with_cost=name != "full")
    make_inner = default_judge_factory(cfg, ensemble, config_hash(cfg))
    judges: list[RecordingJudge] = []

    def make(run_id: str) -> RecordingJudge:
        judges.append(RecordingJudge(make_inner(run_id), truth))
        return judges[-1]

    a = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=ensemble, data_dir=data / name, judge_factory=make,
                        options=AnalyzeOptions(motion_gate=gate, stride=stride, dense_stride=dense_stride, batch=8,
                                               store_images="flagged"))
    load0 = os.getloadavg()[0]
    s = a.analyze(video)
    s["loadavg"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
    s["mode"], s["model"] = name, model
    s["incident_list"] = list(judges[0].incidents.values())
    return s




def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    rows = ["| mode | x real time | frames inferred | inferred / s | decoded | skipped | incidents (kind: n) | "
            "recall vs full | load avg |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |"]
    for s in res["modes"]:
        inc = ", ".join(f"{k} {n}" for k, n in sorted(s["incidents"].items())) or "none"
        rec = "-" if s["recall"] is None else f"{s['recall']:.3f}"
        rows.append(f"| {s['mode']} | {s['x_realtime']:.2f}x | {s['inferred']} / {s['frames']} | "
                    f"{s['inferred_per_s']:.1f} | {s['decoded_frames']} | {100 * s['skipped'] / s['frames']:.0f} % | "
                    f"{inc} | {rec} | {s['loadavg'][0]:g} - {s['loadavg'][1]:g} |")
    g = next(s for s in res["modes"] if s["mode"] == "gated")
    st = next((s for s in res["modes"] if s["mode"] == "stride"), None)
    saved = "" if st is None else f"; the gate saved {st['inferred'] - g['inferred']} inferences against the ungated stride"
    dec = ", ".join(f"{k} {v:g}" for k, v in res.get("decode_fps", {}).items())
    return "\n".join([
        "## Archive analysis (`inspector analyze`)",
        "",
        f"Measured {res['date']} on {m['cpu']}, {m['cores']} cores, with "
        f"`python bench/bench_analyze.py --seconds {res['seconds']:g}`: a {res['seconds']:g} s synthetic site "
        f"recording, 1920x1080 at 25 fps, H.264 with a keyframe every {GOP / FPS:g} s (as CCTV recorders write), "
        "workers on site in two stretches and the yard empty in between; the store records every inferred frame "
        "(images of flagged ones, JPEG) and each incident's evidence clip.",
        f"Model: {g['model']}. Stride {g['stride']} (about 5 samples per second), every {g['dense_stride']} "
        "frame(s) while a violation is pending or an incident open; motion gate defaults (256 px grey, "
        "4 robust sigmas, 0.05 % of the image, a look at least every second, every 4 s where nobody is in sight, "
        "0.5 s hold); the stride mode paces the same way without the gate.",
        "",
        *rows,
        "",
        f"Gated skipped by reason: {', '.join(f'{k} {n}' for k, n in sorted(g['skipped_by_reason'].items()))}"
        f"{saved}; recall: same kind, overlapping in time within {res['tol_s']:g} s, one-to-one.",
        "",
        f"Decoding alone, frames per second at 1080p (25 = real time): {dec or 'not measured'}.",
    ])


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=120.0, help="Length of the recording.")
    ap.add_argument("--video-dir", type=Path, default=ROOT / "data" / "bench", help="Where the video is cached.")
    ap.add_argument("--tol-s", type=float, default=2.0, help="Time tolerance when matching incidents.")
    ap.add_argument("--modes", default="full,stride,gated", help="Modes to run (full is the recall reference).")
    ap.add_argument("--stride", type=int, default=None,
                    help="Frames between samples in the stride and gated modes (default: the analysis's own).")
    ap.add_argument("--dense-stride", type=int, default=None,
                    help="... while a violation is pending or an incident open (default: the analysis's own).")
    ap.add_argument("--json", action="store_true", help="Print the results as JSON on stdout.")
    ap.add_argument("--no-write", action="store_true", help="Do not update bench/RESULTS.md.")
    ap.add_argument("--no-decode", action="store_true", help="Skip the decode-only measurements.")
    args = ap.parse_args(argv)
    from bench.run import machine

    cfg = bench_config(args.seconds)
    video = args.video_dir / f"site-1080p-{args.seconds:g}s-h264-gop{GOP}.mp4"
    info = render(video, cfg, args.seconds)
    print(f"video {video}: {info}", file=sys.stderr)
    decode_fps = {} if args.no_decode else decode_only(video)
    print(f"decode only (fps): {decode_fps}; load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    modes = {"full": (1, False), "stride": (args.stride, False), "gated": (args.stride, True)}
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-analyze-") as tmp:
        for name in args.modes.split(","):
            stride, gate = modes[name]
            s = run_mode(name, cfg, video, Path(tmp), args.seconds, stride=stride, gate=gate,
                         dense_stride=None if name == "full" else args.dense_stride)
            print(f"{name}: {s['x_realtime']}x real time, inferred {s['inferred']}/{s['frames']} "
                  f"({s['inferred_per_s']}/s), decoded {s['decoded_frames']}, incidents {s['incidents']}, "
                  f"load {s['loadavg']}", file=sys.stderr)
            out.append(s)
    ref = next((s for s in out if s["mode"] == "full"), None)
    for s in out:
        s["recall"] = None if ref is None else recall(ref["incident_list"], s["incident_list"], args.tol_s)
    for s in out:
        s["incident_list"] = [{**r, "start": r["start"].isoformat(), "end": r["end"] and r["end"].isoformat()}
                              for r in s["incident_list"]]
    res = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "seconds": args.seconds, "tol_s": args.tol_s,
           "video": str(video), "gop": GOP, "decode_fps": decode_fps, "modes": out}
    g, st = (next((s for s in out if s["mode"] == m), None) for m in ("gated", "stride"))
    if g is not None and st is not None:
        res["inferences_saved_by_gate"] = st["inferred"] - g["inferred"]
    if not args.no_write and {"full", "gated"} <= {s["mode"] for s in out}:
        write_section(ROOT / "bench" / "RESULTS.md", "bench_analyze", markdown(res))
    if args.json:
        print(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
