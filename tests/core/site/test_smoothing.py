"""PPE smoothing: the majority over a short window, per track."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.site.smoothing import PpeSmoother


def feed(smoother, seq, tid=1, fps=10):
    """seq: raw hat states per frame; returns the smoothed hat states."""
    out = []
    for i, h in enumerate(seq):
        hat, _ = smoother.update(i / fps, [tid], np.array([h]), np.array([True]))
        out.append(bool(hat[0]))
    return out


@pytest.mark.parametrize("case, raw, smoothed", [
    ("one missed hat is no violation", [1, 1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 1]),
    ("a removed hat shows after half the window", [1] * 6 + [0] * 6, [1] * 6 + [1, 1, 1, 0, 0, 0]),
    ("one lucky box does not hide a missing hat", [0, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0]),
    ("tie counts as worn", [0, 1], [0, 1]),
])
def test_majority(case, raw, smoothed):
    assert feed(PpeSmoother(0.5), [bool(x) for x in raw]) == [bool(x) for x in smoothed], case


def test_zero_window_is_raw():
    raw = [True, False, True, False]
    assert feed(PpeSmoother(0.0), raw) == raw


def test_tracks_are_independent_and_unconfirmed_pass_raw():
    s = PpeSmoother(0.5)
    for i in range(5):
        s.update(i / 10, [1, 2], np.array([True, False]), np.array([True, True]))
    hat, vest = s.update(0.5, [1, 2, -1], np.array([False, True, False]), np.array([False, True, True]))
    assert hat.tolist() == [True, False, False] and vest.tolist() == [True, True, True]


def test_old_tracks_are_forgotten():
    s = PpeSmoother(0.5, forget_s=2.0)
    s.update(0.0, [1], np.array([True]), np.array([True]))
    s.update(5.0, [2], np.array([True]), np.array([True]))
    assert 1 not in s._hist and 2 in s._hist
