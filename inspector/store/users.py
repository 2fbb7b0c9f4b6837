"""Station users: names, roles, scrypt password hashes, and their audited changes.

Passwords are stored only as ``scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`` (``hashlib.scrypt``,
a fresh random salt per hash, the cost parameters stored with it so they can be raised later
without breaking existing users). Checking compares in constant time (``hmac.compare_digest``).
A hash made at a lower cost than today's is replaced at the user's next successful log-in (the
only moment the password is known), audited as ``user.rehash``.

Every change (add, role, password, deactivate, activate) writes the ``users`` row and one audit
row in the same transaction; a role change, a new password or a deactivation also ends the user's
open sessions (``inspector.store.sessions``), so re-activating an account does not revive them.
A password change is audited as ``user.password_changed`` (never with the hash).

Log-ins are throttled (``inspector.store.login_throttle``: per name and over all names, bounded
locks kept in the database) and every refused one is audited as ``user.login_failed`` by the actor
``system:login`` (the name when it is a user's, else only its sha256: an unknown name is often a
password typed into the wrong field). The audit payload is the row *without* its password hash, read back
from the database in the exact form ``audit.entity_content`` uses for audited tables (``{"row":
{...}}`` over ``USER_AUDIT_COLUMNS``), so ``users`` can later be listed in ``audit.ENTITIES``
without invalidating rows already recorded. Until then :func:`verify_users` checks that every
user row still matches its newest audit row (a role edited around the store is caught; a swapped
password hash is not: the hash is deliberately outside the audit payload).

Roles are names here; what each role may do lives in one table, ``inspector.station.actions.PERMISSIONS``.
There is no default user and no default password: the first user is created with
``inspector users add NAME --role admin``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import sqlite3
import unicodedata
from datetime import datetime, timezone
from typing import Any

from inspector.store import audit, login_throttle
from inspector.store.audit import Problem
from inspector.store.db import StoreError, transaction
from inspector.util.canonical import canonical_json, iso_utc, sha256_text

log = logging.getLogger(__name__)

__all__ = [
    "MIN_PASSWORD_LENGTH", "ROLES", "USER_AUDIT_COLUMNS", "LoginError", "LoginThrottled", "NoUsersError", "UserError",
    "activate", "add_user", "authenticate", "unlock", "check_password", "check_password_policy", "count_users", "deactivate", "get_user",
    "hash_password", "list_users", "needs_rehash", "set_password", "set_role", "verify_users",
]

ROLES = ("operator", "engineer", "safety_manager", "admin")

# scrypt cost: n=2**17, r=8, p=1 is OWASP's recommendation (128 MiB, about half a second of CPU per
# check). Read at call time, so tests may lower it; the parameters travel inside each stored hash,
# and a cheaper one is re-hashed at the next log-in (see needs_rehash).
SCRYPT_N = 2 ** 17
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
# Bounds on parameters read back from the database: a tampered row must not make a log-in
# allocate gigabytes or spin for minutes.
_MAX_N, _MAX_R, _MAX_P = 2 ** 20, 32, 16

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
# Actor names the machinery writes into the audit chain; a person must not be able to pose as them.
RESERVED_NAMES = frozenset({"station", "system", "cli", "admin-cli", "root"})

USER_AUDIT_COLUMNS = ("name", "role", "active", "created", "updated")  # never password_hash
_ENTITY = "users"
_LOGIN_FAILED = "log-in refused: unknown user or wrong password"


class UserError(StoreError):
    """A user operation was refused; the message says which user and why."""


class LoginError(UserError):
    """A log-in failed. The message never says whether the user exists."""


class LoginThrottled(LoginError):
    """Too many failed log-ins for this name (or for all names): refused without checking the
    password until ``until``. Unknown names are throttled alike, so it says nothing about them."""

    def __init__(self, message: str, until: datetime | None = None):
        super().__init__(message)
        self.until = until

    def __reduce__(self):
        return (type(self), (str(self), self.until))


class NoUsersError(LoginError):
    """The database has no users yet: the first one is created from the command line."""


# --------------------------------------------------------------------------------------------
# Password hashing
# --------------------------------------------------------------------------------------------


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _password_bytes(password: str) -> bytes:
    # NFKC: the same password typed on two keyboards / input methods gives the same bytes.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # scrypt needs 128 * n * r bytes (128 MiB at the default cost); OpenSSL refuses to go above
    # maxmem (32 MiB unless raised), so allow twice the need.
    return hashlib.scrypt(_password_bytes(password), salt=salt, n=n, r=r, p=p, dklen=dklen,
                          maxmem=max(64 * 1024 * 1024, 256 * n * r))


def check_password_policy(password: str, *, user: str = "") -> None:
    """Refuse passwords that are empty, too short or absurdly long (the message names the user)."""
    who = f" for user {user!r}" if user else ""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password{who} is too short: expected at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password{who} is too long: expected at most {MAX_PASSWORD_LENGTH} characters")


def hash_password(password: str) -> str:
    """scrypt hash with a fresh random salt: ``scrypt$n$r$p$salt$hash`` (base64 salt and hash)."""
    n, r, p = SCRYPT_N, SCRYPT_R, SCRYPT_P
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n, r, p, HASH_BYTES)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("not an scrypt password hash")
    n, r, p = (int(x) for x in parts[1:4])
    if not (1 < n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise ValueError(f"scrypt parameters out of range (n={n}, r={r}, p={p})")
    salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    if not salt or not digest:
        raise ValueError("empty salt or hash")
    return n, r, p, salt, digest


def check_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches the stored hash; a malformed hash never matches."""
    try:
        n, r, p, salt, digest = _parse(encoded)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(digest)), digest)


def needs_rehash(encoded: str) -> bool:
    """True when a stored hash was made at a lower cost than today's (``SCRYPT_N``, ``_R``, ``_P``)."""
    try:
        n, r, p, _, _ = _parse(encoded)
    except (ValueError, TypeError):
        return False
    return n < SCRYPT_N or r < SCRYPT_R or p < SCRYPT_P


_dummy_hash: str | None = None


def _burn_time(password: str) -> None:
    """Spend the time of one real check, so an unknown user answers as slowly as a wrong password."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(16))
    check_password(password, _dummy_hash)


# --------------------------------------------------------------------------------------------
# Reads (never return the password hash)
# --------------------------------------------------------------------------------------------

_PUBLIC = "name, role, active, created, updated"


def _public(row: sqlite3.Row | tuple) -> dict[str, Any]:
    d = dict(zip(USER_AUDIT_COLUMNS, tuple(row)))
    d["active"] = bool(d["active"])
    return d


def get_user(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    """The user (name as stored, role, active, created, updated) or None; name matching ignores case."""
    row = conn.execute(f"SELECT {_PUBLIC} FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else _public(row)


def list_users(conn: sqlite3.Connection, *, include_inactive: bool = True) -> list[dict[str, Any]]:
    """Every user, by name (no password hashes)."""
    sql = f"SELECT {_PUBLIC} FROM users" + ("" if include_inactive else " WHERE active = 1") + " ORDER BY name"
    return [_public(r) for r in conn.execute(sql)]


def count_users(conn: sqlite3.Connection, *, active_only: bool = False) -> int:
    sql = "SELECT COUNT(*) FROM users" + (" WHERE active = 1" if active_only else "")
    return int(conn.execute(sql).fetchone()[0])


# --------------------------------------------------------------------------------------------
# Audited writes
# --------------------------------------------------------------------------------------------


def _content(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    # Same shape as audit.entity_content: {"row": {column: value}} over the fixed column list.
    row = conn.execute(f"SELECT {', '.join(USER_AUDIT_COLUMNS)} FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else {"row": dict(zip(USER_AUDIT_COLUMNS, tuple(row)))}


def _audit(conn: sqlite3.Connection, actor: str, action: str, name: str) -> int:
    if _ENTITY in audit.ENTITIES:  # once audit.py lists users, it reads the row itself
        return audit.append(conn, actor=actor, action=action, entity=_ENTITY, entity_id=name)
    content = _content(conn, name)
    if content is None:
        raise LookupError(f"audit: user {name!r} does not exist; write the row before its audit row")
    return audit.append(conn, actor=actor, action=action, entity=_ENTITY, entity_id=name, payload=content)


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise UserError(f"user name {name!r} is not valid: expected 1-64 letters, digits, '_', '.', '@' or '-', "
                        "starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise UserError(f"user name {name!r} is reserved for the station's own audit records; choose another")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")


def _check_actor(actor: str) -> None:
    if not actor:
        raise UserError("a user change needs the actor who makes it (a user name or 'cli:<os user>')")


def _need(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    row = conn.execute("SELECT name, role, active FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise UserError(f"user {name!r} does not exist")
    return row


def _keep_an_admin(conn: sqlite3.Connection, row: sqlite3.Row, what: str) -> None:
    # Without an active admin nobody can manage users from the GUI; the CLI could still, but a
    # station should not silently end up in that state.
    if row["role"] == "admin" and row["active"]:
        others = conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin' AND active = 1 AND name != ?",
                              (row["name"],)).fetchone()[0]
        if not others:
            raise UserError(f"cannot {what} {row['name']!r}: it is the last active admin; "
                            "make another user admin first")


def add_user(conn: sqlite3.Connection, name: str, role: str, password: str, *, actor: str) -> dict[str, Any]:
    """Create a user (audited as ``user.add``); returns it (without its hash)."""
    _check_name(name)
    _check_role(role)
    _check_actor(actor)
    check_password_policy(password, user=name)
    hashed = hash_password(password)  # slow: outside the write lock
    with transaction(conn):
        existing = conn.execute("SELECT name FROM users WHERE name = ?", (name,)).fetchone()
        if existing is not None:
            raise UserError(f"user {name!r} already exists (as {existing[0]!r}); user names ignore case")
        now = iso_utc()
        conn.execute("INSERT INTO users (name, role, password_hash, active, created, updated)"
                     " VALUES (?, ?, ?, 1, ?, ?)", (name, role, hashed, now, now))
        _audit(conn, actor, "user.add", name)
    log.info("user %r added with role %s by %s", name, role, actor)
    return get_user(conn, name)  # type: ignore[return-value]


def set_role(conn: sqlite3.Connection, name: str, role: str, *, actor: str) -> None:
    """Change a user's role (audited as ``user.role``)."""
    _check_role(role)
    _check_actor(actor)
    with transaction(conn):
        row = _need(conn, name)
        if row["role"] == role:
            raise UserError(f"user {row['name']!r} already has role {role}")
        if role != "admin":
            _keep_an_admin(conn, row, "change the role of")
        conn.execute("UPDATE users SET role = ?, updated = ? WHERE name = ?", (role, iso_utc(), name))
        _end_sessions(conn, row["name"])
        _audit(conn, actor, "user.role", row["name"])


def set_password(conn: sqlite3.Connection, name: str, password: str, *, actor: str,
                 keep_session: str | None = None) -> None:
    """Replace a user's password (audited as ``user.password_changed``; the hash stays out of the
    audit). The user's sessions end, all but the one whose token sha256 is ``keep_session`` (the
    session that changed its own password)."""
    _check_actor(actor)
    check_password_policy(password, user=name)
    hashed = hash_password(password)
    with transaction(conn):
        row = _need(conn, name)
        conn.execute("UPDATE users SET password_hash = ?, updated = ? WHERE name = ?", (hashed, iso_utc(), name))
        _end_sessions(conn, row["name"], keep=keep_session)
        _audit(conn, actor, "user.password_changed", row["name"])


def _set_active(conn: sqlite3.Connection, name: str, active: bool, *, actor: str) -> None:
    _check_actor(actor)
    with transaction(conn):
        row = _need(conn, name)
        if bool(row["active"]) == active:
            raise UserError(f"user {row['name']!r} is already {'active' if active else 'deactivated'}")
        if not active:
            _keep_an_admin(conn, row, "deactivate")
        conn.execute("UPDATE users SET active = ?, updated = ? WHERE name = ?", (int(active), iso_utc(), name))
        if not active:
            _end_sessions(conn, row["name"])
        _audit(conn, actor, "user.activate" if active else "user.deactivate", row["name"])


def _end_sessions(conn: sqlite3.Connection, name: str, keep: str | None = None) -> None:
    # Inside the caller's transaction. (The session check re-reads role and active anyway; ending
    # the rows also keeps a later re-activation from reviving them.)
    conn.execute("UPDATE sessions SET revoked = ? WHERE user = ? AND revoked IS NULL AND token_sha256 IS NOT ?",
                 (iso_utc(), name, keep))


def deactivate(conn: sqlite3.Connection, name: str, *, actor: str) -> None:
    """Stop a user from logging in or acting (audited). The row stays: reviews and audit rows name it."""
    _set_active(conn, name, False, actor=actor)


def activate(conn: sqlite3.Connection, name: str, *, actor: str) -> None:
    """Let a deactivated user log in again (audited)."""
    _set_active(conn, name, True, actor=actor)


# --------------------------------------------------------------------------------------------
# Log-in
# --------------------------------------------------------------------------------------------


def authenticate(conn: sqlite3.Connection, name: str, password: str, *,
                 now: datetime | None = None) -> dict[str, Any]:
    """Check a name and password; returns the user (name as stored, role).

    Raises :class:`NoUsersError` when no user exists yet (with the command that creates the
    first one), :class:`LoginThrottled` while the name (or every name) is locked after too many
    failures (the password is not checked), else :class:`LoginError` with one message for an
    unknown user, a deactivated one and a wrong password, after the same scrypt work in every
    case. Every refusal is audited (``user.login_failed``) and counted by the throttle.
    """
    if count_users(conn) == 0:
        raise NoUsersError("no users are set up in this station's database; create the first one with "
                           "`inspector users add NAME --role admin`")
    now = now or datetime.now(timezone.utc)
    key_name = name if isinstance(name, str) else ""
    until = login_throttle.locked_until(conn, key_name, now)
    if until is not None:
        _refused(conn, key_name, "locked", now, counted=False, until=until)
        wait = max(1, int((until - now).total_seconds() + 0.999))
        raise LoginThrottled(f"log-in refused: too many failed log-ins; try again in {wait} s "
                             "(the station's owner can lift the lock: `inspector users unlock NAME`)", until)
    row = None
    if isinstance(name, str) and isinstance(password, str) and len(password) <= MAX_PASSWORD_LENGTH:
        row = conn.execute(f"SELECT {_PUBLIC}, password_hash FROM users WHERE name = ?", (name,)).fetchone()
    if row is None:
        _burn_time(password if isinstance(password, str) else "")
        reason = "unknown user"
    elif not check_password(password, row["password_hash"]):
        reason = "wrong password"
    else:
        reason = "" if row["active"] else "deactivated"
    if reason:
        log.warning("log-in refused for %r", name)
        _refused(conn, key_name, reason, now, counted=True, user=None if row is None else row["name"])
        raise LoginError(_LOGIN_FAILED)
    try:
        with transaction(conn):
            login_throttle.forget(conn, key_name)
    except sqlite3.Error as e:  # read-only or locked: the log-in itself still stands
        log.warning("could not clear the failed log-ins of %r: %s", name, e)
    if needs_rehash(row["password_hash"]):
        _rehash(conn, row["name"], password, row["password_hash"])
    return _public(tuple(row)[: len(USER_AUDIT_COLUMNS)])


def _refused(conn: sqlite3.Connection, name: str, reason: str, now: datetime, *, counted: bool,
             user: str | None = None, until: datetime | None = None) -> None:
    """Count (unless already locked: that attempt tested nothing) and audit one refused log-in."""
    if user is None and reason != "unknown user":
        row = conn.execute("SELECT name FROM users WHERE name = ?", (name,)).fetchone()
        user = None if row is None else row[0]
    try:
        with transaction(conn):
            info = (login_throttle.record_failure(conn, name, now) if counted else
                    {"locked_until": None if until is None else iso_utc(until)})
            payload: dict[str, Any] = {"reason": reason, **info}
            if user is None:
                payload["name_sha256"] = login_throttle.name_key(name).split(":", 1)[1]
            audit.append(conn, actor="system:login", action="user.login_failed", entity="login",
                         entity_id=user or "(unknown)", payload=payload)
    except sqlite3.Error as e:  # a read-only database cannot count: it cannot open a session either
        log.warning("could not record the refused log-in of %r: %s", name, e)


def unlock(conn: sqlite3.Connection, name: str | None, *, actor: str) -> bool:
    """Lift the log-in lock of ``name`` (None: every lock, the all-names one included); audited
    as ``user.unlock``. True when there was something to lift."""
    _check_actor(actor)
    with transaction(conn):
        n = login_throttle.forget_all(conn) if name is None else int(login_throttle.forget(conn, name))
        audit.append(conn, actor=actor, action="user.unlock", entity="login", entity_id=name or "*",
                     payload={"cleared": n})
    return n > 0


def _rehash(conn: sqlite3.Connection, name: str, password: str, old_hash: str) -> None:
    """Replace a hash made at an older, cheaper cost (audited as ``user.rehash``, by the user).

    The log-in succeeds whatever happens here: a database that cannot be written now (read-only,
    locked, inside the caller's transaction) keeps the old hash until a later log-in."""
    hashed = hash_password(password)  # slow: outside the write lock
    try:
        with transaction(conn):
            # Only if the hash is still the one just checked: a password set meanwhile wins.
            cur = conn.execute("UPDATE users SET password_hash = ?, updated = ? WHERE name = ? AND password_hash = ?",
                               (hashed, iso_utc(), name, old_hash))
            if cur.rowcount:
                _audit(conn, name, "user.rehash", name)
    except sqlite3.Error as e:
        log.warning("could not re-hash the password of %r at the current cost: %s", name, e)
        return
    log.info("password of %r re-hashed at the current scrypt cost", name)


# --------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------


def verify_users(conn: sqlite3.Connection) -> list[Problem]:
    """Check that every user row matches its newest audit row and every audited user still exists.

    Complements ``audit.verify`` (which checks the chain itself) while ``users`` is not one of
    ``audit.ENTITIES``. The password hash is not covered (it is kept out of the audit payload).
    """
    problems: list[Problem] = []
    latest: dict[str, tuple[int, str]] = {}
    for seq, entity_id, payload_sha in conn.execute(
            "SELECT seq, entity_id, payload_sha256 FROM audit WHERE entity = ? ORDER BY seq", (_ENTITY,)):
        latest[str(entity_id)] = (int(seq), str(payload_sha))
    for (name,) in conn.execute("SELECT name FROM users ORDER BY name"):
        if name not in latest:
            problems.append(Problem(None, _ENTITY, name, f"user {name} has no audit row: it was written outside "
                                    "the store or its audit row was removed"))
    for name, (seq, payload_sha) in latest.items():
        content = _content(conn, name)
        if content is None:
            what = "deleted"
        elif sha256_text(canonical_json(content)) != payload_sha:
            what = "modified"
        else:
            continue
        problems.append(Problem(seq, _ENTITY, name, f"audit row {seq}: user {name} was {what} after it was recorded"))
    return problems
