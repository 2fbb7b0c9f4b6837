"""Sessions for tests: a real log-in (the only way to get a session that passes the checks).

``logged_in(conn, role)`` creates the user when it is missing (at the cheap test scrypt cost,
tests/conftest.py) and logs in; ``system(conn, *permissions)`` opens a recorded system session.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from inspector.store import sessions, users

PASSWORD = "test-password-123"
#: default user name per role
NAMES = {"operator": "olga", "engineer": "erik", "safety_manager": "sam", "admin": "ada"}


@contextmanager
def _cheap_scrypt() -> Iterator[None]:
    # Module-scoped fixtures run before the per-test cheap-cost fixture of tests/conftest.py.
    saved = users.SCRYPT_N, users._dummy_hash
    if users.SCRYPT_N > 2 ** 4:
        users.SCRYPT_N, users._dummy_hash = 2 ** 4, None
    try:
        yield
    finally:
        users.SCRYPT_N, users._dummy_hash = saved


def logged_in(conn: sqlite3.Connection, role: str = "operator", name: str | None = None, *,
              password: str = PASSWORD) -> sessions.Session:
    """A live session of user ``name`` (default: the role's usual name) with ``role``."""
    name = name or NAMES[role]
    row = users.get_user(conn, name)
    with _cheap_scrypt():
        if row is None:
            users.add_user(conn, name, role, password, actor="cli:test")
        elif row["role"] != role:
            raise ValueError(f"test user {name!r} exists with role {row['role']}, not {role}")
        return sessions.log_in(conn, name, password)


def system(conn: sqlite3.Connection, *permissions: str, actor: str = "system:test") -> sessions.Session:
    """A system session for ``permissions`` (what the scheduler and the CLI use)."""
    return sessions.open_system(conn, actor, "test", permissions)
