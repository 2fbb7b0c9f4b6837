"""`inspector users add | list | passwd | set-role | deactivate | activate | verify` with CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from inspector.cli import users_cmds as cli_users
from inspector.cli import main
from inspector.station import actions
from inspector.store import users
from inspector.store.db import open_db

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 4)
    monkeypatch.setattr(users, "_dummy_hash", None)
    monkeypatch.setattr(cli_users, "_actor", lambda: "cli:tester")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "data" / "s.sqlite"


def run(*args, input=None):
    return CliRunner().invoke(main, ["users", *map(str, args)], input=input)


def add(db, name="ada", role="admin", password=PW):
    r = run("add", name, "--role", role, "--db", db, input=f"{password}\n{password}\n")
    assert r.exit_code == 0, r.output
    return r


def test_first_user_is_created_by_the_cli_and_the_database_with_it(db):
    assert not db.exists()
    r = add(db)
    assert "added user ada with role admin (the first user)" in r.output
    assert PW not in r.output  # hidden input is not echoed
    conn = open_db(db, create=False)
    try:
        assert actions.login(conn, "ada", PW) == actions.Session("ada", "admin")
        (row,) = conn.execute("SELECT actor, action, entity_id FROM audit").fetchall()
        assert tuple(row) == ("cli:tester", "user.add", "ada")
    finally:
        conn.close()


def test_add_asks_twice_and_refuses_a_mismatch(db):
    r = run("add", "ada", "--role", "admin", "--db", db, input=f"{PW}\nsomething else\n{PW}\n{PW}\n")
    assert r.exit_code == 0 and "do not match" in r.output  # click asks again


def test_add_from_stdin_and_refusals(db):
    r = run("add", "olga", "--role", "operator", "--password-stdin", "--db", db, input=PW + "\n")
    assert r.exit_code == 0 and "(the first user)" in r.output
    r = run("add", "OLGA", "--role", "admin", "--password-stdin", "--db", db, input=PW + "\n")
    assert r.exit_code == 1 and "user 'OLGA' already exists (as 'olga')" in r.output
    r = run("add", "erik", "--role", "engineer", "--password-stdin", "--db", db, input="short\n")
    assert r.exit_code == 1 and "too short" in r.output
    r = run("add", "erik", "--role", "wizard", "--db", db)
    assert r.exit_code == 2 and "wizard" in r.output
    r = run("add", "erik", "--role", "engineer", "--password-stdin", input=PW + "\n")
    assert r.exit_code == 2 and "--db PATH" in r.output


def test_list_passwd_set_role_deactivate_activate(db):
    add(db)
    add(db, "olga", "operator")
    r = run("list", "--db", db)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0].split()[:3] == ["ada", "admin", "active"] and lines[1].split()[:3] == ["olga", "operator", "active"]
    assert "scrypt" not in r.output

    r = run("passwd", "olga", "--db", db, input="a new password\na new password\n")
    assert r.exit_code == 0 and "password of olga changed" in r.output
    r = run("set-role", "olga", "engineer", "--db", db)
    assert r.exit_code == 0 and "olga now has role engineer" in r.output
    r = run("deactivate", "olga", "--db", db)
    assert r.exit_code == 0 and "olga deactivated" in r.output
    rows = json.loads(run("list", "--json", "--db", db).output)
    assert rows[1] | {"created": None, "updated": None} == {"name": "olga", "role": "engineer", "active": False,
                                                             "created": None, "updated": None}
    conn = open_db(db, create=False)
    try:
        with pytest.raises(users.LoginError):
            actions.login(conn, "olga", "a new password")
    finally:
        conn.close()
    assert run("activate", "olga", "--db", db).exit_code == 0

    conn = open_db(db, create=False)
    try:
        assert actions.login(conn, "olga", "a new password") == actions.Session("olga", "engineer")
        acts = [tuple(r) for r in conn.execute("SELECT actor, action FROM audit ORDER BY seq")]
    finally:
        conn.close()
    assert acts == [("cli:tester", a) for a in ("user.add", "user.add", "user.password", "user.role",
                                               "user.deactivate", "user.activate")]

    # the audit chain is intact after all of it
    r = CliRunner().invoke(main, ["db", "verify", "--db", str(db)])
    assert r.exit_code == 0 and r.output.startswith("ok: 6 audit rows"), r.output
    r = run("verify", "--db", db)
    assert r.exit_code == 0 and "2 user(s) match their audit rows" in r.output


def test_errors_name_the_user(db):
    add(db)
    for args in (("set-role", "ghost", "admin"), ("deactivate", "ghost"), ("passwd", "ghost")):
        r = run(*args, "--db", db)
        assert r.exit_code == 1 and "user 'ghost' does not exist" in r.output
    r = run("deactivate", "ada", "--db", db)
    assert r.exit_code == 1 and "last active admin" in r.output


def test_read_commands_never_create_a_database(tmp_path):
    missing = tmp_path / "none.sqlite"
    r = run("list", "--db", missing)
    assert r.exit_code == 1 and "no Inspector database" in r.output and not missing.exists()


def test_empty_list_says_how_to_start(db):
    open_db(db).close()
    r = run("list", "--db", db)
    assert "inspector users add NAME --role admin" in r.output


def test_users_verify_catches_a_role_edited_around_the_store(db):
    add(db)
    add(db, "olga", "operator")
    conn = open_db(db, create=False)
    conn.execute("UPDATE users SET role = 'admin' WHERE name = 'olga'")
    conn.close()
    r = run("verify", "--db", db)
    assert r.exit_code == 1 and "TAMPERED: audit row 2: user olga was modified" in r.output


def test_actor_is_the_os_user(monkeypatch):
    monkeypatch.undo()
    monkeypatch.setattr(cli_users.getpass, "getuser", lambda: "kim")
    assert cli_users._actor() == "cli:kim"


def test_users_verify_json(db):
    add(db)
    r = run("verify", "--db", db, "--json")
    assert r.exit_code == 0 and r.stderr == ""
    out = json.loads(r.stdout)
    assert out == {"ok": True, "users": 1, "audit_rows": out["audit_rows"], "problems": []} and out["audit_rows"] >= 1
    conn = open_db(db, create=False)
    conn.execute("UPDATE users SET role = 'operator' WHERE name = 'ada'")
    conn.close()
    r = run("verify", "--db", db, "--json")
    assert r.exit_code == 1
    out = json.loads(r.stdout)
    assert not out["ok"] and "user ada was modified" in out["problems"][0]["message"]
