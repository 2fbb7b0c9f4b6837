"""Models (engineer): ``inspector-train promote`` / ``rollback`` in a subprocess; ``inspector`` never
imports ``training`` (nor torch)."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from inspector.station.actions.auth import Session, require
from inspector.store import audit, sessions
from inspector.store.db import transaction


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
    action = f"{command} {target}"
    sessions.check_role(session, "models", action)  # a wrong role is refused before any database work
    if not re.match(pattern, target):
        raise ValueError(f"{command}: expected {what}, got {target!r}")
    # No connection given: the session's own database checks it and keeps the audit row; no
    # path runs the tool unchecked or unaudited.
    own = sessions.connect(session) if conn is None else None
    db = conn if own is None else own
    try:
        require(session, "models", action, db)
        # --opt=value forms and '--' keep a value starting with '-' from being read as an option.
        args = [sys.executable, "-m", "training.cli", command, f"--user={session.user}", f"--reason={reason}"]
        if registry is not None:
            args.append(f"--registry={registry}")
        args += ["--", target]
        rc, output = (runner or _run_subprocess)(args, {"INSPECTOR_USER": session.user})
        with transaction(db):  # the registry logs the event too; this puts it in the station's chain
            audit.append(db, actor=session.user, action=f"models.{command}", entity="registry",
                         entity_id=target, payload={"registry": None if registry is None else str(registry),
                                                    "reason": reason, "returncode": rc})
    finally:
        if own is not None:
            own.close()
    return ToolResult(tuple(args), rc, output)


def models_promote(session: Session, spec: str, registry: str | Path | None = None, *, reason: str = "",
                   conn: sqlite3.Connection | None = None, runner: Runner | None = None) -> ToolResult:
    """Run ``inspector-train promote NAME@VERSION --user <session.user>`` (engineer only).

    The registry's gate decides; a refusal comes back as a non-zero exit code with its table in
    ``output``. The session is checked and the attempt audited in ``conn``, or without one in the
    database that issued the session.
    """
    return _train_tool(session, "promote", spec, _PROMOTE_SPEC, "'name@version'", registry, reason, conn, runner)


def models_rollback(session: Session, name: str, registry: str | Path | None = None, *, reason: str = "",
                    conn: sqlite3.Connection | None = None, runner: Runner | None = None) -> ToolResult:
    """Run ``inspector-train rollback NAME --user <session.user>`` (engineer only)."""
    return _train_tool(session, "rollback", name, _MODEL_NAME, "a registry model name", registry, reason, conn,
                       runner)
