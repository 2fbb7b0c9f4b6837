"""Who may act: the permission table, log-in sessions backed by the database, and the one check
every state-changing path makes (the actions before any work, the store's writers again at their
entry).

A :class:`Session` is only worth something through its token: :func:`log_in` (a password) and
:func:`open_system` (the station's own unattended work, recorded and audited) draw 256 random bits
from ``secrets`` and store only their sha256 in ``sessions`` (migration 8). :func:`check` looks the
token up on every call, so a ``Session("anyone", "engineer")`` built by hand, a token from
another database, a revoked or expired session, a deactivated user or a changed role are all
refused with :class:`PermissionDenied`.

A person's session holds their role; what each role may do is :data:`PERMISSIONS` (the only
place that says so). A system session (role ``system``, actor ``system:<what>`` or
``cli:<os user>``: names no person can have, as user names cannot hold ':') holds exactly the
permissions it was opened for, read back from its row.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from inspector.store import audit, users
from inspector.store.db import open_db, transaction
from inspector.util.canonical import iso_utc

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

SYSTEM_ROLE = "system"
SYSTEM_PREFIXES = ("system:", "cli:")
USER_TTL_S = 12 * 3600     # a shift; a person logs in again after it
SYSTEM_TTL_S = 3600        # one unattended job (a report, a CLI command)
TOKEN_BYTES = 32           # 256 bits


def allowed(role: str, permission: str) -> bool:
    """Whether ``role`` holds ``permission`` (the GUI uses it to show or hide controls)."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}; known: {', '.join(PERMISSIONS)}")
    return role in PERMISSIONS[permission]


def _needs(permission: str) -> str:
    return "needs role " + " or ".join(sorted(PERMISSIONS[permission]))


class PermissionDenied(Exception):
    """A session tried an action its role, its log-in or its account's current state does not allow."""

    def __init__(self, user: str, role: str, action: str, reason: str = ""):
        self.user, self.role, self.action, self.reason = user, role, action, reason
        super().__init__(f"user {user!r} (role {role}) may not {action}: {reason}" if reason else
                         f"user {user!r} (role {role}) may not {action}")

    def __reduce__(self):  # keep the fields when pickled (worker processes, logging handlers)
        return (type(self), (self.user, self.role, self.action, self.reason))


@dataclass(frozen=True)
class Session:
    """Who is acting (the user name as stored, the role), the secret token that proves it, and
    the database that issued it. Build one only through :func:`log_in` or :func:`open_system`:
    any other is refused by :func:`check`."""

    user: str
    role: str
    token: str = field(default="", repr=False)          # never in logs or reprs
    store: str = field(default="", repr=False, compare=False)  # file of the issuing database ('' in memory)

    @property
    def system(self) -> bool:
        return self.role == SYSTEM_ROLE


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_sha256(session: Session) -> str:
    """The stored form of the session's token (how its row is found)."""
    return _sha(session.token)


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(timezone.utc)


def store_path(conn: sqlite3.Connection) -> str:
    """The main database file of ``conn`` ('' for an in-memory database)."""
    return next((str(r[2] or "") for r in conn.execute("PRAGMA database_list") if r[1] == "main"), "")


def _open(conn: sqlite3.Connection, user: str, role: str, ttl_s: float, now: datetime, *,
          scope: tuple[str, ...] | None = None, reason: str | None = None) -> tuple[Session, str]:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    sha = _sha(token)
    conn.execute("INSERT INTO sessions (token_sha256, user, role, scope, reason, created, expires)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (sha, user, role, None if scope is None else ",".join(scope), reason, iso_utc(now),
                  iso_utc(now + timedelta(seconds=ttl_s))))
    return Session(user, role, token, store_path(conn)), sha


# --------------------------------------------------------------------------------------------
# Opening and ending sessions
# --------------------------------------------------------------------------------------------


def log_in(conn: sqlite3.Connection, name: str, password: str, *, now: datetime | None = None,
           ttl_s: float = USER_TTL_S) -> Session:
    """Check a name and password (throttled, failures audited: ``users.authenticate``); returns a
    new session valid for ``ttl_s`` (a shift by default)."""
    now = _now(now)
    row = users.authenticate(conn, name, password, now=now)
    with transaction(conn):
        session, _ = _open(conn, row["name"], row["role"], ttl_s, now)
    return session


def open_system(conn: sqlite3.Connection, actor: str, reason: str, permissions: tuple[str, ...] | list[str], *,
                ttl_s: float = SYSTEM_TTL_S, now: datetime | None = None) -> Session:
    """A session for the station's own work (the report scheduler, a CLI command run by whoever
    owns the database file): no person, exactly ``permissions``, recorded in ``sessions`` and
    audited as ``session.system`` (actor, reason, permissions) before it can do anything."""
    if not isinstance(actor, str) or not actor.startswith(SYSTEM_PREFIXES) or len(actor) <= actor.index(":") + 1:
        raise ValueError(f"a system actor is named 'system:<what>' or 'cli:<os user>', got {actor!r}")
    if not reason or not reason.strip():
        raise ValueError("a system session needs the reason it is opened")
    scope = tuple(sorted(set(permissions)))
    unknown = [p for p in scope if p not in PERMISSIONS]
    if not scope or unknown:
        raise ValueError(f"a system session needs known permissions, got {list(permissions)!r}")
    now = _now(now)
    with transaction(conn):
        session, sha = _open(conn, actor, SYSTEM_ROLE, ttl_s, now, scope=scope, reason=reason.strip())
        audit.append(conn, actor=actor, action="session.system", entity="session", entity_id=sha[:16],
                     payload={"reason": reason.strip(), "permissions": list(scope),
                              "expires": iso_utc(now + timedelta(seconds=ttl_s))})
    return session


def end(conn: sqlite3.Connection, session: Session | None) -> bool:
    """Log out: the token stops working. True when a live session was ended."""
    if not isinstance(session, Session) or not session.token:
        return False
    with transaction(conn):
        cur = conn.execute("UPDATE sessions SET revoked = ? WHERE token_sha256 = ? AND revoked IS NULL",
                           (iso_utc(), token_sha256(session)))
    return cur.rowcount > 0


def connect(session: Session) -> sqlite3.Connection:
    """A connection to the database that issued ``session`` (for callers given no connection)."""
    who = (getattr(session, "user", "?"), getattr(session, "role", "?"))
    path = getattr(session, "store", "") if isinstance(session, Session) else ""
    if not path:
        raise PermissionDenied(*who, "act without a database",
                               "the session names no station database to check it against")
    try:
        return open_db(path, create=False)
    except (OSError, sqlite3.Error) as e:
        raise PermissionDenied(*who, "act", f"the session's database cannot be opened ({e})") from None


# --------------------------------------------------------------------------------------------
# The check
# --------------------------------------------------------------------------------------------


def check_role(session: Any, permission: str | None, action: str) -> None:
    """The part of :func:`check` that needs no database: the role holds ``permission``."""
    if not isinstance(session, Session):
        raise PermissionDenied(str(getattr(session, "user", session)), str(getattr(session, "role", "?")), action,
                               "not a log-in session; log in first")
    if permission is not None and not session.system and not allowed(session.role, permission):
        raise PermissionDenied(session.user, session.role, action, _needs(permission))


def check(conn: sqlite3.Connection, session: Any, permission: str | None, action: str | None = None, *,
          now: datetime | None = None) -> str:
    """Raise :class:`PermissionDenied` unless ``session`` is a live log-in of this database whose
    account is still active with the same role (or a system session opened for ``permission``)
    and may use ``permission`` (None: any live session); returns the acting name."""
    action = action or permission or "act"
    check_role(session, permission, action)
    denied = lambda reason: PermissionDenied(session.user, session.role, action, reason)  # noqa: E731
    if not session.token:
        raise denied("not logged in (a session comes only from a log-in); log in first")
    row = conn.execute("SELECT user, role, scope, expires, revoked FROM sessions WHERE token_sha256 = ?",
                       (token_sha256(session),)).fetchone()
    if row is None or row["user"] != session.user or row["role"] != session.role:
        raise denied("not a log-in session of this station; log in again")
    if not session.system:  # the account first: its state is the most useful answer
        user = users.get_user(conn, session.user)
        if user is None:
            raise denied("no such user in this station's database")
        if not user["active"]:
            raise denied("the account is deactivated")
        if user["role"] != session.role:
            raise denied(f"the account's role changed to {user['role']} since log-in; log in again")
    if row["revoked"] is not None:
        raise denied("the session was ended; log in again")
    if datetime.fromisoformat(row["expires"]) <= _now(now):
        raise denied("the session expired; log in again")
    if session.system and permission is not None and permission not in (row["scope"] or "").split(","):
        raise denied(f"this system session was opened for {row['scope']} only")
    return session.user


__all__ = [
    "PERMISSIONS", "REVIEW_PERMISSION", "SYSTEM_ROLE", "PermissionDenied", "Session", "allowed", "check",
    "check_role", "connect", "end", "log_in", "open_system", "store_path", "token_sha256",
]
