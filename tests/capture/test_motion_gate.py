"""The motion gate: noise and a brightness change are no motion, a small mover is; never more than
max_skip_s without an inferred frame; a hold after motion."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.capture.motion_gate import (
    FIRST, HOLD, MAX_GAP, MOTION, STATIC, MotionGate, MotionGateParams, changed_share, small_grey,
)

H, W = 540, 960


def _scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 200, (H // 20, W // 20, 3), dtype=np.uint8)
    return np.kron(img, np.ones((20, 20, 1), np.uint8))  # blocky texture, like a site's ground and stacks


def _noisy(img: np.ndarray, rng: np.random.Generator, sigma: float = 3.0) -> np.ndarray:
    return np.clip(img.astype(np.float32) + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def _with_worker(img: np.ndarray, x: int, y: int = 250, w: int = 30, h: int = 80) -> np.ndarray:
    out = img.copy()
    out[y:y + h, x:x + w] = (0, 140, 255)  # a small hi-vis figure: about 0.5 % of the image
    return out


def test_small_grey_keeps_aspect_and_size():
    s = small_grey(_scene(), 256, 3)
    assert s.shape == (144, 256) and s.dtype == np.float32
    assert small_grey(np.zeros((100, 120), np.uint8), 256).shape == (100, 120)  # never enlarged


@pytest.mark.parametrize("change, moves", [
    ("noise", False),
    ("brighter", False),      # auto exposure / a cloud: a global shift
    ("worker", True),
    ("worker_far", True),     # a smaller, farther figure
])
def test_changed_share_tells_motion_from_noise(change, moves):
    rng = np.random.default_rng(1)
    base = _scene()
    p = MotionGateParams()
    a = small_grey(_noisy(base, rng), p.width, p.blur)
    other = {
        "noise": _noisy(base, rng),
        "brighter": _noisy(np.clip(base.astype(np.int16) + 25, 0, 255).astype(np.uint8), rng),
        "worker": _noisy(_with_worker(base, 400), rng),
        "worker_far": _noisy(_with_worker(base, 600, w=16, h=40), rng),
    }[change]
    share = changed_share(small_grey(other, p.width, p.blur), a, p.noise_k, p.min_diff)
    assert (share > p.min_area) is moves, share


def test_static_scene_is_skipped_but_never_longer_than_max_skip():
    rng = np.random.default_rng(2)
    base = _scene()
    gate = MotionGate(MotionGateParams(max_skip_s=1.0, hold_s=0.0))
    fps = 5.0
    decisions = [gate.decide(_noisy(base, rng), i / fps) for i in range(30)]
    reasons = [d.reason for d in decisions]
    assert reasons[0] == FIRST
    assert set(reasons[1:]) == {STATIC, MAX_GAP}
    inferred_t = [i / fps for i, d in enumerate(decisions) if d.infer]
    assert max(np.diff(inferred_t)) <= 1.0 + 1e-9
    assert reasons.count(STATIC) >= 20  # most of a still scene is skipped


def test_motion_is_inferred_then_held():
    rng = np.random.default_rng(3)
    base = _scene()
    gate = MotionGate(MotionGateParams(max_skip_s=10.0, hold_s=0.5))
    fps = 5.0
    seq = [base] * 5 + [_with_worker(base, 100 + 20 * k) for k in range(5)] + [_with_worker(base, 180)] * 10
    reasons = [gate.decide(_noisy(img, rng), i / fps).reason for i, img in enumerate(seq)]
    assert reasons[:5] == [FIRST] + [STATIC] * 4
    assert reasons[5:10] == [MOTION] * 5
    # 0.2 s after the last move the scene looks still, yet the hold keeps looking for 0.5 s.
    assert reasons[10:13] == [HOLD, HOLD, STATIC]
    assert reasons[-1] == STATIC


def test_slow_mover_accumulates_against_the_last_inferred_frame():
    # 1 px per sample is under the threshold frame to frame, but not against the last inferred frame.
    rng = np.random.default_rng(4)
    base = _scene()
    gate = MotionGate(MotionGateParams(max_skip_s=100.0, hold_s=0.0))
    reasons = [gate.decide(_noisy(_with_worker(base, 300 + k), rng), k * 0.2).reason for k in range(40)]
    assert MOTION in reasons[1:]


@pytest.mark.parametrize("kwargs", [{"width": 8}, {"blur": 2}, {"min_area": 1.0}, {"max_skip_s": 0},
                                    {"hold_s": -1}])
def test_bad_params_are_refused(kwargs):
    with pytest.raises(ValueError):
        MotionGateParams(**kwargs)


def test_an_empty_scene_waits_up_to_idle_max_skip_but_motion_still_wakes_it():
    rng = np.random.default_rng(5)
    base = _scene()
    gate = MotionGate(MotionGateParams(max_skip_s=1.0, idle_max_skip_s=4.0, hold_s=0.0))
    fps = 5.0
    decisions = [gate.decide(_noisy(base, rng), i / fps, idle=True) for i in range(30)]
    inferred_t = [i / fps for i, d in enumerate(decisions) if d.infer]
    assert inferred_t == [0.0, 4.0]  # the first frame, then one look after 4 s of an empty, still scene
    assert gate.decide(_noisy(_with_worker(base, 400), rng), 30 / fps, idle=True).reason == MOTION
    never_less = MotionGate(MotionGateParams(max_skip_s=2.0, idle_max_skip_s=1.0, hold_s=0.0))
    assert [never_less.decide(base, i / fps, idle=True).infer for i in range(11)] == [True] + [False] * 9 + [True]


def test_a_decoder_shrunk_grey_image_gates_like_the_full_frame():
    import cv2

    rng = np.random.default_rng(6)
    base = _scene()
    p = MotionGateParams(hold_s=0.0)
    assert p.size_for(W, H) == (256, 144) and p.size_for(120, 100) == (120, 100)
    seq = [base] * 3 + [_with_worker(base, 100 + 40 * k) for k in range(4)] + [base] * 3
    full, grey = MotionGate(p), MotionGate(p)
    for i, img in enumerate(seq):
        img = _noisy(img, rng)
        small = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), p.size_for(W, H), interpolation=cv2.INTER_AREA)
        a, b = full.decide(img, i * 0.2), grey.decide_grey(small, i * 0.2)
        assert (a.infer, a.reason) == (b.infer, b.reason), i
