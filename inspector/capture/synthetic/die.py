"""One die (or a larger field of dies): appearance, defects and sensor noise, with exact truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from inspector.capture.synthetic.defects import (
    CLASS_ID,
    CLASS_NAMES,
    DRAW_ORDER,
    DefectSpec,
    box_overlap,
    composite,
    defect_overlays,
    nominal_box,
    place_defects,
    sample_spec,
)
from inspector.capture.synthetic.design import NOISE_MARGIN, Surface, die_design, noise_bank
from inspector.core.detections import Detections


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
        "noise_at": rng.integers(0, NOISE_MARGIN, 2),
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
    design = die_design(int(size), int(product))
    s = size / 640.0
    look = _die_appearance(rng, size)
    c = (size - 1) / 2.0
    m = cv2.getRotationMatrix2D((c, c), look["theta"], 1.0)
    m[:, 2] += look["shift"]
    surf = Surface(design, (size, size), m, design.features, design.gaps)
    fixed = [d for d in defects if isinstance(d, DefectSpec)]
    kinds = [d for d in defects if not isinstance(d, DefectSpec)]
    for k in kinds:
        if k not in CLASS_ID:
            raise ValueError(f"render_die: unknown defect kind {k!r}; expected one of {CLASS_NAMES}")
    specs = place_defects(rng, kinds, fixed, surf, s, edge_dir=edge_dir)

    # Canvas -> image: nominal die coords map through m; the canvas is offset by ``pad``.
    mc = m.copy()
    mc[:, 2] -= m[:, :2] @ np.array([design.pad, design.pad], np.float64)
    img = cv2.warpAffine(design.canvas, mc, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    boxes, classes = _draw_specs(img, specs, surf, look["light"], draw_defects)
    nx, ny = look["noise_at"]
    out = _finish(img, look, noise_bank(size)[ny:ny + size, nx:nx + size], look["sigma"])
    return out, _truth(boxes, classes)


def _draw_specs(img: np.ndarray, specs: Sequence[DefectSpec], surf: Surface, light: float,
                draw: bool) -> tuple[list[tuple[int, int, int, int]], list[int]]:
    boxes: list[tuple[int, int, int, int]] = []
    classes: list[int] = []
    for spec in sorted(specs, key=lambda p: DRAW_ORDER[p.kind]):  # stable: keeps sampling order
        box = composite(img, defect_overlays(spec, surf, light), draw)
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
    design = die_design(int(die_px), int(product))
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
    surf = Surface(design, (size, size), None, feats, gaps, under_full=under, top_full=top)

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
            spec = sample_spec(rng, kind, surf, s, near=near, borders=borders if kind == "edge_chip" else None)
            nb = nominal_box(spec, surf)
            if kind == "scratch" or all(box_overlap(nb, b) < 0.2 for q, b in zip(specs, boxes) if q.kind != "scratch"):
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
