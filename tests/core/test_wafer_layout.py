"""inspector/core/wafer.py: which dies fit, where they are, edge ring, wafer-map grids."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inspector.core.wafer import WaferLayout

LAYOUTS = [
    WaferLayout(),
    WaferLayout(300.0, 10.0, 10.0, 3.0),
    WaferLayout(200.0, 12.0, 8.0, 5.0),
    WaferLayout(100.0, 20.0, 10.0, 0.0),
]


def _corners_inside(lay: WaferLayout, die: tuple[int, int]) -> bool:
    x0, y0, x1, y1 = lay.die_rect_mm(die)
    r = lay.usable_radius_mm
    return all(math.hypot(x, y) <= r + 1e-9 for x in (x0, x1) for y in (y0, y1))


@pytest.mark.parametrize("lay", LAYOUTS, ids=repr)
def test_exactly_the_dies_that_fit_are_listed(lay: WaferLayout) -> None:
    dies = set(lay.dies)
    assert len(dies) == len(lay) > 0  # no duplicates
    nx = int(lay.radius_mm / lay.die_pitch_x_mm) + 3
    ny = int(lay.radius_mm / lay.die_pitch_y_mm) + 3
    brute = {(x, y) for x in range(-nx, nx + 1) for y in range(-ny, ny + 1) if _corners_inside(lay, (x, y))}
    assert dies == brute
    assert all(_corners_inside(lay, d) for d in dies)


def test_default_layout_is_a_small_demo_wafer() -> None:
    lay = WaferLayout()
    assert 25 <= len(lay) <= 45
    assert (0, 0) in lay and (0, 3) in lay and (3, 3) not in lay
    assert "not a die" not in lay  # type: ignore[operator]
    # scan order: top row first, left to right
    ys = [d[1] for d in lay.dies]
    assert ys == sorted(ys, reverse=True)


def test_centres_and_radius_fraction() -> None:
    lay = WaferLayout(200.0, 12.0, 8.0, 5.0)
    assert lay.die_center_mm((2, -3)) == (24.0, -24.0)
    c = lay.die_centers_mm()
    assert c.shape == (len(lay), 2)
    np.testing.assert_allclose(c, lay.dies_array * [12.0, 8.0])
    assert lay.radius_fraction((0, 0)) == 0.0
    assert lay.radius_fraction((2, -3)) == pytest.approx(math.hypot(24, 24) / 100.0)
    rf = lay.radius_fraction(lay.dies_array)
    assert rf.shape == (len(lay),) and rf.max() < 1.0
    assert lay.die_rect_mm((1, 1)) == (6.0, 4.0, 18.0, 12.0)


@pytest.mark.parametrize("lay", LAYOUTS, ids=repr)
def test_edge_dies_are_the_outer_ring(lay: WaferLayout) -> None:
    dies = set(lay.dies)
    edge = set(lay.edge_dies())
    assert edge and edge < dies
    for x, y in dies:
        missing = any(n not in dies for n in ((x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)))
        assert ((x, y) in edge) == missing
        assert lay.is_edge_die((x, y)) == missing
    # the die farthest from the centre is always on the edge
    far = lay.dies[int(np.argmax(lay.radius_fraction(lay.dies_array)))]
    assert far in edge
    with pytest.raises(KeyError):
        lay.is_edge_die((999, 999))


def test_die_grid_scatters_values_like_a_wafer_map() -> None:
    lay = WaferLayout()
    rows, cols = lay.grid_shape
    assert (rows, cols) == (7, 7)
    g = lay.die_grid({(0, 3): 1.0, (-3, 0): 2.0, (0, 0): 3.0})
    assert g.shape == (rows, cols)
    assert g[0, 3] == 1.0  # top row = largest y
    assert g[3, 0] == 2.0  # left column = smallest x
    assert g[3, 3] == 3.0
    assert np.isnan(g).sum() == rows * cols - 3
    on = lay.on_wafer_grid()
    assert on.sum() == len(lay)
    full = lay.die_grid({d: 1 for d in lay.dies}, fill=0, dtype=np.int32)
    np.testing.assert_array_equal(full.astype(bool), on)
    labels = lay.die_grid({(0, 0): "cluster"}, fill="", dtype=object)
    assert labels[3, 3] == "cluster" and labels[0, 0] == ""
    assert lay.die_grid({}).shape == (rows, cols)
    with pytest.raises(KeyError):
        lay.die_grid({(40, 0): 1.0})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"diameter_mm": 0.0},
        {"die_pitch_x_mm": -1.0},
        {"edge_exclusion_mm": 80.0},
        {"diameter_mm": 10.0, "die_pitch_x_mm": 20.0},  # nothing fits
    ],
)
def test_invalid_layouts_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        WaferLayout(**kwargs)


def test_layout_is_hashable_and_compares_by_value() -> None:
    assert WaferLayout() == WaferLayout()
    assert hash(WaferLayout()) == hash(WaferLayout())
    assert WaferLayout() != WaferLayout(200.0)
