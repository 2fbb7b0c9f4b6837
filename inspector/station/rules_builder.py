"""Build the rules engine of a station from its config, and the per-frame ``RuleInput``.

The config speaks in class names, micrometres, mask files and wafer geometry; the core rules
(``inspector.core.rules``, ``inspector.core.wafer_rules``) speak in class ids, pixels, arrays and
a pixel -> wafer-mm transform. This module is the only translation between the two.

Adding a rule type: the pydantic model in ``inspector/config/schema.py``, the core dataclass in
``inspector/core/rules.py``, and one entry in ``RULE_TYPES`` below: ``type -> (core class,
converter)``. Fields with the same name in both are copied (verdict strings included); the
converter, when given, returns the parameters that need translating. ``id`` and ``classes``
(names -> ids) are always handled here.

Die images and wafer millimetres: a die image is assumed to cover exactly one die pitch, its
top-left pixel at the die rectangle's top-left corner (wafer y points up, image y down), so
``mm per px = die_pitch_x_mm / image width`` (and ``die_pitch_y_mm / image height``). This is how
the synthetic wafer line renders dies; a camera whose field of view differs needs its own
transform (pass ``wafer_xy_mm`` to ``RuleInput`` directly).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from inspector.config.schema import (
    ClassThresholdRule,
    DisagreementRule,
    RegionRule,
    SizeRule,
    SpatialSignatureRule,
    StationConfig,
)
from inspector.core.detections import Detections
from inspector.core.rules import (
    Agreement,
    AnyDefect,
    ClassThreshold,
    Count,
    Disagreement,
    Persistence,
    Region,
    Rule,
    RuleInput,
    RuleSet,
    Size,
    Uncertainty,
    WaferTransform,
)
from inspector.core.wafer import WaferLayout
from inspector.core.wafer_rules import DefectDieFraction, SpatialSignature, WaferRuleSet


class RuleBuildError(ValueError):
    """A rule of the config cannot be built; the message names the rule id and what is wrong."""

    def __init__(self, rule_id: str, message: str) -> None:
        self.rule_id = rule_id
        super().__init__(f"rule {rule_id!r}: {message}")


@dataclasses.dataclass(frozen=True)
class _Ctx:
    cfg: StationConfig
    class_ids: Mapping[str, int]
    base_dir: Path

    def ids(self, names: Sequence[str] | None) -> tuple[int, ...] | None:
        return None if names is None else tuple(self.class_ids[n] for n in names)


def class_ids(cfg: StationConfig) -> dict[str, int]:
    """Class name -> id in model output order (the schema makes every model share one list)."""
    return {name: i for i, name in enumerate(cfg.models[0].class_names)}


# --- converters: config model -> parameters the core class needs translated --------------------


def _threshold(r: ClassThresholdRule, ctx: _Ctx) -> dict[str, Any]:
    return {"thresholds": {ctx.class_ids[name]: v for name, v in r.thresholds.items()}}


def _size(r: SizeRule, ctx: _Ctx) -> dict[str, Any]:
    um_per_px = ctx.cfg.pixel_size_um if r.unit == "um" else 1.0
    if um_per_px is None:  # the schema refuses this already; kept for configs built in code
        raise ValueError("unit 'um' needs the top-level pixel_size_um")
    return {
        "min_px": None if r.min is None else r.min / um_per_px,
        "max_px": None if r.max is None else r.max / um_per_px,
        "unit_per_px": um_per_px,
    }


def _load_mask(rule_id: str, file: str, base_dir: Path) -> np.ndarray:
    path = Path(file)
    path = path if path.is_absolute() else base_dir / path
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) if path.is_file() else None
    if img is None:
        what = "is not readable as an image" if path.is_file() else "does not exist"
        raise RuleBuildError(rule_id, f"mask_file {file!r} ({path}) {what}")
    return img > 0  # non-zero = inside


def _region(r: RegionRule, ctx: _Ctx) -> dict[str, Any]:
    out: dict[str, Any] = {"polygons": tuple(np.asarray(p, np.float64) for p in r.polygons)}
    if r.mask_file is not None:
        out["mask"] = _load_mask(r.id, r.mask_file, ctx.base_dir)
    if r.edge_exclusion_mm is not None:
        if ctx.cfg.wafer is None:
            raise ValueError("edge_exclusion_mm needs the `wafer` section")
        out["edge_ring_mm"] = r.edge_exclusion_mm
        out["wafer_radius_mm"] = ctx.cfg.wafer.diameter_mm / 2
    return out


def _disagreement(r: DisagreementRule, ctx: _Ctx) -> dict[str, Any]:
    # A member "found" a fused box when it has a same-class box overlapping it as much as fusion asks.
    return {"match_iou": ctx.cfg.fusion.iou_thr}


def _signature(r: SpatialSignatureRule, ctx: _Ctx) -> dict[str, Any]:
    scratch = tuple(i for name, i in ctx.class_ids.items() if "scratch" in name.lower())
    return {"scratch_class_ids": scratch or None}


Converter = Callable[[Any, _Ctx], dict[str, Any]]

# Config `type` -> (core class, converter or None). One entry per rule type.
RULE_TYPES: dict[str, tuple[type[Rule], Converter | None]] = {
    "class_threshold": (ClassThreshold, _threshold),
    "size": (Size, _size),
    "region": (Region, _region),
    "agreement": (Agreement, None),
    "persistence": (Persistence, None),
    "count": (Count, None),
    "uncertainty": (Uncertainty, None),
    "disagreement": (Disagreement, _disagreement),
    "any_defect": (AnyDefect, None),
}

WAFER_RULE_TYPES: dict[str, tuple[type, Converter | None]] = {
    "defect_die_fraction": (DefectDieFraction, None),
    "spatial_signature": (SpatialSignature, _signature),
}


def _build_one(r: Any, table: Mapping[str, tuple[type, Converter | None]], ctx: _Ctx) -> Any:
    if r.type not in table:
        raise RuleBuildError(r.id, f"no rule implementation for type {r.type!r}")
    core_cls, convert = table[r.type]
    try:
        params: dict[str, Any] = {"id": r.id}
        names = {f.name for f in dataclasses.fields(core_cls) if f.init}
        for name in names & set(type(r).model_fields) - {"id", "type", "classes"}:
            params[name] = getattr(r, name)
        if "classes" in names:
            params["classes"] = ctx.ids(getattr(r, "classes", None))
        if convert is not None:
            params.update(convert(r, ctx))
        return core_cls(**params)
    except RuleBuildError:
        raise
    except Exception as exc:
        raise RuleBuildError(r.id, f"{type(exc).__name__}: {exc}") from exc


def _ctx(cfg: StationConfig, base_dir: str | Path | None) -> _Ctx:
    return _Ctx(cfg, class_ids(cfg), Path.cwd() if base_dir is None else Path(base_dir))


def build_rule_set(cfg: StationConfig, base_dir: str | Path | None = None) -> RuleSet:
    """The per-frame ``RuleSet`` of a station; relative mask files resolve against ``base_dir``
    (default: the current directory, as for every input path of a config)."""
    ctx = _ctx(cfg, base_dir)
    return RuleSet([_build_one(r, RULE_TYPES, ctx) for r in cfg.rules])


def build_wafer_rule_set(cfg: StationConfig) -> WaferRuleSet:
    """The wafer-level rules (empty when the config has none)."""
    ctx = _ctx(cfg, None)
    return WaferRuleSet([_build_one(r, WAFER_RULE_TYPES, ctx) for r in cfg.wafer_rules])


def wafer_layout(cfg: StationConfig) -> WaferLayout | None:
    """The die layout of the config's wafer geometry (None without a `wafer` section)."""
    w = cfg.wafer
    if w is None:
        return None
    return WaferLayout(w.diameter_mm, w.die_pitch_x_mm, w.die_pitch_y_mm, w.edge_exclusion_mm)


def die_to_wafer_mm(cfg: StationConfig, context: Mapping[str, Any],
                    image_shape: tuple[int, ...] | None) -> WaferTransform | None:
    """Pixel -> wafer-mm transform of one die image (see the module doc), or None when the config
    has no wafer, the frame has no ``die_x`` / ``die_y`` or the image size is unknown."""
    w = cfg.wafer
    if w is None or image_shape is None or "die_x" not in context or "die_y" not in context:
        return None
    try:
        dx, dy = int(context["die_x"]), int(context["die_y"])
    except (TypeError, ValueError):
        return None
    h, wd = int(image_shape[0]), int(image_shape[1])
    if h <= 0 or wd <= 0:
        return None
    sx, sy = w.die_pitch_x_mm / wd, w.die_pitch_y_mm / h
    x0 = (dx - 0.5) * w.die_pitch_x_mm  # left edge of the die
    y1 = (dy + 0.5) * w.die_pitch_y_mm  # top edge (wafer y up)

    scale = np.array([sx, -sy])
    origin = np.array([x0, y1])

    def to_mm(px: np.ndarray) -> np.ndarray:
        # two broadcast operations: this runs for every die on the per-frame path
        return np.asarray(px, np.float64).reshape(-1, 2) * scale + origin

    return to_mm


def make_rule_input(
    cfg: StationConfig,
    fused: Detections,
    per_model: Sequence[Detections],
    image_shape: tuple[int, ...] | None,
    context: Mapping[str, Any],
    t: float,
    *,
    source: str | None = None,
) -> RuleInput:
    """The ``RuleInput`` of one frame. ``source`` (the frame's source id) joins the context when
    the context has none, so persistence keeps the streams of different sources apart."""
    if source is not None and "source" not in context:
        context = {**context, "source": source}
    shape = None if image_shape is None else (int(image_shape[0]), int(image_shape[1]))
    return RuleInput(
        fused=fused,
        per_model=tuple(per_model),
        n_models=len(cfg.models),
        image_shape=shape,
        context=context,
        t_monotonic=float(t),
        wafer_xy_mm=die_to_wafer_mm(cfg, context, shape),
        class_names=tuple(cfg.models[0].class_names),
    )
