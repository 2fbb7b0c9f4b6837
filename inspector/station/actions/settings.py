"""Run-time settings (engineer): rule thresholds and model confidence floors, moved within limits
around the baseline config, each change stored as a new config version and audited."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from inspector.config import (
    AnyDefectRule,
    ClassThresholdRule,
    ConfigError,
    StationConfig,
    UncertaintyRule,
    canonical_json,
    config_hash,
    load_config_text,
)
from inspector.station.actions.auth import Session, require
from inspector.store import audit
from inspector.store.db import insert_config, transaction


class SettingsError(ValueError):
    """A settings change was refused; ``errors`` holds one message per offending field."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("settings change refused:\n" + "\n".join(f"  {e}" for e in self.errors))

    def __reduce__(self):
        return (type(self), (self.errors,))


# --------------------------------------------------------------------------------------------
# Run-time settings (engineer)
# --------------------------------------------------------------------------------------------

DEFAULT_MAX_STEP = 0.2
# "Never outside (0, 1)": a run-time change can neither switch a threshold off (0) nor make it
# unreachable (1); doing either is a config-file change, reviewed like code.
FLOOR, CEILING = 0.01, 0.99


@dataclass(frozen=True)
class Limit:
    """How far one setting may move at run time: within [lo, hi], or back to its baseline value."""

    baseline: float
    lo: float
    hi: float

    def allows(self, value: float) -> bool:
        return value == self.baseline or self.lo <= value <= self.hi

    def describe(self) -> str:
        return f"[{self.lo:g}, {self.hi:g}] (baseline {self.baseline:g})"


def _tunables(cfg: StationConfig) -> dict[str, tuple[float, tuple[str | int, ...]]]:
    """Run-time tunable setting path -> (current value, location in ``cfg.model_dump()``).

    Paths: ``rules.<rule id>.thresholds.<class>`` and ``rules.<rule id>.default`` (class_threshold),
    ``rules.<rule id>.min_score`` (any_defect), ``rules.<rule id>.low`` / ``.high`` (uncertainty),
    ``models.<model name>.conf``.
    """
    out: dict[str, tuple[float, tuple[str | int, ...]]] = {}
    classes = cfg.models[0].class_names  # one label space for the whole ensemble (schema check)
    for i, rule in enumerate(cfg.rules):
        base = f"rules.{rule.id}"
        if isinstance(rule, ClassThresholdRule):
            for c in classes:
                out[f"{base}.thresholds.{c}"] = (float(rule.thresholds.get(c, rule.default)),
                                                 ("rules", i, "thresholds", c))
            out[f"{base}.default"] = (float(rule.default), ("rules", i, "default"))
        elif isinstance(rule, AnyDefectRule):
            out[f"{base}.min_score"] = (float(rule.min_score), ("rules", i, "min_score"))
        elif isinstance(rule, UncertaintyRule):
            out[f"{base}.low"] = (float(rule.low), ("rules", i, "low"))
            out[f"{base}.high"] = (float(rule.high), ("rules", i, "high"))
    for i, m in enumerate(cfg.models):
        out[f"models.{m.name}.conf"] = (float(m.conf), ("models", i, "conf"))
    return out


def tunable_limits(baseline: StationConfig, *, max_step: float = DEFAULT_MAX_STEP,
                   overrides: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Limit]:
    """Limits for every run-time tunable setting of ``baseline`` (the config file the station started from).

    Each setting may move ``max_step`` either side of its baseline value, clipped to
    [0.01, 0.99]; ``overrides`` gives a site's own [lo, hi] for some paths (still clipped).
    Compute this once from the file, not from the current run-time config, or repeated small
    changes would walk a threshold anywhere.
    """
    if not 0 < max_step < 1:
        raise ValueError(f"max_step must be in (0, 1), got {max_step}")
    found = _tunables(baseline)
    limits: dict[str, Limit] = {}
    for path, (value, _) in found.items():
        # Rounded: 0.7 - 0.2 must give 0.5, not 0.49999999999999994 (which would refuse 0.5).
        limits[path] = Limit(value, max(round(value - max_step, 9), FLOOR), min(round(value + max_step, 9), CEILING))
    for path, (lo, hi) in (overrides or {}).items():
        if path not in found:
            raise ValueError(f"limit override for {path!r}: not a tunable setting of station {baseline.station.id}")
        if not lo <= hi:
            raise ValueError(f"limit override for {path!r}: expected lo <= hi, got [{lo}, {hi}]")
        limits[path] = Limit(found[path][0], max(float(lo), FLOOR), min(float(hi), CEILING))
    return limits


def _set(data: Any, loc: tuple[str | int, ...], value: float) -> None:
    for key in loc[:-1]:
        data = data[key]
    data[loc[-1]] = value


def change_settings(conn: sqlite3.Connection, session: Session, cfg: StationConfig, changes: Mapping[str, float],
                    limits: Mapping[str, Limit]) -> tuple[StationConfig, str]:
    """Apply threshold changes within ``limits``; returns (new config, its hash).

    Refused (``SettingsError`` naming each field and its limit, nothing written) when a path is
    not tunable, has no declared limit, is not a finite number, leaves its limit, or makes the
    config invalid (e.g. uncertainty low >= high). Accepted: the old and new configs are stored
    by hash and one ``settings.change`` audit row records who, old hash -> new hash and each
    field's old and new value, in one transaction. Changing nothing writes nothing and returns
    the config unchanged. The caller must run the station with the returned config and hash.
    """
    require(session, "settings", "change settings", conn)
    if not changes:
        raise SettingsError(["no setting given"])
    found = _tunables(cfg)
    errors: list[str] = []
    for path, value in changes.items():
        if path not in found:
            known = ", ".join(sorted(found)[:12]) + (" ..." if len(found) > 12 else "")
            errors.append(f"{path}: not a run-time tunable setting of station {cfg.station.id} (tunable: {known})")
        elif path not in limits:
            errors.append(f"{path}: no limit is declared for it, so it cannot change at run time")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            errors.append(f"{path}: expected a number, got {value!r}")
        elif not limits[path].allows(float(value)):
            errors.append(f"{path}: {float(value):g} is outside its limit {limits[path].describe()}")
    if errors:
        raise SettingsError(errors)

    diff = {p: {"from": found[p][0], "to": float(v)} for p, v in changes.items() if float(v) != found[p][0]}
    old_hash = config_hash(cfg)
    if not diff:
        return cfg, old_hash
    data = cfg.model_dump(mode="json")
    for path in diff:
        _set(data, found[path][1], diff[path]["to"])
    try:
        # Through the YAML loader: the same validation and the same error paths as a config file.
        new_cfg = load_config_text(yaml.safe_dump(data, sort_keys=False),
                                   name=f"settings change by {session.user}")
    except ConfigError as e:
        raise SettingsError([f"{i.path}: {i.message}" for i in e.errors]) from None
    new_hash = config_hash(new_cfg)
    with transaction(conn):
        insert_config(conn, old_hash, canonical_json(cfg), actor=session.user)  # no-op when already stored
        insert_config(conn, new_hash, canonical_json(new_cfg), actor=session.user)
        audit.append(conn, actor=session.user, action="settings.change", entity="settings", entity_id=new_hash,
                     payload={"from": old_hash, "to": new_hash, "changes": diff})
    return new_cfg, new_hash
