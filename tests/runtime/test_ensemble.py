import numpy as np
import pytest

from inspector.core.detections import Detections
from inspector.runtime.ensemble import Ensemble, Member, model_set_version


class Fixed:
    """A detector that returns the same boxes for every image."""

    def __init__(self, boxes, scores, classes, names=("a", "b")):
        self.class_names = names
        self.dets = Detections(boxes, scores, classes)

    def detect(self, images):
        return [self.dets for _ in images]


def member(name, det, weight=1.0, sha="0" * 64):
    return Member(name, "1", sha, det, weight)


def test_two_models_fuse_and_record_support():
    a = Fixed([[10, 10, 50, 50], [100, 100, 120, 120]], [0.9, 0.6], [0, 1])
    b = Fixed([[12, 11, 51, 49]], [0.8], [0])
    ens = Ensemble([member("a", a), member("b", b)], "wbf", {"iou_thr": 0.5, "skip_box_thr": 0.0,
                                                                "conf_type": "avg", "k": 2})
    batch = ens.detect([np.zeros((200, 200, 3), np.uint8)])
    (res,) = batch.results
    assert len(res.per_model) == 2 and res.per_model[1].model_index.tolist() == [1]
    by_class = {int(c): int(s) for c, s in zip(res.fused.class_id, res.fused.support)}
    assert by_class == {0: 0b11, 1: 0b01}
    assert set(batch.timings_ms) == {"detect_ms", "fusion_ms"} and min(batch.timings_ms.values()) >= 0
    assert not hasattr(ens, "last_timings")  # the timings travel with the result, not on the ensemble


def test_vote_keeps_only_agreed_boxes():
    a = Fixed([[10, 10, 50, 50], [100, 100, 120, 120]], [0.9, 0.6], [0, 1])
    b = Fixed([[12, 11, 51, 49]], [0.8], [0])
    ens = Ensemble([member("a", a), member("b", b)], "vote", {"k": 2, "iou_thr": 0.5})
    (res,) = ens.detect([np.zeros((8, 8), np.uint8)]).results
    assert res.fused.class_id.tolist() == [0]


def test_single_model_passes_through_and_batches():
    a = Fixed([[1, 1, 5, 5]], [0.7], [1])
    ens = Ensemble([member("a", a)])
    out = ens.detect([np.zeros((8, 8), np.uint8)] * 3).results
    assert len(out) == 3 and all(len(r.fused) == 1 for r in out)


@pytest.mark.parametrize(
    "members, method, message",
    [
        ([], "wbf", "at least one model"),
        ([member("a", Fixed([], [], []))], "median", "not one of"),
        ([member("a", Fixed([], [], [])), member("b", Fixed([], [], [], names=("x",)))], "wbf", "label space"),
    ],
)
def test_bad_ensembles(members, method, message):
    with pytest.raises(ValueError, match=message):
        Ensemble(members, method)


def test_model_set_version_names_the_exact_models():
    a = Fixed([], [], [])
    v1 = model_set_version([member("a", a, sha="1" * 64)])
    assert v1 == model_set_version([member("a", a, sha="1" * 64)])
    assert v1 != model_set_version([member("a", a, sha="2" * 64)])
    assert v1 != model_set_version([member("a", a, weight=2.0, sha="1" * 64)])
