"""Who may do what: the permission table (the only place that says which role may do what), the
session a log-in returns, and the check every action makes before touching anything."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from inspector.store import users


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
