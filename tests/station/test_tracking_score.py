"""MOTA / IDF1 with motmetrics against known truth."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.site.types import SiteFrame, TrackedWorker
from inspector.station.tracking_score import TrackingScorer, score_tracks

N = 40


def truth():
    """Two people walking apart; per frame (ids, boxes)."""
    out = []
    for i in range(N):
        out.append((np.array([1, 2]), np.array([[100 + 5 * i, 100, 160 + 5 * i, 300],
                                                [600 - 5 * i, 100, 660 - 5 * i, 300]], float)))
    return out


def test_a_perfect_tracker_scores_one():
    s = score_tracks([(g, b, g + 10, b + 2) for g, b in truth()])  # other ids, boxes off by 2 px
    assert s.mota == pytest.approx(1.0) and s.idf1 == pytest.approx(1.0)
    assert (s.id_switches, s.mostly_tracked, s.mostly_lost, s.true_tracks, s.frames, s.objects) == (0, 2, 0, 2, N, 2 * N)


def test_an_id_swap_lowers_idf1_and_counts_switches():
    frames = [(g, b, np.array([10, 20]) if i < N // 2 else np.array([20, 10]), b) for i, (g, b) in enumerate(truth())]
    s = score_tracks(frames)
    assert s.id_switches == 2
    assert s.idf1 == pytest.approx(0.5)
    assert s.mota == pytest.approx(1 - 2 / (2 * N))


def test_misses_false_positives_and_unconfirmed_tracks():
    frames = []
    for i, (g, b) in enumerate(truth()):
        if i < N // 2:   # person 2 missed for half the run, and a ghost box appears
            frames.append((g, b, np.array([10, 99, -1]), np.array([b[0], [0, 0, 20, 20], b[1]])))
        else:            # -1: unconfirmed, left out (so person 2 is still missed)
            frames.append((g, b, np.array([10, -1]), b))
    s = score_tracks(frames)
    assert s.misses == N and s.false_positives == N // 2
    assert s.mota == pytest.approx(1 - (N + N // 2) / (2 * N))
    assert s.mostly_lost == 1 and s.mostly_tracked == 1


def test_iou_min_decides_a_match():
    frames = [(g, b, g, b + [30, 0, 30, 0]) for g, b in truth()]  # IoU 0.33 with the truth
    assert score_tracks(frames, iou_min=0.5).mota < 0
    assert score_tracks(frames, iou_min=0.3).mota == pytest.approx(1.0)


def test_site_frames_and_empty_scorer():
    assert TrackingScorer().score().frames == 0
    sc = TrackingScorer()
    for g, b in truth():
        ws = tuple(TrackedWorker(int(t) + 5, tuple(map(float, box)), 0.9, True, True, 0.9, 0.9)
                   for t, box in zip(g, b))
        sc.add_site_frame(g, b, SiteFrame("cam-1", ws))
    s = sc.score()
    assert s.mota == pytest.approx(1.0) and s.idf1 == pytest.approx(1.0)
    assert set(s.as_dict()) >= {"mota", "idf1", "id_switches", "mostly_tracked", "mostly_lost"}
