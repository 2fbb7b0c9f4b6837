"""Which zone each worker stands in: the foot point (bottom centre of the box) against each zone's
polygon, vectorised over workers and polygon edges.

A point on a zone's outline counts as inside: a foot on the painted line of a danger zone is in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inspector.core.geometry import points_in_polygon

ZONE_KINDS: tuple[str, ...] = ("restricted", "ppe_required", "exclusion", "inspection")


@dataclass(frozen=True, slots=True)
class SiteZone:
    """A zone drawn on one camera's image (pixel coordinates of that camera)."""

    id: str
    kind: str
    polygon: tuple[tuple[float, float], ...]

    def as_tuple(self) -> tuple[str, str, tuple[tuple[float, float], ...]]:
        """The form ``SiteFrame.zones`` carries."""
        return (self.id, self.kind, self.polygon)


def foot_points(xyxy: np.ndarray) -> np.ndarray:
    """(N, 2) bottom-centre points of (N, 4) boxes: where a standing person touches the ground."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, b[:, 3]], axis=1)


def on_outline(points: np.ndarray, polygon: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Whether each of (N, 2) points lies on the polygon's outline (within ``tol`` pixels)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 2 or len(pts) == 0:
        return np.zeros(len(pts), dtype=bool)
    a = poly[None, :, :]                       # (1, K, 2) edge starts
    d = np.roll(poly, -1, axis=0)[None] - a    # (1, K, 2) edge vectors
    p = pts[:, None, :] - a                    # (N, K, 2)
    len2 = np.maximum((d * d).sum(-1), 1e-300)
    t = np.clip((p * d).sum(-1) / len2, 0.0, 1.0)
    nearest = p - t[..., None] * d
    return ((nearest * nearest).sum(-1) <= tol * tol).any(axis=1)


def inside(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Whether each point lies inside the polygon or on its outline (concave polygons included);
    fewer than 3 vertices enclose nothing."""
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3:
        return np.zeros(len(np.asarray(points).reshape(-1, 2)), dtype=bool)
    return points_in_polygon(points, poly) | on_outline(points, poly)


def membership(points: np.ndarray, zones: Sequence[SiteZone], tol: float = 1e-6) -> np.ndarray:
    """(N, Z) bool: point i stands in zone j (inside or on the outline). All zones' edges are
    tested in one pass (even-odd crossings counted per zone), not zone by zone."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    out = np.zeros((len(pts), len(zones)), dtype=bool)
    polys = [(j, np.asarray(z.polygon, dtype=np.float64).reshape(-1, 2)) for j, z in enumerate(zones)]
    polys = [(j, p) for j, p in polys if len(p) >= 3]  # fewer than 3 vertices enclose nothing
    if not polys or not len(pts):
        return out
    a = np.concatenate([p for _, p in polys])                         # (E, 2) edge starts
    b = np.concatenate([np.roll(p, -1, axis=0) for _, p in polys])    # (E, 2) edge ends
    owner = np.zeros((len(a), len(zones)))                            # (E, Z) edge -> zone
    owner[np.arange(len(a)), np.repeat([j for j, _ in polys], [len(p) for _, p in polys])] = 1.0
    x, y = pts[:, 0:1], pts[:, 1:2]
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    dy = b[:, 1] - a[:, 1]
    x_at = a[:, 0] + (y - a[:, 1]) * np.divide(b[:, 0] - a[:, 0], dy, out=np.zeros_like(dy), where=dy != 0)
    odd = ((crosses & (x < x_at)).astype(np.float64) @ owner) % 2 == 1
    d = b - a
    rel = pts[:, None, :] - a[None]
    s = np.clip((rel * d).sum(-1) / np.maximum((d * d).sum(-1), 1e-300), 0.0, 1.0)
    near = rel - s[..., None] * d
    edge = ((near * near).sum(-1) <= tol * tol).astype(np.float64) @ owner > 0
    return odd | edge


def zones_of(xyxy: np.ndarray, zones: Sequence[SiteZone]) -> tuple[tuple[str, ...], ...]:
    """For each box, the ids of the zones its foot point stands in (in the zones' order)."""
    m = membership(foot_points(xyxy), zones)
    ids = [z.id for z in zones]
    return tuple(tuple(z for z, hit in zip(ids, row) if hit) for row in m.tolist())
