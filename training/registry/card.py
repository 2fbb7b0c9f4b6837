"""Model cards and metrics: the metrics shape the registry keeps, and the Markdown card of a version.

Metrics are kept as ``{"overall": {...}, "per_class": {...}}`` (plus ``source``: the dataset and
split they were measured on); the card (``card.md``) is rendered from a version's record: purpose,
data, training, metrics, limits, known failure modes and provenance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from inspector.runtime.registry import RegistryError

OVERALL_METRICS = ("map50", "map50_95", "map33", "precision", "recall", "f1", "ece", "precision_macro",
                   "recall_macro", "f1_macro")
CARD_CLASS_COLUMNS = ("ap50", "ap50_95", "precision", "recall", "f1", "support")


# --- metrics ------------------------------------------------------------------------------------
def is_number(v: Any) -> bool:
    """A finite int or float (not a bool): what a metric or a margin must be."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def normalise_metrics(metrics: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"overall": {...}, "per_class": {...}}`` from either that shape or an evaluation dict.

    From an evaluation (``{"map50": .., "per_class": {..}, "dataset_hash": .., "split": ..}``) the
    numeric top-level values become ``overall``; ``dataset_hash`` / ``split`` are kept as ``source``.
    """
    if not metrics:
        return {"overall": {}, "per_class": {}}
    if not isinstance(metrics, Mapping):
        raise RegistryError(f"metrics must be a mapping, got {type(metrics).__name__}")
    if "overall" in metrics:
        overall = dict(metrics.get("overall") or {})
    else:  # an evaluation: its headline metrics (not settings such as conf or imgsz)
        overall = {k: metrics[k] for k in OVERALL_METRICS
                   if k in metrics and (metrics[k] is None or is_number(metrics[k]))}
        if not overall:
            overall = {k: v for k, v in metrics.items() if is_number(v)}
    per_class = {str(c): dict(v) for c, v in (metrics.get("per_class") or {}).items() if isinstance(v, Mapping)}
    out: dict[str, Any] = {"overall": overall, "per_class": per_class}
    source = {k: metrics[k] for k in ("dataset_hash", "split") if isinstance(metrics.get(k), str)}
    if source:
        out["source"] = source
    return out


# --- cards --------------------------------------------------------------------------------------
@dataclass
class ModelCardInfo:
    """What a person writes about a model; the registry adds metrics and provenance to the card."""

    purpose: str = ""
    data: str = ""
    training: str = ""
    limits: Sequence[str] | str = ()
    failure_modes: Sequence[str] | str = ()
    notes: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ModelCardInfo:
        d = dict(d or {})
        if "known_failure_modes" in d and "failure_modes" not in d:
            d["failure_modes"] = d.pop("known_failure_modes")
        unknown = sorted(set(d) - {f for f in cls.__dataclass_fields__})
        if unknown:
            raise RegistryError(f"model card: unknown field(s) {unknown}; expected purpose, data, training, "
                                "limits, failure_modes, notes")
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("limits", "failure_modes"):
            v = d[k]
            if isinstance(v, str):
                d[k] = [v] if v.strip() else []
            else:
                d[k] = [str(x) for x in v]
        return d


def _md(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else _md(v)


def _bullets(items: Sequence[str]) -> str:
    return "\n".join(f"- {x}" for x in items) if items else "_Not documented._"


def render_card(record: Mapping[str, Any]) -> str:
    """The Markdown model card of a registry record (sections: purpose to provenance)."""
    info = ModelCardInfo.from_dict(record.get("card_info")).to_dict()
    metrics = record.get("metrics") or {}
    overall, per_class = metrics.get("overall") or {}, metrics.get("per_class") or {}
    name, version = record["name"], record["version"]
    out = [f"# Model card: {name} version {version}", ""]
    out += ["## Purpose", "", info["purpose"] or "_Not documented._", ""]
    out += ["## Data", "", info["data"] or "_Not documented._", "",
            f"- Dataset hash: `{record.get('dataset_hash')}`",
            f"- Classes ({len(record['class_names'])}): {', '.join(record['class_names'])}",
            f"- Input size (height x width): {record['imgsz'][0]} x {record['imgsz'][1]}", ""]
    out += ["## Training", "", info["training"] or "_Not documented._", ""]
    cfg = record.get("train_config") or {}
    if cfg:
        out += ["| setting | value |", "| --- | --- |"]
        out += [f"| {_md(k)} | {_md(json.dumps(v) if isinstance(v, (dict, list)) else v)} |"
                for k, v in sorted(cfg.items())]
        out.append("")
    out += ["## Metrics", ""]
    source = metrics.get("source") or {}
    if source:
        out += [f"Evaluated on dataset `{source.get('dataset_hash')}`, split `{source.get('split')}`.", ""]
    if overall:
        out += ["| metric | value |", "| --- | --- |"] + [f"| {_md(k)} | {_fmt(v)} |" for k, v in overall.items()]
        out.append("")
    if per_class:
        present = {k for v in per_class.values() for k in v}
        cols = [c for c in CARD_CLASS_COLUMNS if c in present] or sorted(present)
        out += ["| class | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
        out += [f"| {_md(c)} | " + " | ".join(_fmt(v.get(k, "")) for k in cols) + " |" for c, v in per_class.items()]
        out.append("")
    if not overall and not per_class:
        out += ["_No metrics recorded._", ""]
    out += ["## Limits", "", _bullets(info["limits"]), ""]
    out += ["## Known failure modes", "", _bullets(info["failure_modes"]), ""]
    if info["notes"]:
        out += ["## Notes", "", info["notes"], ""]
    weights = record.get("weights") or {}
    out += ["## Provenance", "",
            f"- ONNX sha256: `{record['sha256']}`",
            f"- Parent model: {record.get('parent') or 'none (trained from scratch or an external base)'}",
            f"- Dataset hash: `{record.get('dataset_hash')}`",
            f"- Created: {record['created']}",
            f"- Author: {record['author']}"]
    if weights:
        out.append(f"- Training checkpoint: `{weights.get('file')}` sha256 `{weights.get('sha256')}` "
                   "(for fine-tuning only; the station never loads it)")
    return "\n".join(out) + "\n"
