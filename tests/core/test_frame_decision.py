from datetime import datetime, timezone

import numpy as np
import pytest

from inspector.core import Decision, Detections, Frame, Reason, Verdict

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


def test_frame_is_frozen_and_owns_a_readonly_view():
    img = np.zeros((4, 6, 3), np.uint8)
    f = Frame("f1", "st", "synthetic", 1.0, NOW, img, {"lot": "L1", "die_x": 3})
    assert (f.height, f.width, f.channels) == (4, 6, 3)
    with pytest.raises(ValueError):
        f.image[0, 0, 0] = 1
    with pytest.raises(TypeError):
        f.context["lot"] = "other"  # type: ignore[index]
    img[0, 0, 0] = 7  # the producer's buffer stays its own
    assert Frame("g", "st", "s", 0.0, NOW, np.zeros((2, 2), np.uint8)).channels == 1


@pytest.mark.parametrize(
    "image, tz, message",
    [
        (np.zeros((2, 2, 2), np.uint8), timezone.utc, "shape"),
        ([[0, 0]], timezone.utc, "numpy array"),
        (np.zeros((2, 2), np.uint8), None, "timezone"),
    ],
)
def test_frame_rejects_bad_input(image, tz, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Frame("bad", "st", "s", 0.0, datetime(2026, 1, 1, tzinfo=tz), image)


@pytest.mark.parametrize(
    "verdicts, worst",
    [
        ([], Verdict.PASS),
        ([Verdict.PASS, Verdict.REVIEW], Verdict.REVIEW),
        ([Verdict.REVIEW, Verdict.FAIL, Verdict.PASS], Verdict.FAIL),
        ([Verdict.FAIL, Verdict.ERROR], Verdict.ERROR),
        ([Verdict.ERROR, Verdict.NOT_INSPECTED], Verdict.NOT_INSPECTED),
    ],
)
def test_verdict_worst(verdicts, worst):
    assert Verdict.worst(verdicts) is worst


def test_decision_carries_reasons_and_provenance():
    det = Detections([[0, 0, 5, 5]], [0.9], [1])
    d = Decision("f1", "fail", [Reason("count-particles", Verdict.FAIL, "4 particles > 3", (0,))], det,
                 "models:abc", "cfg:def", NOW)
    assert d.verdict is Verdict.FAIL and d.rule_ids == ("count-particles",) and isinstance(d.reasons, tuple)
    assert d.verdict.needs_human and not Verdict.PASS.needs_human


def test_unjudged_units_still_get_a_decision_with_a_cause():
    d = Decision.unjudged("f2", Verdict.NOT_INSPECTED, "image unreadable", "m", "c", NOW)
    assert len(d.detections) == 0 and d.error == "image unreadable"
    with pytest.raises(ValueError, match="needs an error"):
        Decision("f3", Verdict.ERROR, (), Detections.empty(), "m", "c", NOW)
    with pytest.raises(ValueError, match="ERROR or NOT_INSPECTED"):
        Decision.unjudged("f4", Verdict.PASS, "x", "m", "c", NOW)
