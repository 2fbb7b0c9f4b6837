"""Per-frame post-processing rules: pure functions over fused ``Detections`` and frame context.

A rule is a small frozen dataclass with an ``id`` (cited by every ``Reason`` it emits), its
parameters in core terms (class ids, pixels; the station's builder converts names and
micrometres) and one method, ``apply(inp, state) -> RuleStep``:

- *filters* (class_threshold, size with action drop, region, persistence) return a ``keep``
  mask and, only when they dropped something, a PASS reason that says how many boxes went;
- *judges* (size with a verdict, agreement, count, uncertainty, disagreement, any_defect) keep
  every box and add a reason with the verdict they ask for when they fire.

``RuleSet`` runs the rules in config order, each one on the boxes the previous ones kept, and
combines the verdicts with ``Verdict.worst`` (PASS when no rule fired). A rule that raises does
not lose the unit: its exception becomes an ERROR reason that names the rule, and the remaining
rules still run so the record shows everything else they found.

Adding a rule: write one dataclass subclassing ``Rule`` here (vectorised numpy over the boxes,
no per-box Python loop), then add one entry to ``RULE_TYPES`` in
``inspector/station/rules_builder.py`` (and its pydantic model to the config schema).

Indices: ``Reason.detection_indices`` in a ``RuleResult`` index ``RuleResult.kept`` (the boxes a
``Decision`` records), so a viewer can highlight them; a box a later rule dropped is no longer
cited. ``RuleResult.kept_index`` maps kept boxes back to the fused input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from inspector.core.decision import Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.geometry import box_iou, points_in_polygon

# (N, 2) pixel points of the frame -> (N, 2) wafer millimetres (x right, y up, origin at the centre).
WaferTransform = Callable[[np.ndarray], np.ndarray]

# Context keys that together name a video stream (persistence keeps one track list per stream).
STREAM_KEYS: tuple[str, ...] = ("source", "camera", "zone")


# ------------------------------------------------------------------------------------------------
# Inputs and outputs
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleInput:
    """Everything a rule may look at for one frame.

    ``fused`` are the ensemble's fused boxes (inside ``RuleSet`` each rule sees the boxes the
    earlier rules kept); ``per_model`` the raw boxes of each ensemble member, in model order
    (needed only by ``Disagreement`` with ``max_spread``). ``wafer_xy_mm`` maps frame pixels to
    wafer millimetres (set by the builder for die images; needed only by edge-ring regions).
    """

    fused: Detections
    per_model: Sequence[Detections] = ()
    n_models: int = 1
    image_shape: tuple[int, int] | None = None
    context: Mapping[str, Any] = field(default_factory=dict)
    t_monotonic: float = 0.0
    wafer_xy_mm: WaferTransform | None = None
    class_names: Sequence[str] = ()

    def class_name(self, class_id: int) -> str:
        """Readable class for messages: the name when known, else 'class N'."""
        return self.class_names[class_id] if 0 <= class_id < len(self.class_names) else f"class {class_id}"

    @property
    def stream_key(self) -> tuple[str, ...]:
        """The stream this frame belongs to (context source / camera / zone), for stateful rules."""
        return tuple(str(self.context.get(k, "")) for k in STREAM_KEYS)


@dataclass(frozen=True, slots=True)
class RuleStep:
    """What one rule did: which boxes stay (``None`` = all) and the reasons it gives."""

    keep: np.ndarray | None = None
    reasons: tuple[Reason, ...] = ()
    # Optional: each reason's cited boxes as an index array (parallel to ``reasons``), so the rule
    # set need not rebuild arrays from the tuples on the per-frame path.
    cited: tuple[np.ndarray | None, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleResult:
    """The outcome of a rule set on one frame."""

    verdict: Verdict
    reasons: tuple[Reason, ...]
    kept: Detections
    dropped: dict[str, int]
    kept_index: np.ndarray  # index of each kept box in the fused input


# ------------------------------------------------------------------------------------------------
# Rule base and helpers
# ------------------------------------------------------------------------------------------------


def _as_verdict(v: Verdict | str) -> Verdict:
    return v if isinstance(v, Verdict) else Verdict(v)


def _plural(n: int, word: str = "box") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {'boxes' if word == 'box' else word + 's'}"


def _by_class(inp: RuleInput, class_ids: np.ndarray) -> str:
    """'2 particle, 1 scratch' for the given class ids."""
    if len(class_ids) and class_ids.min() >= 0:
        counts = np.bincount(class_ids)  # class ids are small: cheaper than np.unique
        ids = counts.nonzero()[0]
        counts = counts[ids]
    else:
        ids, counts = np.unique(class_ids, return_counts=True)
    return ", ".join(f"{c} {inp.class_name(i)}" for i, c in zip(ids.tolist(), counts.tolist()))


@dataclass(frozen=True, kw_only=True, eq=False)
class Rule:
    """Base of every rule: an id and the class ids it applies to (``None`` = every class)."""

    id: str
    classes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError(f"{type(self).__name__}: a rule needs an id")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
            # A bool lookup table by class id: cheaper than np.isin on the per-frame path.
            lut = np.zeros(max([c + 1 for c in self.classes if c >= 0], default=0) + 1, bool)
            lut[[c for c in self.classes if c >= 0]] = True
            object.__setattr__(self, "_class_lut", lut)

    def applies(self, det: Detections) -> np.ndarray:
        """Bool mask of the boxes this rule looks at."""
        if self.classes is None:
            return np.ones(len(det), dtype=bool)
        lut = self._class_lut  # type: ignore[attr-defined]
        cid = det.class_id
        # ids outside the table (negative or beyond the listed ones) land on its last, False, entry
        return lut.take(np.where((cid >= 0) & (cid < len(lut)), cid, len(lut) - 1))

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        raise NotImplementedError

    # Shared outcomes ---------------------------------------------------------------------------
    def _drop(self, drop: np.ndarray, why: str) -> RuleStep:
        """Filter outcome: keep the rest; a PASS reason only when something was dropped."""
        n = int(np.count_nonzero(drop))
        if n == 0:
            return RuleStep()
        return RuleStep(~drop, (Reason(self.id, Verdict.PASS, f"dropped {_plural(n)} {why}"),))

    def _judge(self, hit: np.ndarray, verdict: Verdict, message: str) -> RuleStep:
        """Judge outcome: a reason citing the boxes that made the rule fire."""
        idx = np.flatnonzero(hit)
        return RuleStep(None, (Reason(self.id, verdict, message, tuple(idx.tolist())),), (idx,))


# ------------------------------------------------------------------------------------------------
# Filters
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class ClassThreshold(Rule):
    """Drop boxes scoring below their class's minimum (``default`` for unlisted classes)."""

    thresholds: Mapping[int, float] = field(default_factory=dict)
    default: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "thresholds", {int(k): float(v) for k, v in self.thresholds.items()})
        # A lookup table by class id (ids are small non-negative ints); ids beyond it get the default.
        size = max([k + 1 for k in self.thresholds if k >= 0], default=0)
        lut = np.full(size, self.default, np.float32)
        for k, v in self.thresholds.items():
            if k >= 0:
                lut[k] = v
        object.__setattr__(self, "_lut", lut)

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        cid = det.class_id
        lut = self._lut
        if len(lut):
            known = (cid >= 0) & (cid < len(lut))
            thr = np.where(known, lut.take(np.where(known, cid, 0)), np.float32(self.default))
        else:
            thr = np.float32(self.default)
        drop = det.score < thr
        if self.classes is not None:
            drop &= self.applies(det)
        if not drop.any():
            return RuleStep()  # the message is only worded when something went
        listed_txt = "".join(f"; {inp.class_name(k)} {v:.2f}" for k, v in self.thresholds.items())
        return self._drop(drop, f"below the class score threshold (default {self.default:.2f}{listed_txt})")


@dataclass(frozen=True, kw_only=True, eq=False)
class Size(Rule):
    """Boxes whose longest side is below ``min_px`` or above ``max_px`` match; ``action`` says
    whether matching boxes are dropped or send the unit to a verdict.

    ``unit`` / ``unit_per_px`` only word the message in the unit the config used (e.g. um).
    """

    min_px: float | None = None
    max_px: float | None = None
    action: Literal["drop"] | Verdict = "drop"
    unit: str = "px"
    unit_per_px: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_px is None and self.max_px is None:
            raise ValueError(f"size rule {self.id!r}: give min_px, max_px or both")
        if self.action != "drop":
            object.__setattr__(self, "action", _as_verdict(self.action))

    def _bounds_text(self) -> str:
        parts = []
        if self.min_px is not None:
            parts.append(f"shorter than {self.min_px * self.unit_per_px:g} {self.unit}")
        if self.max_px is not None:
            parts.append(f"longer than {self.max_px * self.unit_per_px:g} {self.unit}")
        return " or ".join(parts) + " (longest side)"

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        longest = np.maximum(det.width, det.height)
        hit = np.zeros(len(det), dtype=bool)
        if self.min_px is not None:
            hit |= longest < self.min_px
        if self.max_px is not None:
            hit |= longest > self.max_px
        hit &= self.applies(det)
        if self.action == "drop":
            return self._drop(hit, self._bounds_text())
        if not hit.any():
            return RuleStep()
        n = int(np.count_nonzero(hit))
        return self._judge(hit, self.action, f"{_plural(n)} {self._bounds_text()}")  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, eq=False)
class Region(Rule):
    """Keep (``include``) or drop (``exclude``) boxes whose centre lies in the region.

    The region is the union of: ``polygons`` (image pixels), a boolean ``mask`` of the frame's
    size (looked up at the centre pixel, clipped to the image), and the wafer's edge ring
    (wafer radius minus ``edge_ring_mm`` and beyond, via ``RuleInput.wafer_xy_mm``).
    """

    mode: Literal["include", "exclude"] = "exclude"
    polygons: tuple[np.ndarray, ...] = ()
    mask: np.ndarray | None = None
    edge_ring_mm: float | None = None
    wafer_radius_mm: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("include", "exclude"):
            raise ValueError(f"region rule {self.id!r}: mode must be include or exclude, got {self.mode!r}")
        object.__setattr__(self, "polygons", tuple(np.asarray(p, np.float64).reshape(-1, 2) for p in self.polygons))
        if self.mask is not None:
            m = np.asarray(self.mask).astype(bool)
            if m.ndim != 2:
                raise ValueError(f"region rule {self.id!r}: mask must be 2-D (H, W), got shape {m.shape}")
            object.__setattr__(self, "mask", m)
        if self.edge_ring_mm is not None and self.wafer_radius_mm is None:
            raise ValueError(f"region rule {self.id!r}: an edge ring needs wafer_radius_mm")
        if not self.polygons and self.mask is None and self.edge_ring_mm is None:
            raise ValueError(f"region rule {self.id!r}: give polygons, a mask or an edge ring")

    def inside(self, inp: RuleInput, centers: np.ndarray) -> np.ndarray:
        """Bool per centre: inside the union of this rule's regions."""
        inside = np.zeros(len(centers), dtype=bool)
        for poly in self.polygons:
            inside |= points_in_polygon(centers, poly)
        if self.mask is not None:
            h, w = self.mask.shape
            if inp.image_shape is not None and tuple(inp.image_shape[:2]) != (h, w):
                # A silently rescaled mask would mis-place the region: refuse (the unit becomes ERROR).
                raise ValueError(f"mask is {w}x{h} px but the frame is {inp.image_shape[1]}x{inp.image_shape[0]} px")
            ix = np.clip(np.floor(centers[:, 0]).astype(np.intp), 0, w - 1)
            iy = np.clip(np.floor(centers[:, 1]).astype(np.intp), 0, h - 1)
            inside |= self.mask[iy, ix]
        if self.edge_ring_mm is not None:
            if inp.wafer_xy_mm is None:
                raise ValueError("the wafer edge ring needs the die position (context die_x, die_y) and wafer geometry")
            xy = np.asarray(inp.wafer_xy_mm(centers), np.float64).reshape(-1, 2)
            r = self.wafer_radius_mm - self.edge_ring_mm  # type: ignore[operator]
            inside |= np.einsum("ij,ij->i", xy, xy) > r * r if r >= 0 else np.ones(len(xy), bool)
        return inside

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        if len(det) == 0:
            return RuleStep()
        inside = self.inside(inp, det.center)
        drop = self.applies(det) & (inside if self.mode == "exclude" else ~inside)
        where = "inside the excluded region" if self.mode == "exclude" else "outside the included region"
        return self._drop(drop, where)


@dataclass(frozen=True, slots=True)
class _Tracks:
    """Objects seen on a stream's previous frame (persistence state)."""

    xyxy: np.ndarray
    class_id: np.ndarray
    first_seen: np.ndarray  # t_monotonic of the first frame of the unbroken run
    frames: np.ndarray      # consecutive frames seen, this one included


@dataclass(frozen=True, kw_only=True, eq=False)
class Persistence(Rule):
    """Drop boxes whose object has not yet been seen long enough on this stream.

    A box continues an object of the stream's previous frame when it has the same class and
    IoU >= ``match_iou`` (mutual best match); otherwise it starts a new object. A box is kept
    once its object has been seen on ``min_frames`` consecutive frames *and* for ``min_seconds``
    (each only when given). Objects missing on a frame are forgotten (the run is broken).
    State lives in ``RuleSet`` per stream (``RuleInput.stream_key``).
    """

    min_frames: int | None = None
    min_seconds: float | None = None
    match_iou: float = 0.3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_frames is None and self.min_seconds is None:
            raise ValueError(f"persistence rule {self.id!r}: give min_frames, min_seconds or both")

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det, t = inp.fused, float(inp.t_monotonic)
        idx = np.flatnonzero(self.applies(det))
        boxes, cls = det.xyxy[idx], det.class_id[idx]
        frames = np.ones(len(idx), np.int64)
        first = np.full(len(idx), t, np.float64)
        prev: _Tracks | None = state.get(inp.stream_key)
        if prev is not None and len(prev.class_id) and len(idx):
            iou = box_iou(boxes, prev.xyxy)
            iou[cls[:, None] != prev.class_id[None, :]] = 0.0
            best_prev = iou.argmax(axis=1)
            best_cur = iou.argmax(axis=0)
            rows = np.arange(len(idx))
            best = iou[rows, best_prev]
            ok = (best > 0) & (best >= self.match_iou) & (best_cur[best_prev] == rows)
            frames[ok] = prev.frames[best_prev[ok]] + 1
            first[ok] = prev.first_seen[best_prev[ok]]
        # Written only after everything above succeeded: a failure leaves the old state intact.
        state[inp.stream_key] = _Tracks(boxes.copy(), cls.copy(), first, frames)
        young = np.zeros(len(idx), dtype=bool)
        if self.min_frames is not None:
            young |= frames < self.min_frames
        if self.min_seconds is not None:
            young |= (t - first) < self.min_seconds
        drop = np.zeros(len(det), dtype=bool)
        drop[idx[young]] = True
        need = " and ".join(s for s in (
            f"{self.min_frames} frames" if self.min_frames is not None else "",
            f"{self.min_seconds:g} s" if self.min_seconds is not None else "") if s)
        return self._drop(drop, f"not yet seen for {need}")


# ------------------------------------------------------------------------------------------------
# Judges
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, eq=False)
class Agreement(Rule):
    """Fire when a box is backed by fewer than ``k`` ensemble members."""

    k: int = 2
    verdict: Verdict = Verdict.REVIEW

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))
        if self.k < 1:
            raise ValueError(f"agreement rule {self.id!r}: k must be >= 1, got {self.k}")

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        hit = self.applies(det) & (det.support_count() < self.k)
        if not hit.any():
            return RuleStep()
        n = int(np.count_nonzero(hit))
        return self._judge(hit, self.verdict, f"{_plural(n)} backed by fewer than {self.k} of {inp.n_models} models")


@dataclass(frozen=True, kw_only=True, eq=False)
class Count(Rule):
    """Fire when more than ``max_count`` boxes of ``classes`` remain (e.g. too many particles)."""

    max_count: int = 0
    verdict: Verdict = Verdict.FAIL

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        hit = self.applies(det)
        n = int(np.count_nonzero(hit))
        if n <= self.max_count:
            return RuleStep()
        return self._judge(hit, self.verdict, f"{_plural(n)} ({_by_class(inp, det.class_id[hit])}), "
                           f"more than the {self.max_count} allowed")


@dataclass(frozen=True, kw_only=True, eq=False)
class Uncertainty(Rule):
    """Fire when a score falls in the uncertain band [low, high): a person should look."""

    low: float = 0.0
    high: float = 1.0
    verdict: Verdict = Verdict.REVIEW

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))
        if not self.low < self.high:
            raise ValueError(f"uncertainty rule {self.id!r}: expected low < high, got {self.low} >= {self.high}")

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        hit = self.applies(det) & (det.score >= self.low) & (det.score < self.high)
        if not hit.any():
            return RuleStep()
        n = int(np.count_nonzero(hit))
        return self._judge(hit, self.verdict, f"{_plural(n)} scored in the uncertain band "
                           f"[{self.low:.2f}, {self.high:.2f})")


def model_scores(fused: Detections, per_model: Sequence[Detections], match_iou: float) -> np.ndarray:
    """(n_models, n_fused): each member's best score on each fused box (same class, IoU >= match_iou), 0 if none."""
    out = np.zeros((len(per_model), len(fused)), np.float32)
    if len(fused) == 0:
        return out
    for m, raw in enumerate(per_model):  # a loop over ensemble members (a handful), not boxes
        if len(raw) == 0:
            continue
        ok = (box_iou(fused.xyxy, raw.xyxy) >= match_iou) & (fused.class_id[:, None] == raw.class_id[None, :])
        out[m] = np.where(ok, raw.score[None, :], 0.0).max(axis=1)
    return out


@dataclass(frozen=True, kw_only=True, eq=False)
class Disagreement(Rule):
    """Fire when ensemble members disagree on a fused box: their scores spread by more than
    ``max_spread`` (a member that missed the box scores 0), or fewer than ``min_agreement`` of
    the members backed it. A single-model station never disagrees."""

    max_spread: float | None = None
    min_agreement: float | None = None
    match_iou: float = 0.55
    verdict: Verdict = Verdict.REVIEW

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))
        if self.max_spread is None and self.min_agreement is None:
            raise ValueError(f"disagreement rule {self.id!r}: give max_spread, min_agreement or both")

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        sel = self.applies(det)
        if inp.n_models <= 1 or not sel.any():
            return RuleStep()
        hit = np.zeros(len(det), dtype=bool)
        parts = []
        if self.min_agreement is not None:
            low = sel & (det.support_count() / inp.n_models < self.min_agreement)
            if low.any():
                parts.append(f"{_plural(int(low.sum()))} found by fewer than {self.min_agreement:.0%} of the models")
            hit |= low
        if self.max_spread is not None:
            if len(inp.per_model) != inp.n_models:
                raise ValueError(f"score spread needs each model's raw detections: got {len(inp.per_model)} "
                                 f"lists for {inp.n_models} models")
            scores = model_scores(det, inp.per_model, self.match_iou)
            spread = scores.max(axis=0) - scores.min(axis=0)
            wide = sel & (spread > self.max_spread)
            if wide.any():
                parts.append(f"{_plural(int(wide.sum()))} with model scores spread by up to "
                             f"{float(spread[wide].max()):.2f} (> {self.max_spread:.2f})")
            hit |= wide
        if not hit.any():
            return RuleStep()
        return self._judge(hit, self.verdict, "models disagree: " + "; ".join(parts))


@dataclass(frozen=True, kw_only=True, eq=False)
class AnyDefect(Rule):
    """Fire when any box of ``classes`` scoring at least ``min_score`` remains (usually the last rule).

    ``min_score`` lets an uncertainty band below it reach an operator as REVIEW instead of being
    failed here (FAIL outranks REVIEW when verdicts combine).
    """

    verdict: Verdict = Verdict.FAIL
    min_score: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "verdict", _as_verdict(self.verdict))
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"rule {self.id}: min_score must be in [0, 1], got {self.min_score}")

    def apply(self, inp: RuleInput, state: dict[str, Any]) -> RuleStep:
        det = inp.fused
        hit = self.applies(det) & (det.score >= self.min_score)
        if not hit.any():
            return RuleStep()
        n = int(np.count_nonzero(hit))
        remain = "remains" if n == 1 else "remain"
        return self._judge(hit, self.verdict, f"{_plural(n, 'defect')} {remain}: {_by_class(inp, det.class_id[hit])}")


# ------------------------------------------------------------------------------------------------
# The rule set
# ------------------------------------------------------------------------------------------------


class RuleSet:
    """Rules in config order, with the state of the stateful ones (persistence tracks).

    Not thread-safe: one ``RuleSet`` belongs to one rules thread (the station has one); frames
    of one stream must be evaluated in capture order for persistence to mean anything.
    """

    def __init__(self, rules: Sequence[Rule]) -> None:
        ids = [r.id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"RuleSet: duplicate rule ids {dupes}; decisions cite rules by id")
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._state: dict[str, dict[str, Any]] = {r.id: {} for r in self.rules}

    def __len__(self) -> int:
        return len(self.rules)

    def reset(self) -> None:
        """Forget all per-stream state (e.g. after a camera was reconfigured)."""
        for s in self._state.values():
            s.clear()

    def evaluate(self, inp: RuleInput) -> RuleResult:
        n_in = len(inp.fused)
        cur = inp
        orig = np.arange(n_in)  # index in the fused input of each box still standing
        cited: list[tuple[Reason, np.ndarray | None]] = []
        dropped: dict[str, int] = {}
        for rule in self.rules:
            try:
                step = rule.apply(cur, self._state[rule.id])
                keep = None
                if step.keep is not None:
                    keep = np.asarray(step.keep, dtype=bool)
                    if keep.shape != (len(cur.fused),):
                        raise ValueError(f"keep mask of shape {keep.shape} for {len(cur.fused)} boxes")
                arrays = step.cited if len(step.cited) == len(step.reasons) else (None,) * len(step.reasons)
                for r, arr in zip(step.reasons, arrays):
                    if arr is None:
                        arr = np.asarray(r.detection_indices, np.intp) if r.detection_indices else None
                    cited.append((r, None if arr is None or not len(arr) else orig.take(arr)))
            except Exception as exc:  # noqa: BLE001 - a rule bug must become an ERROR record, not a lost unit
                cited.append((Reason(rule.id, Verdict.ERROR, f"rule {rule.id!r} failed: {type(exc).__name__}: {exc}"),
                              None))
                continue
            if keep is not None and not keep.all():
                dropped[rule.id] = dropped.get(rule.id, 0) + int(np.count_nonzero(~keep))
                sel = keep.nonzero()[0]
                orig = orig.take(sel)
                cur = RuleInput(cur.fused[sel], cur.per_model, cur.n_models, cur.image_shape, cur.context,
                                cur.t_monotonic, cur.wafer_xy_mm, cur.class_names)
        # Re-point cited boxes at their position among the kept ones (what a Decision records).
        reasons = []
        pos = None
        for r, idx in cited:
            if idx is not None:
                if len(orig) != n_in:  # nothing dropped: indices already point at the kept boxes
                    if pos is None:
                        pos = np.full(n_in, -1, np.intp)
                        pos[orig] = np.arange(len(orig))
                    p = pos.take(idx)
                    idx = p[p >= 0]
                r = Reason(r.rule_id, r.verdict, r.message, tuple(idx.tolist()))
            reasons.append(r)
        verdict = Verdict.worst(r.verdict for r in reasons)
        return RuleResult(verdict, tuple(reasons), cur.fused, dropped, orig)
