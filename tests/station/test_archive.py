"""Archive analysis on a few seconds of synthetic site video: one run per file in the store, every
frame accounted for in ``analysis_segments``, motion gating skips a still scene but never longer than
max_skip_s, video time drives the judge, decode errors and a stop are recorded honestly."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.capture.synthetic_site.camera import render_video
from inspector.config.loader import config_hash
from inspector.config.schema import StationConfig
from inspector.core.decision import Decision, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent, SiteFrame
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.archive import AnalyzeOptions, ArchiveAnalysis, ArchiveError
from inspector.station.judgement import FrameResult, Judgement
from inspector.store import analysis as seg_store
from inspector.store.db import open_db

SITE_CLASSES = ("hat", "vest", "worker")
ZONES = [{"id": "pit", "kind": "restricted", "polygon": [[0, 150], [480, 150], [480, 270], [0, 270]]}]


def site_cfg(**source) -> StationConfig:
    src = {"type": "synthetic_site", "camera": "cam-1", "seed": 3, "width": 480, "height": 270, "fps": 10,
           "duration_s": 6, "workers": 3, "zones": ZONES, **source}
    return StationConfig.model_validate({
        "station": {"id": "site-test", "name": "Site test", "domain": "construction"},
        "sources": [src, {**src, "camera": "cam-2", "zones": []}],
        "models": [{"name": "fake-site", "path": "fake.onnx", "sha256": "aa" * 32, "class_names": list(SITE_CLASSES)}],
        "flow": {"mode": "monitoring"},
        "storage": {"store_images": "none"},
        "site": {"incidents": [{"id": "danger", "kind": "in_danger_zone"}]},
    })


class _NoBoxes:
    class_names = SITE_CLASSES

    def detect(self, images):
        return [Detections.empty() for _ in images]


def fake_ensemble() -> Ensemble:
    return Ensemble([Member("fake-site", "1", "aa" * 32, _NoBoxes())])


class StandInJudge:
    """The shape of S2's SiteInspection: PASS per frame with a SiteFrame; one incident opens at
    video time 1.0 s (read from ``t_monotonic``: archive frames carry video time there) and the
    run's end closes it in ``finish()``."""

    def __init__(self) -> None:
        self.seen: list[Frame] = []
        self.open: IncidentEvent | None = None

    def _event(self, kind: str, f: Frame, seq: int) -> IncidentEvent:
        return IncidentEvent(kind, f"k-{f.context['camera']}", seq, f.context["camera"], 1, "in_danger_zone",
                             "danger", "medium", "pit", f.t_utc, f.frame_id, f.frame_id, f.frame_id, 0.9, f.t_utc,
                             "run ended" if kind == "end" else "")

    def judge(self, frames: Sequence[Frame]) -> Judgement:
        out = []
        for f in frames:
            self.seen.append(f)
            events: tuple[IncidentEvent, ...] = ()
            if self.open is None and f.t_monotonic >= 1.0:
                self.open = self._event("new", f, 0)
                events = (self.open,)
            d = Decision(f.frame_id, Verdict.FAIL if self.open else Verdict.PASS, (), Detections.empty(), "fake",
                         "h", f.t_utc)
            out.append(FrameResult(f, d, site=SiteFrame(f.context["camera"], events=events)))
        return Judgement(tuple(out))

    def finish(self) -> Judgement:
        if self.open is None or not self.seen:
            return Judgement(())
        return Judgement((), events=(self._event("end", self.seen[-1], 1),))


@pytest.fixture(scope="module")
def site_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "site.mp4"
    render_video(path, site_cfg().sources[0])
    return path


@pytest.fixture(scope="module")
def still_video(tmp_path_factory) -> Path:
    """8 s at 10 fps of a scene where nothing moves (sensor noise only)."""
    path = tmp_path_factory.mktemp("video") / "still.mp4"
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(40, 200, (27, 48, 3), dtype=np.uint8), np.ones((10, 10, 1), np.uint8))
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (480, 270))
    for _ in range(80):
        w.write(np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8))
    w.release()
    return path


def _analysis(tmp_path, judges: list, **opts) -> ArchiveAnalysis:
    cfg = site_cfg()

    def make(run_id):
        judges.append(StandInJudge())
        return judges[-1]

    return ArchiveAnalysis(cfg, config_hash(cfg), ensemble=fake_ensemble(), data_dir=tmp_path / "data",
                           options=AnalyzeOptions(**opts), judge_factory=make)


def _stored(db: Path, run_id: str):
    conn = open_db(db)
    try:
        decisions = conn.execute("SELECT COUNT(*) FROM decisions d JOIN frames f ON f.id = d.frame_id "
                                 "WHERE f.run_id = ?", (run_id,)).fetchone()[0]
        run = conn.execute("SELECT ended FROM runs WHERE id = ?", (run_id,)).fetchone()
        return decisions, run, seg_store.segments(conn, run_id=run_id)
    finally:
        conn.close()


def test_every_frame_is_accounted_for_and_recorded_like_a_run(tmp_path, site_video):
    judges: list[StandInJudge] = []
    a = _analysis(tmp_path, judges, stride=2, dense_stride=2, batch=4, motion_gate=False)  # a fixed stride
    s = a.analyze(site_video)
    assert s["frames"] == 60 and s["decoded_frames"] == 60 and s["fps"] == 10
    assert s["inferred"] == 30 and s["skipped_by_reason"] == {"stride": 30}
    assert s["inferred"] + s["skipped"] == s["frames"]
    assert s["incidents"] == {"in_danger_zone": 1} and s["incident_events"] == 2
    assert s["x_realtime"] > 0 and not s["errors"]
    # Video time, not wall time: frames are 0.2 s apart in t_monotonic and in t_utc.
    seen = judges[0].seen
    assert [f.context["frame_index"] for f in seen[:3]] == [0, 2, 4]
    assert seen[1].t_monotonic == pytest.approx(0.2)
    assert (seen[5].t_utc - seen[0].t_utc).total_seconds() == pytest.approx(1.0)
    assert {f.context["camera"] for f in seen} == {"cam-1"}
    decisions, run, segs = _stored(a.db_path, s["run_id"])
    assert decisions == 30 and run is not None and run[0] is not None  # run ended
    assert seg_store.check_contiguous(segs) == []
    assert segs[0].first_frame == 0 and segs[-1].last_frame == 59
    assert {(x.action, x.reason) for x in segs} == {("inferred", "all;stride=2")}
    assert segs[0].video_sha256 == seg_store.video_identity(site_video)


def test_motion_gate_skips_a_still_scene_within_max_skip(tmp_path, still_video):
    judges: list[StandInJudge] = []
    a = _analysis(tmp_path, judges, stride=1, batch=4)
    s = a.analyze(still_video)
    assert s["frames"] == 80
    assert s["skipped_by_reason"].get("static", 0) >= 60, s
    t = [f.t_monotonic for f in judges[0].seen]
    assert t[0] == 0.0 and max(np.diff(t)) <= 1.0 + 1e-6  # max_skip_s (1 s) honoured
    _, _, segs = _stored(a.db_path, s["run_id"])
    assert seg_store.check_contiguous(segs) == [] and segs[-1].last_frame == 79
    cov = seg_store.coverage(segs)
    assert sum(cov["inferred"].values()) == s["inferred"]
    assert cov["skipped"]["static"] == s["skipped_by_reason"]["static"]


def test_moving_workers_are_inferred_more_than_a_still_scene(tmp_path, site_video, still_video):
    a = _analysis(tmp_path, [], stride=1, batch=8)
    moving, still = a.analyze(site_video), a.analyze(still_video)
    assert moving["run_id"] != still["run_id"]  # a run per file
    assert moving["inferred"] / moving["frames"] > 2 * still["inferred"] / still["frames"]


class _BrokenCapture:
    """Decodes 12 frames of a 30-frame file, then fails (a truncated recording)."""

    def __init__(self, path: str) -> None:
        self.i = 0
        self.img = np.full((270, 480, 3), 90, np.uint8)

    def isOpened(self):  # noqa: N802
        return True

    def get(self, prop):
        return {cv2.CAP_PROP_FPS: 10.0, cv2.CAP_PROP_FRAME_COUNT: 30.0}.get(prop, 0.0)

    def grab(self):
        self.i += 1
        return self.i <= 12

    def retrieve(self):
        return (False, None) if self.i == 5 else (True, self.img)

    def release(self):
        pass


def test_undecodable_frames_are_recorded_as_such(tmp_path, site_video):
    cfg = site_cfg()
    a = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=fake_ensemble(), data_dir=tmp_path / "data",
                        options=AnalyzeOptions(stride=1, motion_gate=False),
                        judge_factory=lambda run_id: StandInJudge(), open_capture=_BrokenCapture)
    s = a.analyze(site_video)
    assert s["decoded_frames"] == 12 and s["frames"] == 30
    assert s["skipped_by_reason"] == {"decode_error": 19}  # frame 4 would not convert, 12..29 never came
    assert s["inferred"] == 11
    _, _, segs = _stored(a.db_path, s["run_id"])
    assert seg_store.check_contiguous(segs) == []
    assert [(x.first_frame, x.last_frame, x.reason) for x in segs if x.action == "skipped"] == [
        (4, 4, "decode_error"), (12, 29, "decode_error")]


def test_a_stop_ends_the_file_at_the_frame_reached(tmp_path, site_video):
    judges: list = []
    a = _analysis(tmp_path, judges, stride=1, batch=2, motion_gate=False)
    real = StandInJudge.judge

    def judge_then_stop(self, frames):
        if len(self.seen) >= 10:
            a.request_stop()
        return real(self, frames)

    StandInJudge.judge = judge_then_stop
    try:
        s = a.analyze(site_video)
    finally:
        StandInJudge.judge = real
    assert s["stopped_early"] and 10 <= s["frames"] < 60
    assert s["skipped_by_reason"] == {}  # the frames after the stop were not looked at and are not claimed
    decisions, run, segs = _stored(a.db_path, s["run_id"])
    assert decisions == s["inferred"] and run[0] is not None
    assert segs[-1].last_frame == s["frames"] - 1
    assert a.run([site_video]) == []  # a stopped analysis takes no further file


def test_camera_must_be_one_of_the_config(tmp_path):
    cfg = site_cfg()
    with pytest.raises(ArchiveError, match="cam-9.*cam-1, cam-2"):
        ArchiveAnalysis(cfg, config_hash(cfg), ensemble=fake_ensemble(), data_dir=tmp_path,
                        options=AnalyzeOptions(camera="cam-9"))
    a = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=fake_ensemble(), data_dir=tmp_path,
                        options=AnalyzeOptions(camera="cam-2"))
    assert a.camera == "cam-2"
    with pytest.raises(ArchiveError, match="no such file"):
        a.analyze(tmp_path / "missing.mp4")


class _TruthBoxes:
    """The synthetic camera's ground truth for the frames being judged (the judge tells it which)."""

    class_names = SITE_CLASSES

    def __init__(self, camera) -> None:
        self.camera, self.indices = camera, []

    def detect(self, images):
        return [self.camera.truth(i).detections(min_visibility=0.3) for i in self.indices]


def test_the_site_judge_records_incidents_with_the_run(tmp_path, site_video):
    from inspector.capture.synthetic_site.camera import SyntheticSiteCamera
    from inspector.station.site_inspection import SiteInspection
    from inspector.store import incidents

    cfg = site_cfg()
    truth = _TruthBoxes(SyntheticSiteCamera.from_config(cfg.sources[0]))
    ensemble = Ensemble([Member("truth", "1", "bb" * 32, truth)])

    class Told(SiteInspection):
        def judge(self, frames):
            truth.indices = [f.context["frame_index"] for f in frames]
            return super().judge(frames)

    a = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=ensemble, data_dir=tmp_path / "data",
                        options=AnalyzeOptions(stride=1, motion_gate=False),
                        judge_factory=lambda run_id: Told(cfg, ensemble, config_hash(cfg), run_id=run_id))
    s = a.analyze(site_video)
    assert s["errors"] == [] and s["inferred"] == 60
    conn = open_db(a.db_path)
    try:
        rows = incidents.incidents(conn)
    finally:
        conn.close()
    mine = [r for r in rows if r["run_id"] == s["run_id"]]
    assert sum(s["incidents"].values()) == len(mine) > 0
    assert all(r["key"] and s["run_id"] in r["key"] for r in mine)
    assert all(r["ended"] for r in mine)  # the run's end closed what was open


def test_long_stretches_are_cut_so_they_reach_the_store_as_the_analysis_goes(tmp_path, site_video, monkeypatch):
    from inspector.station import archive

    monkeypatch.setattr(archive, "_STRETCH_MAX_S", 2.0)  # 20 frames at 10 fps
    a = _analysis(tmp_path, [], stride=1, batch=4, motion_gate=False)
    s = a.analyze(site_video)
    _, _, segs = _stored(a.db_path, s["run_id"])
    assert [(x.first_frame, x.last_frame) for x in segs] == [(0, 19), (20, 39), (40, 59)]


class _ScriptedWorker:
    """A worker in the pit (a danger zone) on frames first..last only; nothing otherwise."""

    class_names = SITE_CLASSES

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.indices = first, last, []

    def detect(self, images):
        out = []
        for i in self.indices:
            if self.first <= i <= self.last:
                out.append(Detections(np.array([[200, 120, 240, 220]], np.float32), np.array([0.9], np.float32),
                                      np.array([SITE_CLASSES.index("worker")])))
            else:
                out.append(Detections.empty())
        return out


def _site_run(tmp_path, video, detector, **opts):
    from inspector.station.site_inspection import SiteInspection

    data = site_cfg().model_dump(mode="json")
    data["site"]["incidents"] = [{"id": "danger", "kind": "in_danger_zone", "persist_s": 0.6, "clear_s": 0.5}]
    cfg = StationConfig.model_validate(data)
    ensemble = Ensemble([Member("scripted", "1", "cc" * 32, detector)])

    class Told(SiteInspection):
        def judge(self, frames):
            detector.indices = [f.context["frame_index"] for f in frames]
            return super().judge(frames)

    a = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=ensemble, data_dir=tmp_path / "data",
                        options=AnalyzeOptions(**opts),
                        judge_factory=lambda run_id: Told(cfg, ensemble, config_hash(cfg), run_id=run_id))
    return a, a.analyze(video)


def test_a_short_violation_between_base_samples_is_found_by_sampling_densely_while_pending(tmp_path, site_video):
    # In the danger zone on frames 22..33 (1.2 s at 10 fps); the incident needs 0.6 s of it. Every 5th
    # frame alone confirms the track at frame 30 and sees it no more: no incident. Sampling every frame once
    # the worker is seen (at 25) takes 26..29 from the frames decoded meanwhile and sees 26..33 (0.7 s):
    # the incident a full-rate analysis finds.
    _, sparse = _site_run(tmp_path / "sparse", site_video, _ScriptedWorker(22, 33), stride=5, dense_stride=5,
                          motion_gate=False)
    assert sparse["incidents"] == {} and sparse["inferred"] == 12
    a, dense = _site_run(tmp_path / "dense", site_video, _ScriptedWorker(22, 33), stride=5, dense_stride=1,
                         motion_gate=False)
    assert dense["incidents"] == {"in_danger_zone": 1}, dense
    assert dense["dense_stride"] == 1 and dense["inferred"] < 30  # dense only around the violation
    _, full = _site_run(tmp_path / "full", site_video, _ScriptedWorker(22, 33), stride=1, motion_gate=False)
    assert full["incidents"] == {"in_danger_zone": 1}
    _, _, segs = _stored(a.db_path, dense["run_id"])
    assert seg_store.check_contiguous(segs) == [] and segs[-1].last_frame == 59
    assert {x.reason for x in segs if x.action == "inferred"} == {"all;stride=5", "all"}


def test_a_still_empty_scene_is_not_even_decoded_between_keyframes(tmp_path, still_video):
    pytest.importorskip("av")
    a, s = _site_run(tmp_path, still_video, _ScriptedWorker(-1, -1), stride=1)
    assert s["decoder"] == "pyav" and s["frames"] == 80
    assert s["skipped_by_reason"].get("idle", 0) >= 30, s  # the file has a keyframe every 12 frames
    assert s["decoded_frames"] == s["frames"] - s["skipped_by_reason"]["idle"]
    _, _, segs = _stored(a.db_path, s["run_id"])
    assert seg_store.check_contiguous(segs) == [] and segs[-1].last_frame == 79
    assert seg_store.coverage(segs)["skipped"]["idle"] == s["skipped_by_reason"]["idle"]
    # With OpenCV (no keyframe skipping) every frame is decoded, and nothing is claimed idle.
    cfg = site_cfg()
    b = ArchiveAnalysis(cfg, config_hash(cfg), ensemble=fake_ensemble(), data_dir=tmp_path / "cv",
                        options=AnalyzeOptions(stride=1), judge_factory=lambda run_id: StandInJudge(),
                        open_capture=cv2.VideoCapture)
    s2 = b.analyze(still_video)
    assert s2["decoder"] == "opencv" and s2["decoded_frames"] == 80 and "idle" not in s2["skipped_by_reason"]


def test_the_pace_is_dense_while_a_violation_is_pending_and_not_once_its_incident_is_open():
    """Densely sampled: a violation that has not opened an incident yet (when it opens decides recall).
    An open incident is followed at the base rate, and a second worker's new violation is dense again."""
    from datetime import datetime, timezone

    from inspector.core.site.types import TrackedWorker
    from inspector.station.archive import _Pacer
    from inspector.station.archive_reader import Pace

    t0 = datetime(2026, 5, 4, tzinfo=timezone.utc)

    def worker(track: int, *violations: str) -> TrackedWorker:
        return TrackedWorker(track, (0, 0, 10, 20), 0.9, hat=not violations, vest=True, hat_score=0.0,
                             vest_score=0.9, violations=violations)

    def event(kind: str, track: int) -> IncidentEvent:
        return IncidentEvent(kind, f"gate/r/{track}/no_hard_hat/1", 0, "gate", track, "no_hard_hat", "hat", "high",
                             None, t0, "f", "f", "f", 0.9, t0)

    def judged(i: int, workers=(), events=(), verdict=Verdict.PASS, site=True) -> Judgement:
        frame = Frame(f"f{i}", "s", "gate", float(i), t0, np.zeros((4, 4, 3), np.uint8), {})
        dec = Decision(frame.frame_id, verdict, (), Detections.empty(), "ms", "h", t0)
        return Judgement((FrameResult(frame, dec, site=SiteFrame("gate", tuple(workers), tuple(events))
                                      if site else None),))

    pacer = _Pacer(Pace())
    steps = [judged(0, [worker(1)]),                                                  # nobody violates
             judged(1, [worker(1, "no_hard_hat")], verdict=Verdict.REVIEW),           # pending
             judged(2, [worker(1, "no_hard_hat")], [event("new", 1)], Verdict.FAIL),  # opened
             judged(3, [worker(1, "no_hard_hat")], verdict=Verdict.FAIL),             # open: base rate
             judged(4, [worker(1, "no_hard_hat"), worker(2, "no_hard_hat")], verdict=Verdict.FAIL),  # 2 pending
             judged(5, [worker(2, "no_hard_hat")], [event("end", 1)], Verdict.FAIL),  # 1 ended, 2 pending
             judged(6, verdict=Verdict.FAIL, site=False)]                             # another kind of judge
    dense = []
    for j in steps:
        pacer.update(j)
        dense.append(pacer.pace.dense)
    assert dense == [False, True, False, False, True, True, True]
