"""How a worker looks and where its parts are: one geometry computed from (feet, height, walk phase),
used both to draw the worker and to give its exact boxes (body, head, hard hat, vest).

A worker is drawn front-on: legs and arms swing with the walk phase. Hard hats are domes with a brim
in site colours; heads without one show hair or, now and then, a soft cap (not a hard hat: a fair
hard negative). Hi-vis vests are fluorescent yellow or orange with reflective bands; workers without
one wear ordinary shirts in muted colours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

Color = tuple[int, int, int]  # BGR
Box = tuple[float, float, float, float]

HAT_COLORS: tuple[Color, ...] = ((20, 220, 250), (245, 245, 245), (0, 140, 250), (40, 40, 210), (200, 110, 30),
                                 (60, 170, 60))
VEST_COLORS: tuple[Color, ...] = ((60, 255, 215), (70, 250, 190), (0, 130, 255))
SHIRT_COLORS: tuple[Color, ...] = ((140, 90, 50), (110, 110, 110), (40, 40, 120), (220, 220, 215), (35, 35, 35),
                                   (60, 90, 120), (70, 100, 60), (120, 60, 90))
PANTS_COLORS: tuple[Color, ...] = ((110, 70, 40), (70, 110, 140), (60, 60, 60), (40, 40, 40), (90, 100, 110))
SKIN_COLORS: tuple[Color, ...] = ((120, 160, 215), (95, 135, 190), (70, 100, 150), (50, 70, 110), (140, 180, 225))
HAIR_COLORS: tuple[Color, ...] = ((20, 20, 25), (30, 50, 80), (60, 110, 160), (150, 150, 150))
CAP_COLORS: tuple[Color, ...] = ((30, 30, 30), (90, 40, 20), (40, 40, 110), (80, 80, 80))


@dataclass(frozen=True)
class Look:
    """A worker's appearance, fixed for its whole visit."""

    hat: bool
    vest: bool
    hat_color: Color
    vest_color: Color
    shirt: Color
    pants: Color
    skin: Color
    hair: Color
    soft_cap: Color | None     # a non-PPE cap on a head without a hard hat
    build: float               # width factor (0.9 .. 1.15)
    stature: float             # height factor (0.92 .. 1.06)

    def toned(self, lut: np.ndarray) -> "Look":
        """The same look through a camera's tone curve (a ``cv2.LUT`` table of shape 256x1x3)."""
        def t(c: Color) -> Color:
            return (int(lut[c[0], 0, 0]), int(lut[c[1], 0, 1]), int(lut[c[2], 0, 2]))

        return replace(self, hat_color=t(self.hat_color), vest_color=t(self.vest_color), shirt=t(self.shirt),
                       pants=t(self.pants), skin=t(self.skin), hair=t(self.hair),
                       soft_cap=None if self.soft_cap is None else t(self.soft_cap))

    @classmethod
    def draw(cls, rng: np.random.Generator, p_no_hat: float, p_no_vest: float) -> "Look":
        def pick(options: tuple[Color, ...]) -> Color:
            return options[int(rng.integers(0, len(options)))]

        hat = bool(rng.random() >= p_no_hat)
        vest = bool(rng.random() >= p_no_vest)
        cap = pick(CAP_COLORS) if (not hat and rng.random() < 0.3) else None
        return cls(hat, vest, pick(HAT_COLORS), pick(VEST_COLORS), pick(SHIRT_COLORS), pick(PANTS_COLORS),
                   pick(SKIN_COLORS), pick(HAIR_COLORS), cap, float(rng.uniform(0.9, 1.15)),
                   float(rng.uniform(0.92, 1.06)))


@dataclass(frozen=True)
class Pose:
    """Where one worker's parts are in one frame (pixels). ``body`` includes the hat when worn."""

    body: Box
    head: Box
    hat: Box | None
    vest: Box | None
    torso: Box
    legs: tuple[tuple[tuple[float, float], tuple[float, float]], ...]   # hip -> foot, per leg
    arms: tuple[tuple[tuple[float, float], tuple[float, float]], ...]   # shoulder -> hand, per arm
    limb_px: int
    head_c: tuple[float, float]
    head_r: float


def pose(look: Look, x: float, y: float, person_px: float, phase: float, walking: bool) -> Pose:
    """The parts of a worker standing with feet centred at ``(x, y)``, ``person_px`` tall (hat included)."""
    h = person_px * look.stature
    b = look.build
    swing = math.sin(phase) if walking else 0.0
    head_r = 0.062 * h
    head_c = (x, y - 0.905 * h)
    limb = max(int(round(0.055 * h * b)), 2)
    sh_y, hip_y = y - 0.80 * h, y - 0.49 * h
    half_sh, half_hip = 0.125 * h * b, 0.095 * h * b
    torso = (x - half_sh, sh_y, x + half_sh, hip_y)
    # front-on walk: the stride shows as legs spreading and closing, arms swinging out and in
    stride = abs(swing)
    legs = tuple(((x + side * half_hip * 0.55, hip_y), (x + side * (half_hip * 0.6 + 0.07 * h * stride), y - 0.02 * h))
                 for side in (-1, 1))
    arm_out = 0.015 * h + (0.035 * h * abs(math.cos(phase)) if walking else 0.0)
    arms = tuple(((x + side * (half_sh - limb / 2), sh_y + limb / 2), (x + side * (half_sh + arm_out), hip_y + 0.02 * h))
                 for side in (-1, 1))
    head = (head_c[0] - head_r, head_c[1] - head_r, head_c[0] + head_r, head_c[1] + head_r)
    hat = None
    if look.hat:
        # dome over the top of the head plus a brim just above the eyes
        hat = (head_c[0] - 1.35 * head_r, y - h, head_c[0] + 1.35 * head_r, head_c[1] - 0.05 * head_r)
    vest = None
    if look.vest:
        vest = (torso[0] - 0.012 * h, sh_y - 0.01 * h, torso[2] + 0.012 * h, y - 0.55 * h)
    xs = [torso[0], torso[2], head[0], head[2]]
    for s, e in legs + arms:
        xs += [s[0] - limb / 2, s[0] + limb / 2, e[0] - limb / 2, e[0] + limb / 2]
    for _, e in legs:  # boots stick out forward
        xs += [e[0] - limb * 0.7, e[0] + limb * 0.9]
    if look.soft_cap is not None:
        xs += [head_c[0] - 1.05 * head_r, head_c[0] + 1.05 * head_r]
    if hat is not None:
        xs += [hat[0], hat[2]]
    top = hat[1] if hat is not None else (head[1] - 0.2 * head_r if look.soft_cap is not None else head[1] - 0.06 * head_r)
    bottom = y + 0.01 * h  # boots
    if vest is not None:
        xs += [vest[0], vest[2]]
    body = (min(xs), top, max(xs), bottom)
    return Pose(body, head, hat, vest, torso, legs, arms, limb, head_c, head_r)


def _pt(p: tuple[float, float]) -> tuple[int, int]:
    return int(round(p[0])), int(round(p[1]))


def draw_worker(img: np.ndarray, look: Look, ps: Pose) -> None:
    """Draw one worker onto ``img`` in place (cv2 primitives: fast, a few dozen per worker)."""
    limb = ps.limb_px
    h = ps.body[3] - ps.body[1]
    # legs and boots
    for s, e in ps.legs:
        cv2.line(img, _pt(s), _pt(e), look.pants, limb + 1, cv2.LINE_AA)
        boot = (int(e[0] - limb * 0.7), int(e[1] - limb * 0.4), int(e[0] + limb * 0.9), int(e[1] + 0.01 * h + 1))
        cv2.rectangle(img, boot[:2], boot[2:], (25, 35, 45), -1)
    # torso (shirt), slightly tapered
    x0, y0, x1, y1 = ps.torso
    waist = (x1 - x0) * 0.1
    torso_pts = np.array([(x0, y0), (x1, y0), (x1 - waist, y1), (x0 + waist, y1)], np.float32)
    cv2.fillPoly(img, [np.round(torso_pts).astype(np.int32)], look.shirt, cv2.LINE_AA)
    # arms (sleeves) and hands
    for s, e in ps.arms:
        cv2.line(img, _pt(s), _pt(e), look.shirt, limb, cv2.LINE_AA)
        cv2.circle(img, _pt(e), max(limb // 2, 1), look.skin, -1, cv2.LINE_AA)
    if ps.vest is not None:
        vx0, vy0, vx1, vy1 = ps.vest
        vest_pts = np.array([(vx0, vy0 + 0.02 * h), (vx0 + (vx1 - vx0) * 0.3, vy0), (vx1 - (vx1 - vx0) * 0.3, vy0),
                             (vx1, vy0 + 0.02 * h), (vx1, vy1), (vx0, vy1)], np.float32)
        cv2.fillPoly(img, [np.round(vest_pts).astype(np.int32)], look.vest_color, cv2.LINE_AA)
        band = max(int(round(0.016 * h)), 1)
        for f in (0.55, 0.8):  # reflective bands
            yb = int(round(vy0 + (vy1 - vy0) * f))
            cv2.rectangle(img, (int(vx0), yb - band // 2), (int(vx1), yb + band // 2 + (band % 2) - 1 + 1), (205, 210, 210), -1)
        # opening at the front shows the shirt
        cx = (vx0 + vx1) / 2
        cv2.line(img, (int(cx), int(vy0 + 0.01 * h)), (int(cx), int(vy1)), look.shirt, max(int(0.012 * h), 1))
    # neck and head
    hc, hr = ps.head_c, ps.head_r
    cv2.line(img, _pt((hc[0], hc[1] + hr)), _pt((hc[0], ps.torso[1])), look.skin, max(int(hr * 0.9), 1))
    cv2.circle(img, _pt(hc), max(int(round(hr)), 1), look.skin, -1, cv2.LINE_AA)
    if ps.hat is None:
        # hair on the top of the head
        cv2.ellipse(img, _pt((hc[0], hc[1] - hr * 0.25)), (max(int(hr), 1), max(int(hr * 0.8), 1)), 0, 180, 360,
                    look.hair, -1, cv2.LINE_AA)
        if look.soft_cap is not None:
            cv2.ellipse(img, _pt((hc[0], hc[1] - hr * 0.35)), (max(int(hr * 1.05), 1), max(int(hr * 0.85), 1)), 0,
                        180, 360, look.soft_cap, -1, cv2.LINE_AA)
    else:
        hx0, hy0, hx1, hy1 = ps.hat
        brim_h = max(int(round((hy1 - hy0) * 0.18)), 1)
        dome_c = (hc[0], hy1 - brim_h)
        dome_ax = (max(int(round(hr * 1.12)), 1), max(int(round(hy1 - brim_h - hy0)), 1))
        cv2.ellipse(img, _pt(dome_c), dome_ax, 0, 180, 360, look.hat_color, -1, cv2.LINE_AA)
        cv2.rectangle(img, (int(round(hx0)), int(round(hy1 - brim_h))), (int(round(hx1)) - 1, int(round(hy1)) - 1),
                      _shade(look.hat_color, 0.85), -1)
        # a ridge down the middle catches the light
        cv2.line(img, _pt((hc[0], hy0 + 1)), _pt((hc[0], hy1 - brim_h)), _shade(look.hat_color, 1.15),
                 max(int(hr * 0.2), 1))


def _shade(c: Color, f: float) -> Color:
    return (min(int(c[0] * f), 255), min(int(c[1] * f), 255), min(int(c[2] * f), 255))
