from datetime import date

import pytest

from inspector.reports.incident_data import Period, ReportFilter, gather, gather_one
from inspector.store.db import open_db

WEEK = Period.days(date(2026, 12, 1), date(2026, 12, 7))


@pytest.fixture
def conn(site_store):
    c = open_db(site_store, create=False)
    yield c
    c.close()


def test_period_and_previous_period(conn, site_store):
    data = gather(conn, WEEK, data_dir=site_store.parent)
    assert [d.row["id"] for d in data.incidents] == [1, 2, 3]
    assert [r["id"] for r in data.previous] == [4]
    assert data.station == "site-1" and WEEK.label() == "2026-12-01 .. 2026-12-07"
    assert WEEK.previous() == Period.days(date(2026, 11, 24), date(2026, 11, 30))


@pytest.mark.parametrize("flt, ids", [
    (ReportFilter(camera="yard"), [3]),
    (ReportFilter(kind=("no_hard_hat", "in_danger_zone")), [1, 2]),
    (ReportFilter(zone="crane-swing"), [2]),
    (ReportFilter(state="open"), [3]),
    (ReportFilter(state=["closed", "false_alarm"]), [1, 2]),
    (ReportFilter(station="elsewhere"), []),
])
def test_filters(conn, flt, ids):
    assert [d.row["id"] for d in gather(conn, WEEK, flt, with_evidence=False).incidents] == ids


def test_unknown_state_is_refused():
    with pytest.raises(ValueError, match="state"):
        ReportFilter(state="solved")


def test_each_incident_carries_steps_evidence_and_its_worker(conn, site_store):
    (one,) = gather_one(conn, 1, data_dir=site_store.parent).incidents
    assert [(s.actor, s.action) for s in one.steps][-2:] == [("sam", "incident.acknowledged"),
                                                              ("sam", "incident.closed")]
    assert [e.role for e in one.evidence] == ["first", "worst", "last"]  # one frame here: all three
    worst = one.evidence[1]
    assert worst.path is not None and worst.path.is_file()
    assert worst.worker_boxes.shape == (1, 4) and worst.incident_box == (90.0, 50.0, 150.0, 230.0)
    with pytest.raises(LookupError):
        gather_one(conn, 99)
