"""PPE state per track as the majority over a short time window: a detector that misses a hat in
one frame must not make a violation (and one lucky box must not hide a missing hat for long)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np


class PpeSmoother:
    """Per track, the last ``window_s`` seconds of (t, hat seen, vest seen); the smoothed state is
    "worn" when it was seen in at least half of them (a tie counts as worn: no violation on doubt).
    Tracks not seen for ``forget_s`` are forgotten. Unconfirmed tracks (id < 0) pass through raw."""

    def __init__(self, window_s: float, forget_s: float = 10.0) -> None:
        self.window_s = float(window_s)
        self.forget_s = float(forget_s)
        self._hist: dict[int, deque[tuple[float, bool, bool]]] = {}

    def update(self, t: float, track_ids: Sequence[int] | np.ndarray, hat: np.ndarray,
               vest: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Add this frame's raw states (bool per worker) and return the smoothed ones."""
        ids = np.asarray(track_ids, dtype=np.int64).reshape(-1)
        hat_raw = np.asarray(hat, dtype=bool).reshape(-1)
        vest_raw = np.asarray(vest, dtype=bool).reshape(-1)
        hat_out, vest_out = hat_raw.copy(), vest_raw.copy()
        for i, tid in enumerate(ids.tolist()):  # one entry per worker in the frame
            if tid < 0:
                continue
            h = self._hist.setdefault(tid, deque())
            h.append((t, bool(hat_raw[i]), bool(vest_raw[i])))
            while h and h[0][0] < t - self.window_s - 1e-9:  # 1e-9: frame times are sums of floats
                h.popleft()
            n = len(h)
            hat_out[i] = 2 * sum(e[1] for e in h) >= n
            vest_out[i] = 2 * sum(e[2] for e in h) >= n
        for tid in [k for k, h in self._hist.items() if h and h[-1][0] < t - self.forget_s]:
            del self._hist[tid]
        return hat_out, vest_out
