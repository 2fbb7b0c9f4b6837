"""Generating a report is audited with the file: the audit names who, what and the file's sha256;
the store still verifies; a refused role writes neither file nor audit row."""

import hashlib
from datetime import date

import pytest

from inspector.reports import Period, ReportFilter, generations, produce
from inspector.station import actions
from inspector.station.actions import PermissionDenied, Session
from inspector.station.actions import reports as report_actions
from inspector.store.audit import verify
from inspector.store.db import open_db


@pytest.fixture
def conn(site_store):
    c = open_db(site_store, create=False)
    yield c
    c.close()


WEEK = Period.days(date(2026, 12, 1), date(2026, 12, 7))


def sam(conn):
    return actions.login(conn, "sam", "a-long-password-1")  # the user tests/reports/conftest.py adds


def test_generation_is_audited_and_the_store_still_verifies(conn, site_store, tmp_path):
    out = tmp_path / "r" / "week.csv"
    g = produce(conn, "sam", "csv", out, data_dir=site_store.parent, period=WEEK, flt=ReportFilter(camera="gate"))
    assert out.read_bytes() and hashlib.sha256(out.read_bytes()).hexdigest() == g.file_sha256
    assert g.incidents == 2 and g.pages is None
    (row,) = generations(conn, g.content_sha256)
    assert (row["seq"], row["actor"]) == (g.audit_seq, "sam")
    assert verify(conn).ok


def test_a_failed_audit_leaves_no_file(conn, site_store, tmp_path):
    conn.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END")
    out = tmp_path / "week.json"
    with pytest.raises(Exception, match="audit refused"):
        produce(conn, "sam", "json", out, data_dir=site_store.parent, period=WEEK)
    assert not out.exists()


def test_the_action_needs_the_reports_permission(conn, site_store, tmp_path):
    out = tmp_path / "i1.pdf"
    with pytest.raises(PermissionDenied):
        report_actions.generate_incident_report(conn, actions.login(conn, "olga", "a-long-password-2"), 1, out=out,
                                                data_dir=site_store.parent)
    assert not out.exists() and generations(conn) == []
    res = report_actions.generate_incident_report(conn, sam(conn), 1, out=out,
                                                  data_dir=site_store.parent)
    assert res["pages"] == 2 and res["meta"]["generated_by"] == "sam" and out.exists()
    assert [g["actor"] for g in generations(conn)] == ["sam"]


def test_period_actions_take_the_guis_and_the_schedulers_filters(conn, site_store, tmp_path):
    res = report_actions.generate_report(conn, sam(conn), out=tmp_path / "a.csv", fmt="csv",
                                         data_dir=site_store.parent, since=WEEK.start, until=WEEK.end,
                                         states=("closed", "false_alarm"))
    assert res["incidents"] == 2
    res = report_actions.scheduled_report(conn, actions.system_session(conn, "system:scheduler", "test", ("reports",)),
                                          user="scheduler", out=tmp_path / "b.json", fmt="json",
                                          data_dir=site_store.parent, since=WEEK.start, until=WEEK.end,
                                          cameras=["yard"], kinds=["no_vest"])
    assert res["incidents"] == 1 and res["meta"]["filters"] == {"camera": ["yard"], "kind": ["no_vest"]}
    assert verify(conn).ok


def test_a_hand_made_session_writes_no_report(conn, site_store, tmp_path):
    forged = Session("sam", "safety_manager")
    kw = dict(data_dir=site_store.parent, fmt="json")
    calls = [
        lambda: report_actions.generate_incident_report(conn, forged, 1, out=tmp_path / "a.json", **kw),
        lambda: report_actions.generate_report(conn, forged, out=tmp_path / "b.json", since=WEEK.start,
                                               until=WEEK.end, **kw),
        lambda: report_actions.scheduled_report(conn, Session("system:scheduler", "system"), user="scheduler",
                                                out=tmp_path / "c.json", since=WEEK.start, until=WEEK.end, **kw),
        # a person's live session is not the scheduler's: no report in another author's name
        lambda: report_actions.scheduled_report(conn, sam(conn), user="someone else", out=tmp_path / "d.json",
                                                since=WEEK.start, until=WEEK.end, **kw),
    ]
    for call in calls:
        with pytest.raises(PermissionDenied, match="not logged in|only the station's scheduler"):
            call()
    assert not any(p.name.endswith(".json") for p in tmp_path.iterdir()) and generations(conn) == []
