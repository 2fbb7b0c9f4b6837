"""Role-checked human actions: the functions the GUI (and any other face) calls to act on a station.

The GUI must not write reviews, incidents, users or settings through the store directly: it calls
these, which check the session's role against :data:`PERMISSIONS` *before* touching anything (a
refused action writes no row and no audit row) and then write through the store, whose functions
append the audit row in the same transaction as the change.

When a connection is at hand, every check also re-reads the user from the database, so a user
deactivated (or given another role) after logging in cannot keep acting with an old session, and
a hand-made ``Session`` for a name that is not a user is refused.

Run-time settings: an engineer may move rule thresholds and model confidence floors while the
station runs, but only within :class:`Limit` s computed by :func:`tunable_limits` from the
*baseline* config (the reviewed file the station started from): by default +-0.2 around the
baseline value and never outside (0, 1). Each accepted change is validated by the config schema,
stored as a new config version (by hash) and audited with the old hash, the new hash and every
field changed, so each later decision points at the exact settings that made it.

Models are promoted and rolled back by running ``inspector-train`` in a subprocess: ``inspector``
never imports ``training`` (nor torch); the registry keeps its own hash-chained event log of who did it.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
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
from inspector.core.decision import Verdict
from inspector.store import audit, queries, users
from inspector.store.db import insert_config, transaction

__all__ = [
    "DEFAULT_MAX_STEP", "PERMISSIONS", "REVIEW_PERMISSION", "Limit", "PermissionDenied", "Session", "SettingsError",
    "ToolResult", "activate", "add_incident", "add_user", "allowed", "change_own_password", "change_settings",
    "deactivate", "login", "models_promote", "models_rollback", "require", "review", "review_queue",
    "set_incident_status", "set_password", "set_role", "tunable_limits", "view_decisions",
]

# --------------------------------------------------------------------------------------------
# The permission table: the only place that says which role may do what.
# --------------------------------------------------------------------------------------------

#: permission -> roles that hold it. One role per user; admin manages users only (least privilege:
#: the person who hands out accounts does not also judge product or tune rules).
PERMISSIONS: dict[str, frozenset[str]] = {
    # read decisions, frames, detections and reviews
    "view": frozenset({"operator", "engineer", "safety_manager"}),
    # review a flagged frame: accept, reject as false alarm, change class
    "review": frozenset({"operator", "engineer"}),
    # correct boxes / labels (these become training data)
    "relabel": frozenset({"engineer"}),
    # change rule thresholds and model confidence at run time, within limits
    "settings": frozenset({"engineer"}),
    # promote / roll back models through the training registry
    "models": frozenset({"engineer"}),
    # record incidents and move them open -> acknowledged -> closed
    "incidents": frozenset({"safety_manager"}),
    # export incident reports (PDF / CSV)
    "reports": frozenset({"safety_manager"}),
    # add users, change roles and passwords, deactivate
    "users": frozenset({"admin"}),
}

#: review action -> the permission it needs
REVIEW_PERMISSION: dict[str, str] = {
    "accept": "review",
    "reject_false_alarm": "review",
    "change_class": "review",
    "relabel": "relabel",
}

@dataclass(frozen=True)
class Session:
    """Who is acting: the user name as stored and the role they logged in with."""

    user: str
    role: str


class PermissionDenied(Exception):
    """A session tried an action its role (or its account's current state) does not allow."""

    def __init__(self, user: str, role: str, action: str, reason: str = ""):
        self.user, self.role, self.action, self.reason = user, role, action, reason
        super().__init__(f"user {user!r} (role {role}) may not {action}: {reason}" if reason else
                         f"user {user!r} (role {role}) may not {action}")

    def __reduce__(self):  # keep the fields when pickled (worker processes, logging handlers)
        return (type(self), (self.user, self.role, self.action, self.reason))


class SettingsError(ValueError):
    """A settings change was refused; ``errors`` holds one message per offending field."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("settings change refused:\n" + "\n".join(f"  {e}" for e in self.errors))

    def __reduce__(self):
        return (type(self), (self.errors,))


def _needs(permission: str) -> str:
    return "needs role " + " or ".join(sorted(PERMISSIONS[permission]))


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (the GUI uses it to show or hide controls)."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")
    return role in PERMISSIONS[permission]


def require(session: Session, permission: str, action: str | None = None,
            conn: sqlite3.Connection | None = None) -> None:
    """Raise :class:`PermissionDenied` unless ``session`` may use ``permission``.

    With ``conn`` the user is re-read from the database: unknown, deactivated or re-roled users
    are refused (their session is stale; they must log in again).
    """
    action = action or permission
    if not allowed(session.role, permission):
        raise PermissionDenied(session.user, session.role, action, _needs(permission))
    if conn is not None:
        row = users.get_user(conn, session.user)
        if row is None:
            raise PermissionDenied(session.user, session.role, action, "no such user in this station's database")
        if not row["active"]:
            raise PermissionDenied(session.user, session.role, action, "the account is deactivated")
        if row["role"] != session.role:
            raise PermissionDenied(session.user, session.role, action,
                                   f"the account's role changed to {row['role']} since log-in; log in again")


# --------------------------------------------------------------------------------------------
# Log-in
# --------------------------------------------------------------------------------------------


def login(conn: sqlite3.Connection, user: str, password: str) -> Session:
    """Check a name and password; returns the session to pass to every action.

    Raises ``users.NoUsersError`` (says to run `inspector users add NAME --role admin`) when the
    database has no users, else ``users.LoginError`` with the same message whether the user is
    unknown, deactivated or the password wrong.
    """
    row = users.authenticate(conn, user, password)
    return Session(row["name"], row["role"])


# --------------------------------------------------------------------------------------------
# Viewing and reviewing
# --------------------------------------------------------------------------------------------


def view_decisions(conn: sqlite3.Connection, session: Session, **filters: Any) -> list[dict[str, Any]]:
    """``queries.decisions`` for roles that may view decisions."""
    require(session, "view", "view decisions", conn)
    return queries.decisions(conn, **filters)


def review_queue(conn: sqlite3.Connection, session: Session, **kwargs: Any) -> list[dict[str, Any]]:
    """``queries.review_queue`` for roles that review."""
    require(session, "review", "open the review queue", conn)
    return queries.review_queue(conn, **kwargs)


def review(conn: sqlite3.Connection, session: Session, frame_id: str, action: str, *,
           verdict: str | Verdict | None = None, labels: list[Mapping[str, Any]] | None = None,
           note: str = "") -> int:
    """Record a review of a frame as the session's user; returns the review id.

    accept / reject_false_alarm / change_class need ``review`` (operator, engineer); relabel
    needs ``relabel`` (engineer).
    """
    if action not in REVIEW_PERMISSION:
        raise ValueError(f"review action must be one of {', '.join(REVIEW_PERMISSION)}, got {action!r}")
    require(session, REVIEW_PERMISSION[action], f"review.{action} frame {frame_id}", conn)
    return queries.add_review(conn, frame_id, session.user, action, verdict, labels, note)


# --------------------------------------------------------------------------------------------
# Incidents
# --------------------------------------------------------------------------------------------


def add_incident(conn: sqlite3.Connection, session: Session, frame_id: str | None, kind: str, *,
                 zone: str | None = None, camera: str | None = None, severity: str = "medium",
                 note: str = "") -> int:
    """Record an incident as the session's user (safety manager); returns its id."""
    require(session, "incidents", f"record a {kind!r} incident", conn)
    return queries.add_incident(conn, frame_id, kind, user=session.user, zone=zone, camera=camera,
                                severity=severity, note=note)


def set_incident_status(conn: sqlite3.Connection, session: Session, incident_id: int, status: str) -> None:
    """Move an incident to open / acknowledged / closed (safety manager)."""
    require(session, "incidents", f"set incident {incident_id} to {status!r}", conn)
    queries.set_incident_status(conn, incident_id, status, user=session.user)


# --------------------------------------------------------------------------------------------
# Users (admin)
# --------------------------------------------------------------------------------------------


def add_user(conn: sqlite3.Connection, session: Session, name: str, role: str, password: str) -> dict[str, Any]:
    """Create a user (admin); returns it without its password hash."""
    require(session, "users", f"add user {name!r}", conn)
    return users.add_user(conn, name, role, password, actor=session.user)


def set_role(conn: sqlite3.Connection, session: Session, name: str, role: str) -> None:
    """Change a user's role (admin)."""
    require(session, "users", f"change the role of {name!r}", conn)
    users.set_role(conn, name, role, actor=session.user)


def set_password(conn: sqlite3.Connection, session: Session, name: str, password: str) -> None:
    """Set another user's password (admin)."""
    require(session, "users", f"set the password of {name!r}", conn)
    users.set_password(conn, name, password, actor=session.user)


def deactivate(conn: sqlite3.Connection, session: Session, name: str) -> None:
    """Deactivate a user (admin); their open sessions stop working at their next action."""
    require(session, "users", f"deactivate {name!r}", conn)
    users.deactivate(conn, name, actor=session.user)


def activate(conn: sqlite3.Connection, session: Session, name: str) -> None:
    """Re-activate a deactivated user (admin)."""
    require(session, "users", f"activate {name!r}", conn)
    users.activate(conn, name, actor=session.user)


def change_own_password(conn: sqlite3.Connection, session: Session, old_password: str, new_password: str) -> None:
    """Any active user may change their own password, given the current one."""
    try:
        users.authenticate(conn, session.user, old_password)
    except users.LoginError:
        raise PermissionDenied(session.user, session.role, "change their password",
                               "the current password is wrong") from None
    _require_current(conn, session, "change their password")
    users.set_password(conn, session.user, new_password, actor=session.user)


def _require_current(conn: sqlite3.Connection, session: Session, action: str) -> None:
    # No permission needed, but the account must still exist, be active and hold the same role.
    row = users.get_user(conn, session.user)
    if row is None or not row["active"] or row["role"] != session.role:
        raise PermissionDenied(session.user, session.role, action, "the session is stale; log in again")


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


# --------------------------------------------------------------------------------------------
# Models (engineer): inspector-train promote / rollback in a subprocess
# --------------------------------------------------------------------------------------------

#: Runs a command line with extra environment; returns (exit code, stdout + stderr).
Runner = Callable[[Sequence[str], Mapping[str, str]], tuple[int, str]]
_PROMOTE_SPEC = r"^[a-z0-9][a-z0-9_.-]*@[0-9A-Za-z_.-]+$"
_MODEL_NAME = r"^[a-z0-9][a-z0-9_.-]*$"
TOOL_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ToolResult:
    """What a training-tool run gave: its command line, exit code and combined output."""

    args: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _run_subprocess(args: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    try:
        p = subprocess.run(list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env={**os.environ, **env}, timeout=TOOL_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return 124, f"inspector-train did not finish within {TOOL_TIMEOUT_S:g} s and was stopped"
    except OSError as e:
        return 127, f"cannot run {args[0]}: {e}"
    return p.returncode, (p.stdout or "") + (p.stderr or "")


def _train_tool(session: Session, command: str, target: str, pattern: str, what: str, registry: str | Path | None,
                reason: str, conn: sqlite3.Connection | None, runner: Runner | None) -> ToolResult:
    require(session, "models", f"{command} {target}", conn)
    if not re.match(pattern, target):
        raise ValueError(f"{command}: expected {what}, got {target!r}")
    # --opt=value forms and '--' keep a value starting with '-' from being read as an option.
    args = [sys.executable, "-m", "training.cli", command, f"--user={session.user}", f"--reason={reason}"]
    if registry is not None:
        args.append(f"--registry={registry}")
    args += ["--", target]
    rc, output = (runner or _run_subprocess)(args, {"INSPECTOR_USER": session.user})
    if conn is not None:  # the registry logs the event too; this puts it in the station's chain
        with transaction(conn):
            audit.append(conn, actor=session.user, action=f"models.{command}", entity="registry",
                         entity_id=target, payload={"registry": None if registry is None else str(registry),
                                                    "reason": reason, "returncode": rc})
    return ToolResult(tuple(args), rc, output)


def models_promote(session: Session, spec: str, registry: str | Path | None = None, *, reason: str = "",
                   conn: sqlite3.Connection | None = None, runner: Runner | None = None) -> ToolResult:
    """Run ``inspector-train promote NAME@VERSION --user <session.user>`` (engineer only).

    The registry's gate decides; a refusal comes back as a non-zero exit code with its table in
    ``output``. With ``conn`` the user is re-checked in the database and the attempt audited.
    """
    return _train_tool(session, "promote", spec, _PROMOTE_SPEC, "'name@version'", registry, reason, conn, runner)


def models_rollback(session: Session, name: str, registry: str | Path | None = None, *, reason: str = "",
                    conn: sqlite3.Connection | None = None, runner: Runner | None = None) -> ToolResult:
    """Run ``inspector-train rollback NAME --user <session.user>`` (engineer only)."""
    return _train_tool(session, "rollback", name, _MODEL_NAME, "a registry model name", registry, reason, conn,
                       runner)
