"""Which hard hat and which vest belong to which worker, from boxes alone (pure numpy).

Overlap is not enough: a hat carried at the hip or lying on a pallet in front of someone's legs
overlaps the person's box but protects nobody. A hat counts for a worker when its centre lies in
the worker's head region (the top ``head_fraction`` of the box, its central part, a little above
the box too, since a detector's person box may stop at the brim). A vest counts when its centre lies
in the torso band. Each hat and each vest goes to at most one worker, and each worker gets at most
one of each, greedily by score x fit, so a hat between two heads is given to the head it sits on
best, never to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

# The head region's central part: a hat whose centre is within this share of the box's half-width
# from its centre line. People are narrower at the head than at outstretched arms.
_HEAD_HALF_WIDTH = 0.35
# How far above the box top a hat centre may sit, in units of the head region's height.
_ABOVE_TOP = 0.5
# The torso band's horizontal extent: the central part of the box (arms spread widen boxes).
_TORSO_HALF_WIDTH = 0.4


class PpeParams(Protocol):
    """What association needs (``inspector.config.schema.site.PpeAssociation`` has these fields)."""

    head_fraction: float
    torso: tuple[float, float]
    hat_min_score: float
    vest_min_score: float


@dataclass(frozen=True, slots=True)
class DefaultPpeParams:
    head_fraction: float = 0.3
    torso: tuple[float, float] = (0.2, 0.7)
    hat_min_score: float = 0.3
    vest_min_score: float = 0.3


def _boxes(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1, 4)


def _centres(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5


def hat_fit(workers_xyxy: np.ndarray, hats_xyxy: np.ndarray, head_fraction: float) -> np.ndarray:
    """(N, M) fit in [0, 1] of hat j on worker i's head; 0 where the hat's centre is outside the
    head region. 1 = centred on the head's centre line."""
    w, h = _boxes(workers_xyxy), _boxes(hats_xyxy)
    wx, _ = _centres(w)
    hx, hy = _centres(h)
    half = np.maximum((w[:, 2] - w[:, 0]) * _HEAD_HALF_WIDTH, 1e-9)[:, None]
    head_h = np.maximum((w[:, 3] - w[:, 1]) * head_fraction, 1e-9)[:, None]
    top = w[:, 1:2]
    dx = np.abs(hx[None, :] - wx[:, None]) / half
    in_y = (hy[None, :] >= top - _ABOVE_TOP * head_h) & (hy[None, :] <= top + head_h)
    return np.where(in_y & (dx <= 1.0), 1.0 - 0.5 * dx, 0.0)  # at the region's side still 0.5 > 0


def vest_fit(workers_xyxy: np.ndarray, vests_xyxy: np.ndarray, torso: tuple[float, float]) -> np.ndarray:
    """(N, M) fit in [0, 1] of vest j on worker i's torso; 0 where the vest's centre is outside the
    torso band."""
    w, v = _boxes(workers_xyxy), _boxes(vests_xyxy)
    wx, _ = _centres(w)
    vx, vy = _centres(v)
    hgt = (w[:, 3] - w[:, 1])[:, None]
    half = np.maximum((w[:, 2] - w[:, 0]) * _TORSO_HALF_WIDTH, 1e-9)[:, None]
    y0, y1 = w[:, 1:2] + torso[0] * hgt, w[:, 1:2] + torso[1] * hgt
    dx = np.abs(vx[None, :] - wx[:, None]) / half
    in_band = (vy[None, :] >= y0) & (vy[None, :] <= y1) & (dx <= 1.0)
    return np.where(in_band, 1.0 - 0.5 * dx, 0.0)


def assign_greedy(affinity: np.ndarray) -> np.ndarray:
    """One-to-one greedy assignment on an (N, M) affinity (0 = not allowed): for each row, the
    column it got, or -1. Highest affinity first; ties go to the lower indices (deterministic)."""
    a = np.asarray(affinity, dtype=np.float64)
    n = a.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    if a.size == 0:
        return out
    rows, cols = np.nonzero(a > 0)
    order = np.lexsort((cols, rows, -a[rows, cols]))
    row_free = np.ones(n, dtype=bool)
    col_free = np.ones(a.shape[1], dtype=bool)
    # A loop over candidate pairs (a handful of people and items per frame), not over pixels.
    for r, c in zip(rows[order].tolist(), cols[order].tolist()):
        if row_free[r] and col_free[c]:
            out[r] = c
            row_free[r] = col_free[c] = False
    return out


def _matched_scores(fit: np.ndarray, scores: np.ndarray, min_score: float) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    aff = fit * np.where(s >= min_score, s, 0.0)[None, :]
    match = assign_greedy(aff)
    return np.where(match >= 0, s[np.clip(match, 0, None)] if len(s) else 0.0, 0.0).astype(np.float32)


def associate_ppe(workers_xyxy: np.ndarray, hats_xyxy: np.ndarray, hats_score: np.ndarray,
                  vests_xyxy: np.ndarray, vests_score: np.ndarray,
                  params: PpeParams = DefaultPpeParams()) -> tuple[np.ndarray, np.ndarray]:
    """Per worker, the score of the hat and of the vest associated with it (0 when none)."""
    w = _boxes(workers_xyxy)
    hat = _matched_scores(hat_fit(w, hats_xyxy, params.head_fraction), hats_score, params.hat_min_score)
    vest = _matched_scores(vest_fit(w, vests_xyxy, tuple(params.torso)), vests_score, params.vest_min_score)
    return hat, vest
