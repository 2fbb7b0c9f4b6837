"""Role-checked actions: the permission table, refusals that write nothing, settings within limits,
models through the training tool in a subprocess."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone

import numpy as np
import pytest

from inspector.cli.users_cmds import _ROLES as CLI_ROLES
from inspector.config import config_hash, load_config_text
from inspector.core import Decision, Detections, Frame, Reason, Verdict
from inspector.station import actions
from inspector.station.actions import PermissionDenied, Session, SettingsError
from inspector.station.actions import reviews as incident_actions
from inspector.store import queries, users
from inspector.store.audit import verify
from inspector.store.db import open_db, transaction
from inspector.store.writer import DecisionRecord, write_record

PW = "correct horse battery"
T0 = datetime(2026, 6, 1, tzinfo=timezone.utc)
CONFIG = """
station: {id: line-1, name: Line 1, domain: generic}
sources: [{type: folder, path: images}]
models:
  - name: det
    path: det.onnx
    sha256: "0000000000000000000000000000000000000000000000000000000000000000"
    class_names: [particle, scratch]
    conf: 0.25
rules:
  - {id: min-score, type: class_threshold, thresholds: {scratch: 0.4}, default: 0.3}
  - {id: uncertain, type: uncertainty, low: 0.3, high: 0.5}
  - {id: tiny, type: size, max: 4}
  - {id: any-defect, type: any_defect, min_score: 0.7}
"""
NAMES = {"operator": "olga", "engineer": "erik", "safety_manager": "sam", "admin": "ada"}


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch):
    monkeypatch.setattr(users, "SCRYPT_N", 2 ** 4)
    monkeypatch.setattr(users, "_dummy_hash", None)


@pytest.fixture
def conn(tmp_path):
    c = open_db(tmp_path / "s.sqlite")
    for i in range(2):
        fid = f"f{i}"
        frame = Frame(fid, "line-1", "cam", 0.0, T0, np.zeros((4, 4), np.uint8), {"camera": "cam", "zone": "z1"})
        dec = Decision(fid, "fail", (Reason("any-defect", Verdict.FAIL, "x"),),
                       Detections([[0, 0, 1, 1]], [0.9], [0], -1), "ms", "cfg", T0)
        with transaction(c):
            write_record(c, DecisionRecord(frame, dec, None, "run", ("particle", "scratch"), False))
    for role, name in NAMES.items():
        users.add_user(c, name, role, PW, actor="cli:root")
    yield c
    c.close()


@pytest.fixture
def cfg():
    return load_config_text(CONFIG)


@pytest.fixture
def session(conn):
    """role -> a fresh log-in of that role's user (the only kind of session the checks accept)."""
    return lambda role: actions.login(conn, NAMES[role], PW)


def counts(conn):
    return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
            for t in ("reviews", "incidents", "audit", "configs", "users")}


class FakeRunner:
    def __init__(self, rc=0, output="done\n"):
        self.calls, self.rc, self.output = [], rc, output

    def __call__(self, args, env):
        self.calls.append((list(args), dict(env)))
        return self.rc, self.output


# --- the table -----------------------------------------------------------------------------------


def test_permission_table_names_only_known_roles_and_covers_every_review_action():
    assert set().union(*actions.PERMISSIONS.values()) <= set(users.ROLES)
    assert set(actions.REVIEW_PERMISSION) == set(queries.REVIEW_ACTIONS)
    assert CLI_ROLES == users.ROLES


def _act(name, conn, s, cfg, runner):
    """Perform one action as session s; returns a value or raises PermissionDenied."""
    if name in ("accept", "reject_false_alarm", "change_class", "relabel"):
        labels = [{"xyxy": [0, 0, 1, 1], "class_name": "scratch"}] if name in ("change_class", "relabel") else None
        return actions.review(conn, s, "f0", name, verdict="pass" if name != "change_class" else "fail",
                              labels=labels)
    if name == "view_decisions":
        return actions.view_decisions(conn, s)
    if name == "review_queue":
        return actions.review_queue(conn, s)
    if name == "add_incident":
        return actions.add_incident(conn, s, "f1", "no_helmet", severity="high")
    if name in INCIDENT_STEPS:
        iid = queries.add_incident(conn, None, "fall", session=actions.login(conn, "sam", PW))  # the set-up
        if name == "set_incident_status":
            return actions.set_incident_status(conn, s, iid, "acknowledged")
        if name == "acknowledge_incident":
            return incident_actions.acknowledge_incident(conn, s, iid)
        if name == "close_incident":
            return incident_actions.close_incident(conn, s, iid, "barrier moved")
        return incident_actions.mark_false_alarm(conn, s, iid, "a shadow")
    if name == "view_incidents":
        return incident_actions.view_incidents(conn, s, status="open")
    if name == "change_settings":
        return actions.change_settings(conn, s, cfg, {"rules.min-score.thresholds.scratch": 0.5},
                                       actions.tunable_limits(cfg))
    if name == "models_promote":
        return actions.models_promote(s, "det@2", conn=conn, runner=runner)
    if name == "models_rollback":
        return actions.models_rollback(s, "det", conn=conn, runner=runner)
    if name == "add_user":
        return actions.add_user(conn, s, "newbie", "operator", PW)
    if name == "set_role":
        return actions.set_role(conn, s, "olga", "engineer")
    if name == "set_password":
        return actions.set_password(conn, s, "olga", "brand new password")
    if name == "deactivate":
        return actions.deactivate(conn, s, "olga")
    raise AssertionError(name)


# Written out, not derived from PERMISSIONS: this is the specification the table must meet.
ALLOWED = {
    "view_decisions": {"operator", "engineer", "safety_manager"},
    "review_queue": {"operator", "engineer"},
    "accept": {"operator", "engineer"},
    "reject_false_alarm": {"operator", "engineer"},
    "change_class": {"operator", "engineer"},
    "relabel": {"engineer"},
    "add_incident": {"safety_manager"},
    "set_incident_status": {"safety_manager"},
    "view_incidents": {"operator", "engineer", "safety_manager"},
    "acknowledge_incident": {"safety_manager"},
    "close_incident": {"safety_manager"},
    "mark_false_alarm": {"safety_manager"},
    "change_settings": {"engineer"},
    "models_promote": {"engineer"},
    "models_rollback": {"engineer"},
    "add_user": {"admin"},
    "set_role": {"admin"},
    "set_password": {"admin"},
    "deactivate": {"admin"},
}
INCIDENT_STEPS = {"set_incident_status", "acknowledge_incident", "close_incident", "mark_false_alarm"}
WRITES = INCIDENT_STEPS | {"accept", "reject_false_alarm", "change_class", "relabel", "add_incident",
          "change_settings", "models_promote", "models_rollback", "add_user", "set_role", "set_password",
          "deactivate"}


@pytest.mark.parametrize("role", users.ROLES)
@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_role_x_action(conn, cfg, role, name, session):
    runner = FakeRunner()
    s = session(role)
    if name in INCIDENT_STEPS:  # its set-up writes an incident first
        _act(name, conn, session("safety_manager"), cfg, runner)
    before = counts(conn)
    if role in ALLOWED[name]:
        _act(name, conn, s, cfg, runner)
        after = counts(conn)
        if name in WRITES:
            assert after["audit"] > before["audit"], f"{name} by {role}: no audit row"
        if name.startswith("models_"):
            assert len(runner.calls) == 1
    else:
        with pytest.raises(PermissionDenied) as e:
            _act(name, conn, s, cfg, runner)
        msg = str(e.value)
        assert f"user {NAMES[role]!r} (role {role}) may not" in msg and "needs role" in msg
        assert (e.value.user, e.value.role) == (NAMES[role], role)
        after = counts(conn)
        if name in INCIDENT_STEPS:  # the set-up's own incident and audit row
            before["incidents"] += 1
            before["audit"] += 1
        assert after == before, f"a refused {name} by {role} wrote something"
        assert runner.calls == [], "a refused model action ran the training tool"
    assert verify(conn).ok and users.verify_users(conn) == []


def test_refused_review_names_the_action(conn, session):
    with pytest.raises(PermissionDenied, match=r"user 'olga' \(role operator\) may not review.relabel frame f0: "
                                               r"needs role engineer"):
        actions.review(conn, session("operator"), "f0", "relabel", labels=[])
    assert queries.reviews(conn) == []


def test_review_records_the_session_user(conn, session):
    rid = actions.review(conn, session("operator"), "f0", "reject_false_alarm", verdict="pass", note="dust")
    (r,) = queries.reviews(conn)
    assert (r["id"], r["user"], r["action"], r["verdict"], r["note"]) == (rid, "olga", "reject_false_alarm", "pass",
                                                                          "dust")
    with pytest.raises(ValueError, match="review action must be one of"):
        actions.review(conn, session("operator"), "f0", "approve")


def test_incident_steps_record_the_session_user_and_closing_needs_a_note(conn, session):
    sm = session("safety_manager")
    iid = queries.add_incident(conn, "f1", "no_hard_hat", session=sm)
    incident_actions.acknowledge_incident(conn, sm, iid)
    with pytest.raises(ValueError, match="needs a note"):
        incident_actions.close_incident(conn, sm, iid, "  ")
    incident_actions.mark_false_alarm(conn, sm, iid, "reflective hat")
    (inc,) = incident_actions.view_incidents(conn, session("engineer"))
    assert (inc["status"], inc["acknowledged_by"], inc["resolved_by"], inc["resolution_note"]) == (
        "false_alarm", NAMES["safety_manager"], NAMES["safety_manager"], "reflective hat")
    assert verify(conn).ok


# --- sessions ------------------------------------------------------------------------------------


def test_login_gives_a_session_and_no_users_says_what_to_run(conn, tmp_path):
    s = actions.login(conn, "OLGA", PW)
    assert (s.user, s.role) == ("olga", "operator") and s.token and "token" not in repr(s)
    with pytest.raises(users.LoginError, match="unknown user or wrong password"):
        actions.login(conn, "olga", "wrong password")
    empty = open_db(tmp_path / "empty.sqlite")
    with pytest.raises(users.NoUsersError, match="inspector users add NAME --role admin"):
        actions.login(empty, "olga", PW)
    empty.close()


def test_stale_or_forged_sessions_are_refused(conn, session):
    s = actions.login(conn, "olga", PW)
    actions.deactivate(conn, session("admin"), "olga")
    with pytest.raises(PermissionDenied, match="the account is deactivated"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    s = actions.login(conn, "erik", PW)
    users.set_role(conn, "erik", "operator", actor="ada")
    with pytest.raises(PermissionDenied, match="role changed to operator since log-in; log in again"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    with pytest.raises(PermissionDenied, match="not logged in"):
        actions.review(conn, Session("mallory", "engineer"), "f0", "accept", verdict="pass")
    assert queries.reviews(conn) == []


def test_change_own_password_needs_the_current_one(conn, session):
    s = session("operator")
    with pytest.raises(PermissionDenied, match="the current password is wrong"):
        actions.change_own_password(conn, s, "not it at all", "a new password")
    actions.change_own_password(conn, s, PW, "a new password")
    assert actions.login(conn, "olga", "a new password").user == s.user


# --- settings ------------------------------------------------------------------------------------


def test_settings_change_within_limits_is_a_new_audited_config_version(conn, cfg, session):
    limits = actions.tunable_limits(cfg)
    old_hash = config_hash(cfg)
    new_cfg, new_hash = actions.change_settings(
        conn, session("engineer"), cfg, {"rules.min-score.thresholds.scratch": 0.55, "models.det.conf": 0.3},
        limits)
    assert new_hash == config_hash(new_cfg) != old_hash
    assert new_cfg.rules[0].thresholds["scratch"] == 0.55 and new_cfg.models[0].conf == 0.3
    stored = {r[0]: r[1] for r in conn.execute("SELECT hash, text FROM configs")}
    assert set(stored) == {old_hash, new_hash}
    assert json.loads(stored[new_hash]) == new_cfg.model_dump(mode="json")
    last = conn.execute("SELECT actor, action, entity, entity_id FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    assert tuple(last) == ("erik", "settings.change", "settings", new_hash)
    assert verify(conn).ok


def test_limits_come_from_the_baseline_so_steps_do_not_add_up(conn, cfg, session):
    limits = actions.tunable_limits(cfg)  # scratch baseline 0.4 -> [0.2, 0.6]
    s = session("engineer")
    cfg2, _ = actions.change_settings(conn, s, cfg, {"rules.min-score.thresholds.scratch": 0.6}, limits)
    with pytest.raises(SettingsError, match=r"rules.min-score.thresholds.scratch: 0.8 is outside its limit "
                                            r"\[0.2, 0.6\] \(baseline 0.4\)"):
        actions.change_settings(conn, s, cfg2, {"rules.min-score.thresholds.scratch": 0.8}, limits)
    back, back_hash = actions.change_settings(conn, s, cfg2, {"rules.min-score.thresholds.scratch": 0.4}, limits)
    assert back_hash == config_hash(back)


@pytest.mark.parametrize("changes, match", [
    ({"rules.any-defect.min_score": 0.95}, r"rules.any-defect.min_score: 0.95 is outside its limit \[0.5, 0.9\]"),
    ({"rules.min-score.default": 0.0}, r"rules.min-score.default: 0 is outside its limit \[0.1, 0.5\]"),
    ({"models.det.conf": 1.0}, r"models.det.conf: 1 is outside its limit \[0.05, 0.45\]"),
    ({"rules.tiny.max": 9}, r"rules.tiny.max: not a run-time tunable setting of station line-1"),
    ({"fusion.iou_thr": 0.5}, r"fusion.iou_thr: not a run-time tunable setting"),
    ({"models.det.conf": float("nan")}, r"models.det.conf: expected a number"),
    ({"models.det.conf": "0.3"}, r"models.det.conf: expected a number"),
    ({"rules.uncertain.low": 0.45, "rules.uncertain.high": 0.4}, r"rules\[1\].low: expected low < high"),
    ({}, "no setting given"),
])
def test_settings_outside_limits_are_refused_naming_field_and_limit(conn, cfg, changes, match, session):
    before = counts(conn)
    with pytest.raises(SettingsError, match=match):
        actions.change_settings(conn, session("engineer"), cfg, changes, actions.tunable_limits(cfg))
    assert counts(conn) == before


def test_a_path_without_a_declared_limit_cannot_change(conn, cfg, session):
    limits = actions.tunable_limits(cfg)
    del limits["models.det.conf"]
    with pytest.raises(SettingsError, match="models.det.conf: no limit is declared"):
        actions.change_settings(conn, session("engineer"), cfg, {"models.det.conf": 0.3}, limits)


def test_site_overrides_are_clipped_to_the_open_unit_interval(cfg):
    limits = actions.tunable_limits(cfg, overrides={"models.det.conf": (0.0, 1.0)})
    assert (limits["models.det.conf"].lo, limits["models.det.conf"].hi) == (0.01, 0.99)
    with pytest.raises(ValueError, match="not a tunable setting"):
        actions.tunable_limits(cfg, overrides={"fusion.k": (1, 2)})


def test_changing_nothing_writes_nothing(conn, cfg, session):
    before = counts(conn)
    same, h = actions.change_settings(conn, session("engineer"), cfg, {"models.det.conf": 0.25},
                                      actions.tunable_limits(cfg))
    assert same is cfg and h == config_hash(cfg) and counts(conn) == before


# --- models --------------------------------------------------------------------------------------


def test_promote_runs_the_training_tool_as_the_user(conn, tmp_path, session):
    runner = FakeRunner(rc=0, output="promoted det@2 to production\n")
    r = actions.models_promote(session("engineer"), "det@2", tmp_path / "reg", reason="better recall",
                               conn=conn, runner=runner)
    (args, env), = runner.calls
    assert args == [sys.executable, "-m", "training.cli", "promote", "--user=erik", "--reason=better recall",
                    f"--registry={tmp_path / 'reg'}", "--", "det@2"]
    assert env == {"INSPECTOR_USER": "erik"}
    assert r.ok and r.output.startswith("promoted") and r.args == tuple(args)
    last = conn.execute("SELECT actor, action, entity_id FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    assert tuple(last) == ("erik", "models.promote", "det@2")


def test_rollback_reports_the_tools_failure(conn, session):
    r = actions.models_rollback(session("engineer"), "det", runner=FakeRunner(rc=1, output="Error: no history\n"))
    assert (r.ok, r.returncode, r.output) == (False, 1, "Error: no history\n")


@pytest.mark.parametrize("spec", ["det", "--registry=/tmp/x@1", "Det@1", "det@1 --dry-run"])
def test_promote_refuses_odd_specs_before_running_anything(spec, session):
    runner = FakeRunner()
    with pytest.raises(ValueError, match="promote: expected 'name@version'"):
        actions.models_promote(session("engineer"), spec, runner=runner)
    assert runner.calls == []


def test_operators_cannot_promote_even_without_a_database():
    runner = FakeRunner()
    with pytest.raises(PermissionDenied, match=r"'olga' \(role operator\) may not promote det@2: needs role engineer"):
        actions.models_promote(Session("olga", "operator"), "det@2", runner=runner)
    assert runner.calls == []


def test_rollback_really_runs_inspector_train(tmp_path, session):
    # One real subprocess: the command line must be one that inspector-train accepts.
    r = actions.models_rollback(session("engineer"), "nosuchmodel", tmp_path / "reg")
    assert r.returncode != 0 and "nosuchmodel" in r.output and "No such option" not in r.output, r.output


def test_errors_survive_pickling():
    import pickle

    e = pickle.loads(pickle.dumps(PermissionDenied("olga", "operator", "relabel", "needs role engineer")))
    assert (e.user, e.role, e.action, str(e)) == ("olga", "operator", "relabel",
                                                  "user 'olga' (role operator) may not relabel: needs role engineer")
    assert pickle.loads(pickle.dumps(SettingsError(["a: b"]))).errors == ["a: b"]


# --- only a log-in passes (#15 point 4) ------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_hand_made_session_changes_nothing(conn, cfg, name):
    role = next(r for r in users.ROLES if r in ALLOWED[name])  # a role that may do it
    runner = FakeRunner()
    before = counts(conn)
    for forged in (Session(NAMES[role], role), Session(NAMES[role], role, "a-guessed-token")):
        with pytest.raises(PermissionDenied, match="not logged in|not a log-in session of this station"):
            _act(name, conn, forged, cfg, runner)
    if name in INCIDENT_STEPS:  # the set-up's own incidents and audit rows (one per try)
        before["incidents"] += 2
        before["audit"] += 2
    assert counts(conn) == before and runner.calls == []


def test_a_session_of_another_database_is_refused(conn, tmp_path):
    other = open_db(tmp_path / "other.sqlite")
    users.add_user(other, "olga", "operator", PW, actor="cli:root")
    s = actions.login(other, "olga", PW)
    other.close()
    with pytest.raises(PermissionDenied, match="not a log-in session of this station"):
        actions.review(conn, s, "f0", "accept", verdict="pass")


def test_models_without_a_connection_still_check_and_audit(conn, session, tmp_path):
    s = session("engineer")
    runner = FakeRunner()
    actions.models_promote(s, "det@2", runner=runner)  # no conn: the session's own database
    actions.models_rollback(s, "det", runner=runner)
    rows = conn.execute("SELECT actor, action, entity_id FROM audit WHERE action LIKE 'models.%' ORDER BY seq")
    assert [tuple(r) for r in rows] == [("erik", "models.promote", "det@2"), ("erik", "models.rollback", "det")]
    runner = FakeRunner()
    with pytest.raises(PermissionDenied, match="names no station database"):
        actions.models_promote(Session("erik", "engineer"), "det@2", runner=runner)
    with pytest.raises(PermissionDenied, match="not logged in"):
        actions.models_rollback(Session("erik", "engineer", "", str(tmp_path / "s.sqlite")), "det", runner=runner)
    actions.deactivate(conn, session("admin"), "erik")
    with pytest.raises(PermissionDenied, match="the account is deactivated"):
        actions.models_rollback(s, "det", runner=runner)
    assert runner.calls == [] and verify(conn).ok


def test_an_ended_expired_or_revived_session_is_refused(conn, session):
    s = session("operator")
    admin = session("admin")
    actions.deactivate(conn, admin, "olga")
    actions.activate(conn, admin, "olga")  # re-activation does not revive the old session
    with pytest.raises(PermissionDenied, match="the session was ended"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    s = session("operator")
    assert actions.logout(conn, s) and not actions.logout(conn, s)
    with pytest.raises(PermissionDenied, match="the session was ended"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    old = actions.login(conn, "olga", PW, now=T0)  # a shift long ago
    with pytest.raises(PermissionDenied, match="the session expired"):
        actions.review(conn, old, "f0", "accept", verdict="pass")
    assert queries.reviews(conn) == []
    actions.review(conn, session("operator"), "f0", "accept", verdict="pass")  # a new log-in works


def test_system_sessions_are_recorded_and_hold_only_what_they_were_opened_for(conn):
    with pytest.raises(ValueError, match="system actor"):
        actions.system_session(conn, "olga", "pose as a person", ("reports",))
    s = actions.system_session(conn, "system:test", "nightly check", ("reports",))
    last = conn.execute("SELECT actor, action, entity FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    assert tuple(last) == ("system:test", "session.system", "session") and s.system
    with pytest.raises(PermissionDenied, match="opened for reports only"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    with pytest.raises(PermissionDenied, match="not logged in"):  # a system session by hand
        actions.review(conn, Session("system:test", "system"), "f0", "accept", verdict="pass")


def test_password_changes_are_audited_and_end_the_other_sessions(conn, session):
    mine, elsewhere = session("operator"), session("operator")
    actions.change_own_password(conn, mine, PW, "a new password")
    actions.set_password(conn, session("admin"), "erik", "another password")
    rows = conn.execute("SELECT actor, entity_id FROM audit WHERE action = 'user.password_changed' ORDER BY seq")
    assert [tuple(r) for r in rows] == [("olga", "olga"), ("ada", "erik")]
    actions.review(conn, mine, "f0", "accept", verdict="pass")  # the session that changed it goes on
    with pytest.raises(PermissionDenied, match="the session was ended"):
        actions.review(conn, elsewhere, "f1", "accept", verdict="pass")
    with pytest.raises(PermissionDenied, match="not logged in"):  # no password probing with a forged one
        actions.change_own_password(conn, Session("olga", "operator"), "a new password", "x" * 12)
    assert verify(conn).ok and users.verify_users(conn) == []
