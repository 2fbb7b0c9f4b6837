"""inspector/capture/synthetic/: die rendering, exact truth, wafer signatures, the FrameSource."""

from __future__ import annotations

import math
import re
import time

import cv2
import numpy as np
import pytest

from inspector.capture.synthetic import (
    CLASS_ID,
    CLASS_NAMES,
    MIN_BOX_PX,
    DefectSpec,
    SyntheticWaferLine,
    render_die,
    render_field,
)
from inspector.core.detections import Detections
from inspector.core.ports import FrameSource
from inspector.core.wafer import WaferLayout

EDGE = CLASS_ID["edge_chip"]
SCRATCH = CLASS_ID["scratch"]


def _die(seed: int, defects, size: int = 640, draw: bool = True):
    return render_die(np.random.default_rng(seed), size, defects, edge_dir=(0.6, 0.8), draw_defects=draw)


def test_class_list_is_the_contract() -> None:
    assert CLASS_NAMES == ("particle", "scratch", "residue", "pattern", "edge_chip")


def test_render_die_is_deterministic_by_seed() -> None:
    a, da = _die(5, ("particle", "scratch", "pattern"))
    b, db = _die(5, ("particle", "scratch", "pattern"))
    c, _ = _die(6, ("particle", "scratch", "pattern"))
    assert a.dtype == np.uint8 and a.shape == (640, 640, 3)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(da.xyxy, db.xyxy)
    np.testing.assert_array_equal(da.class_id, db.class_id)
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("kinds", [(k,) for k in CLASS_NAMES] + [tuple(CLASS_NAMES), ("particle", "particle", "residue")])
def test_boxes_are_exactly_the_drawn_defects(kinds: tuple[str, ...]) -> None:
    for seed in range(12):
        img, truth = _die(seed, kinds)
        clean, none = _die(seed, kinds, draw=False)
        assert len(none) == 0
        assert np.all(truth.score == 1.0)
        changed = np.any(img != clean, axis=2)
        inside = np.zeros_like(changed)
        for (x0, y0, x1, y1) in truth.xyxy.astype(int):
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 640
            assert x1 - x0 >= MIN_BOX_PX and y1 - y0 >= MIN_BOX_PX
            assert changed[y0:y1, x0:x1].any(), "a box without a visible defect"
            inside[y0:y1, x0:x1] = True
        assert changed.sum() == 0 or (changed & inside).sum() >= 0.95 * changed.sum()
        assert not (changed & ~inside).any()  # stronger than 95 %: nothing is drawn outside boxes


@pytest.mark.parametrize("kind", CLASS_NAMES)
def test_boxes_are_tight(kind: str) -> None:
    for seed in range(10):
        img, truth = _die(100 + seed, (kind,))
        clean, _ = _die(100 + seed, (kind,), draw=False)
        assert len(truth) == 1 and truth.class_id[0] == CLASS_ID[kind]
        ys, xs = np.nonzero(np.any(img != clean, axis=2))
        x0, y0, x1, y1 = truth.xyxy[0]
        changed_area = (xs.max() + 1 - xs.min()) * (ys.max() + 1 - ys.min())
        assert changed_area >= 0.9 * (x1 - x0) * (y1 - y0)


def test_defects_are_visible() -> None:
    for i, kind in enumerate(CLASS_NAMES):
        img, truth = _die(200 + i, (kind,))
        clean, _ = _die(200 + i, (kind,), draw=False)
        x0, y0, x1, y1 = truth.xyxy[0].astype(int)
        diff = np.abs(img[y0:y1, x0:x1].astype(int) - clean[y0:y1, x0:x1]).max(axis=2)
        assert np.percentile(diff[diff > 0], 90) >= 30, kind  # well above the noise (sigma <= 5)


def test_explicit_spec_and_unknown_kind() -> None:
    spec = DefectSpec("scratch", points=((50.0, 60.0), (400.0, 500.0)), width=2.0, seed=3)
    _, truth = _die(1, (spec,))
    assert truth.class_id.tolist() == [SCRATCH]
    x0, y0, x1, y1 = truth.xyxy[0]
    assert abs(x0 - 50) <= 8 and abs(x1 - 400) <= 8 and abs(y0 - 60) <= 8 and abs(y1 - 500) <= 8
    with pytest.raises(ValueError):
        _die(1, ("crack",))
    with pytest.raises(ValueError):
        DefectSpec("crack")


def test_render_time_per_die() -> None:
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        _die(0, ())  # design and noise bank are built once per process
        t0 = time.perf_counter()
        for i in range(20):
            _die(i, (CLASS_NAMES[i % 5],))
        ms = (time.perf_counter() - t0) / 20 * 1000
    finally:
        cv2.setNumThreads(threads)
    assert ms < 60, f"{ms:.1f} ms per 640 px die (target < 15 ms on a desktop core)"


# --- the line --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def line_frames():
    line = SyntheticWaferLine(seed=11, lots=1, wafers_per_lot=4, die_px=128)
    return line, list(line.frames_with_truth())


def test_line_is_a_frame_source_with_wafer_context(line_frames) -> None:
    line, frames = line_frames
    assert isinstance(line, FrameSource) and isinstance(line.name, str)
    assert len(frames) == len(line) == 4 * len(line.layout)
    ids = [f.frame_id for f, _ in frames]
    assert len(set(ids)) == len(ids)
    f0 = frames[0][0]
    assert re.fullmatch(r"LOT0001-W01-X[+-]\d\dY[+-]\d\d", f0.frame_id)
    for f, _ in frames:
        c = f.context
        assert c["lot"] == "LOT0001" and re.fullmatch(r"LOT0001-W0[1-4]", c["wafer"])
        assert isinstance(c["die_x"], int) and isinstance(c["die_y"], int)
        assert f.frame_id == SyntheticWaferLine.frame_id(1, c["wafer_slot"], (c["die_x"], c["die_y"]))
        assert c["wafer_signature"] in ("random", "cluster", "edge_ring", "scratch_line")
        assert c["is_edge_die"] == ((c["die_x"], c["die_y"]) in line.layout.edge_dies())
        assert f.image.shape == (128, 128, 3) and f.station_id == "synthetic"
    assert SyntheticWaferLine.parse_frame_id("LOT0001-W02-X+03Y-02") == (1, 2, (3, -2))


def test_line_is_reproducible_and_random_access(line_frames) -> None:
    line, frames = line_frames
    again = SyntheticWaferLine(seed=11, lots=1, wafers_per_lot=4, die_px=128)
    other = SyntheticWaferLine(seed=12, lots=1, wafers_per_lot=4, die_px=128)
    for (f, t), (g, u) in zip(frames[:5], again.frames_with_truth()):
        assert f.frame_id == g.frame_id and f.image.tobytes() == g.image.tobytes()
        np.testing.assert_array_equal(t.xyxy, u.xyxy)
    assert any(f.image.tobytes() != g.image.tobytes() for (f, _), g in zip(frames[:5], other.frames()))
    # any die alone, in any order, gives the same pixels as the stream
    for f, t in frames[::17]:
        li, slot, die = SyntheticWaferLine.parse_frame_id(f.frame_id)
        img, truth = again.render(li, slot, die)
        assert img.tobytes() == f.image.tobytes()
        np.testing.assert_array_equal(truth.xyxy, t.xyxy)
        np.testing.assert_array_equal(again.ground_truth(f.frame_id).class_id, t.class_id)
    with pytest.raises(KeyError):
        again.ground_truth("LOT0009-W01-X+00Y+00")


def test_clean_dies_are_common_and_all_dies_on_the_wafer(line_frames) -> None:
    line, frames = line_frames
    clean = sum(len(t) == 0 for _, t in frames)
    assert clean >= 0.4 * len(frames)
    lay = line.layout
    for f, _ in frames:
        x0, y0, x1, y1 = lay.die_rect_mm((f.context["die_x"], f.context["die_y"]))
        assert max(math.hypot(x, y) for x in (x0, x1) for y in (y0, y1)) <= lay.usable_radius_mm + 1e-9


def test_edge_chips_only_on_edge_dies() -> None:
    line = SyntheticWaferLine(seed=3, lots=1, wafers_per_lot=6, die_px=96, defect_rate=0.8,
                              signatures=("random", "edge_ring"))
    chips = 0
    for f, t in line.frames_with_truth():
        n = int((t.class_id == EDGE).sum())
        chips += n
        if n:
            assert f.context["is_edge_die"], f.frame_id
    assert chips > 10


def test_wafers_describe_signatures() -> None:
    line = SyntheticWaferLine(seed=1, lots=2, wafers_per_lot=3, die_px=64)
    ws = line.wafers()
    assert [w.wafer for w in ws] == ["LOT0001-W01", "LOT0001-W02", "LOT0001-W03",
                                     "LOT0002-W01", "LOT0002-W02", "LOT0002-W03"]
    assert all(w.signature in ("random", "cluster", "edge_ring", "scratch_line") for w in ws)
    assert all(len(w.dies) == len(line.layout) for w in ws)
    cyc = SyntheticWaferLine(seed=0, lots=2, wafers_per_lot=4, die_px=64, cycle_signatures=True)
    assert [w.signature for w in cyc.wafers()] == ["random", "cluster", "edge_ring", "scratch_line"] * 2


def _scratch_line_wafers(n: int = 3):
    line = SyntheticWaferLine(seed=21, lots=1, wafers_per_lot=n, die_px=320, signatures=("scratch_line",),
                              defect_rate=0.0)
    return line, line.wafers()


def test_scratch_line_is_one_straight_line_across_dies() -> None:
    line, wafers = _scratch_line_wafers()
    lay, px = line.layout, line.die_px
    for w in wafers:
        p0, p1 = np.array(w.params["p0_mm"]), np.array(w.params["p1_mm"])
        d = (p1 - p0) / np.linalg.norm(p1 - p0)
        assert len(w.signature_dies) >= 3
        # collinear: every die centre on the scratch within half a die diagonal of the line
        for die in w.signature_dies:
            c = np.array(lay.die_center_mm(die))
            dist = abs((c - p0)[0] * d[1] - (c - p0)[1] * d[0])
            assert dist <= math.hypot(lay.die_pitch_x_mm, lay.die_pitch_y_mm) / 2
        # the scratch drawn in each die lies on the global line (continuous across dies)
        hits = 0
        for die in w.signature_dies:
            _, t = line.render(w.lot_index, w.slot, die)
            sc = t.xyxy[t.class_id == SCRATCH]
            if not len(sc):
                continue  # a corner clip too short to draw
            x0, _, _, y1 = lay.die_rect_mm(die)
            cx = x0 + (sc[:, 0] + sc[:, 2]) / 2 / px * lay.die_pitch_x_mm
            cy = y1 - (sc[:, 1] + sc[:, 3]) / 2 / px * lay.die_pitch_y_mm
            dist = np.abs((cx - p0[0]) * d[1] - (cy - p0[1]) * d[0])
            assert dist.min() < 0.4, (w.wafer, die, dist)
            hits += 1
        assert hits >= 0.75 * len(w.signature_dies)
        # dies away from the line get no scratch (defect_rate=0 means no background defects)
        for die in set(w.dies) - set(w.signature_dies):
            assert die not in w.scratch_specs


def test_cluster_and_edge_ring_signatures() -> None:
    line = SyntheticWaferLine(seed=4, lots=1, wafers_per_lot=4, die_px=96, signatures=("cluster", "edge_ring"),
                              defect_rate=0.0, cycle_signatures=True)
    cluster, ring = line.wafers()[:2]
    assert cluster.signature == "cluster" and ring.signature == "edge_ring"
    c0, r = np.array(cluster.params["center_mm"]), cluster.params["radius_mm"]
    assert len(cluster.signature_dies) >= 2
    for die in cluster.dies:
        inside = np.hypot(*(np.array(line.layout.die_center_mm(die)) - c0)) <= r
        assert (die in cluster.signature_dies) == inside
        _, t = line.render(cluster.lot_index, cluster.slot, die)
        if inside:
            assert len(t) >= 1 and set(t.class_id.tolist()) <= {CLASS_ID["particle"], CLASS_ID["residue"]}
        else:
            assert len(t) == 0
    assert set(ring.signature_dies) <= set(line.layout.edge_dies())
    assert len(ring.signature_dies) >= len(line.layout.edge_dies()) // 2
    for die in ring.signature_dies:
        _, t = line.render(ring.lot_index, ring.slot, die)
        assert (t.class_id == EDGE).any()


def test_rate_and_close() -> None:
    line = SyntheticWaferLine(seed=0, die_px=64, rate_hz=40.0)
    t0 = time.monotonic()
    it = line.frames()
    got = [next(it) for _ in range(5)]
    assert time.monotonic() - t0 >= 4 / 40.0 - 0.01
    assert got[1].t_monotonic > got[0].t_monotonic
    line.close()
    assert list(it) == []


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"seed": 0, "signatures": ("spiral",)}, {"seed": 0, "lots": 0},
                                    {"seed": 0, "defect_rate": 1.5}, {"seed": 0, "rate_hz": 0.0},
                                    {"seed": 0, "class_weights": {"crack": 1.0}}])
def test_line_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticWaferLine(**kwargs)


def test_custom_layout() -> None:
    lay = WaferLayout(200.0, 25.0, 25.0, 3.0)
    line = SyntheticWaferLine(seed=2, die_px=64, layout=lay, wafers_per_lot=1)
    assert len(list(line.frames())) == len(lay)


# --- the 4k field ----------------------------------------------------------------------------

def test_render_field_puts_defects_on_tile_seams() -> None:
    img, truth = render_field(7, size=2048, n_defects=20, tile=640, overlap=64)
    img2, truth2 = render_field(7, size=2048, n_defects=20, tile=640, overlap=64)
    assert img.shape == (2048, 2048, 3) and img.dtype == np.uint8
    assert img.tobytes() == img2.tobytes()
    assert isinstance(truth, Detections)
    np.testing.assert_array_equal(truth.xyxy, truth2.xyxy)
    assert len(truth) >= 15 and set(truth.class_id.tolist()) == set(range(5))
    assert (truth.xyxy >= 0).all() and (truth.xyxy <= 2048).all()
    seams = [k * 576 + o for k in range(1, 4) for o in (0, 64)]
    crossing = sum(any(x0 < s < x1 or y0 < s < y1 for s in seams) for x0, y0, x1, y1 in truth.xyxy)
    assert crossing >= 4
