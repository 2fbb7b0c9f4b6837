"""Operating thresholds: from ``--thresholds`` arguments or from a station config's rules."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class EvalError(Exception):
    """An evaluation cannot run; the message says what to fix."""


def parse_threshold_args(values: Sequence[str]) -> dict[str, float] | float | None:
    """``["scratch=0.4,particle=0.3", "default=0.3"]`` -> mapping; ``["0.3"]`` -> 0.3; ``[]`` -> None."""
    out: dict[str, float] = {}
    single: float | None = None
    for v in values:
        for item in (s.strip() for s in v.split(",")):
            if not item:
                continue
            key, sep, val = item.partition("=")
            try:
                num = float(val if sep else key)
            except ValueError:
                raise EvalError(f"threshold {item!r}: expected CLASS=VALUE (or one VALUE for every class)") from None
            if not 0.0 <= num <= 1.0:
                raise EvalError(f"threshold {item!r}: the value must be within [0, 1]")
            if sep:
                out[key.strip()] = num
            else:
                single = num
    if single is not None:
        if out:
            out.setdefault("default", single)
            return out
        return single
    return out or None


def thresholds_from_config(
    config: Path | str, class_names: Sequence[str], model_name: str | None = None
) -> tuple[dict[str, float], str]:
    """The station's operating threshold per class: the larger of the model's ``conf`` and every
    ``class_threshold`` rule that applies to the class (a rule's ``classes``, its ``thresholds`` entry,
    else its ``default``). The model is the config's member whose ``registry`` or ``name`` is
    ``model_name``, else the first one. Returns (thresholds, description)."""
    from inspector.config.loader import load_config
    from inspector.config.schema import ClassThresholdRule

    cfg = load_config(config)
    spec = next((m for m in cfg.models if model_name and (m.name == model_name or
                 (m.registry or "").partition("@")[0] == model_name)), cfg.models[0])
    if tuple(spec.class_names) != tuple(class_names):
        raise EvalError(f"station config {config}: model '{spec.name}' lists classes {list(spec.class_names)}, "
                        f"the model under evaluation has {list(class_names)}")
    thr = {n: float(spec.conf) for n in class_names}
    rules = [r for r in cfg.rules if isinstance(r, ClassThresholdRule)]
    for r in rules:
        for n in class_names:
            if r.classes is None or n in r.classes:
                thr[n] = max(thr[n], float(r.thresholds.get(n, r.default)))
    ids = ", ".join(r.id for r in rules) or "none"
    return thr, f"station config {config} (model '{spec.name}' conf {spec.conf:g}; class_threshold rules: {ids})"

