"""Wafers, lots and the ``FrameSource``: which defects each die of each wafer gets (one spatial
signature per wafer), and the frames with lot / wafer / die context."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inspector.capture.synthetic.defects import CLASS_ID, CLASS_NAMES, DEFAULT_CLASS_WEIGHTS, DefectSpec, clip_path
from inspector.capture.synthetic.die import render_die
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.wafer import Die, WaferLayout

SIGNATURES: tuple[str, ...] = ("random", "cluster", "edge_ring", "scratch_line")


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
    return clip_path(np.array([p0, p1]), *rect) is not None


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
