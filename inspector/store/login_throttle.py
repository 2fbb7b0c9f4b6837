"""Throttling of failed log-ins, per user name and over all names, kept in the database.

Policy (one place): a name may fail ``FREE_FAILURES`` times; each further failure locks it for
``BASE_LOCK_S`` doubled per failure past the free ones, never longer than ``MAX_LOCK_S``. Over all
names the same holds from ``GLOBAL_FREE_FAILURES`` (guessing many names). Failures are forgotten
``WINDOW_S`` after the last one; a successful log-in forgets its name's (not the global count).

Why bounded: a lock that grew without limit would let anyone who can reach the log-in dialog
lock the admin out for good. The worst an attacker gets is ``MAX_LOCK_S`` at a time, and the
machine owner can always lift a lock (``inspector users unlock NAME``); user administration from
the CLI needs no GUI log-in. While locked, the password is not even checked (no scrypt work to
spend) and the attempt does not count (it tested nothing).

The state lives in ``login_attempts`` (migration 8), so restarting the GUI does not reset it.
Call :func:`record_failure` / :func:`forget` inside the caller's transaction.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta

from inspector.util.canonical import iso_utc

FREE_FAILURES = 5
GLOBAL_FREE_FAILURES = 50
WINDOW_S = 15 * 60
BASE_LOCK_S = 60
MAX_LOCK_S = 15 * 60
GLOBAL_KEY = "*"


def name_key(name: str) -> str:
    # Hashed: an unknown "name" is often a password typed into the wrong field.
    return "name:" + hashlib.sha256(str(name).strip().lower().encode("utf-8")).hexdigest()


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def locked_until(conn: sqlite3.Connection, name: str, now: datetime) -> datetime | None:
    """The end of the lock in force on ``name`` (or on all names) at ``now``, or None."""
    ends = [_when(r[0]) for r in conn.execute(
        "SELECT locked_until FROM login_attempts WHERE key IN (?, ?) AND locked_until IS NOT NULL",
        (name_key(name), GLOBAL_KEY))]
    live = [e for e in ends if e is not None and e > now]
    return max(live) if live else None


def _lock_s(failures: int, free: int) -> int:
    return 0 if failures < free else min(BASE_LOCK_S * 2 ** (failures - free), MAX_LOCK_S)


def _bump(conn: sqlite3.Connection, key: str, free: int, now: datetime) -> tuple[int, datetime | None]:
    row = conn.execute("SELECT failures, last_failed FROM login_attempts WHERE key = ?", (key,)).fetchone()
    failures = 1
    if row is not None and now - _when(row[1]) < timedelta(seconds=WINDOW_S):  # type: ignore[operator]
        failures = int(row[0]) + 1
    lock = _lock_s(failures, free)
    until = now + timedelta(seconds=lock) if lock else None
    conn.execute("INSERT OR REPLACE INTO login_attempts (key, failures, last_failed, locked_until) VALUES (?, ?, ?, ?)",
                 (key, failures, iso_utc(now), None if until is None else iso_utc(until)))
    return failures, until


def record_failure(conn: sqlite3.Connection, name: str, now: datetime) -> dict[str, object]:
    """Count one failed password check against ``name`` and all names; returns what the audit
    keeps (this name's failures in the window, the lock it now has)."""
    failures, until = _bump(conn, name_key(name), FREE_FAILURES, now)
    _, global_until = _bump(conn, GLOBAL_KEY, GLOBAL_FREE_FAILURES, now)
    ends = [u for u in (until, global_until) if u is not None]
    return {"failures": failures, "locked_until": iso_utc(max(ends)) if ends else None}


def forget(conn: sqlite3.Connection, name: str) -> bool:
    """Clear ``name``'s failures and lock (a successful log-in, or the owner's unlock)."""
    return conn.execute("DELETE FROM login_attempts WHERE key = ?", (name_key(name),)).rowcount > 0


def forget_all(conn: sqlite3.Connection) -> int:
    """Clear every lock, the global one included (the owner's unlock of a whole station)."""
    return conn.execute("DELETE FROM login_attempts").rowcount
