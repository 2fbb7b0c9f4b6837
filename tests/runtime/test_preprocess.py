"""Letterbox geometry, exact inverse mapping, channel handling and buffer reuse."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.runtime.preprocess import Preprocessor, as_bgr_or_grey, letterbox_params

# (height, width): square, wide, tall, tiny, thin, odd, exact, huge (wafer scan)
SIZES = [(480, 640), (640, 480), (320, 320), (1, 1), (3, 1000), (1000, 3), (777, 1001), (37, 53),
         (2048, 2048), (8000, 6000), (1080, 1920), (319, 321), (100, 80)]


@pytest.mark.parametrize("imgsz", [(320, 320), (640, 640), (384, 640)])
@pytest.mark.parametrize(("h", "w"), SIZES)
def test_known_boxes_round_trip_exactly(h: int, w: int, imgsz: tuple[int, int]) -> None:
    lb = letterbox_params(h, w, imgsz)
    rng = np.random.default_rng(h * 7919 + w)
    x1, y1 = rng.uniform(0, w, 50), rng.uniform(0, h, 50)
    boxes = np.stack([x1, y1, rng.uniform(x1, w), rng.uniform(y1, h)], 1)
    inp = lb.to_input(boxes)
    # The content occupies exactly [pad, pad + new) in the input.
    assert np.all(inp[:, 0::2] >= lb.pad_x - 1e-6) and np.all(inp[:, 0::2] <= lb.pad_x + lb.new_w + 1e-6)
    assert np.all(inp[:, 1::2] >= lb.pad_y - 1e-6) and np.all(inp[:, 1::2] <= lb.pad_y + lb.new_h + 1e-6)
    back = lb.to_original(inp)
    # float32 output: relative precision ~6e-8, so 1e-3 px holds up to ~8000 px images.
    np.testing.assert_allclose(back, boxes, atol=1e-3 * max(1.0, max(h, w) / 4000), rtol=0)
    # The full image maps onto the full content rectangle.
    full = lb.to_input(np.array([[0, 0, w, h]]))[0]
    np.testing.assert_allclose(full, [lb.pad_x, lb.pad_y, lb.pad_x + lb.new_w, lb.pad_y + lb.new_h], atol=1e-9)


def test_letterbox_params_hand_computed() -> None:
    lb = letterbox_params(480, 640, (320, 320))
    assert (lb.new_w, lb.new_h, lb.pad_x, lb.pad_y) == (320, 240, 0, 40)
    assert lb.scale_x == lb.scale_y == 0.5
    lb = letterbox_params(777, 1001, (320, 320))  # 777 * 320/1001 = 248.39 -> 248: per-axis scale differs from r
    assert (lb.new_w, lb.new_h, lb.pad_x, lb.pad_y) == (320, 248, 0, 36)
    assert lb.scale_y == 248 / 777 != lb.scale_x
    lb = letterbox_params(3, 1000, (320, 320))
    assert (lb.new_w, lb.new_h) == (320, 1)  # thin images keep at least one row


def test_drawn_rectangle_lands_where_the_mapping_says() -> None:
    """Pixel check: a red rectangle's mass in the R channel, mapped back, is the drawn rectangle."""
    h, w = 90, 130  # upscaled (x 2.46): linear interpolation preserves the mass of a step edge
    img = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = 30, 20, 90, 60
    img[y0:y1, x0:x1] = (0, 0, 255)  # BGR red
    x, infos = Preprocessor(320)([img])
    lb = infos[0]
    r, b = x[0, 0], x[0, 2]
    assert b.max() == 0.0 or np.isclose(b.max(), 114 / 255)  # blue has only padding: BGR->RGB happened
    inside = r[lb.pad_y : lb.pad_y + lb.new_h, lb.pad_x : lb.pad_x + lb.new_w]
    cols, rows = inside.sum(0) / inside.sum(0).max(), inside.sum(1) / inside.sum(1).max()
    # Centre of mass (+0.5: pixel i covers [i, i + 1)) and mass = extent, in input pixels.
    cx = (cols * np.arange(len(cols))).sum() / cols.sum() + 0.5 + lb.pad_x
    cy = (rows * np.arange(len(rows))).sum() / rows.sum() + 0.5 + lb.pad_y
    bw, bh = cols.sum(), rows.sum()
    measured = np.array([[cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]])
    np.testing.assert_allclose(lb.to_original(measured)[0], [x0, y0, x1, y1], atol=0.25)


def test_pad_value_and_layout() -> None:
    img = np.full((100, 300, 3), 200, np.uint8)
    x, (lb,) = Preprocessor(320)([img])
    assert x.shape == (1, 3, 320, 320) and x.dtype == np.float32 and x.flags.c_contiguous
    assert lb.pad_y > 0
    np.testing.assert_array_equal(x[0, :, : lb.pad_y], np.float32(114 / 255))
    np.testing.assert_array_equal(x[0, :, lb.pad_y + lb.new_h :], np.float32(114 / 255))
    np.testing.assert_allclose(x[0, :, lb.pad_y : lb.pad_y + lb.new_h], 200 / 255, atol=1e-6)


@pytest.mark.parametrize(("h", "w"), [(480, 640), (777, 1001), (100, 80), (320, 320), (1, 1)])
def test_matches_ultralytics_letterbox(h: int, w: int) -> None:
    from ultralytics.data.augment import LetterBox

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = LetterBox((320, 320), auto=False)(image=img)
    ref = ref[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    x, _ = Preprocessor(320)([img])
    np.testing.assert_allclose(x[0], ref, atol=1e-6)


def test_grey_inputs_equal_replicated_colour() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (200, 333), dtype=np.uint8)
    colour = np.repeat(grey[:, :, None], 3, axis=2)
    pre = Preprocessor(320)
    a = pre([grey])[0].copy()
    b = pre([grey[:, :, None]])[0].copy()
    c = pre([colour])[0].copy()
    bgra = np.concatenate([colour, np.full((200, 333, 1), 7, np.uint8)], axis=2)
    d = pre([bgra])[0].copy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, c, atol=1e-6)
    np.testing.assert_allclose(a, d, atol=1e-6)
    np.testing.assert_array_equal(a[0, 0], a[0, 1])


def test_buffers_are_reused_and_leave_nothing_stale() -> None:
    rng = np.random.default_rng(2)
    full = rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)  # no padding at all
    wide = rng.integers(0, 256, (100, 320, 3), dtype=np.uint8)  # padding top and bottom
    pre = Preprocessor(320)
    first, _ = pre([full, full])
    second, _ = pre([wide])
    assert np.shares_memory(first, second)  # the same buffer, no new allocation
    fresh, _ = Preprocessor(320)([wide])
    np.testing.assert_array_equal(second, fresh)


def test_tile_views_need_no_copy_and_match_copies() -> None:
    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (1000, 1200, 3), dtype=np.uint8)
    view = big[100:420, 200:520]
    assert not view.flags.c_contiguous
    pre = Preprocessor(320)
    a = pre([view])[0].copy()
    b = pre([np.ascontiguousarray(view)])[0]
    np.testing.assert_array_equal(a, b)


def test_bad_inputs_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="uint16"):
        as_bgr_or_grey(np.zeros((10, 10), np.uint16))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        as_bgr_or_grey(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(ValueError, match="empty"):
        as_bgr_or_grey(np.zeros((0, 10, 3), np.uint8))


@pytest.mark.parametrize(("h", "w"), [(480, 640), (500, 640), (777, 1001), (100, 80), (1, 1), (1080, 1920)])
def test_rect_mode_matches_ultralytics_auto_letterbox(h: int, w: int) -> None:
    from ultralytics.data.augment import LetterBox

    img = np.random.default_rng(4).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = LetterBox((320, 320), auto=True, stride=32)(image=img)
    ref = ref[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    pre = Preprocessor(320, stride=32)
    x, (lb,) = pre([img])
    assert x.shape[2:] == ref.shape[1:] == (lb.in_h, lb.in_w)
    assert lb.in_h % 32 == 0 and lb.in_w % 32 == 0
    np.testing.assert_allclose(x[0], ref, atol=1e-6)
    box = np.array([[0, 0, w, h]], np.float64)
    np.testing.assert_allclose(lb.to_original(lb.to_input(box)), box, atol=1e-3)


def test_rect_mode_falls_back_to_square_for_mixed_sizes() -> None:
    pre = Preprocessor(320, stride=32)
    a, b = np.zeros((480, 640, 3), np.uint8), np.zeros((100, 100, 3), np.uint8)
    assert pre.input_shape([a, a]) == (256, 320)
    x, infos = pre([a, b])
    assert x.shape == (2, 3, 320, 320) and infos[0].in_h == 320
