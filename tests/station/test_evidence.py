"""Evidence of site incidents: pre-roll, clip until end + post_s (or max_clip_s), first / worst /
last images, encoded off the record thread and readable back with OpenCV."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from inspector.config.schema.site import EvidenceConfig
from inspector.core.decision import Decision
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent, SiteFrame
from inspector.station.evidence import EvidenceRecorder
from inspector.station.judgement import FrameResult
from inspector.store import clips
from inspector.store.images import ImageStore

T0 = datetime(2026, 5, 4, 8, 0, tzinfo=timezone.utc)
FPS = 8  # camera frames per second: times i / 8 are exact in binary
KEY = "gate/run/3/no_hard_hat/1"


def fid(i: int) -> str:
    return f"run/gate/{i:04d}"


def event(kind: str, i: int, seq: int, worst: int) -> IncidentEvent:
    return IncidentEvent(kind, KEY, seq, "gate", 3, "no_hard_hat", "hat", "high", None,
                         T0 + timedelta(seconds=i / FPS), fid(i), fid(8), fid(worst), 0.9, T0, "")


def result(i: int, events=()) -> FrameResult:
    img = np.zeros((48, 64, 3), np.uint8)
    img[:, i % 64] = 255
    frame = Frame(fid(i), "site", "gate", 100.0 + i, T0 + timedelta(seconds=i / FPS), img,
                  {"camera": "gate", "frame_index": i, "t_video_s": i / FPS})
    dec = Decision(frame.frame_id, "pass", (), Detections.empty(), "ms", "h", T0)
    return FrameResult(frame, dec, site=SiteFrame("gate", (), tuple(events)))


def run(rec: EvidenceRecorder, n: int, events: dict[int, list[IncidentEvent]]) -> dict[int, list]:
    done = {}
    for i in range(n):
        out = rec.observe(result(i, events.get(i, ())))
        if out:
            done[i] = out
    return done


@pytest.fixture
def images(tmp_path):
    return ImageStore(tmp_path / "images")


def test_clip_has_the_pre_roll_the_incident_and_the_post_roll(tmp_path, images, monkeypatch):
    threads = set()
    add = clips.ClipWriter.add
    monkeypatch.setattr(clips.ClipWriter, "add", lambda self, im: (threads.add(threading.current_thread().name),
                                                                   add(self, im))[1])
    rec = EvidenceRecorder(EvidenceConfig(pre_s=1.0, post_s=0.5, max_clip_s=30, clip_fps=4), tmp_path, images)
    done = run(rec, 48, {16: [event("new", 16, 0, 16)], 24: [event("update", 24, 1, 24)],
                         32: [event("end", 32, 2, 24)]})
    assert list(done) == [36]  # end (t=4.0) + post_s (0.5)
    ev = done[36][0].result(30)
    rec.close()
    assert ev.error is None and ev.key == KEY and ev.camera == "gate"
    # Sampled at 4 fps: pre-roll t=1.0..2.0 (5 frames), then t=2.25..4.5 (10 frames).
    assert ev.clip_frames == 15 and probe_count(tmp_path / ev.clip_path) == 15
    assert ev.clip_path.startswith("clips/") and sha(tmp_path / ev.clip_path) == ev.clip_sha256
    assert {r: v["frame_id"] for r, v in ev.images.items()} == {"first": fid(8), "worst": fid(24), "last": fid(32)}
    for v in ev.images.values():
        assert sha(tmp_path / v["path"]) == v["sha256"] and v["path"].startswith("images/")
    assert threads and all(t.startswith("evidence") for t in threads)  # never the record thread
    assert (rec.started, rec.finished) == (1, 1)


def probe_count(path) -> int:
    return clips.probe(path)[0]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_long_incident_keeps_its_first_max_clip_s(tmp_path, images):
    rec = EvidenceRecorder(EvidenceConfig(pre_s=1.0, post_s=0.5, max_clip_s=1.5, clip_fps=4), tmp_path, images)
    done = run(rec, 48, {16: [event("new", 16, 0, 16)], 40: [event("end", 40, 1, 16)]})
    ev = done[44][0].result(30)
    rec.close()
    assert ev.clip_frames == 7 == probe_count(tmp_path / ev.clip_path)  # t=1.0 .. 2.5
    assert ev.images["last"]["frame_id"] == fid(40)


def test_run_end_completes_open_incidents_and_missing_frames_are_named(tmp_path):
    rec = EvidenceRecorder(EvidenceConfig(pre_s=0.5, post_s=2, clip_fps=8), tmp_path, None)  # no image store
    assert run(rec, 20, {16: [event("new", 16, 0, 16)]}) == {}
    (fut,) = rec.finish([event("end", 19, 1, 16)])
    ev = fut.result(30)
    rec.close()
    assert ev.clip_frames == probe_count(tmp_path / ev.clip_path) == 8  # t=1.5 .. 2.375 at 8 fps
    assert ev.images == {"first": {"frame_id": fid(8)}, "worst": {"frame_id": fid(16)}, "last": {"frame_id": fid(19)}}
    assert rec.finish() == []


def test_an_encoder_failure_is_reported_not_raised(tmp_path, images, monkeypatch):
    def broken(self, image):
        raise clips.ClipError("codec gone")

    monkeypatch.setattr(clips.ClipWriter, "add", broken)
    rec = EvidenceRecorder(EvidenceConfig(pre_s=0.5, post_s=0.0, clip_fps=4), tmp_path, images)
    done = run(rec, 24, {16: [event("new", 16, 0, 16)], 20: [event("end", 20, 1, 16)]})
    ev = done[20][0].result(30)
    rec.close()
    assert ev.clip_path is None and "codec gone" in ev.error and ev.images["worst"]["sha256"]


def test_clips_are_scaled_once_per_frame_and_evidence_frames_keep_full_size(tmp_path, images, monkeypatch):
    """Two incidents open at once share their frames: each frame is scaled to the clip size once."""
    import cv2

    from inspector.station import evidence

    scaled = []
    real = evidence.scale_for_clip
    monkeypatch.setattr(evidence, "scale_for_clip", lambda im, side: (scaled.append(im.shape), real(im, side))[1])
    other = "gate/run/4/no_vest/1"

    def second(kind: str, i: int, seq: int) -> IncidentEvent:
        return IncidentEvent(kind, other, seq, "gate", 4, "no_vest", "vest", "high", None,
                             T0 + timedelta(seconds=i / FPS), fid(i), fid(i), fid(i), 0.9, T0, "")

    rec = EvidenceRecorder(EvidenceConfig(pre_s=1.0, post_s=0.5, max_clip_s=30, clip_fps=4, clip_max_side=32),
                           tmp_path, images)
    done = run(rec, 48, {16: [event("new", 16, 0, 16), second("new", 16, 0)],
                         32: [event("end", 32, 2, 24), second("end", 32, 1)]})
    evs = [f.result(30) for fs in done.values() for f in fs]
    rec.close()
    assert len(evs) == 2 and all(e.error is None for e in evs)
    for e in evs:
        assert clips.probe(tmp_path / e.clip_path)[2:] == (32, 24)     # 64x48 frames, longest side 32
        img = cv2.imread(str(tmp_path / e.images["worst"]["path"]))
        assert img.shape[:2] == (48, 64)                                 # evidence frames: full size
    assert len(scaled) == 15 == evs[0].clip_frames == evs[1].clip_frames  # 15 frames, each scaled once
