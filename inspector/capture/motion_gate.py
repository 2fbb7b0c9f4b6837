"""Motion gating for archive analysis: infer where something moves, skip static stretches.

Each sampled frame is shrunk to a small grey image (a subsampling step, then an area resize: about
2 ms for 1080p) and compared with the small image of the last frame that was *inferred*, not
with the previous sample: a worker walking slowly accumulates change until it counts, instead of
staying under the threshold sample after sample.

The threshold adapts to the noise of the recording. Most pixels of a site camera are static, so
the median absolute difference estimates the noise (sensor noise, compression); a pixel changed
when it differs by more than ``noise_k`` robust sigmas (never less than ``min_diff`` grey levels).
The median signed difference is removed first: a global brightness change (clouds, auto
exposure) is no motion. Motion = the changed share of the image exceeds ``min_area``.

Tracks and incidents need regular looks even at a still scene (a worker standing in a danger zone
does not move): a frame is inferred anyway once ``max_skip_s`` have passed since the last inferred
one (reason ``max_gap``), and for ``hold_s`` after motion (reason ``hold``) so that a track gets the
consecutive detections it needs to be confirmed. Where the caller knows the scene is empty (the last
inferred frame found nothing: no track to keep alive), it says ``idle=True`` and the longest gap is
``idle_max_skip_s`` instead: motion against the last inferred frame still wakes the gate at once.

A decoder that can scale in its own pixel pipeline hands the small grey image itself
(:meth:`MotionGate.decide_grey`, size from :meth:`MotionGateParams.size_for`): no full-size BGR
image is made for a frame the gate skips.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation for Gaussian noise

# Why a sampled frame was inferred or skipped (recorded per analysed stretch).
FIRST, MOTION, HOLD, MAX_GAP, STATIC = "first", "motion", "hold", "max_gap", "static"


@dataclass(frozen=True, slots=True)
class MotionGateParams:
    """How the gate shrinks, compares and decides (see the module doc)."""

    width: int = 256            # width of the small grey image compared (height keeps the aspect)
    blur: int = 3               # box blur of the small image (odd; 1 = none): less noise, same motion
    noise_k: float = 4.0        # changed = |diff| above noise_k robust sigmas of the frame's differences
    min_diff: int = 10          # ... and at least this many grey levels
    min_area: float = 0.0005    # share of changed pixels that counts as motion (0.05 %)
    max_skip_s: float = 1.0     # never more than this between inferred frames (tracks stay alive)
    hold_s: float = 0.5         # keep inferring this long after the last motion
    idle_max_skip_s: float = 4.0  # ... where the caller says the scene is empty (idle; never below max_skip_s)

    def __post_init__(self) -> None:
        if self.width < 16:
            raise ValueError(f"width must be at least 16, got {self.width}")
        if self.blur < 1 or self.blur % 2 == 0:
            raise ValueError(f"blur must be odd and >= 1, got {self.blur}")
        if not 0 <= self.min_area < 1:
            raise ValueError(f"min_area must be in [0, 1), got {self.min_area}")
        if self.max_skip_s <= 0:
            raise ValueError(f"max_skip_s must be positive, got {self.max_skip_s}")
        if self.hold_s < 0:
            raise ValueError(f"hold_s must be >= 0, got {self.hold_s}")

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the small grey image for a ``width`` x ``height`` video (as ``small_grey``)."""
        w = min(self.width, width)
        return w, max(1, round(height * w / width))


@dataclass(frozen=True, slots=True)
class GateDecision:
    infer: bool
    reason: str        # first / motion / hold / max_gap (inferred), static (skipped)
    changed: float     # share of pixels that changed against the reference (0..1)


def small_grey(image: np.ndarray, width: int, blur: int = 1) -> np.ndarray:
    """``image`` (BGR or grey, any size) as a small grey float32 image ``width`` pixels wide."""
    h, w = image.shape[:2]
    width = min(width, w)
    height = max(1, round(h * width / w))
    step = max(1, w // (2 * width))  # subsample first: resizing all of a 1080p image costs 2-3x more
    sub = image[::step, ::step]
    small = cv2.resize(sub, (width, height), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_BGRA2GRAY if small.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    small = small.astype(np.float32)
    return cv2.blur(small, (blur, blur)) if blur > 1 else small


def changed_share(a: np.ndarray, b: np.ndarray, noise_k: float, min_diff: float) -> float:
    """Share of pixels of two small grey images that changed beyond the noise (see the module doc)."""
    if a.shape != b.shape:
        return 1.0  # a new size is a new scene
    d = a - b
    d -= np.median(d)                       # a global brightness shift is no motion
    ad = np.abs(d)
    sigma = _MAD_TO_SIGMA * float(np.median(ad))
    thr = max(float(min_diff), noise_k * sigma)
    return float(np.count_nonzero(ad > thr)) / ad.size


class MotionGate:
    """Decides per sampled frame whether to infer it; one gate per video (it keeps the reference)."""

    def __init__(self, params: MotionGateParams | None = None) -> None:
        self.params = params or MotionGateParams()
        self._ref: np.ndarray | None = None
        self._t_inferred = float("-inf")
        self._t_motion = float("-inf")

    def decide(self, image: np.ndarray, t_s: float, idle: bool = False) -> GateDecision:
        """Whether the frame at video time ``t_s`` (seconds, increasing) should be inferred."""
        return self._decide(small_grey(image, self.params.width, self.params.blur), t_s, idle)

    def decide_grey(self, grey: np.ndarray, t_s: float, idle: bool = False) -> GateDecision:
        """``decide`` for a frame already shrunk to a small grey image (``params.size_for`` the video)."""
        small = grey.astype(np.float32)
        b = self.params.blur
        return self._decide(cv2.blur(small, (b, b)) if b > 1 else small, t_s, idle)

    def _decide(self, small: np.ndarray, t_s: float, idle: bool) -> GateDecision:
        p = self.params
        if self._ref is None:
            return self._inferred(small, t_s, FIRST, 1.0)
        changed = changed_share(small, self._ref, p.noise_k, p.min_diff)
        if changed > p.min_area:
            self._t_motion = t_s
            return self._inferred(small, t_s, MOTION, changed)
        if t_s - self._t_motion <= p.hold_s:
            return self._inferred(small, t_s, HOLD, changed)
        # A small tolerance: at 25 fps a sampled frame lands at 0.99999 s, not exactly at 1 s.
        if t_s - self._t_inferred >= (max(p.idle_max_skip_s, p.max_skip_s) if idle else p.max_skip_s) - 1e-6:
            return self._inferred(small, t_s, MAX_GAP, changed)
        return GateDecision(False, STATIC, changed)

    def _inferred(self, small: np.ndarray, t_s: float, reason: str, changed: float) -> GateDecision:
        self._ref, self._t_inferred = small, t_s
        return GateDecision(True, reason, changed)


__all__ = ["FIRST", "HOLD", "MAX_GAP", "MOTION", "STATIC", "GateDecision", "MotionGate", "MotionGateParams",
           "changed_share", "small_grey"]
