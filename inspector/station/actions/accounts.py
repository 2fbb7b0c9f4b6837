"""User accounts: an admin manages them; any active user may change their own password."""

from __future__ import annotations

import sqlite3
from typing import Any

from inspector.station.actions.auth import PermissionDenied, Session, require
from inspector.store import users


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
