import numpy as np
import pytest

from inspector.core.geometry import box_area, box_iou, box_iou_aligned, points_in_polygon


def _iou_loop(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            iw = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            ih = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            inter = iw * ih
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            out[i, j] = inter / union if union > 0 else 0.0
    return out


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),            # identical
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),       # half overlap
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),           # touching edges
        ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),          # disjoint
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),          # contained
        ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),                # degenerate: no division by zero
    ],
)
def test_iou_table(a, b, expected):
    assert box_iou(np.array([a]), np.array([b]))[0, 0] == pytest.approx(expected, abs=1e-6)


def test_iou_matches_loop_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (2, 40, 2))
    wh = rng.uniform(1, 30, (2, 40, 2))
    a = np.concatenate([xy[0], xy[0] + wh[0]], 1)
    b = np.concatenate([xy[1], xy[1] + wh[1]], 1)
    np.testing.assert_allclose(box_iou(a, b), _iou_loop(a, b), atol=1e-5)
    np.testing.assert_allclose(box_iou_aligned(a, b), np.diag(_iou_loop(a, b)), atol=1e-5)


def test_area_clips_inverted_boxes():
    np.testing.assert_array_equal(box_area(np.array([[0, 0, 2, 3], [5, 5, 4, 4]])), [6, 0])


def test_points_in_polygon():
    square = np.array([[0, 0], [10, 0], [10, 10], [0, 10]])
    pts = np.array([[5, 5], [15, 5], [-1, -1], [9.9, 0.1]])
    np.testing.assert_array_equal(points_in_polygon(pts, square), [True, False, False, True])
    assert points_in_polygon(pts, square[:2]).sum() == 0  # not a polygon
