"""The promotion gate: may a candidate replace the model in production? Pure: no registry access.

* both evaluations must be on the same held-out set (same ``dataset_hash`` and ``split``);
* every gated metric must reach production + margin (defaults: ``map50`` and ``map50_95`` with
  margin 0.0, i.e. not worse); lower-is-better metrics (``ece``) must reach production - margin;
* at least one gated metric must be strictly better than production (equal is not "beats");
* no class's recall may drop more than ``recall_tolerance`` (default 0.02) below production's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from inspector.runtime.registry import RegistryError
from training.registry.card import is_number

DEFAULT_MARGINS: dict[str, float] = {"map50": 0.0, "map50_95": 0.0}
DEFAULT_RECALL_TOLERANCE = 0.02
LOWER_IS_BETTER = frozenset({"ece"})
EPS = 1e-9  # float noise: 0.1 + 0.2 still "equals" 0.3


@dataclass(frozen=True)
class GateConfig:
    """Margins per gated metric (candidate must reach production + margin) and the per-class recall tolerance.

    A negative margin tolerates a drop of that size; lower-is-better metrics (``ece``) must reach
    production - margin. ``require_improvement``: at least one gated metric strictly better.
    """

    margins: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MARGINS))
    recall_tolerance: float = DEFAULT_RECALL_TOLERANCE
    require_improvement: bool = True

    def __post_init__(self) -> None:
        if not self.margins:
            raise ValueError("the gate needs at least one gated metric")
        for k, v in self.margins.items():
            if not is_number(v):
                raise ValueError(f"gate margin for {k!r} must be a finite number, got {v!r}")
        if not is_number(self.recall_tolerance) or self.recall_tolerance < 0:
            raise ValueError(f"recall tolerance must be a number >= 0, got {self.recall_tolerance!r}")

    @classmethod
    def with_overrides(cls, margins: Mapping[str, float | None] | None = None,
                       recall_tolerance: float | None = None) -> GateConfig:
        """Defaults with some margins changed; a margin of None drops that metric from the gate."""
        merged: dict[str, float] = dict(DEFAULT_MARGINS)
        for k, v in (margins or {}).items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = float(v)
        return cls(merged, DEFAULT_RECALL_TOLERANCE if recall_tolerance is None else float(recall_tolerance))

    def to_dict(self) -> dict[str, Any]:
        return {"margins": dict(self.margins), "recall_tolerance": self.recall_tolerance,
                "require_improvement": self.require_improvement}


@dataclass(frozen=True)
class GateCheck:
    """One row of the gate: ``ok`` when ``candidate`` reaches ``required``."""

    metric: str  # "map50", or "recall[scratch]" for a per-class recall
    candidate: float | None
    production: float | None
    margin: float  # + must be better by this much, - may be worse by this much
    required: float | None
    ok: bool
    lower_is_better: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    candidate: str  # name@version
    production: str | None  # name@version, None for the first promotion
    checks: tuple[GateCheck, ...] = ()
    reasons: tuple[str, ...] = ()  # why it was refused (empty when passed)
    notes: tuple[str, ...] = ()
    dataset_hash: str | None = None
    split: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def first_model(self) -> bool:
        return self.production is None

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "candidate": self.candidate, "production": self.production,
                "dataset_hash": self.dataset_hash, "split": self.split,
                "checks": [c.to_dict() for c in self.checks], "reasons": list(self.reasons),
                "notes": list(self.notes), "config": dict(self.config)}

    def table(self) -> str:
        """A readable table of the checks, with the verdict and reasons."""
        verdict = "PASSED" if self.passed else "REFUSED"
        if self.production is None:
            head = f"gate {verdict} for {self.candidate}: no model in production, first promotion"
        else:
            head = f"gate {verdict} for {self.candidate} against production {self.production}"
            if self.dataset_hash:
                head += f" on dataset {self.dataset_hash} ({self.split})"
        lines = [head]
        if self.checks:
            w = max(len("check"), *(len(c.metric) for c in self.checks))

            def num(v: float | None) -> str:
                return "-" if v is None else f"{v:.4f}"

            lines.append(f"  {'check':<{w}}  {'candidate':>9}  {'production':>10}  {'required':>11}  ok")
            for c in self.checks:
                req = "-" if c.required is None else f"{'<=' if c.lower_is_better else '>='} {c.required:.4f}"
                lines.append(f"  {c.metric:<{w}}  {num(c.candidate):>9}  {num(c.production):>10}  {req:>11}  "
                             f"{'yes' if c.ok else 'NO'}")
        lines += [f"  refused: {r}" for r in self.reasons]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


class GateRefused(RegistryError):
    """The candidate does not beat production (or the evaluations cannot be compared)."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        super().__init__(f"refused to promote {result.candidate}: " + "; ".join(result.reasons) + "\n" + result.table())


def evaluate_gate(candidate_eval: Mapping[str, Any], production_eval: Mapping[str, Any], gate: GateConfig,
                  *, candidate: str = "candidate", production: str = "production") -> GateResult:
    """Compare two evaluations on the same held-out set; pure (no registry access)."""
    cfg = gate.to_dict()
    where = (candidate_eval.get("dataset_hash"), candidate_eval.get("split"))
    other = (production_eval.get("dataset_hash"), production_eval.get("split"))
    if None in where or None in other or where != other:
        reason = (f"the evaluations are not on the same held-out set: {candidate} on dataset {where[0]} "
                  f"split {where[1]}, {production} on dataset {other[0]} split {other[1]}; evaluate both "
                  "models on the same dataset and split")
        return GateResult(False, candidate, production, reasons=(reason,), config=cfg)
    checks: list[GateCheck] = []
    reasons: list[str] = []
    improved: list[str] = []
    for metric, margin in gate.margins.items():
        c, p = candidate_eval.get(metric), production_eval.get(metric)
        lower = metric in LOWER_IS_BETTER
        if not (is_number(c) and is_number(p)):
            checks.append(GateCheck(metric, c if is_number(c) else None, p if is_number(p) else None,
                                    margin, None, False, lower))
            missing = [who for who, v in ((candidate, c), (production, p)) if not is_number(v)]
            reasons.append(f"{metric} is missing from the evaluation of {' and '.join(missing)}")
            continue
        required = p - margin if lower else p + margin
        ok = c <= required + EPS if lower else c >= required - EPS
        checks.append(GateCheck(metric, float(c), float(p), margin, required, ok, lower))
        if not ok:
            reasons.append(f"{metric} {c:.4f} does not reach {'<=' if lower else '>='} {required:.4f}")
        if (c < p - EPS) if lower else (c > p + EPS):
            improved.append(metric)
    if gate.require_improvement and not improved and not reasons:
        reasons.append(f"no gated metric ({', '.join(gate.margins)}) is better than production; "
                       "not being worse is not enough, the candidate must beat it on at least one")
    cand_pc = candidate_eval.get("per_class") or {}
    for cls, stats in (production_eval.get("per_class") or {}).items():
        p = (stats or {}).get("recall")
        if not is_number(p):
            continue
        c = (cand_pc.get(cls) or {}).get("recall")
        required = p - gate.recall_tolerance
        ok = is_number(c) and c >= required - EPS
        checks.append(GateCheck(f"recall[{cls}]", float(c) if is_number(c) else None, float(p),
                                -gate.recall_tolerance, required, ok))
        if not ok:
            reasons.append(f"recall of class {cls!r} is missing from the candidate's evaluation" if not is_number(c)
                           else f"recall of class {cls!r} drops {p - c:.4f} (tolerance {gate.recall_tolerance:.4f})")
    notes = (f"better than production on: {', '.join(improved)}",) if improved else ()
    return GateResult(not reasons, candidate, production, tuple(checks), tuple(reasons), notes,
                      str(where[0]), str(where[1]), cfg)
