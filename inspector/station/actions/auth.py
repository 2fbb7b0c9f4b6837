"""Who may do what, for the faces: the permission table, log-in / log-out, and the check every
action makes before touching anything.

The table, the session and the check itself live in :mod:`inspector.store.sessions` (the store's
writers make the same check at their entry, so going around the actions does not go around it);
this module is what the GUI and the CLI call.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from inspector.store import sessions
from inspector.store.sessions import (
    PERMISSIONS,
    REVIEW_PERMISSION,
    PermissionDenied,
    Session,
    allowed,
)

__all__ = ["PERMISSIONS", "REVIEW_PERMISSION", "PermissionDenied", "Session", "allowed", "login", "logout",
           "require", "system_session"]


def require(session: Session, permission: str, action: str | None = None,
            conn: sqlite3.Connection | None = None) -> None:
    """Raise :class:`PermissionDenied` unless ``session`` may use ``permission`` now.

    The role is checked first (no database needed), then the session's token, account and role
    in the database: ``conn``, or when None the database that issued the session. There is no
    unchecked path: a session that names no database is refused.
    """
    action = action or permission
    sessions.check_role(session, permission, action)
    if conn is not None:
        sessions.check(conn, session, permission, action)
        return
    own = sessions.connect(session)
    try:
        sessions.check(own, session, permission, action)
    finally:
        own.close()


def login(conn: sqlite3.Connection, user: str, password: str, *, now: datetime | None = None) -> Session:
    """Check a name and password; returns the session to pass to every action.

    Raises ``users.NoUsersError`` (says to run `inspector users add NAME --role admin`) when the
    database has no users, ``users.LoginThrottled`` after too many failures, else
    ``users.LoginError`` with the same message whether the user is unknown, deactivated or the
    password wrong. Refusals are audited (``user.login_failed``).
    """
    return sessions.log_in(conn, user, password, now=now)


def logout(conn: sqlite3.Connection, session: Session | None) -> bool:
    """End the session (its token stops working); True when it was live."""
    return sessions.end(conn, session)


def system_session(conn: sqlite3.Connection, actor: str, reason: str, permissions: tuple[str, ...]) -> Session:
    """A recorded, audited session for the station's own unattended work (``sessions.open_system``)."""
    return sessions.open_system(conn, actor, reason, permissions)
