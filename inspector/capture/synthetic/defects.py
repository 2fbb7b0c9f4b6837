"""Defects: the five classes, their specifications, how each is drawn, and where they are placed on a
die. Every random draw happens before anything is drawn (see the package docstring)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from inspector.capture.synthetic.design import Surface

# The order is a contract: station configs and trained models index classes by position.
CLASS_NAMES: tuple[str, ...] = ("particle", "scratch", "residue", "pattern", "edge_chip")
CLASS_ID: dict[str, int] = {n: i for i, n in enumerate(CLASS_NAMES)}

MIN_BOX_PX = 6  # a defect thinner than this after clipping is not drawn (and so not labelled)
_ALPHA_CUT = 0.06  # alpha below this is set to 0: the drawn extent and the box are the same set

# Relative class frequencies for random defects. Edge chips are only ever drawn on edge dies.
DEFAULT_CLASS_WEIGHTS: dict[str, float] = {
    "particle": 0.34, "scratch": 0.16, "residue": 0.18, "pattern": 0.32, "edge_chip": 0.30,
}
# Draw order: pattern changes the circuit itself, stains sit on it, particles on top, scratches
# cut through, a chip removes everything.
DRAW_ORDER = {"pattern": 0, "residue": 1, "particle": 2, "scratch": 3, "edge_chip": 4}


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


def _render_particle(spec: DefectSpec, surf: Surface, light: float) -> list[_Overlay]:
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


def _render_scratch(spec: DefectSpec, surf: Surface) -> list[_Overlay]:
    pts = surf.to_image(np.asarray(spec.points, np.float64))
    pts = clip_path(pts, -4, -4, surf.w + 4, surf.h + 4)
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


def _render_residue(spec: DefectSpec, surf: Surface) -> list[_Overlay]:
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


def _render_edge_chip(spec: DefectSpec, surf: Surface) -> list[_Overlay]:
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


def _render_pattern(spec: DefectSpec, surf: Surface) -> list[_Overlay]:
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


def clip_path(pts: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray | None:
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


def defect_overlays(spec: DefectSpec, surf: Surface, light: float) -> list[_Overlay]:
    if spec.kind == "particle":
        return _render_particle(spec, surf, light)
    if spec.kind == "scratch":
        return _render_scratch(spec, surf)
    if spec.kind == "residue":
        return _render_residue(spec, surf)
    if spec.kind == "edge_chip":
        return _render_edge_chip(spec, surf)
    return _render_pattern(spec, surf)


def composite(img: np.ndarray, overlays: list[_Overlay], draw: bool) -> tuple[int, int, int, int] | None:
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

def nominal_box(spec: DefectSpec, surf: Surface) -> tuple[float, float, float, float]:
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


def box_overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    amin = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(amin, 1e-9)


def sample_spec(rng: np.random.Generator, kind: str, surf: Surface, s: float,
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


def place_defects(rng: np.random.Generator, kinds: Sequence[str], fixed: Sequence[DefectSpec], surf: Surface, s: float,
           edge_dir: tuple[float, float] | None = None, **kw: Any) -> list[DefectSpec]:
    """Sample specs for ``kinds`` avoiding overlap with each other (scratches may cross things)."""
    placed = list(fixed)
    boxes = [nominal_box(p, surf) for p in placed]
    for kind in kinds:
        for _ in range(25):
            spec = sample_spec(rng, kind, surf, s, edge_dir=edge_dir, **kw)
            nb = nominal_box(spec, surf)
            if kind == "scratch" or all(box_overlap(nb, b) < 0.2 for p, b in zip(placed, boxes) if p.kind != "scratch"):
                placed.append(spec)
                boxes.append(nb)
                break
    return placed


# ================================================================================================
# One die
