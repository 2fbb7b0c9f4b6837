"""Hats and vests to workers: the head region and torso band, not mere overlap; one each."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.core.site.ppe import DefaultPpeParams, assign_greedy, associate_ppe

A = (100, 100, 160, 300)    # a worker: 60 x 200 px, head region y 70..160, x 109..151
B = (170, 100, 230, 300)    # beside A, not touching
B_NEAR = (140, 100, 200, 300)  # overlapping A: head regions overlap around x = 149..151
HAT_ON_A = (115, 90, 145, 115)
HAT_ON_B = (185, 90, 215, 115)
VEST_ON_A = (110, 150, 150, 220)

NONE = np.zeros((0, 4))


def _run(workers, hats=(), hat_scores=(), vests=(), vest_scores=(), params=DefaultPpeParams()):
    return associate_ppe(np.array(workers, float).reshape(-1, 4), np.array(hats, float).reshape(-1, 4),
                         np.array(hat_scores, float), np.array(vests, float).reshape(-1, 4),
                         np.array(vest_scores, float), params)


@pytest.mark.parametrize("case, workers, hats, scores, expected", [
    ("hat on the head", [A], [HAT_ON_A], [0.9], [0.9]),
    ("hat slightly above the box top (box stops at the brim)", [A], [(115, 70, 145, 95)], [0.8], [0.8]),
    ("hat on the ground over the legs: overlaps, does not count", [A], [(115, 270, 145, 295)], [0.9], [0.0]),
    ("hat held at the hip: overlaps the body, does not count", [A], [(140, 200, 170, 225)], [0.9], [0.0]),
    ("hat at head height but beside the head (shoulder edge)", [A], [(150, 110, 175, 130)], [0.9], [0.0]),
    ("hat far above the head", [A], [(115, 10, 145, 35)], [0.9], [0.0]),
    ("hat below min score", [A], [HAT_ON_A], [0.2], [0.0]),
    ("two workers side by side, each own hat", [A, B], [HAT_ON_B, HAT_ON_A], [0.7, 0.9], [0.9, 0.7]),
    ("two workers, one hat: only its wearer", [A, B], [HAT_ON_B], [0.8], [0.0, 0.8]),
    ("hat between two heads goes to the head it sits on best", [A, B_NEAR], [(139, 90, 163, 110)], [0.9],
     [0.0, 0.9]),
    ("two hats on one head: the best one counts, once", [A], [HAT_ON_A, (117, 92, 143, 112)], [0.6, 0.95],
     [0.95]),
    ("no hats", [A, B], [], [], [0.0, 0.0]),
    ("no workers", [], [HAT_ON_A], [0.9], []),
])
def test_hat_association(case, workers, hats, scores, expected):
    hat, vest = _run(workers, hats, scores)
    np.testing.assert_allclose(hat, expected, atol=1e-6, err_msg=case)
    assert vest.shape == (len(workers),) and not vest.any()


@pytest.mark.parametrize("case, workers, vests, scores, expected", [
    ("vest on the torso", [A], [VEST_ON_A], [0.8], [0.8]),
    ("vest on the ground in front of the legs", [A], [(110, 260, 150, 300)], [0.8], [0.0]),
    ("vest at head height (carried on the shoulder)", [A], [(110, 95, 150, 130)], [0.8], [0.0]),
    ("vest beside the worker, torso height", [A], [(150, 150, 190, 220)], [0.8], [0.0]),
    ("vest below min score", [A], [VEST_ON_A], [0.1], [0.0]),
    ("one vest, two workers: only its wearer", [A, B], [VEST_ON_A], [0.8], [0.8, 0.0]),
])
def test_vest_association(case, workers, vests, scores, expected):
    hat, vest = _run(workers, vests=vests, vest_scores=scores)
    np.testing.assert_allclose(vest, expected, atol=1e-6, err_msg=case)
    assert not hat.any()


def test_head_fraction_and_torso_come_from_params():
    low_hat = [(115, 150, 145, 175)]  # centre y 162: outside a 0.3 head, inside a 0.5 head
    assert _run([A], low_hat, [0.9])[0][0] == 0.0
    assert _run([A], low_hat, [0.9], params=DefaultPpeParams(head_fraction=0.5))[0][0] == pytest.approx(0.9)
    low_vest = [(110, 240, 150, 270)]  # centre y 255: below a 0.2..0.7 torso, inside 0.2..0.8
    assert _run([A], vests=low_vest, vest_scores=[0.9])[1][0] == 0.0
    assert _run([A], vests=low_vest, vest_scores=[0.9],
                params=DefaultPpeParams(torso=(0.2, 0.8)))[1][0] == pytest.approx(0.9)


@pytest.mark.parametrize("affinity, expected", [
    (np.zeros((0, 3)), []),
    (np.zeros((2, 0)), [-1, -1]),
    ([[0.9, 0.0], [0.0, 0.8]], [0, 1]),
    ([[0.9, 0.8], [0.95, 0.0]], [1, 0]),       # row 1 takes col 0 first; row 0 falls back to col 1
    ([[0.5, 0.0], [0.6, 0.0]], [-1, 0]),       # one column, two rows: the stronger one
    ([[0.5, 0.5]], [0]),                        # ties: the lower index
])
def test_assign_greedy(affinity, expected):
    np.testing.assert_array_equal(assign_greedy(np.array(affinity, float)), expected)
