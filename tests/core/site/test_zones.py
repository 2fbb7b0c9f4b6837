"""Foot points against zone polygons: inside, outside, on the outline, concave shapes."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.site.zones import SiteZone, foot_points, inside, membership, on_outline, zones_of

SQUARE = [(0, 0), (10, 0), (10, 10), (0, 10)]
# A "U": the notch x 3..7, y 0..6 is outside although its points lie within the bounding box.
U_SHAPE = [(0, 0), (3, 0), (3, 6), (7, 6), (7, 0), (10, 0), (10, 10), (0, 10)]
TRIANGLE = [(0, 0), (10, 0), (5, 10)]


@pytest.mark.parametrize("case, polygon, point, expected", [
    ("centre of a square", SQUARE, (5, 5), True),
    ("outside a square", SQUARE, (15, 5), False),
    ("left of a square, level with it", SQUARE, (-0.01, 5), False),
    ("on the bottom edge", SQUARE, (5, 10), True),
    ("on the left edge", SQUARE, (0, 3), True),
    ("on a corner", SQUARE, (10, 10), True),
    ("just outside the bottom edge", SQUARE, (5, 10.01), False),
    ("in the notch of a U (concave)", U_SHAPE, (5, 3), False),
    ("in a U's left arm", U_SHAPE, (1.5, 3), True),
    ("below the notch, inside the U", U_SHAPE, (5, 8), True),
    ("on the notch's floor edge", U_SHAPE, (5, 6), True),
    ("in a triangle", TRIANGLE, (5, 3), True),
    ("beside a triangle's slope", TRIANGLE, (1, 8), False),
    ("on a triangle's slope", TRIANGLE, (2.5, 5), True),
    ("degenerate polygon (2 points)", [(0, 0), (10, 10)], (5, 5), False),
])
def test_inside(case, polygon, point, expected):
    got = inside(np.array([point], float), np.array(polygon, float))
    assert got.tolist() == [expected], case


def test_vectorised_over_many_points_matches_one_by_one():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-2, 12, (500, 2))
    pts[:20] = np.array(U_SHAPE * 3, float)[:20]  # vertices too
    poly = np.array(U_SHAPE, float)
    many = inside(pts, poly)
    one = np.array([inside(p[None], poly)[0] for p in pts])
    np.testing.assert_array_equal(many, one)
    assert 0 < many.sum() < len(pts)


def test_on_outline_only_on_the_line():
    pts = np.array([(5, 0), (5, 0.5), (10, 5), (5, 5)], float)
    assert on_outline(pts, np.array(SQUARE, float)).tolist() == [True, False, True, False]


def test_foot_points_are_bottom_centres():
    np.testing.assert_allclose(foot_points(np.array([[0, 0, 10, 20], [4, 2, 6, 9]], float)), [[5, 20], [5, 9]])
    assert foot_points(np.zeros((0, 4))).shape == (0, 2)


def test_zones_of_boxes():
    zones = [SiteZone("pit", "restricted", tuple(SQUARE)),
             SiteZone("yard", "ppe_required", ((0, 0), (100, 0), (100, 100), (0, 100)))]
    boxes = np.array([[2, -20, 8, 5],     # foot (5, 5): in both
                      [40, 10, 60, 50],   # foot (50, 50): yard only
                      [140, 10, 160, 50]  # outside both
                      ], float)
    assert zones_of(boxes, zones) == (("pit", "yard"), ("yard",), ())
    assert membership(foot_points(boxes), zones).shape == (3, 2)
    assert zones_of(boxes, []) == ((), (), ())
    assert zones_of(np.zeros((0, 4)), zones) == ()


def test_membership_of_many_zones_matches_each_polygon_alone():
    rng = np.random.default_rng(1)
    zones = [SiteZone("sq", "restricted", tuple(SQUARE)), SiteZone("u", "ppe_required", tuple(U_SHAPE)),
             SiteZone("tri", "inspection", tuple(TRIANGLE)), SiteZone("line", "exclusion", ((0, 0), (10, 10)))]
    pts = np.concatenate([rng.uniform(-2, 12, (300, 2)), np.array(U_SHAPE + SQUARE + TRIANGLE, float),
                          [(5, 10), (0, 3), (2.5, 5), (5, 6)]])
    m = membership(pts, zones)
    for j, z in enumerate(zones):
        np.testing.assert_array_equal(m[:, j], inside(pts, np.array(z.polygon, float)), err_msg=z.id)
    assert m[:, :3].any(axis=0).all() and not m[:, 3].any()
