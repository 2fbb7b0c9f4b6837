"""The site run's tally: frames, tracks and incidents per camera; tracks kept only for scoring."""

from __future__ import annotations

import numpy as np

from inspector.core.decision import Decision, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent, SiteFrame, TrackedWorker
from inspector.station.judgement import FrameResult
from inspector.station.site_tally import SiteTally


def worker(tid, x=10.0):
    return TrackedWorker(tid, (x, 20.0, x + 30.0, 100.0), 0.9, True, False, 0.8, 0.0)


def event(kind, what="new", camera="gate", track=1, reason=""):
    now = Frame.utc_now()
    return IncidentEvent(what, f"{camera}/{track}/{kind}", 0, camera, track, kind, kind, "high", None, now, "f", "f",
                         "f", 0.5, now, reason=reason)


def result(camera, i, workers=(), events=(), site=True):
    f = Frame(f"{camera}:{i}", "s", camera, 0.0, Frame.utc_now(), np.zeros((4, 4, 3), np.uint8),
              {"camera": camera, "frame_index": i})
    d = Decision(f.frame_id, Verdict.PASS, (), Detections.empty(), "ms", "h", Frame.utc_now())
    return FrameResult(f, d, site=SiteFrame(camera, tuple(workers), tuple(events)) if site else None)


def test_counts_frames_confirmed_tracks_and_incidents_per_camera():
    t = SiteTally()
    t.accept_result(result("gate", 0, [worker(1), worker(-1)]))
    t.accept_result(result("gate", 1, [worker(1), worker(2)], [event("no_vest")]))
    t.accept_result(result("yard", 0, [worker(1)], [event("in_danger_zone", camera="yard")]))
    t.accept_result(result("yard", 1, site=False))  # not judged by a site judge (no model): not counted
    t.accept_events([event("no_vest", "end", reason="run ended")])
    s = t.summary(drops={"gate": 3, "north": 2})
    gate, yard = s["cameras"]["gate"], s["cameras"]["yard"]
    assert (gate["frames"], gate["tracks"], gate["dropped"]) == (2, 2, 3)  # track -1 (unconfirmed) not counted
    assert gate["incidents"] == {"no_hard_hat": 0, "no_vest": 1, "in_danger_zone": 0}
    assert gate["incidents_closed"]["no_vest"] == 1 and gate["end_reasons"] == {"run ended": 1}
    assert yard["incidents"]["in_danger_zone"] == 1 and yard["tracking"] is None
    assert s["cameras"]["north"]["frames"] == 0  # a camera whose every frame was dropped still shows
    assert SiteTally(cameras=["gate", "yard"]).summary()["cameras"]["yard"]["frames"] == 0  # nothing judged yet
    assert (s["frames"], s["dropped"], s["tracks"], s["incidents_total"]) == (3, 5, 3, 2)
    assert s["incidents"] == {"no_hard_hat": 0, "no_vest": 1, "in_danger_zone": 1}


def test_tracks_are_kept_only_for_cameras_that_are_scored():
    t = SiteTally(keep_tracks=["gate"])
    for i in range(3):
        t.accept_result(result("gate", i, [worker(7, x=10.0 * i), worker(-1)]))
        t.accept_result(result("yard", i, [worker(7)]))
    assert not t.cameras["yard"].tracked
    kept = t.cameras["gate"].tracked
    assert [f.frame_index for f in kept] == [0, 1, 2] and kept[2].track_ids.tolist() == [7]
    assert kept[2].xyxy.tolist() == [[20.0, 20.0, 50.0, 100.0]]
    seen = []

    def scorer(camera, frames):
        seen.append((camera, len(frames)))
        return {"mota": 1.0}

    s = t.summary(scorer=scorer)
    assert seen == [("gate", 3)] and s["cameras"]["gate"]["tracking"] == {"mota": 1.0}
    assert SiteTally(["gate"], keep_tracks=["gate"]).summary(scorer=scorer)["cameras"]["gate"]["tracking"] is None
