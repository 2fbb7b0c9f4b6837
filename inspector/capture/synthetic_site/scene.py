"""The static part of a synthetic site camera: perspective, the background (sky, a building under
construction, a crane, fence, ground with tracks and clutter) and the occluders workers pass behind.

Everything here is rendered once per camera (seeded) and reused for every frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[int, int, int]  # BGR


@dataclass(frozen=True)
class Perspective:
    """A ground plane seen from a raised camera: a person standing with feet at image row ``y``
    is ``k * (y - horizon)`` pixels tall. Workers walk between rows ``y_min`` and ``y_max``."""

    width: int
    height: int
    horizon: float
    k: float
    y_min: float
    y_max: float

    @classmethod
    def for_image(cls, width: int, height: int) -> "Perspective":
        horizon = 0.28 * height
        k = 0.52 * height / (height - horizon)  # a person at the bottom edge is about half the image tall
        # The far limit keeps people >= ~0.21 image heights tall: hats stay >= ~10 px wide at a 480 px model size.
        return cls(width, height, horizon, k, y_min=0.6 * height, y_max=0.97 * height)

    def person_px(self, y: float) -> float:
        return self.k * (y - self.horizon)


@dataclass(frozen=True)
class Occluder:
    """A static object standing on the ground (container, stack, toilet cabin, barrier): drawn over
    every worker whose feet are farther away (smaller row) than its base row ``base_y``."""

    kind: str
    x0: int
    y0: int
    sprite: np.ndarray   # BGR, the occluder's bounding box
    mask: np.ndarray     # bool, same height and width: which pixels it covers

    @property
    def solid(self) -> bool:
        return bool(self.mask.all())

    def toned(self, lut: np.ndarray) -> "Occluder":
        """The same occluder seen through a camera's tone curve (a ``cv2.LUT`` table)."""
        return Occluder(self.kind, self.x0, self.y0, cv2.LUT(self.sprite, lut), self.mask)

    @property
    def base_y(self) -> int:
        return self.y0 + self.sprite.shape[0]

    @property
    def box(self) -> tuple[int, int, int, int]:
        return self.x0, self.y0, self.x0 + self.sprite.shape[1], self.y0 + self.sprite.shape[0]

    def paste(self, image: np.ndarray) -> None:
        """Draw onto ``image`` in place (clipped to it)."""
        h, w = image.shape[:2]
        x0, y0, x1, y1 = self.box
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        sub = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        if self.solid:
            image[cy0:cy1, cx0:cx1] = self.sprite[sub]
        else:
            cv2.copyTo(self.sprite[sub], self.mask[sub].view(np.uint8), image[cy0:cy1, cx0:cx1])


def _shade(c: Color, f: float) -> Color:
    return tuple(int(np.clip(v * f, 0, 255)) for v in c)  # type: ignore[return-value]


def render_background(rng: np.random.Generator, p: Perspective) -> np.ndarray:
    """Sky, skyline with a building under construction and a crane, a site fence, and the ground."""
    w, h, hz = p.width, p.height, int(p.horizon)
    img = np.empty((h, w, 3), np.uint8)
    # sky: vertical gradient, overcast to blue
    top = np.array(rng.choice([(200, 170, 140), (215, 205, 195), (225, 190, 160)]), np.float32)
    bottom = np.array((235, 230, 225), np.float32)
    t = np.linspace(0, 1, hz)[:, None]
    img[:hz] = (top * (1 - t) + bottom * t).astype(np.uint8)[:, None, :]
    # ground: dirt / gravel colour with a brightness gradient and blotchy texture
    ground = np.array(rng.choice([(95, 120, 140), (110, 125, 130), (80, 105, 125), (120, 130, 135)]), np.float32)
    rows = np.linspace(0.85, 1.1, h - hz)[:, None, None]
    noise = cv2.resize(rng.normal(0, 1, (max(h // 24, 2), max(w // 24, 2))).astype(np.float32), (w, h - hz),
                       interpolation=cv2.INTER_CUBIC)[..., None]
    fine = rng.normal(0, 1, (h - hz, w, 1)).astype(np.float32)
    img[hz:] = np.clip(ground * rows + 14 * noise + 6 * fine, 0, 255).astype(np.uint8)
    _skyline(rng, img, p)
    _fence(rng, img, p)
    _ground_marks(rng, img, p)
    return img


def _skyline(rng: np.random.Generator, img: np.ndarray, p: Perspective) -> None:
    w, hz = p.width, int(p.horizon)
    # a concrete frame building: floors and columns, some bays filled
    bx0 = int(rng.uniform(0.05, 0.45) * w)
    bw = int(rng.uniform(0.3, 0.5) * w)
    floors = int(rng.integers(3, 6))
    fh = max(int(hz * 0.8 / floors), 4)
    grey = (150, 155, 160)
    for f in range(floors + 1):
        y = hz - f * fh
        cv2.rectangle(img, (bx0, y - 3), (bx0 + bw, y), _shade(grey, 0.8), -1)
    cols = int(rng.integers(5, 10))
    for c in range(cols + 1):
        x = bx0 + c * bw // cols
        cv2.rectangle(img, (x - 2, hz - floors * fh), (x + 2, hz), _shade(grey, 0.9), -1)
        for f in range(floors):
            if c < cols and rng.random() < 0.3:
                y = hz - (f + 1) * fh
                cv2.rectangle(img, (x + 3, y + 1), (x + bw // cols - 3, y + fh - 4), _shade(grey, 1.05), -1)
    # a tower crane: mast, jib, counter-jib, cable
    cx = int(rng.uniform(0.15, 0.85) * w)
    top = max(int(hz * 0.12), 2)
    yellow = (30, 190, 230)
    cv2.line(img, (cx, hz), (cx, top), yellow, 3)
    jib = int(rng.uniform(0.25, 0.4) * w) * (1 if rng.random() < 0.5 else -1)
    cv2.line(img, (cx - jib // 3, top), (cx + jib, top), yellow, 2)
    cv2.line(img, (cx, top - 12), (cx + jib, top), yellow, 1)
    cv2.rectangle(img, (cx - jib // 3 - 6, top), (cx - jib // 3 + 6, top + 10), (90, 90, 90), -1)
    hook_x = cx + int(jib * rng.uniform(0.4, 0.9))
    cv2.line(img, (hook_x, top), (hook_x, int(top + hz * 0.4)), (60, 60, 60), 1)


def _fence(rng: np.random.Generator, img: np.ndarray, p: Perspective) -> None:
    w, hz = p.width, int(p.horizon)
    fh = max(int(p.height * 0.05), 6)
    y0 = hz - fh // 3
    color = tuple(int(v) for v in rng.choice([(60, 140, 60), (170, 170, 170), (40, 110, 200)]))
    cv2.rectangle(img, (0, y0), (w, y0 + fh), color, -1)
    step = max(w // 24, 8)
    for x in range(0, w, step):
        cv2.line(img, (x, y0 - 4), (x, y0 + fh), _shade(color, 0.6), 2)


def _ground_marks(rng: np.random.Generator, img: np.ndarray, p: Perspective) -> None:
    w, h, hz = p.width, p.height, int(p.horizon)
    # tyre tracks converging towards the horizon
    for _ in range(int(rng.integers(1, 4))):
        x_far, x_near = rng.uniform(0.2, 0.8) * w, rng.uniform(-0.2, 1.2) * w
        for off in (-0.05, 0.05):
            pts = np.array([(x_far + off * w * 0.2, hz + 4), (x_near + off * w, h)], np.int32)
            cv2.line(img, tuple(pts[0]), tuple(pts[1]), _shade(tuple(int(v) for v in img[h - 2, 0]), 0.75),
                     max(int(h * 0.02), 2))
    # puddles, gravel heaps, rebar, cones, lumber: static clutter, part of the background
    for _ in range(int(rng.integers(6, 14))):
        y = rng.uniform(hz + 0.05 * h, h)
        s = p.person_px(y)
        x = rng.uniform(0, w)
        kind = rng.choice(["puddle", "heap", "rebar", "cone", "lumber", "bucket"])
        if kind == "puddle":
            cv2.ellipse(img, (int(x), int(y)), (int(s * 0.5), int(s * 0.08)), 0, 0, 360, (110, 105, 95), -1)
        elif kind == "heap":
            pts = np.array([(x - s * 0.5, y), (x - s * 0.1, y - s * 0.25), (x + s * 0.3, y - s * 0.2),
                            (x + s * 0.6, y)], np.int32)
            cv2.fillPoly(img, [pts], _shade((120, 130, 140), rng.uniform(0.6, 1.1)))
        elif kind == "rebar":
            for i in range(5):
                cv2.line(img, (int(x - s * 0.6), int(y + i * 2)), (int(x + s * 0.6), int(y + i * 2 - s * 0.05)),
                         (40, 60, 110), 2)
        elif kind == "cone":  # orange like a vest: a fair hard negative
            pts = np.array([(x - s * 0.07, y), (x, y - s * 0.28), (x + s * 0.07, y)], np.int32)
            cv2.fillPoly(img, [pts], (20, 100, 245))
            cv2.line(img, (int(x - s * 0.04), int(y - s * 0.12)), (int(x + s * 0.04), int(y - s * 0.12)),
                     (235, 235, 235), max(int(s * 0.03), 1))
        elif kind == "lumber":
            cv2.rectangle(img, (int(x - s * 0.7), int(y - s * 0.12)), (int(x + s * 0.7), int(y)), (70, 140, 190), -1)
            for i in range(1, 4):
                yy = int(y - s * 0.03 * i)
                cv2.line(img, (int(x - s * 0.7), yy), (int(x + s * 0.7), yy), (50, 100, 140), 1)
        else:
            cv2.rectangle(img, (int(x - s * 0.08), int(y - s * 0.18)), (int(x + s * 0.08), int(y)), (40, 40, 200), -1)


_OCCLUDER_KINDS = ("container", "pallets", "cabin", "barrier", "bags")


def make_occluders(rng: np.random.Generator, p: Perspective, n: int) -> list[Occluder]:
    """``n`` occluders spread across the walking area (left to right), farthest first."""
    out = []
    for i in range(n):
        base = rng.uniform(p.y_min + 0.08 * p.height, p.y_max + 0.02 * p.height)
        s = p.person_px(base)
        kind = str(_OCCLUDER_KINDS[int(rng.integers(0, len(_OCCLUDER_KINDS)))])
        xc = (i + rng.uniform(0.2, 0.8)) / max(n, 1) * p.width
        out.append(_make_occluder(rng, kind, xc, base, s))
    return sorted(out, key=lambda o: o.base_y)


def _make_occluder(rng: np.random.Generator, kind: str, xc: float, base: float, s: float) -> Occluder:
    if kind == "container":
        bw, bh = s * rng.uniform(1.8, 2.6), s * rng.uniform(1.1, 1.3)
    elif kind == "pallets":
        bw, bh = s * rng.uniform(0.6, 0.9), s * rng.uniform(0.55, 0.8)
    elif kind == "cabin":
        bw, bh = s * 0.6, s * 1.25
    elif kind == "barrier":
        bw, bh = s * rng.uniform(1.2, 2.0), s * 0.45
    else:
        bw, bh = s * rng.uniform(0.7, 1.0), s * rng.uniform(0.5, 0.7)
    bw, bh = max(int(bw), 8), max(int(bh), 8)
    sprite = np.zeros((bh, bw, 3), np.uint8)
    mask = np.zeros((bh, bw), np.uint8)
    if kind == "container":
        c = tuple(int(v) for v in rng.choice([(140, 70, 30), (40, 50, 160), (60, 120, 50), (50, 90, 150)]))
        sprite[:] = c
        for x in range(0, bw, max(bw // 30, 3)):  # corrugation
            cv2.line(sprite, (x, 2), (x, bh - 3), _shade(c, 0.75), 1)
        cv2.rectangle(sprite, (0, 0), (bw - 1, bh - 1), _shade(c, 0.55), max(bw // 80, 2))
        mask[:] = 1
    elif kind == "pallets":
        rows = max(bh // max(int(s * 0.1), 3), 2)
        for r in range(rows):
            y0, y1 = r * bh // rows, (r + 1) * bh // rows
            shade = rng.uniform(0.8, 1.1)
            sprite[y0:y1] = _shade((80, 150, 200), shade)
            cv2.line(sprite, (0, y1 - 1), (bw, y1 - 1), (40, 80, 110), 1)
        jitter = int(bw * 0.08)
        pts = np.array([(rng.integers(0, jitter + 1), 0), (bw - 1 - rng.integers(0, jitter + 1), 0), (bw - 1, bh - 1),
                        (0, bh - 1)], np.int32)
        cv2.fillPoly(mask, [pts], 1)
    elif kind == "cabin":  # portable toilet: blue box with a roof and a door
        sprite[:] = (160, 90, 30)
        cv2.rectangle(sprite, (bw // 6, bh // 6), (bw - bw // 6, bh - 2), (140, 75, 25), -1)
        cv2.rectangle(sprite, (0, 0), (bw - 1, bh // 12), (220, 220, 220), -1)
        mask[:] = 1
    elif kind == "barrier":  # concrete jersey barrier, sometimes striped
        pts = np.array([(int(bw * 0.05), 0), (int(bw * 0.95), 0), (bw - 1, bh - 1), (0, bh - 1)], np.int32)
        cv2.fillPoly(mask, [pts], 1)
        sprite[:] = (175, 180, 180)
        if rng.random() < 0.5:
            for x in range(-bh, bw, max(bh, 6)):
                cv2.line(sprite, (x, bh), (x + bh, 0), (30, 30, 200), max(bh // 5, 2))
    else:  # stacked cement bags
        rows = 4
        for r in range(rows):
            y0 = r * bh // rows
            w_row = int(bw * (0.7 + 0.3 * r / (rows - 1)))
            x_off = (bw - w_row) // 2
            cv2.rectangle(sprite, (x_off, y0), (x_off + w_row - 1, (r + 1) * bh // rows - 1), (190, 200, 205), -1)
            cv2.rectangle(mask, (x_off, y0), (x_off + w_row - 1, (r + 1) * bh // rows - 1), 1, -1)
            cv2.line(sprite, (x_off, (r + 1) * bh // rows - 1), (x_off + w_row, (r + 1) * bh // rows - 1), (120, 130, 140), 1)
    # lit from above: the bottom third a little darker
    sprite[int(bh * 0.66):] = (sprite[int(bh * 0.66):].astype(np.float32) * 0.85).astype(np.uint8)
    return Occluder(kind, int(xc - bw / 2), int(base - bh), sprite, mask.astype(bool))
