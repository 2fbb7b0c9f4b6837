"""Frame -> Decision through ensemble and the demo rules; wafers judged from their dies."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.config import config_hash, default_config_path, load_config
from inspector.core.decision import Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.runtime.ensemble import Ensemble, Member
from inspector.station.inspection import Inspection, NotInspected, WaferTracker

NAMES = ("particle", "scratch", "residue", "pattern", "edge_chip")


class Fixed:
    class_names = NAMES

    def __init__(self, score: float | None):
        self.score = score

    def detect(self, images):
        if self.score is None:
            return [Detections.empty() for _ in images]
        return [Detections([[150, 150, 170, 170]], [self.score], [0]) for _ in images]


class Broken(Fixed):
    def detect(self, images):
        raise RuntimeError("device lost")


@pytest.fixture(scope="module")
def cfg():
    return load_config(default_config_path())


def frame(die=(0, 0), wafer="L1-W01"):
    return Frame(f"{wafer}-{die}", "wafer-demo", "synthetic", 0.0, Frame.utc_now(), np.zeros((320, 320, 3), np.uint8),
                 {"lot": "L1", "wafer": wafer, "die_x": die[0], "die_y": die[1]})


@pytest.mark.parametrize(
    "score, verdict, rule",
    [
        (None, Verdict.PASS, None),
        (0.9, Verdict.FAIL, "any-defect"),        # confident defect
        (0.4, Verdict.REVIEW, "uncertain"),       # inside the uncertainty band: an operator decides
        (0.2, Verdict.PASS, "min-score"),         # below the class threshold: dropped, and the drop is cited
    ],
)
def test_demo_rules_turn_detections_into_verdicts(cfg, score, verdict, rule):
    ens = Ensemble([Member("m", "1", "0" * 64, Fixed(score))])
    (d,) = Inspection(cfg, ens, config_hash(cfg)).judge([frame()]).decisions
    assert d.verdict is verdict and d.config_hash == config_hash(cfg) and d.model_set_version == ens.version
    if rule:
        assert rule in d.rule_ids


def test_a_failing_model_still_gives_one_error_decision_per_frame(cfg):
    ens = Ensemble([Member("m", "1", "0" * 64, Broken(None))])
    j = Inspection(cfg, ens, "h").judge([frame((0, 0)), frame((1, 0))])
    out = j.decisions
    assert [d.verdict for d in out] == [Verdict.ERROR] * 2 and "device lost" in out[0].error
    assert all(r.fused is None and r.per_model is None for r in j.results) and dict(j.timings_ms) == {}


def test_the_judgement_holds_every_frames_boxes_and_the_batch_timings(cfg):
    ens = Ensemble([Member("a", "1", "0" * 64, Fixed(0.4)), Member("b", "1", "1" * 64, Fixed(0.9))])
    frames = [frame((0, 0)), frame((1, 0))]
    j = Inspection(cfg, ens, "h").judge(frames)
    assert [r.frame for r in j.results] == frames
    for r in j.results:
        assert [m.model_index.tolist() for m in r.per_model] == [[0], [1]]  # each model's own boxes
        assert len(r.fused) == 1 and r.fused.support.tolist() == [0b11]     # fused by both
        assert r.decision.verdict is Verdict.FAIL
    assert set(j.timings_ms) == {"detect_ms", "fusion_ms", "rules_ms"} and min(j.timings_ms.values()) >= 0
    assert not hasattr(Inspection(cfg, ens, "h"), "last_timings")
    assert [d.verdict for d in Inspection(cfg, ens, "h").decide(frames)] == [Verdict.FAIL] * 2


def test_without_a_model_every_frame_is_not_inspected():
    frames = [frame((0, 0)), frame((1, 0))]
    j = NotInspected("not inspected: no model", "h").judge(frames)
    assert [r.frame for r in j.results] == frames
    assert {r.decision.verdict for r in j.results} == {Verdict.NOT_INSPECTED}
    assert j.results[0].decision.error == "not inspected: no model" and j.results[0].decision.model_set_version == "none"


def test_a_frame_by_frame_judge_has_nothing_left_at_the_end_of_a_run(cfg):
    ens = Ensemble([Member("a", "1", "0" * 64, Fixed(0.9))])
    inspection = Inspection(cfg, ens, "h")
    inspection.judge([frame((0, 0))])
    for judge in (inspection, NotInspected("no model", "h")):
        end = judge.finish()
        assert end.results == () and end.events == ()


def test_wafer_tracker_judges_each_wafer_once(cfg):
    from inspector.station.rules_builder import wafer_layout

    ens = Ensemble([Member("m", "1", "0" * 64, Fixed(None))])
    insp, tracker = Inspection(cfg, ens, "h"), WaferTracker(cfg)
    dies = wafer_layout(cfg).dies
    summaries = []
    for w in ("L1-W01", "L1-W02"):
        frames = [frame(d, w) for d in dies if not (w == "L1-W02" and d == dies[0])]  # W02 misses a die
        for f, d in zip(frames, insp.decide(frames)):  # decisions only
            s = tracker.add(f, d)
            summaries += [s] if s else []
    summaries.append(tracker.flush())
    assert [s.wafer for s in summaries] == ["L1-W01", "L1-W02"]
    assert summaries[0].result.verdict is Verdict.PASS and summaries[0].dies_seen == len(dies)
    assert summaries[1].result.verdict is Verdict.REVIEW  # a missing die is never passed silently
    assert summaries[1].result.die_map[dies[0]] == "not_inspected"
    assert tracker.flush() is None
