"""Tiled inference: exact seam merging, checked with a fake detector that sees coloured rectangles.

The fake thresholds pure red / pure green and returns connected components, so a rectangle partly
outside a tile comes back as exactly the visible part, cut at the tile edge: what a detector does.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from inspector.core.detections import Detections
from inspector.core.ports import Detector
from inspector.runtime.tiling import TiledDetector, make_tiles, tile_origins

COLOURS = {0: (0, 0, 255), 1: (0, 255, 0)}  # BGR: class 0 red, class 1 green
H, W = 1500, 2000
TILE, OVERLAP = 640, 0.2  # tile origins x: 0, 453, 906, 1360; y: 0, 430, 860 (overlaps >= 128 px)


class ColourBlobDetector:
    class_names = ("red", "green")

    def __init__(self) -> None:
        self.model_index = 0
        self.calls: list[list[np.ndarray]] = []

    def detect(self, images: Sequence[np.ndarray]) -> list[Detections]:
        self.calls.append(list(images))
        out = []
        for im in images:
            boxes, cls = [], []
            for c, bgr in COLOURS.items():
                mask = cv2.inRange(im, bgr, bgr)
                n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
                for x, y, w, h, _ in stats[1:n]:
                    boxes.append((x, y, x + w, y + h))
                    cls.append(c)
            b = np.array(boxes, np.float32).reshape(-1, 4)
            # Score grows with the visible area: cut fragments score lower than whole views.
            score = 0.5 + 0.4 * np.minimum(1.0, (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / 1e4)
            out.append(Detections(b, score, cls, self.model_index))
        return out


def draw(rects: Sequence[tuple[int, int, int, int, int]], h: int = H, w: int = W) -> np.ndarray:
    img = np.full((h, w, 3), 40, np.uint8)
    for x0, y0, x1, y1, c in rects:
        img[y0:y1, x0:x1] = COLOURS[c]
    return img


def run(rects: Sequence[tuple[int, int, int, int, int]], **kw) -> Detections:
    return TiledDetector(ColourBlobDetector(), tile=TILE, overlap=OVERLAP, **kw).detect([draw(rects)])[0]


def assert_exactly(got: Detections, rects: Sequence[tuple[int, int, int, int, int]]) -> None:
    """One box per rectangle, within 1 px, nothing else."""
    assert len(got) == len(rects), f"{len(got)} boxes for {len(rects)} objects:\n{got.xyxy}"
    want = np.array([r[:4] for r in rects], np.float32)
    order = np.lexsort((got.xyxy[:, 1], got.xyxy[:, 0]))
    worder = np.lexsort((want[:, 1], want[:, 0]))
    np.testing.assert_allclose(got.xyxy[order], want[worder], atol=1.0)
    np.testing.assert_array_equal(got.class_id[order], np.array([r[4] for r in rects])[worder])


def test_tiles_cover_the_image_exactly_with_the_overlap() -> None:
    assert tile_origins(2000, 640, 128) == [0, 453, 906, 1360]
    assert tile_origins(640, 640, 128) == [0] and tile_origins(100, 640, 128) == [0]
    for length in range(641, 5000, 37):
        o = tile_origins(length, 640, 128)
        assert o[0] == 0 and o[-1] == length - 640
        assert all(640 - (b - a) >= 128 for a, b in zip(o, o[1:]))  # at least the requested overlap
    tiles = make_tiles(H, W, TILE, 128)
    cover = np.zeros((H, W), np.uint8)
    for t in tiles:
        assert (t.x1 - t.x0, t.y1 - t.y0) == (TILE, TILE)
        cover[t.y0 : t.y1, t.x0 : t.x1] = 1
    assert cover.all() and len(tiles) == 12


def test_defect_straddling_a_vertical_seam_is_one_whole_box() -> None:
    rects = [(600, 200, 700, 260, 0)]  # crosses x = 640 (end of tile 0), whole in tile 1
    assert_exactly(run(rects), rects)


def test_defect_straddling_a_horizontal_seam_is_one_whole_box() -> None:
    rects = [(100, 400, 180, 470, 1)]  # crosses y = 430 (start of row 1)
    assert_exactly(run(rects), rects)


def test_defect_in_a_four_tile_corner_is_one_box() -> None:
    rects = [(600, 600, 700, 700, 0), (1300, 1000, 1400, 1100, 1)]  # each seen by 4 tiles, cut by 3
    assert_exactly(run(rects), rects)


def test_defect_longer_than_the_overlap_is_the_union_of_its_fragments() -> None:
    rects = [(300, 500, 1100, 520, 0),  # a long scratch over 3 columns of tiles: no tile sees it whole
             (1200, 50, 1230, 1450, 1)]  # a tall one over all 3 rows
    assert_exactly(run(rects), rects)


def test_close_distinct_defects_at_a_seam_stay_separate() -> None:
    rects = [(620, 300, 660, 330, 0), (663, 300, 690, 330, 0),  # 3 px apart around x = 640
             (600, 350, 700, 380, 0), (600, 381, 700, 400, 1)]  # touching, different classes
    assert_exactly(run(rects), rects)


def test_defects_inside_the_overlap_are_not_duplicated() -> None:
    rects = [(470, 100, 500, 130, 0), (500, 450, 560, 600, 1), (920, 870, 950, 900, 0)]
    assert_exactly(run(rects), rects)


def test_at_the_image_border_is_not_a_cut() -> None:
    rects = [(0, 0, 50, 50, 0), (1950, 1450, 2000, 1500, 1), (0, 700, 30, 760, 0)]
    assert_exactly(run(rects), rects)


@pytest.mark.parametrize("seed", range(5))
def test_random_layouts_equal_whole_image_detection(seed: int) -> None:
    """Rectangles no larger than the overlap, anywhere (seams included): tiled == untiled, exactly."""
    rng = np.random.default_rng(seed)
    occupied = np.zeros((H, W), bool)
    rects = []
    while len(rects) < 40:
        w, h = (int(v) for v in rng.integers(3, 128, 2))
        x, y = int(rng.integers(0, W - w)), int(rng.integers(0, H - h))
        if occupied[max(0, y - 2) : y + h + 2, max(0, x - 2) : x + w + 2].any():
            continue  # keep rectangles apart so connected components stay separate
        occupied[y : y + h, x : x + w] = True
        rects.append((x, y, x + w, y + h, int(rng.integers(0, 2))))
    got = run(rects)
    assert_exactly(got, rects)
    assert np.all(np.diff(got.score) <= 0)  # sorted, best first


def test_small_images_pass_straight_through_as_views() -> None:
    inner = ColourBlobDetector()
    tiled = TiledDetector(inner, tile=TILE, overlap=OVERLAP)
    small = draw([(10, 10, 40, 40, 0)], 480, 640)
    out = tiled.detect([small])
    assert len(inner.calls) == 1 and inner.calls[0][0] is small or np.shares_memory(inner.calls[0][0], small)
    assert_exactly(out[0], [(10, 10, 40, 40, 0)])


def test_tiles_are_batched_zero_copy_views_across_images() -> None:
    inner = ColourBlobDetector()
    tiled = TiledDetector(inner, tile=TILE, overlap=OVERLAP, batch=5)
    big = draw([(600, 600, 700, 700, 0)])
    small = draw([(5, 5, 9, 9, 1)], 300, 300)
    run = tiled.detect_timed([big, small, big])
    out = run.detections
    assert [len(c) for c in inner.calls] == [5, 5, 5, 5, 5]  # 12 + 1 + 12 tiles, in full batches
    assert all(np.shares_memory(v, big) or np.shares_memory(v, small) for c in inner.calls for v in c)
    assert_exactly(out[0], [(600, 600, 700, 700, 0)])
    assert_exactly(out[1], [(5, 5, 9, 9, 1)])
    assert_exactly(out[2], [(600, 600, 700, 700, 0)])
    assert run.timings_ms["tiles"] == 25 and run.timings_ms["inference_ms"] == 0.0  # an untimed inner adds none


def test_protocol_and_model_index_pass_through() -> None:
    inner = ColourBlobDetector()
    tiled = TiledDetector(inner, tile=TILE)
    assert isinstance(tiled, Detector) and tiled.class_names == ("red", "green")
    tiled.model_index = 2
    d = tiled.detect([draw([(600, 200, 700, 260, 0)])])[0]
    assert inner.model_index == 2 and d.model_index.tolist() == [2] and d.support.tolist() == [4]
    with pytest.raises(ValueError):
        TiledDetector(inner, tile=TILE, overlap=1.0)
    with pytest.raises(ValueError, match="tile size"):
        TiledDetector(inner)


def test_with_the_onnx_detector(yolo_files, scene) -> None:
    from inspector.runtime.onnx_detector import OnnxDetector

    det = OnnxDetector.from_manifest(yolo_files.static_manifest, threads=2)
    tiled = TiledDetector(det, overlap=0.25, batch=4)  # tile defaults to the model input, 320
    assert tiled.tile == 320
    img = scene(np.random.default_rng(7), 700, 1000)
    run = tiled.detect_timed([img])
    out = run.detections[0]
    assert run.timings_ms["tiles"] == len(tiled.tiles_for(700, 1000)) == 12
    assert run.timings_ms["inference_ms"] > 0  # the ONNX detector's own stage times, summed over tiles
    assert np.all(out.xyxy >= 0) and np.all(out.xyxy[:, 2] <= 1000) and np.all(out.xyxy[:, 3] <= 700)
