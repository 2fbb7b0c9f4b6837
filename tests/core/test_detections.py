import numpy as np
import pytest

from inspector.core.detections import Detections


def make(n=5, seed=0, model=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (n, 2))
    return Detections(np.concatenate([xy, xy + rng.uniform(1, 20, (n, 2))], 1),
                      rng.uniform(0, 1, n), rng.integers(0, 3, n), model)


def test_dtypes_and_readonly():
    d = make()
    assert d.xyxy.dtype == np.float32 and d.score.dtype == np.float32 and d.class_id.dtype == np.int32
    with pytest.raises(ValueError):
        d.xyxy[0, 0] = 1.0
    with pytest.raises(AttributeError):
        d.score = np.zeros(5)  # type: ignore[misc]


def test_does_not_freeze_the_callers_array():
    xyxy = np.zeros((1, 4), np.float32)
    Detections(xyxy, [0.5], [0])
    xyxy[0, 0] = 1  # still writeable for its owner


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(xyxy=np.zeros((2, 3)), score=[1, 1], class_id=[0, 0]), "xyxy"),
        (dict(xyxy=np.zeros((2, 4)), score=[1], class_id=[0, 0]), "score"),
        (dict(xyxy=np.zeros((2, 4)), score=[1, 1], class_id=[0]), "class_id"),
    ],
)
def test_shape_errors_name_the_column(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_filter_index_and_threshold():
    d = make(10)
    kept = d.above(0.5)
    assert np.all(kept.score >= 0.5) and len(kept) == int((d.score >= 0.5).sum())
    assert len(d[np.array([0, 2])]) == 2 and len(d[3]) == 1 and len(d[-1]) == 1 and len(d[2:5]) == 3
    assert np.all(np.isin(d.of_class(1, 2).class_id, [1, 2]))
    with pytest.raises(ValueError, match="mask shape"):
        d.filter(np.ones(3, bool))


def test_selections_stay_read_only_typed_and_checked():
    d = make(6, model=2)
    for sel in (d[np.array([True, False, True, False, False, True])], d[np.array([5, 0])], d[1:4], d[[]], d[0]):
        assert sel.xyxy.dtype == np.float32 and sel.support.dtype == np.uint32 and sel.model_index.dtype == np.int32
        for col in (sel.xyxy, sel.score, sel.class_id, sel.model_index, sel.support):
            assert not col.flags.writeable
    picked = d[np.array([5, 0])]
    np.testing.assert_array_equal(picked.xyxy, d.xyxy[[5, 0]])
    np.testing.assert_array_equal(picked.support, [4, 4])
    assert len(d[[]]) == 0
    with pytest.raises(IndexError, match="boolean mask"):
        d[np.ones(3, bool)]
    with pytest.raises(IndexError, match="integers"):
        d[np.array([0.5])]
    with pytest.raises(IndexError):
        d[np.array([6])]


def test_concat_and_support_bitmask():
    a, b, c = make(3, 1, model=0), make(4, 2, model=1), make(2, 3, model=2)
    cat = Detections.concat([a, Detections.empty(), b, c])
    assert len(cat) == 9
    assert cat.support.tolist() == [1] * 3 + [2] * 4 + [4] * 2
    fused = Detections(cat.xyxy[:1], [0.9], [0], [-1], [0b101])
    assert fused.support_count().tolist() == [2]
    assert len(Detections.concat([])) == 0


def test_area_iou_center_sorted():
    d = Detections([[0, 0, 10, 10], [5, 5, 15, 25]], [0.2, 0.9], [0, 1])
    np.testing.assert_allclose(d.area, [100, 200])
    np.testing.assert_allclose(d.center, [[5, 5], [10, 15]])
    assert d.iou(d).shape == (2, 2) and d.iou(d)[0, 0] == pytest.approx(1.0)
    assert d.sorted_by_score().score.tolist() == pytest.approx([0.9, 0.2])


def test_records_round_trip():
    d = make(4)
    back = Detections.from_records(d.to_records(["a", "b", "c"]))
    np.testing.assert_allclose(back.xyxy, d.xyxy, atol=0.01)
    assert back.class_id.tolist() == d.class_id.tolist()
    assert d.to_records(["a", "b", "c"])[0]["class_name"] in "abc"
