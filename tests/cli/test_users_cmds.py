"""`inspector users add | list | passwd | set-role | deactivate | activate | verify` with CliRunner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from inspector.cli import store_access
from inspector.cli import main
from inspector.station import actions
from inspector.store import users
from inspector.store.db import open_db

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 4)
    monkeypatch.setattr(users, "_dummy_hash", None)
    monkeypatch.setattr(store_access, "cli_actor", lambda: "cli:tester")


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
        s = actions.login(conn, "ada", PW)
        assert (s.user, s.role) == ("ada", "admin")
        rows = conn.execute("SELECT actor, action, entity_id FROM audit").fetchall()
        assert [tuple(r)[:2] for r in rows] == [("cli:tester", "session.system"), ("cli:tester", "user.add")]
        assert tuple(rows[1])[2] == "ada"
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
        s = actions.login(conn, "olga", "a new password")
        assert (s.user, s.role) == ("olga", "engineer")
        acts = [tuple(r) for r in conn.execute("SELECT actor, action FROM audit WHERE action != 'session.system'"
                                               " AND action != 'user.login_failed' ORDER BY seq")]
    finally:
        conn.close()
    assert acts == [("cli:tester", a) for a in ("user.add", "user.add", "user.password_changed", "user.role",
                                               "user.deactivate", "user.activate")]

    # the audit chain is intact after all of it
    r = CliRunner().invoke(main, ["db", "verify", "--db", str(db)])
    assert r.exit_code == 0 and r.output.startswith("ok: 13 audit rows"), r.output  # + 6 system sessions, 1 refusal
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
    assert r.exit_code == 1 and "TAMPERED: audit row 4: user olga was modified" in r.output  # 1, 3: sessions


def test_actor_is_the_os_user(monkeypatch):
    monkeypatch.undo()
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "kim")
    assert store_access.cli_actor() == "cli:kim"


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


def test_unlock_lifts_a_log_in_lock_and_is_audited(db):
    from inspector.store import login_throttle

    add(db)
    conn = open_db(db, create=False)
    try:
        for _ in range(login_throttle.FREE_FAILURES):
            with pytest.raises(users.LoginError):
                actions.login(conn, "ada", "wrong password")
        with pytest.raises(users.LoginThrottled):
            actions.login(conn, "ada", PW)
    finally:
        conn.close()
    r = run("unlock", "ada", "--db", db)
    assert r.exit_code == 0 and "log-in lock of ada lifted" in r.output
    assert run("unlock", "--db", db).exit_code == 2  # a name or --all
    conn = open_db(db, create=False)
    try:
        assert actions.login(conn, "ada", PW).user == "ada"
        last = conn.execute("SELECT actor, action FROM audit WHERE action = 'user.unlock'").fetchone()
        assert tuple(last) == ("cli:tester", "user.unlock")
    finally:
        conn.close()
