"""The site judge: detections -> tracks -> PPE and zones -> incidents -> decisions, per camera."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.config.schema import StationConfig
from inspector.core.decision import Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.site_inspection import SiteInspection

NAMES = ("hat", "vest", "worker")
HAT, VEST, WORKER = 0, 1, 2
T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
FPS = 10


def config(**site) -> StationConfig:
    cam = {"type": "synthetic_site", "fps": FPS, "duration_s": 30, "zones": [
        {"id": "pit", "kind": "restricted", "polygon": [[600, 300], [900, 300], [900, 540], [600, 540]]},
        {"id": "yard", "kind": "ppe_required", "polygon": [[0, 250], [960, 250], [960, 540], [0, 540]]},
    ]}
    return StationConfig.model_validate({
        "station": {"id": "site-test", "name": "Site test", "domain": "construction"},
        "sources": [{**cam, "camera": "cam-a"}, {**cam, "camera": "cam-b", "zones": []}],
        "models": [{"name": "fake", "path": "fake.onnx", "sha256": "0" * 64, "class_names": list(NAMES)}],
        "flow": {"mode": "monitoring"},
        "site": {"incidents": [
            {"id": "no-hard-hat", "kind": "no_hard_hat", "persist_s": 2.0, "clear_s": 2.0, "severity": "high"},
            {"id": "no-vest", "kind": "no_vest", "persist_s": 2.0, "clear_s": 2.0},
            {"id": "danger-zone", "kind": "in_danger_zone", "persist_s": 1.0, "clear_s": 1.0, "severity": "high"},
        ], **site},
    })


def person(x: float, y: float, hat: bool = True, vest: bool = True, score: float = 0.9):
    """A worker standing with feet at (x + 30, y + 200): boxes and classes of what a detector sees."""
    boxes, classes, scores = [[x, y, x + 60, y + 200]], [WORKER], [score]
    if hat:
        boxes.append([x + 15, y - 8, x + 45, y + 15]); classes.append(HAT); scores.append(0.85)
    if vest:
        boxes.append([x + 8, y + 45, x + 52, y + 120]); classes.append(VEST); scores.append(0.8)
    return boxes, classes, scores


def scene_a(i: int):
    """Camera a: worker P walks right, equipped, into the pit (feet inside from frame 47);
    worker Q stands still without a hat until frame 40, then puts one on."""
    parts = [person(100 + 10 * i, 200), person(300, 150, hat=i >= 40)]
    return parts


def scene_b(i: int):
    return [person(400, 150, vest=False)]  # no zones on camera b: a missing vest is fine there


class Scripted:
    """A fake detector: each image's top-left pixel holds (camera, frame index); the scene
    functions give the boxes."""

    class_names = NAMES

    def __init__(self, scenes):
        self.scenes = scenes
        self.calls = 0

    def detect(self, images):
        self.calls += 1
        out = []
        for img in images:
            cam, i = int(img[0, 0, 0]), int(img[0, 0, 1]) + 256 * int(img[0, 0, 2])
            boxes, classes, scores = [], [], []
            for b, c, s in self.scenes[cam](i):
                boxes += b; classes += c; scores += s
            out.append(Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, classes))
        return out


class Broken(Scripted):
    def detect(self, images):
        raise RuntimeError("device lost")


def frame(cam: int, i: int) -> Frame:
    img = np.zeros((540, 960, 3), np.uint8)
    img[0, 0] = (cam, i % 256, i // 256)
    name = "cam-a" if cam == 0 else "cam-b"
    # capture clocks run fast (an archive analysed quickly): persistence must follow video time
    return Frame(f"{name}:{i:06d}", "site-test", name, 1000.0 + i * 0.001, T0 + timedelta(seconds=i / FPS), img,
                 {"camera": name, "frame_index": i, "t_video_s": i / FPS})


@pytest.fixture
def judge():
    ens = Ensemble([Member("fake", "1", "ab" * 32, Scripted([scene_a, scene_b]))])
    return SiteInspection(config(), ens, "cfg-hash", run_id="run-7")


def run(judge, n=80, batch=4, cameras=(0, 1)):
    results = []
    frames = [frame(c, i) for i in range(n) for c in cameras]  # the two cameras interleaved
    for k in range(0, len(frames), batch):
        j = judge.judge(frames[k:k + batch])
        assert len(j.results) == len(frames[k:k + batch]) and j.events == ()
        assert {"detect_ms", "rules_ms"} <= set(j.timings_ms)
        results.extend(j.results)
    return {c: [r for r in results if r.site.camera == ("cam-a" if c == 0 else "cam-b")] for c in cameras}


def test_decisions_and_incidents_over_time(judge):
    res = run(judge)[0]
    verdicts = [r.decision.verdict for r in res]
    events = [(i, e) for i, r in enumerate(res) for e in r.site.events]
    timeline = [(i, e.event, e.kind, e.reason) for i, e in events]
    # Q (no hat) confirmed on frame 1 -> pending -> opens 2.0 s later; P's feet (x = 130 + 10 i)
    # enter the pit (x >= 600) at frame 47 -> opens 1.0 s later; Q's hat from frame 40 counts once
    # it is half of the 0.5 s smoothing window (frame 42), so the last violation is frame 41 and the
    # incident clears 2.0 s later
    assert timeline == [
        (21, "new", "no_hard_hat", ""),
        (57, "new", "in_danger_zone", ""),
        (61, "end", "no_hard_hat", "cleared"),
    ], timeline
    assert verdicts[0] is Verdict.PASS               # nobody confirmed yet
    assert set(verdicts[1:21]) == {Verdict.REVIEW}   # a violation waits for its persistence
    assert set(verdicts[21:]) == {Verdict.FAIL}      # an incident is open (until the run ends)
    assert res[30].decision.rule_ids == ("no-hard-hat",)
    assert set(res[58].decision.rule_ids) == {"no-hard-hat", "danger-zone"}
    assert res[70].decision.rule_ids == ("danger-zone",)
    new = events[0][1]
    assert new.key.startswith("run-7:cam-a:") and new.rule_id == "no-hard-hat" and new.severity == "high"
    assert new.frame_id == "cam-a:000021" and new.first_frame_id == "cam-a:000001"
    assert new.t_utc == T0 + timedelta(seconds=2.1) and new.zone is None
    assert events[1][1].zone == "pit"

    end = judge.finish()
    assert end.results == () and [(e.event, e.kind, e.reason, e.frame_id) for e in end.events] == [
        ("end", "in_danger_zone", "run ended", "cam-a:000079")]
    assert judge.finish().events == ()


def test_site_frame_contents(judge):
    res = run(judge, n=30)[0]
    s = res[25].site
    assert s.camera == "cam-a" and [z[:2] for z in s.zones] == [("pit", "restricted"), ("yard", "ppe_required")]
    q, p = sorted(s.workers, key=lambda w: w.xyxy[0])  # Q stands at x 300, P has walked on to 350
    assert p.track_id >= 0 and q.track_id >= 0 and p.track_id != q.track_id
    assert (p.hat, p.vest, q.hat, q.vest) == (True, True, False, True)
    assert p.hat_score == pytest.approx(0.85) and q.hat_score == 0.0 and q.vest_score == pytest.approx(0.8)
    assert p.zones == ("yard",) and p.violations == ()
    assert q.violations == ("no_hard_hat",)
    assert p.xyxy == pytest.approx((350.0, 200.0, 410.0, 400.0))
    assert sorted(s.track_ids.tolist()) == sorted([p.track_id, q.track_id])
    ids = {w.track_id for r in res[1:] for w in r.site.workers}
    assert len(ids) == 2                                    # stable ids over the frames
    assert res[0].site.track_ids.tolist() == [-1, -1]       # unconfirmed on the first frame
    d = res[25].decision
    assert len(d.detections) == 5 and d.extras["camera"] == "cam-a" and d.extras["tracks"] == 2
    (reason,) = d.reasons
    assert d.detections.class_id[list(reason.detection_indices)].tolist() == [WORKER]


def test_cameras_keep_their_own_state(judge):
    res = run(judge)
    b = res[1]
    assert all(r.decision.verdict is Verdict.PASS for r in b)   # no zones: the missing vest is fine there
    assert all(r.site.zones == () for r in b)
    a_ids = {w.track_id for r in res[0] for w in r.site.workers if w.track_id >= 0}
    b_ids = {w.track_id for r in b for w in r.site.workers if w.track_id >= 0}
    assert len(a_ids) == 2 and len(b_ids) == 1                  # each camera its own tracker


def test_a_model_failure_still_judges_every_frame():
    ens = Ensemble([Member("fake", "1", "ab" * 32, Broken([scene_a, scene_b]))])
    j = SiteInspection(config(), ens, "h", run_id="r").judge([frame(0, 0), frame(0, 1)])
    assert [r.decision.verdict for r in j.results] == [Verdict.ERROR, Verdict.ERROR]
    assert "device lost" in j.results[0].decision.error


def test_site_classes_must_exist_in_the_model():
    class Other(Scripted):
        class_names = ("person", "helmet", "vest")
    ens = Ensemble([Member("fake", "1", "ab" * 32, Other([scene_a]))])
    with pytest.raises(ValueError, match="worker"):
        SiteInspection(config(), ens, "h")


def test_judge_overhead_with_ten_workers_is_small():
    """The site logic beyond the ensemble on a frame with 10 workers (each with hat and vest)."""
    crowd = lambda i: [person(40 + 90 * k + i, 100 + 30 * (k % 3), hat=k % 2 == 0) for k in range(10)]  # noqa: E731
    ens = Ensemble([Member("fake", "1", "ab" * 32, Scripted([crowd]))])
    judge = SiteInspection(config(), ens, "h", run_id="r")
    frames = [frame(0, i) for i in range(60)]
    for f in frames[:10]:
        judge.judge([f])
    site_ms = []
    for f in frames[10:]:
        t0 = time.perf_counter()
        j = judge.judge([f])
        total = (time.perf_counter() - t0) * 1e3
        site_ms.append(total - j.timings_ms["detect_ms"] - j.timings_ms["fusion_ms"])
    assert len(j.results[0].site.workers) == 10
    assert float(np.median(site_ms)) < 20.0, site_ms  # measured ~1-2 ms here; generous for a shared machine
