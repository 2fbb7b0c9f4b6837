import json
from datetime import date

import pytest

from inspector.reports import COLUMNS, Period, build_period_report, content_hash_of_document, read_csv, read_json, render
from inspector.store.db import open_db


@pytest.fixture
def report(site_store):
    conn = open_db(site_store, create=False)
    yield build_period_report(conn, Period.days(date(2026, 12, 1), date(2026, 12, 7)), data_dir=site_store.parent,
                              generated_by="sam")
    conn.close()


def test_csv_round_trips(report):
    text = render(report, "csv").decode()
    assert text.splitlines()[0] == ",".join(COLUMNS)
    back = read_csv(text)
    assert back == list(report.rows) and len(back) == 3
    closed = back[0]
    assert (closed.status, closed.resolved_by, closed.time_to_close_s) == ("closed", "sam", 2400.0)
    assert closed.automatic is True and closed.zone is None and closed.evidence_images == 3  # first = worst = last frame here


def test_csv_with_wrong_columns_is_refused():
    with pytest.raises(ValueError, match="columns"):
        read_csv("id,kind\n1,no_vest\n")


def test_json_validates_and_its_content_hash_recomputes(report):
    text = render(report, "json").decode()
    doc = read_json(text)
    assert [r.id for r in doc.incidents] == [1, 2, 3] and doc.summary["previous_total"] == 1
    assert doc.report["generated_by"] == "sam" and doc.report["station"] == "site-1"
    assert content_hash_of_document(doc) == doc.report["content_sha256"] == report.content_sha256
    tampered = json.loads(text)
    tampered["incidents"][0]["status"] = "open"
    assert content_hash_of_document(read_json(json.dumps(tampered))) != report.content_sha256
    with pytest.raises(ValueError):
        read_json(json.dumps({**tampered, "incidents": [{"id": "x"}]}))


def test_who_generated_it_does_not_change_the_content_hash(site_store, report):
    conn = open_db(site_store, create=False)
    other = build_period_report(conn, Period.days(date(2026, 12, 1), date(2026, 12, 7)), data_dir=site_store.parent,
                                generated_by="ann")
    conn.close()
    assert other.content_sha256 == report.content_sha256
