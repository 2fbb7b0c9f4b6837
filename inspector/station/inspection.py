"""Frame -> Decision for one station: ensemble, rules, and wafer-level judgement of die results.

``Inspection.judge`` returns a ``Judgement``: the decisions with the fused and per-model boxes and
the stage timings, as one value. ``NotInspected`` judges for a station without a model.

Single-threaded by design (a ``RuleSet`` keeps persistence state): the pipeline gives the
inspection stage its own thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inspector.config.schema import StationConfig
from inspector.core.decision import Decision, Verdict
from inspector.core.frame import Frame
from inspector.core.wafer_rules import Die, DieResult, WaferResult
from inspector.runtime.ensemble import Ensemble
from inspector.station.judgement import FrameResult, Judgement
from inspector.station.rules_builder import build_rule_set, build_wafer_rule_set, make_rule_input, wafer_layout


class Inspection:
    """Judges frames: every frame in gets exactly one result out, errors included."""

    def __init__(self, cfg: StationConfig, ensemble: Ensemble, config_hash: str, base_dir: Path | None = None) -> None:
        self.cfg = cfg
        self.ensemble = ensemble
        self.config_hash = config_hash
        self.rules = build_rule_set(cfg, base_dir)

    def judge(self, frames: Sequence[Frame]) -> Judgement:
        """Ensemble, then rules, frame by frame: the decisions with the boxes and timings behind them."""
        try:
            batch = self.ensemble.detect([f.image for f in frames])
        except Exception as e:  # a model failure must still leave one record per unit
            return Judgement.unjudged(frames, Verdict.ERROR, f"inference failed: {type(e).__name__}: {e}",
                                      self.ensemble.version, self.config_hash)
        now = Frame.utc_now
        t0 = time.perf_counter()
        out = []
        for f, r in zip(frames, batch.results):
            res = self.rules.evaluate(make_rule_input(self.cfg, r.fused, r.per_model, f.image.shape,
                                                      f.context, f.t_monotonic, source=f.source))
            d = Decision(f.frame_id, res.verdict, res.reasons, res.kept, self.ensemble.version,
                         self.config_hash, now(), extras={"dropped": dict(res.dropped)})
            out.append(FrameResult(f, d, r.fused, r.per_model))
        return Judgement(tuple(out), {**batch.timings_ms, "rules_ms": (time.perf_counter() - t0) * 1e3})

    def finish(self) -> Judgement:
        """The run has ended: nothing is pending in a frame-by-frame inspection."""
        return Judgement(())

    def decide(self, frames: Sequence[Frame]) -> list[Decision]:
        """Only the decisions, for callers that need neither boxes nor timings (evaluation scripts)."""
        return self.judge(frames).decisions


class NotInspected:
    """The judge of a station without a model: every frame is recorded as NOT_INSPECTED."""

    def __init__(self, reason: str, config_hash: str, model_set_version: str = "none") -> None:
        self.reason = reason
        self.config_hash = config_hash
        self.model_set_version = model_set_version

    def judge(self, frames: Sequence[Frame]) -> Judgement:
        return Judgement.unjudged(frames, Verdict.NOT_INSPECTED, self.reason, self.model_set_version,
                                  self.config_hash)

    def finish(self) -> Judgement:
        return Judgement(())


@dataclass
class WaferSummary:
    lot: str
    wafer: str
    result: WaferResult
    dies_seen: int


@dataclass
class WaferTracker:
    """Collects die decisions per wafer and judges a wafer when the next one starts (or at flush).

    Dies of the layout that never arrived count as not inspected, so a partial wafer is never
    passed silently (the wafer rules send it to review).
    """

    cfg: StationConfig
    _current: tuple[str, str] | None = None
    _dies: dict[Die, DieResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rules = build_wafer_rule_set(self.cfg)
        self.layout = wafer_layout(self.cfg)

    def add(self, frame: Frame, decision: Decision) -> WaferSummary | None:
        """Record one die; returns the previous wafer's summary when this die starts a new wafer."""
        ctx = frame.context
        if self.layout is None or "wafer" not in ctx or "die_x" not in ctx:
            return None
        key = (str(ctx.get("lot", "")), str(ctx["wafer"]))
        done = self._close() if self._current is not None and key != self._current else None
        self._current = key
        self._dies[(int(ctx["die_x"]), int(ctx["die_y"]))] = DieResult(
            decision.verdict, frozenset(decision.detections.class_id.tolist()))
        return done

    def flush(self) -> WaferSummary | None:
        return self._close() if self._current is not None else None

    def _close(self) -> WaferSummary:
        lot, wafer = self._current  # type: ignore[misc]
        result = self.rules.evaluate(self._dies, self.layout)
        summary = WaferSummary(lot, wafer, result, len(self._dies))
        self._current, self._dies = None, {}
        return summary
