"""A synthetic wafer line: die images with labelled defects, laid out on wafers, in lots.

What it renders (see ``datasets/synthetic-wafer.md`` for the dataset card):

- a die: a repeating circuit-like tile (two metal layers, pads, vias) inside a seal ring and a
  scribe street, with per-die misalignment (shift + small rotation), an illumination gradient,
  colour / brightness variation and sensor noise;
- defects of five classes (``CLASS_NAMES``) with exact ground truth: each box is the pixel extent
  of what was drawn for that defect, clipped to the image; a defect whose clipped box would be
  thinner than ``MIN_BOX_PX`` is not drawn at all, so nothing visible is ever unlabelled;
- wafers with one spatial signature each (random, cluster, edge ring, scratch line) and lots of
  wafers, streamed as a ``FrameSource`` with lot / wafer / die context.

Everything is seeded: a die's pixels depend only on ``(seed, lot, wafer, die)``, so any die can be
rendered alone (random access, parallel dataset writing) and the same seed gives the same bytes.

Design note, why the defect pipeline looks the way it does: every random draw of a die (appearance,
then defect placement, each defect's private shape seed) happens *before* anything is drawn, and
``draw_defects=False`` only skips compositing. So the clean and the defective render of a die
differ exactly inside the ground-truth boxes, which is what the tests check.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.wafer import Die, WaferLayout

# The order is a contract: station configs and trained models index classes by position.
CLASS_NAMES: tuple[str, ...] = ("particle", "scratch", "residue", "pattern", "edge_chip")
CLASS_ID: dict[str, int] = {n: i for i, n in enumerate(CLASS_NAMES)}
SIGNATURES: tuple[str, ...] = ("random", "cluster", "edge_ring", "scratch_line")
# Bump when pixels or boxes for a given seed change (written into dataset manifests).
GENERATOR_VERSION = "1.3"  # 1.1: wider scratches, larger pattern defects; 1.2: dashed scratch lines, line opens;
# 1.3: opens have ragged ends and a scorched floor

MIN_BOX_PX = 6  # a defect thinner than this after clipping is not drawn (and so not labelled)
_ALPHA_CUT = 0.06  # alpha below this is set to 0: the drawn extent and the box are the same set
_NOISE_MARGIN = 64
_PRODUCT_SEED = 0x1C0DE

# Relative class frequencies for random defects. Edge chips are only ever drawn on edge dies.
DEFAULT_CLASS_WEIGHTS: dict[str, float] = {
    "particle": 0.34, "scratch": 0.16, "residue": 0.18, "pattern": 0.32, "edge_chip": 0.30,
}
# Draw order: pattern changes the circuit itself, stains sit on it, particles on top, scratches
# cut through, a chip removes everything.
_DRAW_ORDER = {"pattern": 0, "residue": 1, "particle": 2, "scratch": 3, "edge_chip": 4}


# ================================================================================================
# Die design (the "product"): drawn once, cached, then warped per die
# ================================================================================================

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
def _design(size: int, product: int = 0) -> _Design:
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
def _noise_bank(size: int) -> np.ndarray:
    # One fixed bank of unit Gaussian noise; each die takes a random crop (drawing 1.2 M normals
    # per die would cost more than the whole rest of the render).
    return np.random.default_rng(_PRODUCT_SEED + 1).standard_normal(
        (size + _NOISE_MARGIN, size + _NOISE_MARGIN, 3), dtype=np.float32)


# ================================================================================================
# Surfaces: where defects are drawn (one die after misalignment, or a large field)
# ================================================================================================

class _Surface:
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
# ================================================================================================

@dataclass(frozen=True)
class DefectSpec:
    """One defect to draw, in nominal die (or field) pixels, before misalignment.

    ``kind`` is a class name. Fields used per kind: particle / residue: centre ``x, y`` and
    ``size`` (radius); scratch: ``points`` (a path), ``width``, ``bright``; edge chip: ``x, y`` on
    the die border and ``side`` (0: bites down from a top edge, 1: left from a right edge, 2: up
    from a bottom edge, 3: right from a left edge), ``size`` (half width); pattern: ``variant``
    ("missing" or "bridge") with ``index`` into the design's features or gaps, ``x, y`` the position
    along it and ``size`` the extent. ``seed`` drives the shape's irregularity.
    """

    kind: str
    x: float = 0.0
    y: float = 0.0
    size: float = 0.0
    seed: int = 0
    points: tuple[tuple[float, float], ...] = ()
    width: float = 2.0
    bright: bool = True
    side: int = 0
    variant: str = ""
    index: int = -1

    def __post_init__(self) -> None:
        if self.kind not in CLASS_ID:
            raise ValueError(f"DefectSpec: unknown kind {self.kind!r}; expected one of {CLASS_NAMES}")


# An overlay: ROI origin, alpha (h, w) in [0, 1], and the colour it blends towards: a constant BGR,
# an (h, w, 3) array, or a function of the pixels underneath (shadows, translucent stains).
_Target = np.ndarray | Callable[[np.ndarray], np.ndarray]
_Overlay = tuple[int, int, np.ndarray, _Target]


def _clip_roi(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> tuple[int, int, int, int] | None:
    a, b = max(0, int(math.floor(x0))), max(0, int(math.floor(y0)))
    c, d = min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1)))
    return (a, b, c, d) if c > a and d > b else None


def _poly_mask(pts: np.ndarray, roi: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = roi
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    p = np.round((np.asarray(pts, np.float64) - (x0, y0)) * 16).astype(np.int32)
    cv2.fillPoly(m, [p], 255, cv2.LINE_AA, 4)
    return m.astype(np.float32) / 255.0


def _path_mask(pts: np.ndarray, roi: tuple[int, int, int, int], thickness: int) -> np.ndarray:
    x0, y0, x1, y1 = roi
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    p = np.round((np.asarray(pts, np.float64) - (x0, y0)) * 16).astype(np.int32)
    cv2.polylines(m, [p], False, 255, max(1, int(thickness)), cv2.LINE_AA, 4)
    return m.astype(np.float32) / 255.0


def _render_particle(spec: DefectSpec, surf: _Surface, light: float) -> list[_Overlay]:
    rng = np.random.default_rng(spec.seed)
    r = spec.size
    k = 14
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False) + rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(1.0, 1.5)
    rad = r * np.clip(1 + 0.16 * rng.standard_normal(k), 0.65, 1.35)
    rot = rng.uniform(0, np.pi)
    ex, ey = rad * np.cos(ang) * aspect ** 0.5, rad * np.sin(ang) / aspect ** 0.5
    shape = np.stack([ex * math.cos(rot) - ey * math.sin(rot), ex * math.sin(rot) + ey * math.cos(rot)], 1)
    lx, ly = math.cos(light), math.sin(light)
    d = 0.55 * r + 1.0  # shadow falls away from the light
    centre = np.array([spec.x, spec.y])
    core_pts = shape + centre
    shadow_pts = shape * 1.1 + centre - (lx * d, ly * d)
    ext = r * 1.6 * aspect + d + 3
    roi = _clip_roi(spec.x - ext, spec.y - ext, spec.x + ext + 1, spec.y + ext + 1, surf.w, surf.h)
    if roi is None:
        return []
    x0, y0, x1, y1 = roi
    shadow = _poly_mask(shadow_pts, roi)
    shadow = cv2.GaussianBlur(shadow, (0, 0), 0.25 * r + 0.6) * 0.75
    core = _poly_mask(core_pts, roi)
    # Core colour: dark body, shaded across, with a specular highlight towards the light.
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    u, v = (xx - spec.x) / max(r, 1), (yy - spec.y) / max(r, 1)
    base = np.array(rng.choice([(48, 54, 66), (40, 46, 58), (66, 66, 70), (52, 60, 78)]), np.float32)
    shade = 0.85 + 0.3 * np.clip(u * lx + v * ly, -1, 1)
    hl = np.exp(-((u - 0.38 * lx) ** 2 + (v - 0.38 * ly) ** 2) / 0.045)
    colour = base * shade[..., None] + (210 - base) * (0.9 * hl)[..., None]
    return [(x0, y0, shadow, lambda pix: pix * 0.42), (x0, y0, core, colour)]


def _render_scratch(spec: DefectSpec, surf: _Surface) -> list[_Overlay]:
    pts = surf.to_image(np.asarray(spec.points, np.float64))
    pts = _clip_path(pts, -4, -4, surf.w + 4, surf.h + 4)
    if pts is None:
        return []
    rng = np.random.default_rng(spec.seed)
    w = spec.width
    m = w + 4
    roi = _clip_roi(pts[:, 0].min() - m, pts[:, 1].min() - m, pts[:, 0].max() + m + 1, pts[:, 1].max() + m + 1,
                    surf.w, surf.h)
    if roi is None:
        return []
    x0, y0, _, _ = roi
    halo = _path_mask(pts, roi, round(w) + 2) * 0.55
    core = _path_mask(pts, roi, round(w)) * rng.uniform(0.8, 1.0)
    colour = np.array((242, 244, 244) if spec.bright else (30, 32, 38), np.float32)
    halo_target = (lambda pix: pix * 0.55) if spec.bright else (lambda pix: np.minimum(pix * 1.25 + 25, 255))
    return [(x0, y0, halo, halo_target), (x0, y0, core, colour)]


def _render_residue(spec: DefectSpec, surf: _Surface) -> list[_Overlay]:
    rng = np.random.default_rng(spec.seed)
    big_r = spec.size
    ext = big_r * 1.35
    roi = _clip_roi(spec.x - ext, spec.y - ext, spec.x + ext + 1, spec.y + ext + 1, surf.w, surf.h)
    if roi is None:
        return []
    x0, y0, x1, y1 = roi
    # Work on the unclipped square so the stain's shape does not depend on where the image ends.
    fx0, fy0 = int(math.floor(spec.x - ext)), int(math.floor(spec.y - ext))
    side = int(math.ceil(2 * ext)) + 2
    m = np.zeros((side, side), np.uint8)
    for _ in range(int(rng.integers(3, 7))):
        c = (spec.x - fx0 + rng.uniform(-0.42, 0.42) * big_r, spec.y - fy0 + rng.uniform(-0.42, 0.42) * big_r)
        axes = (big_r * rng.uniform(0.35, 0.65), big_r * rng.uniform(0.25, 0.55))
        cv2.ellipse(m, (round(c[0] * 16), round(c[1] * 16)), (round(axes[0] * 16), round(axes[1] * 16)),
                    rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA, 4)
    soft = cv2.GaussianBlur(m.astype(np.float32) / 255.0, (0, 0), big_r / 7)
    t = np.clip((soft - 0.12) / 0.55, 0, 1)
    body = t * t * (3 - 2 * t)  # smoothstep: soft edge, exactly zero outside
    ring = 4 * body * (1 - body)  # the darker "coffee ring" at the drying edge
    sl = (slice(y0 - fy0, y1 - fy0), slice(x0 - fx0, x1 - fx0))
    opacity = rng.uniform(0.55, 0.85)
    if rng.random() < 0.7:  # brown organic / resist residue
        tint = np.array([rng.uniform(0.35, 0.55), rng.uniform(0.6, 0.78), rng.uniform(0.85, 1.0)], np.float32)
        lift = np.array([10, 25, 45], np.float32) * rng.uniform(0.3, 1.0)
    else:  # dark grey-green film (dried chemical)
        tint = np.array([rng.uniform(0.5, 0.65), rng.uniform(0.6, 0.72), rng.uniform(0.45, 0.6)], np.float32)
        lift = np.array([8, 14, 6], np.float32)
    return [(x0, y0, body[sl] * opacity, lambda pix: pix * tint + lift),
            (x0, y0, ring[sl] * rng.uniform(0.25, 0.45), lambda pix: pix * 0.6)]


def _render_edge_chip(spec: DefectSpec, surf: _Surface) -> list[_Overlay]:
    rng = np.random.default_rng(spec.seed)
    a = spec.size  # half width along the border
    depth = a * rng.uniform(0.8, 1.2)
    k = 40
    phi = np.linspace(0, np.pi, k)
    # Conchoidal fracture outline: a few smooth lobes plus a little fine jag (not a star).
    lobes = sum(rng.uniform(0.04, 0.12) * np.sin(f * phi + rng.uniform(0, 2 * np.pi)) for f in (2, 3, 5))
    jag = np.clip(1 + lobes + 0.05 * rng.standard_normal(k), 0.6, 1.4)
    jag[0] = jag[-1] = 1.0
    u = -a * np.cos(phi) * jag  # along the border
    v = depth * np.sin(phi) * jag  # into the die
    # The border line in local coords is v = 0; direction into the die per side.
    into = {0: (0.0, 1.0), 1: (-1.0, 0.0), 2: (0.0, -1.0), 3: (1.0, 0.0)}[spec.side]
    along = (-into[1], into[0]) if spec.side in (0, 2) else (into[1], into[0])
    ox = spec.x + u * along[0] + v * into[0]
    oy = spec.y + u * along[1] + v * into[1]
    edge = np.stack([ox, oy], 1)
    pts = surf.to_image(edge)
    ext = max(a, depth) * 1.5 + 4
    roi = _clip_roi(spec.x - ext, spec.y - ext, spec.x + ext + 1, spec.y + ext + 1, surf.w, surf.h)
    if roi is None:
        return []
    x0, y0, x1, y1 = roi
    body = _poly_mask(pts, roi)
    # Exposed, fractured silicon: dark with a rough texture and a bright fracture rim.
    tex = rng.normal(0, 9, (y1 - y0, x1 - x0, 1)).astype(np.float32)
    colour = np.array([30, 32, 36], np.float32) * rng.uniform(0.8, 1.2) + tex
    rim = _path_mask(pts, roi, 1) * 0.6
    rim = rim * (body > 0)  # keep the rim on the chip side of the fracture line
    return [(x0, y0, body, colour), (x0, y0, rim, np.array((196, 200, 204), np.float32))]


def _render_pattern(spec: DefectSpec, surf: _Surface) -> list[_Overlay]:
    rng = np.random.default_rng(spec.seed)
    if spec.variant == "missing":
        fx0, fy0, fx1, fy1 = surf.features[spec.index]
        horizontal = (fx1 - fx0) >= (fy1 - fy0)
        # An open left by a defect, not a design gap: ragged, eaten-back ends and a scorched,
        # darker floor, so it reads as damage without having to know the layout.
        k = 5
        jag_lo = rng.uniform(-0.12, 0.12, k) * spec.size
        jag_hi = rng.uniform(-0.12, 0.12, k) * spec.size
        if horizontal:
            lo, hi = spec.x - spec.size / 2, spec.x + spec.size / 2
            across = np.linspace(fy0 - 2, fy1 + 2, k)
            rect = np.concatenate([np.stack([lo + jag_lo, across], 1), np.stack([hi + jag_hi, across], 1)[::-1]])
        else:
            lo, hi = spec.y - spec.size / 2, spec.y + spec.size / 2
            across = np.linspace(fx0 - 2, fx1 + 2, k)
            rect = np.concatenate([np.stack([across, lo + jag_lo], 1), np.stack([across, hi + jag_hi], 1)[::-1]])
        pts = surf.to_image(rect)
        roi = _clip_roi(pts[:, 0].min() - 2, pts[:, 1].min() - 2, pts[:, 0].max() + 3, pts[:, 1].max() + 3,
                        surf.w, surf.h)
        if roi is None:
            return []
        region = _poly_mask(pts, roi)
        # The top-metal mask is optically blurred; saturate it so no faint outline of the removed
        # shape is left behind.
        alpha = region * np.minimum(1.0, 4.0 * surf.top_roi(*roi))
        scorch = np.array([rng.uniform(0.45, 0.6), rng.uniform(0.5, 0.65), rng.uniform(0.6, 0.75)], np.float32)
        return [(roi[0], roi[1], alpha, surf.under_roi(*roi)), (roi[0], roi[1], region * 0.9, lambda pix: pix * scorch)]
    # Bridge: an irregular blob of top metal spanning the gap between two shapes.
    gx0, gy0, gx1, gy1, orient = surf.gaps[spec.index]
    half = spec.size / 2
    ov = 3.0
    n = 5
    t = np.linspace(0, 1, n)
    wob = rng.uniform(-0.22, 0.22, (2, n)) * spec.size
    if orient == 0:  # runs vertically from the shape above to the one below
        ys = gy0 - ov + t * (gy1 - gy0 + 2 * ov)
        left = np.stack([spec.x - half + wob[0], ys], 1)
        right = np.stack([spec.x + half + wob[1], ys[::-1]], 1)
    else:
        xs = gx0 - ov + t * (gx1 - gx0 + 2 * ov)
        left = np.stack([xs, spec.y - half + wob[0]], 1)
        right = np.stack([xs[::-1], spec.y + half + wob[1]], 1)
    pts = surf.to_image(np.concatenate([left, right]))
    roi = _clip_roi(pts[:, 0].min() - 2, pts[:, 1].min() - 2, pts[:, 0].max() + 3, pts[:, 1].max() + 3, surf.w, surf.h)
    if roi is None:
        return []
    body = _poly_mask(pts, roi)
    colour = surf.design.top_colour * rng.uniform(0.95, 1.03)
    return [(roi[0], roi[1], body, colour)]


def _clip_path(pts: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray | None:
    """Clip a straight 2-point path to a rectangle (Liang-Barsky); longer paths pass through."""
    if len(pts) != 2:
        return pts
    (ax, ay), (bx, by) = pts
    dx, dy = bx - ax, by - ay
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return np.array([(ax + t0 * dx, ay + t0 * dy), (ax + t1 * dx, ay + t1 * dy)])


def _overlays(spec: DefectSpec, surf: _Surface, light: float) -> list[_Overlay]:
    if spec.kind == "particle":
        return _render_particle(spec, surf, light)
    if spec.kind == "scratch":
        return _render_scratch(spec, surf)
    if spec.kind == "residue":
        return _render_residue(spec, surf)
    if spec.kind == "edge_chip":
        return _render_edge_chip(spec, surf)
    return _render_pattern(spec, surf)


def _composite(img: np.ndarray, overlays: list[_Overlay], draw: bool) -> tuple[int, int, int, int] | None:
    """Blend overlays into ``img`` (float32, in place); return the drawn extent or None.

    Alpha below ``_ALPHA_CUT`` is zeroed first, so the returned box is exactly the set of pixels
    that change. A defect thinner than ``MIN_BOX_PX`` is not drawn at all.
    """
    prepared = []
    bx0 = by0 = 1 << 30
    bx1 = by1 = -1
    for x0, y0, a, target in overlays:
        ys, xs = np.nonzero(a >= _ALPHA_CUT)
        if len(ys) == 0:
            continue
        bx0, by0 = min(bx0, x0 + int(xs.min())), min(by0, y0 + int(ys.min()))
        bx1, by1 = max(bx1, x0 + int(xs.max()) + 1), max(by1, y0 + int(ys.max()) + 1)
        prepared.append((ys, xs, x0, y0, a, target))
    if not prepared or bx1 - bx0 < MIN_BOX_PX or by1 - by0 < MIN_BOX_PX:
        return None
    if draw:
        for ys, xs, x0, y0, a, target in prepared:
            yy, xx = ys + y0, xs + x0
            pix = img[yy, xx]
            if callable(target):
                tgt = target(pix)
            elif target.ndim == 3:
                tgt = target[ys, xs]
            else:
                tgt = target
            img[yy, xx] = pix + (tgt - pix) * a[ys, xs][:, None]
    return (bx0, by0, bx1, by1)


# --- sampling ----------------------------------------------------------------------------------

def _nominal_box(spec: DefectSpec, surf: _Surface) -> tuple[float, float, float, float]:
    """A rough extent for placement (overlap avoidance), before anything is drawn."""
    if spec.kind == "scratch" and spec.points:
        p = np.asarray(spec.points)
        return (p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max())
    if spec.kind == "pattern":
        if spec.variant == "missing":
            f = surf.features[spec.index]
            if f[2] - f[0] >= f[3] - f[1]:
                return (spec.x - spec.size / 2, f[1], spec.x + spec.size / 2, f[3])
            return (f[0], spec.y - spec.size / 2, f[2], spec.y + spec.size / 2)
        g = surf.gaps[spec.index]
        if g[4] == 0:
            return (spec.x - spec.size, g[1], spec.x + spec.size, g[3])
        return (g[0], spec.y - spec.size, g[2], spec.y + spec.size)
    r = spec.size * (1.4 if spec.kind == "residue" else 1.6 if spec.kind == "edge_chip" else 2.0)
    return (spec.x - r, spec.y - r, spec.x + r, spec.y + r)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    amin = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(amin, 1e-9)


def _sample_spec(rng: np.random.Generator, kind: str, surf: _Surface, s: float,
                 near: tuple[float, float] | None = None, edge_dir: tuple[float, float] | None = None,
                 borders: Sequence[tuple[int, float, float, float]] | None = None) -> DefectSpec:
    """Draw one defect of ``kind``. ``near`` pins its centre (field seams); ``borders`` lists the
    die borders a chip may sit on as (side, fixed coordinate, lo, hi); ``edge_dir`` prefers the
    border facing the wafer edge."""
    w, h = surf.w, surf.h
    seed = int(rng.integers(0, 2**31 - 1))

    def centre(margin: float) -> tuple[float, float]:
        if near is not None:
            return (float(near[0]), float(near[1]))
        return (float(rng.uniform(margin, w - margin)), float(rng.uniform(margin, h - margin)))

    if kind == "particle":
        r = s * (4.5 + 10.0 * rng.beta(1.6, 2.4))
        x, y = centre(r + 3)
        return DefectSpec("particle", x, y, r, seed)
    if kind == "residue":
        r = s * float(rng.uniform(22, 75))
        x, y = centre(0.6 * r)
        return DefectSpec("residue", x, y, r, seed)
    if kind == "scratch":
        for _ in range(20):
            length = s * float(rng.uniform(60, 240))
            ang = float(rng.uniform(0, np.pi))
            cx, cy = centre(0.12 * min(w, h))
            bow = float(rng.uniform(-0.12, 0.12)) * length
            t = np.linspace(-0.5, 0.5, 24)
            dx, dy = math.cos(ang), math.sin(ang)
            off = bow * (1 - 4 * t * t)
            pts = np.stack([cx + t * length * dx - off * dy, cy + t * length * dy + off * dx], 1)
            # Paths may run off the image (drawing clips them); judge the visible extent only.
            vis = np.clip(pts, 0, (w - 1, h - 1))
            if np.ptp(vis[:, 0]) >= 12 * s + 4 and np.ptp(vis[:, 1]) >= 12 * s + 4:
                break
        # At least 2 px: a 1 px line vanishes under the detector's down-sampling and augmentation.
        width = max(2.0, s * float(rng.uniform(3.5, 6.0)))
        return DefectSpec("scratch", float(cx), float(cy), length, seed, tuple(map(tuple, pts.tolist())),
                          width, bool(rng.random() < 0.7))
    if kind == "edge_chip":
        if borders is None:  # a die image: its four borders are the image borders
            borders = [(0, 0.0, 0.0, w), (1, float(w), 0.0, h), (2, float(h), 0.0, w), (3, 0.0, 0.0, h)]
        normals = {0: (0.0, -1.0), 1: (1.0, 0.0), 2: (0.0, 1.0), 3: (-1.0, 0.0)}  # outward, image y down
        if edge_dir is not None:
            pref = np.array([max(0.0, normals[b[0]][0] * edge_dir[0] + normals[b[0]][1] * edge_dir[1]) + 0.08
                             for b in borders])
        else:
            pref = np.ones(len(borders))
        b = borders[int(rng.choice(len(borders), p=pref / pref.sum()))]
        side, fixed, lo, hi = b
        a = s * float(rng.uniform(20, 50))
        if near is not None:
            pos = float(near[0] if side in (0, 2) else near[1])
        else:
            pos = float(rng.uniform(lo + 0.1 * (hi - lo) + a, hi - 0.1 * (hi - lo) - a))
        x, y = (pos, fixed) if side in (0, 2) else (fixed, pos)
        return DefectSpec("edge_chip", x, y, a, seed, side=side)
    # pattern
    # "missing" is an open in a metal line: only lines long enough for the gap to read as one.
    f_all = surf.features
    lines = np.flatnonzero(np.maximum(f_all[:, 2] - f_all[:, 0], f_all[:, 3] - f_all[:, 1]) >= 40 * s) \
        if len(f_all) else np.zeros(0, int)
    if rng.random() < 0.5 and len(lines):
        idx = int(lines[_pick(rng, f_all[lines, :2] * 0.5 + f_all[lines, 2:] * 0.5, near)])
        f = f_all[idx]
        horizontal = (f[2] - f[0]) >= (f[3] - f[1])
        span = (f[2] - f[0]) if horizontal else (f[3] - f[1])
        length = min(float(span), s * float(rng.uniform(48, 120)))
        lo = (f[0] if horizontal else f[1]) + length / 2
        hi = (f[2] if horizontal else f[3]) - length / 2
        pos = float(rng.uniform(lo, hi)) if hi > lo else float(lo)
        x, y = (pos, (f[1] + f[3]) / 2) if horizontal else ((f[0] + f[2]) / 2, pos)
        return DefectSpec("pattern", x, y, length, seed, variant="missing", index=idx)
    # Bridges only across gaps wide enough for one that stays visible at the smallest die size.
    g_all = surf.gaps
    room = np.where(g_all[:, 4] == 0, g_all[:, 2] - g_all[:, 0], g_all[:, 3] - g_all[:, 1])
    usable = np.flatnonzero(room >= 20 * s)
    if not len(usable):
        usable = np.arange(len(g_all))
    idx = int(usable[_pick(rng, g_all[usable, :2] * 0.5 + g_all[usable, 2:4] * 0.5, near)])
    g = g_all[idx]
    wid = s * float(rng.uniform(18, 34))
    if g[4] == 0:
        wid = min(wid, g[2] - g[0] - 4)
        x = float(rng.uniform(g[0] + wid / 2 + 2, g[2] - wid / 2 - 2))
        y = (g[1] + g[3]) / 2
    else:
        wid = min(wid, g[3] - g[1] - 2)
        x = (g[0] + g[2]) / 2
        y = float(rng.uniform(g[1] + wid / 2 + 1, g[3] - wid / 2 - 1)) if g[3] - g[1] - wid > 2 else (g[1] + g[3]) / 2
    return DefectSpec("pattern", x, y, wid, seed, variant="bridge", index=idx)


def _pick(rng: np.random.Generator, centres: np.ndarray, near: tuple[float, float] | None) -> int:
    if near is None:
        return int(rng.integers(len(centres)))
    d = np.hypot(centres[:, 0] - near[0], centres[:, 1] - near[1])
    return int(np.argsort(d)[int(rng.integers(min(3, len(d))))])


def _place(rng: np.random.Generator, kinds: Sequence[str], fixed: Sequence[DefectSpec], surf: _Surface, s: float,
           edge_dir: tuple[float, float] | None = None, **kw: Any) -> list[DefectSpec]:
    """Sample specs for ``kinds`` avoiding overlap with each other (scratches may cross things)."""
    placed = list(fixed)
    boxes = [_nominal_box(p, surf) for p in placed]
    for kind in kinds:
        for _ in range(25):
            spec = _sample_spec(rng, kind, surf, s, edge_dir=edge_dir, **kw)
            nb = _nominal_box(spec, surf)
            if kind == "scratch" or all(_overlap(nb, b) < 0.2 for p, b in zip(placed, boxes) if p.kind != "scratch"):
                placed.append(spec)
                boxes.append(nb)
                break
    return placed


# ================================================================================================
# One die
# ================================================================================================

def _die_appearance(rng: np.random.Generator, size: int) -> dict[str, Any]:
    s = size / 640.0
    return {
        "shift": rng.uniform(-3.0, 3.0, 2) * s,
        "theta": float(rng.uniform(-0.3, 0.3)),
        "grad": rng.uniform(-0.14, 0.14, 2),
        "vignette": float(rng.uniform(0.0, 0.16)),
        "gain": float(rng.uniform(0.88, 1.1)),
        "channel": rng.uniform(0.97, 1.03, 3).astype(np.float32),
        "offset": float(rng.uniform(-8, 8)),
        "sigma": float(rng.uniform(2.0, 5.0)),
        "noise_at": rng.integers(0, _NOISE_MARGIN, 2),
        "light": float(rng.uniform(0, 2 * np.pi)),
    }


def _finish(img: np.ndarray, look: Mapping[str, Any], noise: np.ndarray, sigma: float) -> np.ndarray:
    """Illumination gradient, vignetting, colour balance and sensor noise; float32 -> uint8.

    The gain field is smooth, so it is computed on a coarse grid and resized (cheap); the
    per-pixel work is three OpenCV passes (multiply, scale-add, saturating add), which is what
    keeps a 640 px die well under 15 ms.
    """
    h, w = img.shape[:2]
    u = np.linspace(-1, 1, 33, dtype=np.float32)[None, :]
    v = np.linspace(-1, 1, 33, dtype=np.float32)[:, None]
    gx, gy = look["grad"]
    gain = look["gain"] * (1 + gx * u + gy * v - look["vignette"] * (u * u + v * v))
    gain3 = np.ascontiguousarray(gain[..., None] * look["channel"], dtype=np.float32)
    gain3 = cv2.resize(gain3, (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.multiply(img, gain3, dst=img)
    cv2.scaleAdd(noise, float(sigma), img, dst=img)
    off = float(look["offset"])
    return cv2.add(img, (off, off, off, 0.0), dtype=cv2.CV_8U)  # rounds and saturates to [0, 255]


def render_die(
    rng: np.random.Generator,
    size: int = 640,
    defects: Sequence[str | DefectSpec] = (),
    *,
    edge_dir: tuple[float, float] | None = None,
    draw_defects: bool = True,
    product: int = 0,
) -> tuple[np.ndarray, Detections]:
    """Render one die image (BGR uint8, ``size`` x ``size``) and its ground truth.

    ``defects`` lists class names to place at random (placement draws from ``rng``) and/or
    explicit ``DefectSpec`` items (drawn where given, in nominal die pixels). ``edge_dir`` is the
    direction, in image coordinates (y down), towards the wafer edge: edge chips prefer the die
    border that faces it. With ``draw_defects=False`` the same die is rendered clean (all random
    draws still happen, so the background is identical) and the ground truth is empty.

    Truth boxes are the drawn pixel extent of each defect (score 1.0, class = ``CLASS_NAMES``
    index). Defects that would be thinner than ``MIN_BOX_PX`` are neither drawn nor listed.
    ``edge_chip`` is drawn wherever it is asked for; ``SyntheticWaferLine`` asks only on edge dies.
    """
    design = _design(int(size), int(product))
    s = size / 640.0
    look = _die_appearance(rng, size)
    c = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), look["theta"], 1.0)
    m[:, 2] += look["shift"]
    surf = _Surface(design, (size, size), m, design.features, design.gaps)
    fixed = [d for d in defects if isinstance(d, DefectSpec)]
    kinds = [d for d in defects if not isinstance(d, DefectSpec)]
    for k in kinds:
        if k not in CLASS_ID:
            raise ValueError(f"render_die: unknown defect kind {k!r}; expected one of {CLASS_NAMES}")
    specs = _place(rng, kinds, fixed, surf, s, edge_dir=edge_dir)

    # Canvas -> image: nominal die coords map through m; the canvas is offset by ``pad``.
    mc = m.copy()
    mc[:, 2] -= m[:, :2] @ np.array([design.pad, design.pad], np.float64)
    img = cv2.warpAffine(design.canvas, mc, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    boxes, classes = _draw_specs(img, specs, surf, look["light"], draw_defects)
    nx, ny = look["noise_at"]
    out = _finish(img, look, _noise_bank(size)[ny:ny + size, nx:nx + size], look["sigma"])
    return out, _truth(boxes, classes)


def _draw_specs(img: np.ndarray, specs: Sequence[DefectSpec], surf: _Surface, light: float,
                draw: bool) -> tuple[list[tuple[int, int, int, int]], list[int]]:
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    for spec in sorted(specs, key=lambda p: _DRAW_ORDER[p.kind]):  # stable: keeps sampling order
        box = _composite(img, _overlays(spec, surf, light), draw)
        if box is not None and draw:
            boxes.append(box)
            classes.append(CLASS_ID[spec.kind])
    return boxes, classes


def _truth(boxes: Sequence[tuple[int, int, int, int]], classes: Sequence[int]) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(np.asarray(boxes, np.float32), np.ones(len(boxes), np.float32), np.asarray(classes, np.int32))


# ================================================================================================
# A large field (tiled-inference tests)
# ================================================================================================

def render_field(
    seed: int,
    size: int = 4096,
    die_px: int = 640,
    n_defects: int = 24,
    *,
    tile: int = 640,
    overlap: int = 64,
    seam_fraction: float = 0.5,
    product: int = 0,
) -> tuple[np.ndarray, Detections]:
    """One large BGR image tiled from die patterns, with ``n_defects`` labelled defects.

    About ``seam_fraction`` of the defects are centred on likely tile seams of a tiler with tile
    ``tile`` and ``overlap``: the lines ``k * (tile - overlap)`` and ``k * (tile - overlap) +
    overlap`` in x or y. Edge chips sit on die borders (multiples of ``die_px``).
    """
    rng = np.random.default_rng([int(seed), 0xF1E1D])
    design = _design(int(die_px), int(product))
    s = die_px / 640.0
    p, n = design.pad, int(die_px)
    reps = -(-size // n)

    def tiled(a: np.ndarray) -> np.ndarray:
        core = a[p:p + n, p:p + n]
        return np.tile(core, (reps, reps) + (1,) * (core.ndim - 2))[:size, :size]

    under, top = tiled(design.under), tiled(design.top_mask)
    feats = np.concatenate([design.features + (i * n, j * n, i * n, j * n) for j in range(reps) for i in range(reps)])
    feats = feats[(feats[:, 2] <= size) & (feats[:, 3] <= size)]
    gap_off = np.array([(i * n, j * n, i * n, j * n, 0) for j in range(reps) for i in range(reps)], np.float64)
    gaps = (design.gaps[None, :, :] + gap_off[:, None, :]).reshape(-1, 5)
    gaps = gaps[(gaps[:, 2] <= size) & (gaps[:, 3] <= size)]
    surf = _Surface(design, (size, size), None, feats, gaps, under_full=under, top_full=top)

    stride = tile - overlap
    seams = sorted({v for k in range(1, size // stride + 1) for v in (k * stride, k * stride + overlap)
                    if 0 < v < size})
    die_lines = [k * n for k in range(1, reps) if k * n < size]
    borders = [(side, float(line), 0.0, float(size)) for line in die_lines for side in (0, 2)]
    borders += [(side, float(line), 0.0, float(size)) for line in die_lines for side in (1, 3)]
    kinds = list(CLASS_NAMES)
    specs: list[DefectSpec] = []
    boxes: list[tuple[float, ...]] = []
    for i in range(n_defects):
        kind = kinds[i % len(kinds)]  # round robin: every class equally often
        for _ in range(25):
            near = None
            if rng.random() < seam_fraction and seams:
                line = float(seams[int(rng.integers(len(seams)))])
                other = float(rng.uniform(0.05 * size, 0.95 * size))
                near = (line, other) if rng.random() < 0.5 else (other, line)
            if kind == "edge_chip" and not borders:
                break
            spec = _sample_spec(rng, kind, surf, s, near=near, borders=borders if kind == "edge_chip" else None)
            nb = _nominal_box(spec, surf)
            if kind == "scratch" or all(_overlap(nb, b) < 0.2 for q, b in zip(specs, boxes) if q.kind != "scratch"):
                specs.append(spec)
                boxes.append(nb)
                break
    img = tiled(design.canvas).astype(np.float32)
    look = _die_appearance(rng, die_px)
    drawn, classes = _draw_specs(img, specs, surf, look["light"], True)
    # Finish in horizontal strips: a 4k float32 field is 200 MB, its temporaries more.
    out = np.empty((size, size, 3), np.uint8)
    step = 512
    u_all = np.linspace(-1, 1, size, dtype=np.float32)
    gx, gy = look["grad"] * 0.5
    for y0 in range(0, size, step):
        y1 = min(size, y0 + step)
        strip = img[y0:y1]
        gain = look["gain"] * (1 + gx * u_all[None, :] + gy * u_all[y0:y1, None])
        strip *= gain[..., None]
        strip *= look["channel"]
        strip += rng.standard_normal(strip.shape, dtype=np.float32) * np.float32(look["sigma"])
        strip += look["offset"]
        np.clip(strip, 0, 255, out=strip)
        out[y0:y1] = strip.astype(np.uint8)
    return out, _truth(drawn, classes)


# ================================================================================================
# Wafers, lots and the FrameSource
# ================================================================================================

@dataclass(frozen=True)
class WaferTruth:
    """What the generator put on one wafer: its signature and which dies it touched.

    ``params`` holds the signature's geometry in wafer mm: ``cluster``: ``center_mm``,
    ``radius_mm``; ``scratch_line``: ``p0_mm``, ``p1_mm`` (the line) and ``marks`` (scratch marks along it); ``edge_ring``:
    ``chip_probability``. ``signature_dies`` are the dies the signature itself put defects on;
    ``planned`` lists the class names planned per die (placement may still drop one that does
    not fit; the rendered truth is authoritative).
    """

    lot: str
    wafer: str
    lot_index: int
    slot: int
    signature: str
    params: Mapping[str, Any]
    dies: tuple[Die, ...]
    edge_dies: frozenset[Die]
    signature_dies: tuple[Die, ...]
    planned: Mapping[Die, tuple[str, ...]] = field(repr=False)
    scratch_specs: Mapping[Die, tuple[DefectSpec, ...]] = field(repr=False)


_FRAME_ID = re.compile(r"^(?P<lot>.+)-W(?P<slot>\d+)-X(?P<x>[+-]\d+)Y(?P<y>[+-]\d+)$")


def _segment_hits_rect(p0: np.ndarray, p1: np.ndarray, rect: tuple[float, float, float, float]) -> bool:
    return _clip_path(np.array([p0, p1]), *rect) is not None


class SyntheticWaferLine:
    """A seeded, reproducible wafer inspection line: lots of wafers of dies, one frame per die.

    Implements ``FrameSource``. Frame ids look like ``LOT0001-W01-X+03Y-02``; context carries
    ``lot``, ``wafer``, ``die_x``, ``die_y``, ``wafer_signature``, ``is_edge_die`` and more. Each
    die's pixels depend only on ``(seed, lot, wafer, die)`` (``render``), so dies can be rendered
    in any order or in parallel. ``first_lot`` numbers the lots (a fresh lot for evaluation:
    another ``seed`` or a ``first_lot`` beyond the training lots). ``class_weights`` sets the mix
    of random defects; ``cycle_signatures`` gives wafers the signatures in turn instead of at
    random (balanced datasets).
    """

    def __init__(
        self,
        seed: int,
        lots: int = 1,
        wafers_per_lot: int = 2,
        die_px: int = 640,
        defect_rate: float = 0.3,
        signatures: Sequence[str] = SIGNATURES,
        layout: WaferLayout | None = None,
        station_id: str = "synthetic",
        rate_hz: float | None = None,
        *,
        first_lot: int = 1,
        class_weights: Mapping[str, float] | None = None,
        cycle_signatures: bool = False,
        product: int = 0,
    ) -> None:
        if seed < 0:
            raise ValueError(f"SyntheticWaferLine: seed must be >= 0, got {seed}")
        if lots < 1 or wafers_per_lot < 1 or die_px < 64:
            raise ValueError("SyntheticWaferLine: lots and wafers_per_lot must be >= 1, die_px >= 64")
        if not 0.0 <= defect_rate <= 1.0:
            raise ValueError(f"SyntheticWaferLine: defect_rate must be in [0, 1], got {defect_rate}")
        bad = [s for s in signatures if s not in SIGNATURES]
        if bad or not signatures:
            raise ValueError(f"SyntheticWaferLine: unknown signatures {bad}; expected a subset of {SIGNATURES}")
        if rate_hz is not None and rate_hz <= 0:
            raise ValueError(f"SyntheticWaferLine: rate_hz must be > 0, got {rate_hz}")
        weights = dict(DEFAULT_CLASS_WEIGHTS if class_weights is None else class_weights)
        unknown = set(weights) - set(CLASS_NAMES)
        if unknown:
            raise ValueError(f"SyntheticWaferLine: unknown classes in class_weights: {sorted(unknown)}")
        self.seed = int(seed)
        self.lots = int(lots)
        self.wafers_per_lot = int(wafers_per_lot)
        self.die_px = int(die_px)
        self.defect_rate = float(defect_rate)
        self.signatures = tuple(signatures)
        self.layout = layout or WaferLayout()
        self.station_id = station_id
        self.rate_hz = rate_hz
        self.first_lot = int(first_lot)
        self.product = int(product)
        self.cycle_signatures = bool(cycle_signatures)
        self.class_weights = np.array([weights.get(c, 0.0) for c in CLASS_NAMES], np.float64)
        self.name = f"synthetic-wafer-line(seed={self.seed})"
        self._closed = False
        self._truth_cache: OrderedDict[str, Detections] = OrderedDict()
        self._lock = threading.Lock()  # ground_truth() may be called from another thread than frames()
        self._plans: dict[tuple[int, int], WaferTruth] = {}
        self._edge = frozenset(self.layout.edge_dies())

    # --- identities ---------------------------------------------------------------------------
    @staticmethod
    def lot_id(lot_index: int) -> str:
        return f"LOT{lot_index:04d}"

    @classmethod
    def wafer_id(cls, lot_index: int, slot: int) -> str:
        return f"{cls.lot_id(lot_index)}-W{slot:02d}"

    @classmethod
    def frame_id(cls, lot_index: int, slot: int, die: Die) -> str:
        return f"{cls.wafer_id(lot_index, slot)}-X{die[0]:+03d}Y{die[1]:+03d}"

    @staticmethod
    def parse_frame_id(frame_id: str) -> tuple[int, int, Die]:
        """(lot_index, slot, die) from a frame id (KeyError when it is not one of ours)."""
        m = _FRAME_ID.match(frame_id)
        if not m or not m["lot"].startswith("LOT"):
            raise KeyError(f"not a synthetic wafer frame id: {frame_id!r}")
        return int(m["lot"][3:]), int(m["slot"]), (int(m["x"]), int(m["y"]))

    def lot_indices(self) -> range:
        return range(self.first_lot, self.first_lot + self.lots)

    # --- wafer plans ----------------------------------------------------------------------------
    def wafer_truth(self, lot_index: int, slot: int) -> WaferTruth:
        """The plan of one wafer (signature, affected dies); cheap, cached, no pixels."""
        key = (lot_index, slot)
        if key not in self._plans:
            self._plans[key] = self._plan_wafer(lot_index, slot)
        return self._plans[key]

    def wafers(self) -> list[WaferTruth]:
        """Every wafer of the line, in order: lot, wafer id, signature, dies."""
        return [self.wafer_truth(li, w) for li in self.lot_indices() for w in range(1, self.wafers_per_lot + 1)]

    def _classes(self, rng: np.random.Generator, n: int, edge: bool,
                 weights: np.ndarray | None = None) -> tuple[str, ...]:
        w = (self.class_weights if weights is None else weights).copy()
        if not edge:
            w[CLASS_ID["edge_chip"]] = 0.0
        if n <= 0 or w.sum() <= 0:
            return ()
        return tuple(CLASS_NAMES[i] for i in rng.choice(len(CLASS_NAMES), size=n, p=w / w.sum()))

    def _plan_wafer(self, lot_index: int, slot: int) -> WaferTruth:
        rng = np.random.default_rng([self.seed, lot_index, slot, 0x5AFE])
        lay = self.layout
        dies = lay.dies
        pick = int(rng.integers(len(self.signatures)))
        if self.cycle_signatures:  # datasets: every signature equally often, whatever the size
            pick = ((lot_index - 1) * self.wafers_per_lot + slot - 1 + self.seed) % len(self.signatures)
        sig = str(self.signatures[pick])
        background = self.defect_rate if sig == "random" else self.defect_rate * 0.3
        # Background random defects first (every signature has some), one draw per die.
        hit = rng.random(len(dies)) < background
        count = 1 + np.minimum(rng.poisson(0.45, len(dies)), 3)
        planned: dict[Die, list[str]] = {d: [] for d in dies}
        for d, h, c in zip(dies, hit, count):
            if h:
                planned[d].extend(self._classes(rng, int(c), d in self._edge))
        params: dict[str, Any] = {}
        sig_dies: list[Die] = []
        scratch_specs: dict[Die, list[DefectSpec]] = {}
        centres = lay.die_centers_mm()
        if sig == "cluster":
            inner = np.flatnonzero(lay.radius_fraction(lay.dies_array) < 0.7)
            c0 = centres[int(rng.choice(inner))] + rng.uniform(-0.35, 0.35, 2) * lay.pitch_mm
            radius = float(rng.uniform(1.1, 1.8)) * float(lay.pitch_mm.mean())
            params = {"center_mm": tuple(map(float, c0)), "radius_mm": radius}
            cw = np.array([0.72, 0.0, 0.28, 0.0, 0.0])
            for d, c in zip(dies, centres):
                if np.hypot(*(c - c0)) <= radius:
                    sig_dies.append(d)
                    planned[d].extend(self._classes(rng, int(rng.integers(2, 6)), False, cw))
        elif sig == "edge_ring":
            p_chip = float(rng.uniform(0.7, 0.95))
            params = {"chip_probability": p_chip}
            for d in dies:
                if d in self._edge and rng.random() < p_chip:
                    sig_dies.append(d)
                    planned[d].extend(["edge_chip"] * int(rng.integers(1, 3)))
                    if rng.random() < 0.35:
                        planned[d].append("residue")
        elif sig == "scratch_line":
            r = lay.usable_radius_mm
            while True:  # keep away from axis-parallel lines: a scratch must rise across each die
                ang = float(rng.uniform(0, np.pi))
                if min(ang % (np.pi / 2), np.pi / 2 - ang % (np.pi / 2)) > np.radians(10):
                    break
            off = float(rng.uniform(-0.45, 0.45)) * r
            d_ = np.array([math.cos(ang), math.sin(ang)])
            nrm = np.array([-d_[1], d_[0]])
            half = math.sqrt(r * r - off * off)
            t0, t1 = -half * float(rng.uniform(0.8, 1.0)), half * float(rng.uniform(0.8, 1.0))
            p0, p1 = nrm * off + d_ * t0, nrm * off + d_ * t1
            width = max(2.0, float(rng.uniform(3.5, 6.0)) * self.die_px / 640)
            bright = bool(rng.random() < 0.7)
            params = {"p0_mm": tuple(map(float, p0)), "p1_mm": tuple(map(float, p1)), "width_px": width,
                      "bright": bright}
            # A handling scratch across a wafer is a chain of marks (chatter), not one unbroken line:
            # each mark is one defect with its own box, and the signature is their alignment.
            pitch = min(lay.die_pitch_x_mm, lay.die_pitch_y_mm)
            t = t0
            dashes = []
            while t < t1:
                length = float(rng.uniform(0.12, 0.28)) * pitch
                dashes.append((t, min(t + length, t1)))
                t += length + float(rng.uniform(0.06, 0.16)) * pitch
            params["marks"] = len(dashes)
            for a, b in dashes:
                q0, q1 = nrm * off + d_ * a, nrm * off + d_ * b
                for d in dies:
                    if _segment_hits_rect(q0, q1, lay.die_rect_mm(d)):
                        px = self._mm_to_die_px(d, np.array([q0, q1]))
                        scratch_specs.setdefault(d, []).append(DefectSpec(
                            "scratch", seed=int(rng.integers(0, 2**31 - 1)), points=tuple(map(tuple, px.tolist())),
                            width=width, bright=bright))
            sig_dies.extend(d for d in dies if d in scratch_specs)
        return WaferTruth(
            lot=self.lot_id(lot_index), wafer=self.wafer_id(lot_index, slot), lot_index=lot_index, slot=slot,
            signature=sig, params=params, dies=tuple(dies), edge_dies=self._edge,
            signature_dies=tuple(sig_dies), planned={d: tuple(v) for d, v in planned.items()},
            scratch_specs={d: tuple(v) for d, v in scratch_specs.items()})

    def _mm_to_die_px(self, die: Die, pts_mm: np.ndarray) -> np.ndarray:
        x0, _, _, y1 = self.layout.die_rect_mm(die)
        sx = self.die_px / self.layout.die_pitch_x_mm
        sy = self.die_px / self.layout.die_pitch_y_mm
        return np.stack([(pts_mm[:, 0] - x0) * sx, (y1 - pts_mm[:, 1]) * sy], 1)  # image y points down

    # --- rendering ------------------------------------------------------------------------------
    def die_rng(self, lot_index: int, slot: int, die: Die) -> np.random.Generator:
        # Offsets keep the entropy words non-negative (SeedSequence refuses negative ints).
        return np.random.default_rng([self.seed, lot_index, slot, die[0] + 4096, die[1] + 4096])

    def render(self, lot_index: int, slot: int, die: Die, *, draw_defects: bool = True
               ) -> tuple[np.ndarray, Detections]:
        """Pixels and truth of one die, independent of any other die (random access)."""
        plan = self.wafer_truth(lot_index, slot)
        if die not in plan.planned:
            raise KeyError(f"die {die} is not on the wafer layout")
        defects: list[str | DefectSpec] = list(plan.planned[die])
        defects.extend(plan.scratch_specs.get(die, ()))
        cx, cy = self.layout.die_center_mm(die)
        norm = math.hypot(cx, cy)
        edge_dir = (cx / norm, -cy / norm) if norm > 0 else None  # image y points down
        return render_die(self.die_rng(lot_index, slot, die), self.die_px, defects, edge_dir=edge_dir,
                          draw_defects=draw_defects, product=self.product)

    def context(self, lot_index: int, slot: int, die: Die) -> dict[str, Any]:
        plan = self.wafer_truth(lot_index, slot)
        return {
            "lot": plan.lot, "wafer": plan.wafer, "wafer_slot": slot,
            "die_x": int(die[0]), "die_y": int(die[1]),
            "wafer_signature": plan.signature, "is_edge_die": die in self._edge,
            "die_center_mm": self.layout.die_center_mm(die), "seed": self.seed,
        }

    def _jobs(self) -> Iterator[tuple[int, int, Die]]:
        for li in self.lot_indices():
            for w in range(1, self.wafers_per_lot + 1):
                for d in self.layout.dies:
                    yield li, w, d

    def frames_with_truth(self) -> Iterator[tuple[Frame, Detections]]:
        """Every die of every wafer of every lot, in scan order, with its ground truth."""
        t_next = time.monotonic()
        for li, w, d in self._jobs():
            if self._closed:
                return
            if self.rate_hz:
                delay = t_next - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                # A late frame resets the schedule instead of bursting to catch up.
                t_next = max(t_next, time.monotonic()) + 1.0 / self.rate_hz
            image, truth = self.render(li, w, d)
            fid = self.frame_id(li, w, d)
            self._remember(fid, truth)
            frame = Frame(fid, self.station_id, self.name, time.monotonic(), Frame.utc_now(), image,
                          self.context(li, w, d))
            yield frame, truth

    def frames(self) -> Iterator[Frame]:
        for frame, _ in self.frames_with_truth():
            yield frame

    def ground_truth(self, frame_id: str) -> Detections:
        """The truth of a frame this line produces (re-rendered if it is no longer cached)."""
        with self._lock:
            cached = self._truth_cache.get(frame_id)
        if cached is not None:
            return cached
        li, w, d = self.parse_frame_id(frame_id)
        if li not in self.lot_indices() or not 1 <= w <= self.wafers_per_lot or d not in self.layout:
            raise KeyError(f"frame {frame_id!r} is not produced by {self.name}")
        _, truth = self.render(li, w, d)
        self._remember(frame_id, truth)
        return truth

    def _remember(self, frame_id: str, truth: Detections) -> None:
        with self._lock:
            self._truth_cache[frame_id] = truth
            self._truth_cache.move_to_end(frame_id)
            while len(self._truth_cache) > 8192:
                self._truth_cache.popitem(last=False)

    def close(self) -> None:
        """Stop: a running ``frames()`` ends before its next frame; later calls yield nothing."""
        self._closed = True

    def __len__(self) -> int:
        return self.lots * self.wafers_per_lot * len(self.layout)

    def __repr__(self) -> str:
        return (f"SyntheticWaferLine(seed={self.seed}, lots={self.lots}, wafers_per_lot={self.wafers_per_lot}, "
                f"dies_per_wafer={len(self.layout)}, die_px={self.die_px})")


__all__ = [
    "CLASS_NAMES", "CLASS_ID", "SIGNATURES", "GENERATOR_VERSION", "MIN_BOX_PX", "DEFAULT_CLASS_WEIGHTS",
    "DefectSpec", "WaferTruth", "SyntheticWaferLine", "render_die", "render_field",
]
