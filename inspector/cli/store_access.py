"""How the store commands (`db`, `mes`, `users`, `report`) find and open a station's database, and
who they act as.

Who: a command run by whoever owns the database file acts as the system actor ``cli:<os user>``
through a recorded, audited system session for just the permission it needs (the file's owner
could edit the database directly anyway; the session makes that authority explicit in the
record). A command given ``--user NAME`` acts as that station user after a real log-in: the
password comes from ``INSPECTOR_PASSWORD`` or a hidden prompt, never from an option (shell
history, process lists).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from inspector.cli.common import load_station_config, log_to_data_dir

_DB_HELP = "SQLite database of the store (default: the database of --config)."
_CONFIG_HELP = "Station config whose data folder holds the database (INSPECTOR_DATA overrides its data_dir)."


def resolve_db_path(db_path: str | None, config_path: str | None) -> Path:
    """--db wins; else <data folder of --config>/<storage.db_name>. Neither: say so."""
    if db_path:
        return Path(db_path)
    if not config_path:
        raise click.UsageError("give the database with --db PATH, or the station config with --config FILE")
    from inspector.config import resolve_data_dir

    cfg = load_station_config(config_path)
    return resolve_data_dir(cfg) / cfg.storage.db_name


def open_store(db_path: str | None, config_path: str | None):
    """Open an existing store; never create an empty one on a read command. The data folder (the
    database's folder) gets the command's log file."""
    import sqlite3

    from inspector.store.db import SchemaTooNewError, open_db

    path = resolve_db_path(db_path, config_path)
    if not path.is_file():
        raise click.ClickException(f"no Inspector database at {path}")
    log_to_data_dir(path.parent)
    try:
        return open_db(path, create=False)
    except SchemaTooNewError as e:
        raise click.ClickException(f"{path}: {e}") from None
    except sqlite3.DatabaseError as e:
        raise click.ClickException(f"{path}: not a readable Inspector database ({e})") from None


def db_options(f):
    """``--db PATH`` and ``--config FILE``: the two ways to name a store."""
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False), help=_CONFIG_HELP)(f)
    return click.option("--db", "db_path", type=click.Path(dir_okay=False), help=_DB_HELP)(f)


PASSWORD_ENV = "INSPECTOR_PASSWORD"


def cli_actor() -> str:
    """``cli:<os user>``: the machine account that ran the command (user names cannot hold ':')."""
    import getpass

    try:
        who = getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name (some containers): still say it came from the CLI
        who = "unknown"
    return f"cli:{who or 'unknown'}"


@contextmanager
def acting(conn: Any, user: str | None, reason: str, permissions: tuple[str, ...]) -> Iterator[Any]:
    """The session a command acts with: ``user``'s own log-in (password from $INSPECTOR_PASSWORD or
    a prompt), else the ``cli:<os user>`` system session for ``permissions``; ended afterwards."""
    from inspector.station import actions
    from inspector.store import users

    if user is None:
        session = actions.system_session(conn, cli_actor(), reason, permissions)
    else:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            password = click.prompt(f"Password for {user}", hide_input=True, err=True)
        try:
            session = actions.login(conn, user, password)
        except users.LoginError as e:
            raise click.ClickException(str(e)) from None
    try:
        yield session
    finally:
        actions.logout(conn, session)
