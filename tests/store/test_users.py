"""Station users: scrypt hashes, audited changes, log-in that does not reveal who exists."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from inspector.store import audit, login_throttle, users
from inspector.store.audit import canonical_json, sha256_text, verify
from inspector.store.db import open_db

PW = "correct horse battery"


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    # The cost travels inside each hash, so a cheap one keeps the tests fast and still exercises
    # the real code path; test_default_cost_is_owasps_scrypt_figure checks the production default.
    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 4)
    monkeypatch.setattr(users, "_dummy_hash", None)


@pytest.fixture
def conn(tmp_path):
    c = open_db(tmp_path / "s.sqlite")
    yield c
    c.close()


def audit_rows(conn, entity="users"):
    return [dict(r) for r in conn.execute("SELECT * FROM audit WHERE entity = ? ORDER BY seq", (entity,))]


# --- hashing -------------------------------------------------------------------------------------


def test_default_cost_is_owasps_scrypt_figure(monkeypatch):
    monkeypatch.undo()  # the real defaults, once (one hash and one check at full cost)
    assert (users.SCRYPT_N, users.SCRYPT_R, users.SCRYPT_P) == (2 ** 17, 8, 1)
    h = users.hash_password(PW)
    kind, n, r, p, salt, digest = h.split("$")
    assert (kind, int(n), int(r), int(p)) == ("scrypt", 2 ** 17, 8, 1)  # within scrypt's maxmem
    assert users.check_password(PW, h)
    assert not users.needs_rehash(h)


def test_hash_is_salted_and_never_the_password():
    a, b = users.hash_password(PW), users.hash_password(PW)
    assert a != b and PW not in a
    assert users.check_password(PW, a) and users.check_password(PW, b)
    assert not users.check_password("wrong password", a)


@pytest.mark.parametrize("bad", [
    "", "plain", "bcrypt$16$8$1$AAAA$AAAA", "scrypt$16$8$1$$AAAA", "scrypt$15$8$1$AAAA$AAAA",  # n not a power of 2
    f"scrypt${2 ** 30}$8$1$AAAA$AAAA",  # a tampered row must not make a log-in allocate gigabytes
    "scrypt$16$8$1$!!$AAAA",
])
def test_malformed_hash_never_matches(bad):
    assert users.check_password(PW, bad) is False


def test_unicode_forms_of_one_password_match():
    h = users.hash_password("caf\u00e9-au-lait")
    assert users.check_password("cafe\u0301-au-lait", h)  # same text, decomposed


# --- stored rows ---------------------------------------------------------------------------------


def test_password_is_stored_only_as_its_hash(conn):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    users.add_user(conn, "erik", "engineer", PW, actor="cli:root")
    hashes = [r[0] for r in conn.execute("SELECT password_hash FROM users ORDER BY name")]
    assert len(set(hashes)) == 2  # same password, two users: two hashes
    assert all(h.startswith("scrypt$") for h in hashes)
    dump = "\n".join(conn.iterdump())
    assert PW not in dump
    assert "password_hash" not in users.get_user(conn, "olga") and "password_hash" not in users.list_users(conn)[0]


def test_add_user_is_audited_without_the_hash(conn):
    u = users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    assert u == {"name": "olga", "role": "operator", "active": True, "created": u["created"], "updated": u["created"]}
    (row,) = audit_rows(conn)
    assert (row["actor"], row["action"], row["entity_id"]) == ("cli:root", "user.add", "olga")
    stored = conn.execute("SELECT name, role, active, created, updated FROM users").fetchone()
    assert row["payload_sha256"] == sha256_text(canonical_json({"row": dict(zip(users.USER_AUDIT_COLUMNS, stored))}))
    assert verify(conn).ok and users.verify_users(conn) == []


def test_every_change_appends_an_audit_row_and_keeps_the_chain(conn):
    users.add_user(conn, "ada", "admin", PW, actor="cli:root")
    users.add_user(conn, "olga", "operator", PW, actor="ada")
    users.set_role(conn, "olga", "engineer", actor="ada")
    users.set_password(conn, "olga", "another password", actor="ada")
    users.deactivate(conn, "olga", actor="ada")
    users.activate(conn, "OLGA", actor="ada")
    actions = [(r["actor"], r["action"], r["entity_id"]) for r in audit_rows(conn)]
    assert actions == [("cli:root", "user.add", "ada"), ("ada", "user.add", "olga"), ("ada", "user.role", "olga"),
                       ("ada", "user.password_changed", "olga"), ("ada", "user.deactivate", "olga"),
                       ("ada", "user.activate", "olga")]
    assert users.get_user(conn, "olga")["role"] == "engineer"
    assert verify(conn).ok and users.verify_users(conn) == []


@pytest.mark.parametrize("name, role, password, match", [
    ("", "operator", PW, "not valid"),
    ("-x", "operator", PW, "not valid"),
    ("a b", "operator", PW, "not valid"),
    ("cli:root", "operator", PW, "not valid"),
    ("Station", "operator", PW, "reserved"),
    ("olga", "superuser", PW, "unknown role 'superuser'"),
    ("olga", "operator", "short", "password for user 'olga' is too short"),
])
def test_add_user_refuses_bad_input_and_writes_nothing(conn, name, role, password, match):
    with pytest.raises(users.UserError, match=match):
        users.add_user(conn, name, role, password, actor="cli:root")
    assert users.count_users(conn) == 0 and audit_rows(conn) == []


def test_names_are_unique_whatever_their_case(conn):
    users.add_user(conn, "Olga", "operator", PW, actor="cli:root")
    with pytest.raises(users.UserError, match="user 'olga' already exists \\(as 'Olga'\\)"):
        users.add_user(conn, "olga", "admin", PW, actor="cli:root")
    assert users.count_users(conn) == 1 and len(audit_rows(conn)) == 1


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(conn):
    users.add_user(conn, "ada", "admin", PW, actor="cli:root")
    with pytest.raises(users.UserError, match="last active admin"):
        users.deactivate(conn, "ada", actor="cli:root")
    with pytest.raises(users.UserError, match="last active admin"):
        users.set_role(conn, "ada", "operator", actor="cli:root")
    users.add_user(conn, "bob", "admin", PW, actor="cli:root")
    users.set_role(conn, "ada", "operator", actor="bob")
    assert users.get_user(conn, "ada")["role"] == "operator"


def test_unknown_user_changes_name_the_user(conn):
    with pytest.raises(users.UserError, match="user 'ghost' does not exist"):
        users.set_role(conn, "ghost", "admin", actor="cli:root")
    with pytest.raises(users.UserError, match="user 'ghost' does not exist"):
        users.deactivate(conn, "ghost", actor="cli:root")


def test_users_are_never_deleted(conn):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    with pytest.raises(sqlite3.IntegrityError, match="deactivate the user instead"):
        conn.execute("DELETE FROM users WHERE name = 'olga'")


# --- log-in --------------------------------------------------------------------------------------


def test_no_users_says_how_to_create_the_first(conn):
    with pytest.raises(users.NoUsersError, match="inspector users add NAME --role admin"):
        users.authenticate(conn, "anyone", PW)


def test_login_failures_do_not_say_whether_the_user_exists(conn, monkeypatch):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    users.add_user(conn, "ada", "admin", PW, actor="cli:root")
    users.deactivate(conn, "olga", actor="ada")
    calls = []
    real = users._scrypt
    monkeypatch.setattr(users, "_scrypt", lambda *a: calls.append(1) or real(*a))
    messages = set()
    for name, password in (("ghost", PW), ("ada", "wrong password"), ("olga", PW)):
        calls.clear()
        with pytest.raises(users.LoginError) as e:
            users.authenticate(conn, name, password)
        messages.add(str(e.value))
        assert calls, f"{name}: no scrypt work done, so its timing would tell"
    assert messages == {"log-in refused: unknown user or wrong password"}


def test_login_ignores_name_case_and_returns_the_stored_name(conn):
    users.add_user(conn, "Olga", "operator", PW, actor="cli:root")
    assert users.authenticate(conn, "olga", PW) == users.get_user(conn, "Olga")


def _stored_hash(conn, name):
    return conn.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()[0]


def test_a_cheaper_hash_is_rehashed_at_the_next_login_and_audited(conn, monkeypatch):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    old = _stored_hash(conn, "olga")
    assert old.startswith("scrypt$16$8$1$")
    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 5)  # the cost was raised since olga's hash was made
    assert users.needs_rehash(old)

    with pytest.raises(users.LoginError):  # a wrong password changes nothing
        users.authenticate(conn, "olga", "wrong password")
    assert _stored_hash(conn, "olga") == old

    users.authenticate(conn, "olga", PW)
    new = _stored_hash(conn, "olga")
    assert new.startswith("scrypt$32$8$1$") and not users.needs_rehash(new)
    assert users.check_password(PW, new)
    rows = audit_rows(conn)
    assert [(r["actor"], r["action"], r["entity_id"]) for r in rows][-1] == ("olga", "user.rehash", "olga")
    assert verify(conn).ok and users.verify_users(conn) == []

    users.authenticate(conn, "olga", PW)  # already at today's cost: no second re-hash
    assert _stored_hash(conn, "olga") == new and len(audit_rows(conn)) == len(rows)


def test_login_succeeds_when_the_rehash_cannot_be_written(conn, monkeypatch):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    old = _stored_hash(conn, "olga")
    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 5)
    conn.execute("BEGIN")  # the caller's open transaction: the re-hash cannot start its own
    assert users.authenticate(conn, "olga", PW)["name"] == "olga"
    conn.execute("ROLLBACK")
    assert _stored_hash(conn, "olga") == old  # kept until a later log-in


# --- failed log-ins: audited, throttled, bounded -------------------------------------------------

T = datetime(2026, 6, 1, 8, 0, tzinfo=timezone.utc)


def failed_rows(conn):
    return [(r["actor"], r["entity_id"]) for r in audit_rows(conn, "login") if r["action"] == "user.login_failed"]


def test_failed_log_ins_are_audited_and_the_sixth_is_refused_even_with_the_right_password(conn):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    for _ in range(login_throttle.FREE_FAILURES):
        with pytest.raises(users.LoginError, match="unknown user or wrong password"):
            users.authenticate(conn, "olga", "wrong password", now=T)
    with pytest.raises(users.LoginThrottled, match="too many failed log-ins; try again in 59 s") as e:
        users.authenticate(conn, "OLGA", PW, now=T + timedelta(seconds=1))
    assert e.value.until == T + timedelta(seconds=login_throttle.BASE_LOCK_S)
    assert failed_rows(conn) == [("system:login", "olga")] * 6
    assert users.authenticate(conn, "olga", PW, now=e.value.until)["name"] == "olga"  # after the lock
    for _ in range(login_throttle.FREE_FAILURES - 1):  # the success forgot the failures
        with pytest.raises(users.LoginError):
            users.authenticate(conn, "olga", "wrong password", now=e.value.until)
    assert users.authenticate(conn, "olga", PW, now=e.value.until)["name"] == "olga"
    assert verify(conn).ok


def test_unknown_names_are_throttled_alike_and_not_written_down(conn):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    typed = "my-Secret-passw0rd"  # a password typed into the name field
    for _ in range(login_throttle.FREE_FAILURES):
        with pytest.raises(users.LoginError):
            users.authenticate(conn, typed, "x", now=T)
    with pytest.raises(users.LoginThrottled):
        users.authenticate(conn, typed, "x", now=T)
    assert failed_rows(conn) == [("system:login", "(unknown)")] * 6
    dump = "\n".join(conn.iterdump())
    assert typed not in dump and typed.lower() not in dump


def test_locks_grow_but_stay_bounded_and_the_owner_can_lift_them(conn):
    users.add_user(conn, "ada", "admin", PW, actor="cli:root")
    t = T
    for _ in range(login_throttle.FREE_FAILURES + 12):  # an attacker trying again as each lock ends
        with pytest.raises(users.LoginError):
            users.authenticate(conn, "ada", "guess", now=t)
        t = login_throttle.locked_until(conn, "ada", t) or t
    assert t - T < timedelta(hours=3)  # about one try per MAX_LOCK_S: never locked for good
    until = login_throttle.locked_until(conn, "ada", t - timedelta(seconds=1))
    assert until is not None and until - t <= timedelta(seconds=login_throttle.MAX_LOCK_S)
    with pytest.raises(users.LoginThrottled):
        users.authenticate(conn, "ada", PW, now=t - timedelta(seconds=1))
    assert users.unlock(conn, "ada", actor="cli:owner")
    assert users.authenticate(conn, "ada", PW, now=t - timedelta(seconds=1))["name"] == "ada"
    assert audit_rows(conn, "login")[-1]["action"] == "user.unlock" and verify(conn).ok


def test_many_names_failing_lock_every_log_in_for_a_while(conn):
    users.add_user(conn, "ada", "admin", PW, actor="cli:root")
    for i in range(login_throttle.GLOBAL_FREE_FAILURES):
        with pytest.raises(users.LoginError):
            users.authenticate(conn, f"guess{i}", "x", now=T)
    with pytest.raises(users.LoginThrottled):
        users.authenticate(conn, "ada", PW, now=T)
    later = T + timedelta(seconds=login_throttle.BASE_LOCK_S)
    assert users.authenticate(conn, "ada", PW, now=later)["name"] == "ada"


# --- tampering -----------------------------------------------------------------------------------


def test_verify_users_catches_a_role_edited_around_the_store(conn):
    users.add_user(conn, "olga", "operator", PW, actor="cli:root")
    conn.execute("UPDATE users SET role = 'admin' WHERE name = 'olga'")
    (p,) = users.verify_users(conn)
    assert p.seq == 1 and "user olga was modified after it was recorded" in p.message


def test_verify_users_catches_a_user_inserted_around_the_store(conn):
    conn.execute("INSERT INTO users VALUES ('mallory', 'admin', 'scrypt$16$8$1$AAAA$AAAA', 1, 't', 't')")
    (p,) = users.verify_users(conn)
    assert "user mallory has no audit row" in p.message


def test_audit_payload_has_the_form_audit_entities_would_read(conn, monkeypatch):
    # So that users can later be listed in audit.ENTITIES without breaking rows recorded before.
    users.add_user(conn, "ada", "admin", PW, actor="cli:root")
    users.add_user(conn, "olga", "operator", PW, actor="ada")
    users.set_role(conn, "olga", "engineer", actor="ada")
    entity = audit._Entity("users", "name", False, users.USER_AUDIT_COLUMNS, lambda i: f"user {i}")
    monkeypatch.setitem(audit.ENTITIES, "users", entity)
    assert verify(conn).ok
    users.deactivate(conn, "olga", actor="ada")  # the store then lets audit.append read the row itself
    assert verify(conn).ok
    conn.execute("UPDATE users SET role = 'admin' WHERE name = 'olga'")
    assert "user olga was modified" in verify(conn).message
