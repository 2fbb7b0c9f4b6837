"""`inspector users`: the machine owner's tool to manage station users.

This is the only way to create the first user (there is no default user and no default
password). Whoever can run it on the station machine owns the database file anyway, so it needs
no station log-in: each command acts through a recorded, audited system session of the actor
``cli:<os user>`` for the ``users`` permission only, and every change is audited under that actor.
It is also the way back in when the GUI log-in is locked after failed attempts (`unlock`): the
owner is never locked out, whatever an attacker types into the log-in dialog.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict

import click

from inspector.cli.common import log_to_data_dir
from inspector.cli.store_access import acting, db_options, open_store, resolve_db_path
from inspector.util.clickopts import json_option

_ROLES = ("operator", "engineer", "safety_manager", "admin")  # mirrors inspector.store.users.ROLES (tested)


@contextmanager
def _as_owner(conn, what: str) -> Iterator[str]:
    """The ``cli:<os user>`` system session for ``users``; yields its actor name for the audit."""
    with acting(conn, None, f"inspector users {what}", ("users",)) as session:
        yield session.user


def _open_or_create(db_path: str | None, config_path: str | None):
    """`users add` may run before the station's first run: create the database if it is missing."""
    import sqlite3

    from inspector.store.db import SchemaTooNewError, open_db

    path = resolve_db_path(db_path, config_path)
    try:
        conn = open_db(path, create=True)
    except SchemaTooNewError as e:
        raise click.ClickException(f"{path}: {e}") from None
    except (sqlite3.DatabaseError, OSError) as e:
        raise click.ClickException(f"{path}: cannot open or create an Inspector database ({e})") from None
    log_to_data_dir(path.parent)
    return conn


def _read_password(name: str, from_stdin: bool) -> str:
    if from_stdin:
        # One line; only the line ending is removed (spaces may be part of a password).
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("--password-stdin: no password on standard input")
        return line.rstrip("\r\n")
    return click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)


def _run(fn, *args, **kwargs):
    """Call a store function, turning its refusal into one clear CLI error."""
    from inspector.store.users import UserError

    try:
        return fn(*args, **kwargs)
    except UserError as e:
        raise click.ClickException(str(e)) from None


_STDIN_HELP = "Read the password from the first line of standard input (scripts) instead of prompting twice."


@click.group("users")
def users() -> None:
    """Manage station users and roles (operator, engineer, safety_manager, admin).

    The first user must be created here: `inspector users add NAME --role admin`.
    """


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(_ROLES), help="The user's role.")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@db_options
def add_cmd(name: str, role: str, password_stdin: bool, db_path: str | None, config_path: str | None) -> None:
    """Add user NAME with ROLE; asks for the password twice (creates the database if needed)."""
    from inspector.store import users as store_users

    password = _read_password(name, password_stdin)
    conn = _open_or_create(db_path, config_path)
    try:
        first = store_users.count_users(conn) == 0
        with _as_owner(conn, f"add {name}") as actor:
            user = _run(store_users.add_user, conn, name, role, password, actor=actor)
    finally:
        conn.close()
    click.echo(f"added user {user['name']} with role {user['role']}" + (" (the first user)" if first else ""))


@users.command("list")
@json_option
@db_options
def list_cmd(as_json: bool, db_path: str | None, config_path: str | None) -> None:
    """List users: name, role, active, created, updated (never password hashes)."""
    from inspector.store.users import list_users

    conn = open_store(db_path, config_path)
    try:
        rows = list_users(conn)
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps(rows, sort_keys=True))
        return
    if not rows:
        click.echo("no users yet; add the first one with `inspector users add NAME --role admin`")
        return
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        state = "active" if r["active"] else "deactivated"
        click.echo(f"{r['name']:<{width}}  {r['role']:<14}  {state:<11}  created {r['created']}  "
                   f"updated {r['updated']}")


@users.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=_STDIN_HELP)
@db_options
def passwd_cmd(name: str, password_stdin: bool, db_path: str | None, config_path: str | None) -> None:
    """Set a new password for user NAME (asked twice)."""
    from inspector.store import users as store_users

    conn = open_store(db_path, config_path)
    try:
        if store_users.get_user(conn, name) is None:  # say so before asking for a password
            raise click.ClickException(f"user {name!r} does not exist")
        password = _read_password(name, password_stdin)
        with _as_owner(conn, f"passwd {name}") as actor:
            _run(store_users.set_password, conn, name, password, actor=actor)
    finally:
        conn.close()
    click.echo(f"password of {name} changed")


@users.command("set-role")
@click.argument("name")
@click.argument("role", type=click.Choice(_ROLES))
@db_options
def set_role_cmd(name: str, role: str, db_path: str | None, config_path: str | None) -> None:
    """Give user NAME the role ROLE."""
    from inspector.store import users as store_users

    conn = open_store(db_path, config_path)
    try:
        with _as_owner(conn, f"set-role {name} {role}") as actor:
            _run(store_users.set_role, conn, name, role, actor=actor)
    finally:
        conn.close()
    click.echo(f"{name} now has role {role}")


@users.command("deactivate")
@click.argument("name")
@db_options
def deactivate_cmd(name: str, db_path: str | None, config_path: str | None) -> None:
    """Stop user NAME from logging in (the user stays in the record; `activate` undoes it)."""
    from inspector.store import users as store_users

    conn = open_store(db_path, config_path)
    try:
        with _as_owner(conn, f"deactivate {name}") as actor:
            _run(store_users.deactivate, conn, name, actor=actor)
    finally:
        conn.close()
    click.echo(f"{name} deactivated")


@users.command("activate")
@click.argument("name")
@db_options
def activate_cmd(name: str, db_path: str | None, config_path: str | None) -> None:
    """Let deactivated user NAME log in again."""
    from inspector.store import users as store_users

    conn = open_store(db_path, config_path)
    try:
        with _as_owner(conn, f"activate {name}") as actor:
            _run(store_users.activate, conn, name, actor=actor)
    finally:
        conn.close()
    click.echo(f"{name} activated")


@users.command("unlock")
@click.argument("name", required=False)
@click.option("--all", "all_", is_flag=True, help="Lift every log-in lock, the one over all names included.")
@db_options
def unlock_cmd(name: str | None, all_: bool, db_path: str | None, config_path: str | None) -> None:
    """Lift the log-in lock of user NAME (after too many failed log-ins), or every lock with --all."""
    from inspector.store import users as store_users

    if (name is None) == (not all_):
        raise click.UsageError("give a user NAME or --all")
    conn = open_store(db_path, config_path)
    try:
        with _as_owner(conn, f"unlock {name or '--all'}") as actor:
            lifted = _run(store_users.unlock, conn, name, actor=actor)
    finally:
        conn.close()
    click.echo(f"log-in lock of {name or 'every name'} lifted" if lifted else f"{name or 'no name'} was not locked")


@users.command("verify")
@db_options
@json_option
def verify_cmd(db_path: str | None, config_path: str | None, as_json: bool) -> None:
    """Check the audit chain and that every user row still matches its audit record; exit 1 if not."""
    from inspector.store.audit import verify
    from inspector.store.users import verify_users

    conn = open_store(db_path, config_path)
    try:
        result = verify(conn)
        problems = list(result.problems) + verify_users(conn)
        n = len(conn.execute("SELECT name FROM users").fetchall())
    finally:
        conn.close()
    if as_json:
        click.echo(json.dumps({"ok": not problems, "users": n, "audit_rows": result.audit_rows,
                               "problems": [asdict(p) for p in problems]}, sort_keys=True))
        if problems:
            raise SystemExit(1)
        return
    if not problems:
        click.echo(f"ok: audit chain intact, {n} user(s) match their audit rows")
        return
    click.echo(f"TAMPERED: {problems[0].message}", err=True)
    for p in problems[1:10]:
        click.echo(f"  also: {p.message}", err=True)
    raise SystemExit(1)
