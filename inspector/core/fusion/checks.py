"""Parameter checks shared by every fusion method: each bad value raises ``ValueError`` naming the
function and the parameter."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np

from inspector.core.detections import Detections

CONF_TYPES = ("avg", "max", "box_and_model_avg", "absent_model_aware_avg")
MAX_MODELS = 32  # ``support`` is a uint32 bitmask

_F64 = np.float64


def check_models(per_model: Sequence[Detections], fn: str) -> list[Detections]:
    if isinstance(per_model, Detections) or not isinstance(per_model, Sequence):
        raise TypeError(f"{fn}: per_model must be a sequence of Detections (one per model), "
                        f"got {type(per_model).__name__}")
    models = list(per_model)
    for i, d in enumerate(models):
        if not isinstance(d, Detections):
            raise TypeError(f"{fn}: per_model[{i}] must be Detections, got {type(d).__name__}")
    if len(models) > MAX_MODELS:
        raise ValueError(f"{fn}: at most {MAX_MODELS} models can be fused (support is a uint32 bitmask), "
                         f"got {len(models)}")
    return models


def check_weights(weights: Sequence[float] | None, n_models: int, fn: str) -> np.ndarray | None:
    if weights is None:
        return None
    try:
        w = np.asarray(weights, dtype=_F64)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: weights must be a sequence of {n_models} positive numbers, got {weights!r}") from None
    if w.shape != (n_models,):
        raise ValueError(f"{fn}: weights must have one entry per model ({n_models}), got shape {w.shape}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError(f"{fn}: weights must be finite and > 0, got {w.tolist()}")
    return w


def check_fraction(value: float, name: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{fn}: {name} must be a number in [0, 1], got {value!r}")
    return float(value)


def check_skip(value: float, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)) \
            or float(value) < 0.0:
        raise ValueError(f"{fn}: skip_box_thr must be a finite number >= 0, got {value!r}")
    return float(value)


def check_conf_type(conf_type: str, fn: str) -> str:
    if conf_type not in CONF_TYPES:
        raise ValueError(f"{fn}: conf_type must be one of {', '.join(map(repr, CONF_TYPES))}, got {conf_type!r}")
    return conf_type


def check_bool(value: bool, name: str, fn: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{fn}: {name} must be True or False, got {value!r}")
    return bool(value)
