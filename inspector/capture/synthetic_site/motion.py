"""Where every worker is in every frame: visits (enter, walk between random targets, pause, leave)
simulated once for the whole video, so any frame's state can be read at random.

Each of ``n_workers`` slots holds one worker at a time: the first ones stand on the site at frame 0,
later ones walk in from a side after a short gap and leave again by a side. A visit keeps one track
id from entering to leaving (ids count up in order of arrival), whatever hides it in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from inspector.capture.synthetic_site.people import Look
from inspector.capture.synthetic_site.scene import Perspective

STEP_HZ = 1.8  # strides per second while walking


@dataclass(frozen=True)
class Visit:
    """One worker's stay on camera: frames ``first`` .. ``first + len(x) - 1``."""

    track_id: int
    look: Look
    first: int
    x: np.ndarray        # feet x per frame (float32)
    y: np.ndarray        # feet y per frame
    phase: np.ndarray    # walk phase per frame (radians)
    walking: np.ndarray  # bool per frame

    @property
    def last(self) -> int:
        return self.first + len(self.x) - 1


def _inside_target(rng: np.random.Generator, p: Perspective) -> tuple[float, float]:
    return float(rng.uniform(0.06, 0.94) * p.width), float(rng.uniform(p.y_min, p.y_max))


def _walk(rng: np.random.Generator, p: Perspective, fps: float, start: tuple[float, float], first: int,
          n_frames: int, stay_s: float, entering: bool) -> tuple[int, list[tuple[float, float, float, bool]]]:
    """Frames of one visit from ``first`` until it leaves the image or the video ends."""
    dt = 1.0 / fps
    x, y = start
    phase = float(rng.uniform(0, 2 * math.pi))
    pace = float(rng.uniform(0.5, 0.85))  # person heights per second (about 1 to 1.5 m/s)
    target = _inside_target(rng, p)
    pause_left = 0.0 if entering else float(rng.uniform(0, 3))
    leaving = False
    states: list[tuple[float, float, float, bool]] = []
    f = first
    while f < n_frames:
        t_on = (f - first) * dt
        if not leaving and t_on >= stay_s:
            leaving = True
            side = -0.12 if x < p.width / 2 else 1.12
            target = (side * p.width, float(np.clip(y + rng.uniform(-0.05, 0.05) * p.height, p.y_min, p.y_max)))
            pause_left = 0.0
        walking = pause_left <= 0
        if walking:
            dx, dy = target[0] - x, (target[1] - y) * 2.0  # rows are foreshortened: a row is ~2 columns of ground
            dist = math.hypot(dx, dy)
            step = pace * p.person_px(y) * dt
            if dist <= step:
                x, y = target
                if leaving:
                    states.append((x, y, phase, True))
                    return f, states
                pause_left = float(rng.uniform(0.5, 4.0)) if rng.random() < 0.6 else 0.0
                target = _inside_target(rng, p)
            else:
                x += dx / dist * step
                y += dy / dist * step / 2.0
            phase += 2 * math.pi * STEP_HZ * dt * pace / 0.7
        else:
            pause_left -= dt
        states.append((x, y, phase, walking))
        f += 1
    return f, states


def simulate(seed: int, p: Perspective, fps: float, n_frames: int, n_workers: int, p_no_hat: float,
             p_no_vest: float) -> list[Visit]:
    """Every visit of the video, ordered by track id (= order of arrival)."""
    raw: list[tuple[int, int, Look, list[tuple[float, float, float, bool]]]] = []
    for slot in range(n_workers):
        rng = np.random.default_rng([seed, 7, slot])
        f = 0
        entering = False
        while f < n_frames:
            look = Look.draw(rng, p_no_hat, p_no_vest)
            if entering:
                side = -0.1 if rng.random() < 0.5 else 1.1
                start = (side * p.width, float(rng.uniform(p.y_min, p.y_max)))
            else:
                start = _inside_target(rng, p)
            stay_s = float(rng.uniform(15, 50)) if entering else float(rng.uniform(5, 50))
            end, states = _walk(rng, p, fps, start, f, n_frames, stay_s, entering)
            if states:
                raw.append((f, slot, look, states))
            f = end + 1 + int(rng.uniform(1, 6) * fps)  # a gap before the slot's next worker walks in
            entering = True
    raw.sort(key=lambda r: (r[0], r[1]))
    visits = []
    for tid, (first, _, look, states) in enumerate(raw, start=1):
        arr = np.array([s[:3] for s in states], np.float32)
        visits.append(Visit(tid, look, first, arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(),
                            np.array([s[3] for s in states], bool)))
    return visits
