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


def session(role):
    return Session(NAMES[role], role)


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
        iid = queries.add_incident(conn, None, "fall", user="sam")  # set up outside the check
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
def test_role_x_action(conn, cfg, role, name):
    runner = FakeRunner()
    s = session(role)
    if name in INCIDENT_STEPS:  # its set-up writes an incident first
        _act(name, conn, Session("sam", "safety_manager"), cfg, runner)
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


def test_refused_review_names_the_action(conn):
    with pytest.raises(PermissionDenied, match=r"user 'olga' \(role operator\) may not review.relabel frame f0: "
                                               r"needs role engineer"):
        actions.review(conn, session("operator"), "f0", "relabel", labels=[])
    assert queries.reviews(conn) == []


def test_review_records_the_session_user(conn):
    rid = actions.review(conn, session("operator"), "f0", "reject_false_alarm", verdict="pass", note="dust")
    (r,) = queries.reviews(conn)
    assert (r["id"], r["user"], r["action"], r["verdict"], r["note"]) == (rid, "olga", "reject_false_alarm", "pass",
                                                                          "dust")
    with pytest.raises(ValueError, match="review action must be one of"):
        actions.review(conn, session("operator"), "f0", "approve")


def test_incident_steps_record_the_session_user_and_closing_needs_a_note(conn):
    sm = session("safety_manager")
    iid = queries.add_incident(conn, "f1", "no_hard_hat", user="sam")
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
    assert actions.login(conn, "OLGA", PW) == Session("olga", "operator")
    with pytest.raises(users.LoginError, match="unknown user or wrong password"):
        actions.login(conn, "olga", "wrong password")
    empty = open_db(tmp_path / "empty.sqlite")
    with pytest.raises(users.NoUsersError, match="inspector users add NAME --role admin"):
        actions.login(empty, "olga", PW)
    empty.close()


def test_stale_or_forged_sessions_are_refused(conn):
    s = actions.login(conn, "olga", PW)
    actions.deactivate(conn, session("admin"), "olga")
    with pytest.raises(PermissionDenied, match="the account is deactivated"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    s = actions.login(conn, "erik", PW)
    users.set_role(conn, "erik", "operator", actor="ada")
    with pytest.raises(PermissionDenied, match="role changed to operator since log-in; log in again"):
        actions.review(conn, s, "f0", "accept", verdict="pass")
    with pytest.raises(PermissionDenied, match="no such user"):
        actions.review(conn, Session("mallory", "engineer"), "f0", "accept", verdict="pass")
    assert queries.reviews(conn) == []


def test_change_own_password_needs_the_current_one(conn):
    s = session("operator")
    with pytest.raises(PermissionDenied, match="the current password is wrong"):
        actions.change_own_password(conn, s, "not it at all", "a new password")
    actions.change_own_password(conn, s, PW, "a new password")
    assert actions.login(conn, "olga", "a new password") == s


# --- settings ------------------------------------------------------------------------------------


def test_settings_change_within_limits_is_a_new_audited_config_version(conn, cfg):
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


def test_limits_come_from_the_baseline_so_steps_do_not_add_up(conn, cfg):
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
def test_settings_outside_limits_are_refused_naming_field_and_limit(conn, cfg, changes, match):
    before = counts(conn)
    with pytest.raises(SettingsError, match=match):
        actions.change_settings(conn, session("engineer"), cfg, changes, actions.tunable_limits(cfg))
    assert counts(conn) == before


def test_a_path_without_a_declared_limit_cannot_change(conn, cfg):
    limits = actions.tunable_limits(cfg)
    del limits["models.det.conf"]
    with pytest.raises(SettingsError, match="models.det.conf: no limit is declared"):
        actions.change_settings(conn, session("engineer"), cfg, {"models.det.conf": 0.3}, limits)


def test_site_overrides_are_clipped_to_the_open_unit_interval(cfg):
    limits = actions.tunable_limits(cfg, overrides={"models.det.conf": (0.0, 1.0)})
    assert (limits["models.det.conf"].lo, limits["models.det.conf"].hi) == (0.01, 0.99)
    with pytest.raises(ValueError, match="not a tunable setting"):
        actions.tunable_limits(cfg, overrides={"fusion.k": (1, 2)})


def test_changing_nothing_writes_nothing(conn, cfg):
    before = counts(conn)
    same, h = actions.change_settings(conn, session("engineer"), cfg, {"models.det.conf": 0.25},
                                      actions.tunable_limits(cfg))
    assert same is cfg and h == config_hash(cfg) and counts(conn) == before


# --- models --------------------------------------------------------------------------------------


def test_promote_runs_the_training_tool_as_the_user(conn, tmp_path):
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


def test_rollback_reports_the_tools_failure(conn):
    r = actions.models_rollback(session("engineer"), "det", runner=FakeRunner(rc=1, output="Error: no history\n"))
    assert (r.ok, r.returncode, r.output) == (False, 1, "Error: no history\n")


@pytest.mark.parametrize("spec", ["det", "--registry=/tmp/x@1", "Det@1", "det@1 --dry-run"])
def test_promote_refuses_odd_specs_before_running_anything(spec):
    runner = FakeRunner()
    with pytest.raises(ValueError, match="promote: expected 'name@version'"):
        actions.models_promote(session("engineer"), spec, runner=runner)
    assert runner.calls == []


def test_operators_cannot_promote_even_without_a_database():
    runner = FakeRunner()
    with pytest.raises(PermissionDenied, match=r"'olga' \(role operator\) may not promote det@2: needs role engineer"):
        actions.models_promote(session("operator"), "det@2", runner=runner)
    assert runner.calls == []


def test_rollback_really_runs_inspector_train(tmp_path):
    # One real subprocess: the command line must be one that inspector-train accepts.
    r = actions.models_rollback(session("engineer"), "nosuchmodel", tmp_path / "reg")
    assert r.returncode != 0 and "nosuchmodel" in r.output and "No such option" not in r.output, r.output


def test_errors_survive_pickling():
    import pickle

    e = pickle.loads(pickle.dumps(PermissionDenied("olga", "operator", "relabel", "needs role engineer")))
    assert (e.user, e.role, e.action, str(e)) == ("olga", "operator", "relabel",
                                                  "user 'olga' (role operator) may not relabel: needs role engineer")
    assert pickle.loads(pickle.dumps(SettingsError(["a: b"]))).errors == ["a: b"]
