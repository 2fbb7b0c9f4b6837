"""User accounts: an admin manages them; any active user may change their own password."""

from __future__ import annotations

import sqlite3
from typing import Any

from inspector.station.actions.auth import PermissionDenied, Session, require
from inspector.store import sessions, users


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
    """Any active user may change their own password, given the current one (audited as
    ``user.password_changed``); their other sessions end, this one goes on."""
    # The session first: a forged one must not be a way to try passwords.
    sessions.check(conn, session, None, "change their password")
    try:
        users.authenticate(conn, session.user, old_password)
    except users.LoginError as e:
        raise PermissionDenied(session.user, session.role, "change their password",
                               str(e) if isinstance(e, users.LoginThrottled) else "the current password is wrong") \
            from None
    users.set_password(conn, session.user, new_password, actor=session.user,
                       keep_session=sessions.token_sha256(session))
