"""The die design (the "product"): a circuit-like tile drawn once per size and product, cached,
then warped per die; and the per-die ``Surface`` that defects are drawn against."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

NOISE_MARGIN = 64
_PRODUCT_SEED = 0x1C0DE


@dataclass(frozen=True, eq=False)
class _Design:
    size: int
    pad: int
    canvas: np.ndarray  # (size + 2 pad)^2 x 3 uint8: the nominal die incl. street, margins = street
    under: np.ndarray  # the same without the top metal layer (what a missing pattern reveals)
    top_mask: np.ndarray  # (size + 2 pad)^2 uint8: top-metal coverage, softened like the image
    features: np.ndarray  # (K, 4) top-metal rectangles (x0, y0, x1, y1), nominal die px
    gaps: np.ndarray  # (G, 5) gaps between top-metal shapes (x0, y0, x1, y1, 0=vertical/1=horizontal)
    top_colour: np.ndarray  # (3,) float32 BGR of the top metal
    street: int


# Tile at 640 px die scale (128 px). Top metal ("M2") and under metal ("M1") in tile coordinates.
_M1_VLINES = ((10, 18), (58, 66), (102, 110))
_M2_RECTS = (
    (0, 6, 128, 18),  # bus A (full width)
    (22, 42, 100, 52),  # segment B
    (0, 76, 128, 86),  # bus C (full width)
    (28, 98, 50, 120),  # pad P1
    (74, 98, 96, 120),  # pad P2
    (112, 30, 120, 64),  # short vertical V
)
_M2_GAPS = (  # bridge sites: (x0, y0, x1, y1, orient) with orient 0 = bridge runs vertically
    (22, 18, 100, 42, 0),
    (22, 52, 100, 76, 0),
    (28, 86, 50, 98, 0),
    (74, 86, 96, 98, 0),
    (50, 98, 74, 120, 1),
    (100, 42, 112, 52, 1),
)
_VIAS = ((39, 109, 5), (85, 109, 5), (14, 12, 3), (62, 81, 3), (106, 12, 3))


@lru_cache(maxsize=8)
def die_design(size: int, product: int = 0) -> _Design:
    s = size / 640.0
    rng = np.random.default_rng([_PRODUCT_SEED, product])
    # Product colours: thin-film oxide (purple-ish) and two metal layers, BGR.
    jit = (lambda c, d: np.clip(np.array(c, np.float32) + (rng.uniform(-d, d, 3) if product else 0), 0, 255))
    diel, m1, m2 = jit((118, 92, 104), 20), jit((122, 140, 160), 12), jit((196, 214, 226), 10)
    via, street_c = jit((70, 72, 82), 8), jit((92, 99, 101), 10)

    pad = max(8, round(16 * s))
    n = size + 2 * pad
    street = max(4, round(12 * s))
    ring0, ring1 = street + max(1, round(2 * s)), street + max(2, round(8 * s))
    a0, a1 = street + max(3, round(14 * s)), size - street - max(3, round(14 * s))  # active area
    tile = max(16, round(128 * s))

    canvas = np.empty((n, n, 3), np.float32)
    canvas[:] = street_c
    under = canvas.copy()
    top = np.zeros((n, n), np.uint8)

    def box(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: Any) -> None:
        cv2.rectangle(img, (round(x0 * 16), round(y0 * 16)), (round(x1 * 16) - 16, round(y1 * 16) - 16),
                      colour, -1, cv2.LINE_8, 4)

    # Die body inside the street, seal ring, then the tiled circuit clipped to the active area.
    for img in (canvas, under):
        box(img, pad + street, pad + street, pad + size - street, pad + size - street, diel.tolist())
    for (x0, y0, x1, y1) in ((ring0, ring0, size - ring0, ring1), (ring0, size - ring1, size - ring0, size - ring0),
                             (ring0, ring0, ring1, size - ring0), (size - ring1, ring0, size - ring0, size - ring0)):
        box(canvas, pad + x0, pad + y0, pad + x1, pad + y1, m2.tolist())
        box(top, pad + x0, pad + y0, pad + x1, pad + y1, 255)

    active = np.zeros((n, n), bool)
    active[pad + a0:pad + a1, pad + a0:pad + a1] = True
    layer_m1 = np.zeros((n, n), np.uint8)
    layer_m2 = np.zeros((n, n), np.uint8)
    layer_via = np.zeros((n, n), np.uint8)
    features, gaps = [], []
    for ty in range(a0, a1, tile):
        for tx in range(a0, a1, tile):
            for (x0, x1) in _M1_VLINES:
                box(layer_m1, pad + tx + x0 * s, pad + ty, pad + tx + x1 * s, pad + ty + tile, 255)
            for (x0, y0, x1, y1) in _M2_RECTS:
                r = (tx + x0 * s, ty + y0 * s, tx + x1 * s, ty + y1 * s)
                box(layer_m2, pad + r[0], pad + r[1], pad + r[2], pad + r[3], 255)
                c = (r[0], r[1], min(r[2], a1), min(r[3], a1))
                if c[2] - c[0] >= 8 * s and c[3] - c[1] >= 6 * s and c[3] <= a1:
                    features.append(c)
            for (x0, y0, x1, y1, o) in _M2_GAPS:
                g = (tx + x0 * s, ty + y0 * s, tx + x1 * s, ty + y1 * s, o)
                if g[2] <= a1 - 2 and g[3] <= a1 - 2:
                    gaps.append(g)
            for (cx, cy, r) in _VIAS:
                cv2.circle(layer_via, (round((pad + tx + cx * s) * 16), round((pad + ty + cy * s) * 16)),
                           round(r * s * 16), 255, -1, cv2.LINE_AA, 4)
    layer_m1[~active] = 0
    layer_m2[~active] = 0
    layer_via[~active] = 0

    def paint(img: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
        a = (mask.astype(np.float32) / 255.0)[..., None]
        img += (colour - img) * a

    for img in (canvas, under):
        paint(img, layer_m1, m1)
    paint(canvas, layer_m2, m2)
    paint(canvas, cv2.bitwise_and(layer_via, layer_m2), via)
    top = np.maximum(top, layer_m2)

    # Metal grain + a slight optical blur: fixed per product (per-die variation comes later).
    grain = rng.normal(0, 2.0, (n, n, 1)).astype(np.float32)
    sigma = 0.7 * max(s, 0.5)
    canvas = cv2.GaussianBlur(canvas + grain, (0, 0), sigma)
    under = cv2.GaussianBlur(under + grain, (0, 0), sigma)
    top = cv2.GaussianBlur(top, (0, 0), sigma)
    to_u8 = (lambda a: np.clip(a + 0.5, 0, 255).astype(np.uint8))
    return _Design(size=size, pad=pad, canvas=to_u8(canvas), under=to_u8(under), top_mask=top,
                   features=np.asarray(features, np.float64).reshape(-1, 4),
                   gaps=np.asarray(gaps, np.float64).reshape(-1, 5), top_colour=m2.astype(np.float32),
                   street=street)


@lru_cache(maxsize=4)
def noise_bank(size: int) -> np.ndarray:
    # One fixed bank of unit Gaussian noise; each die takes a random crop (drawing 1.2 M normals
    # per die would cost more than the whole rest of the render).
    return np.random.default_rng(_PRODUCT_SEED + 1).standard_normal(
        (size + NOISE_MARGIN, size + NOISE_MARGIN, 3), dtype=np.float32)


# ================================================================================================
# Surfaces: where defects are drawn (one die after misalignment, or a large field)
# ================================================================================================

class Surface:
    """Maps nominal die coordinates to image pixels and serves the design under / top-metal ROIs."""

    def __init__(self, design: _Design, shape: tuple[int, int], matrix: np.ndarray | None,
                 features: np.ndarray, gaps: np.ndarray, under_full: np.ndarray | None = None,
                 top_full: np.ndarray | None = None) -> None:
        self.design = design
        self.h, self.w = shape
        self.matrix = matrix  # 2x3 nominal -> image (None = identity)
        self.features = features
        self.gaps = gaps
        self._under_full = under_full
        self._top_full = top_full

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        if self.matrix is None:
            return pts
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def _warp_roi(self, src: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        # Canvas coords = nominal + pad; image = M (canvas - pad). Shift so the ROI starts at 0.
        m = self.matrix.copy()
        p = self.design.pad
        m[:, 2] = m[:, 2] - m[:, :2] @ np.array([p, p], np.float64) - np.array([x0, y0], np.float64)
        return cv2.warpAffine(src, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def under_roi(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        if self._under_full is not None:
            return self._under_full[y0:y1, x0:x1].astype(np.float32)
        return self._warp_roi(self.design.under, x0, y0, x1, y1).astype(np.float32)

    def top_roi(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        if self._top_full is not None:
            return self._top_full[y0:y1, x0:x1].astype(np.float32) / 255.0
        return self._warp_roi(self.design.top_mask, x0, y0, x1, y1).astype(np.float32) / 255.0


# ================================================================================================
# Defect specifications and their rendering
