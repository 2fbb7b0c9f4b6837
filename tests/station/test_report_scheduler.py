"""station/report_scheduler.py: periods, never the same period twice, one catch-up after a
restart, the MES file message, and the thread (all on a fake clock, with a stand-in generator)."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from inspector.config.schema import ReportSchedule
from inspector.station import report_scheduler as rs
from inspector.station.report_scheduler import ReportScheduler, latest_due, next_due
from inspector.store.audit import verify
from inspector.store.db import insert_run, open_db, transaction

UTC = timezone.utc
STATION = "site-a"


def at(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


class Clock:
    def __init__(self, t: datetime) -> None:
        self.t = t
        self.lock = threading.Lock()

    def __call__(self) -> datetime:
        with self.lock:
            return self.t

    def advance(self, **kw) -> None:
        with self.lock:
            self.t += timedelta(**kw)


class StandIn:
    """Writes a small JSON report (what the report generator does for real); counts its calls."""

    def __init__(self, fail: int = 0) -> None:
        self.calls: list[rs.ReportRequest] = []
        self.fail = fail

    def __call__(self, req: rs.ReportRequest) -> dict:
        self.calls.append(req)
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        req.out.write_text(json.dumps({"from": req.period.start.isoformat(), "to": req.period.end.isoformat()}))
        return {"content_sha256": "c" * 64}


def _db(tmp_path: Path, runs: dict[str, datetime]) -> Path:
    db = tmp_path / "data" / "inspector.sqlite"
    db.parent.mkdir(parents=True)
    conn = open_db(db)
    with transaction(conn):
        for run_id, started in runs.items():
            insert_run(conn, run_id, STATION, started=started)
    conn.close()
    return db


def _scheduler(db: Path, schedules, clock, gen, run_id="run-now", **kw) -> ReportScheduler:
    return ReportScheduler(schedules, station=STATION, db_path=db, data_dir=db.parent, run_id=run_id, clock=clock,
                           generate=gen, **kw)


DAILY = ReportSchedule(id="daily", every="daily", at="06:00", folder="reports/daily", format="json")


# --- periods ----------------------------------------------------------------------------------

@pytest.mark.parametrize("schedule, now, start, end, due", [
    # before 06:00: yesterday's report is not due yet, the day before's is the latest
    (DAILY, at(2025, 3, 5, 5, 59), at(2025, 3, 3), at(2025, 3, 4), at(2025, 3, 4, 6)),
    (DAILY, at(2025, 3, 5, 6, 0), at(2025, 3, 4), at(2025, 3, 5), at(2025, 3, 5, 6)),
    # weekly on Monday 07:30: 2025-03-03 is a Monday
    (ReportSchedule(id="w", every="weekly", weekday="monday", at="07:30", folder="r"),
     at(2025, 3, 5, 12), at(2025, 2, 24), at(2025, 3, 3), at(2025, 3, 3, 7, 30)),
    (ReportSchedule(id="w", every="weekly", weekday="monday", at="07:30", folder="r"),
     at(2025, 3, 3, 7, 0), at(2025, 2, 17), at(2025, 2, 24), at(2025, 2, 24, 7, 30)),
    # a site day in Berlin (UTC+1 in March): the day runs 23:00 to 23:00 UTC
    (ReportSchedule(id="b", at="06:00", timezone="Europe/Berlin", folder="r"),
     at(2025, 3, 5, 5, 30), at(2025, 3, 3, 23), at(2025, 3, 4, 23), at(2025, 3, 5, 5)),
])
def test_latest_due_period(schedule, now, start, end, due):
    p = latest_due(schedule, now)
    assert (p.start, p.end, p.due) == (start, end, due)
    assert p.due <= now < next_due(schedule, now)


def test_next_due_is_the_following_day_or_week():
    assert next_due(DAILY, at(2025, 3, 5, 6, 0)) == at(2025, 3, 6, 6)
    weekly = ReportSchedule(id="w", every="weekly", weekday="friday", at="18:00", folder="r")
    assert next_due(weekly, at(2025, 3, 5, 12)) == at(2025, 3, 7, 18)  # 2025-03-07 is a Friday


# --- never twice, catch up once -----------------------------------------------------------------

def test_each_period_is_written_once_on_time(tmp_path):
    db = _db(tmp_path, {"run-old": at(2025, 3, 1)})
    clock, gen = Clock(at(2025, 3, 5, 5, 0)), StandIn()
    sch = _scheduler(db, [DAILY], clock, gen)
    first = sch.run_due()  # 4 March 06:00 was due while the station was down: caught up once
    assert [w.period_key for w in first] == ["daily/2025-03-03T00:00Z/2025-03-04T00:00Z"]
    assert first[0].catch_up
    for _ in range(3):  # polled again and again before the next due time: nothing new
        clock.advance(minutes=15)
        assert sch.run_due() == []
    clock.t = at(2025, 3, 5, 6, 0)
    second = sch.run_due()
    assert len(second) == 1 and not second[0].catch_up and second[0].start.startswith("2025-03-04")
    assert sch.run_due() == [] and len(gen.calls) == 2
    files = sorted(p.name for p in (db.parent / "reports" / "daily").iterdir())
    assert files == ["site-a_daily_20250303-20250303.json", "site-a_daily_20250304-20250304.json"]
    conn = open_db(db)
    rows = conn.execute("SELECT actor, entity_id FROM audit WHERE action = 'report.scheduled'").fetchall()
    assert [r[0] for r in rows] == ["scheduler", "scheduler"] and verify(conn).ok
    conn.close()


def test_a_restart_neither_rewrites_nor_misses_and_catches_up_only_the_latest(tmp_path):
    db = _db(tmp_path, {"run-1": at(2025, 3, 1)})
    gen = StandIn()
    _scheduler(db, [DAILY], Clock(at(2025, 3, 4, 7)), gen, run_id="run-2").run_due()  # writes 3 March
    assert len(gen.calls) == 1
    # Restarted the same day: the period is in the store, so it is not written again.
    assert _scheduler(db, [DAILY], Clock(at(2025, 3, 4, 9)), gen, run_id="run-3").run_due() == []
    # Down for three days: only the latest missed period is written, once; nothing older.
    again = _scheduler(db, [DAILY], Clock(at(2025, 3, 8, 10)), gen, run_id="run-4")
    out = again.run_due()
    assert [w.start[:10] for w in out] == ["2025-03-07"] and out[0].catch_up
    assert again.run_due() == [] and len(gen.calls) == 2


def test_a_new_station_does_not_write_reports_for_days_before_it_existed(tmp_path):
    db = _db(tmp_path, {"run-now": at(2025, 3, 5, 9)})  # its only run is the current one
    gen = StandIn()
    sch = _scheduler(db, [DAILY], Clock(at(2025, 3, 5, 9)), gen)
    assert sch.run_due() == [] and gen.calls == []
    no_catch_up = ReportSchedule(id="d2", at="06:00", folder="r", catch_up=False)
    db2 = _db(tmp_path / "b", {"run-old": at(2025, 1, 1)})
    assert _scheduler(db2, [no_catch_up], Clock(at(2025, 3, 5, 9)), gen).run_due() == []
    assert gen.calls == []


def test_a_failed_report_is_retried_later_not_at_every_pass(tmp_path):
    db = _db(tmp_path, {"run-old": at(2025, 3, 4, 7)})  # in service after 4 March's due time
    clock, gen = Clock(at(2025, 3, 5, 6, 0)), StandIn(fail=1)
    sch = _scheduler(db, [DAILY], clock, gen, retry_s=600)
    assert sch.run_due(at(2025, 3, 5, 5, 0)) == [] and gen.calls == []  # nothing to catch up
    assert sch.run_due() == [] and "disk full" in sch.errors[-1]
    n = len(gen.calls)
    clock.advance(minutes=5)
    assert sch.run_due() == [] and len(gen.calls) == n  # waiting for the retry
    clock.advance(minutes=6)
    assert len(sch.run_due()) == 1


def test_a_report_through_the_mes_outbox_is_one_message_per_period(tmp_path, monkeypatch):
    from inspector.mes import outbox

    if "report" not in outbox.KINDS:  # the outbox kind the lead adds for report files
        monkeypatch.setattr(outbox, "KINDS", (*outbox.KINDS, "report"))
    db = _db(tmp_path, {"run-old": at(2025, 3, 1)})
    s = ReportSchedule(id="to-mes", at="06:00", mes="plant", format="csv")
    gen = StandIn()
    sch = _scheduler(db, [s], Clock(at(2025, 3, 5, 7)), gen)
    out = sch.run_due()
    assert len(out) == 1 and out[0].file is None and out[0].mes == "plant"
    assert not gen.calls[0].out.exists()  # only the outbox wanted it
    conn = open_db(db)
    rows = outbox.pending(conn, "plant")
    assert len(rows) == 1 and rows[0].kind == "report"
    assert rows[0].meta == {"file": "site-a_to-mes_20250304-20250304.csv"}
    body = json.loads(rows[0].body)
    assert json.loads(base64.b64decode(body["content_base64"]))["from"].startswith("2025-03-04")
    conn.close()
    assert _scheduler(db, [s], Clock(at(2025, 3, 5, 8)), gen).run_due() == []


# --- the thread ---------------------------------------------------------------------------------

def test_the_thread_writes_when_the_fake_clock_reaches_the_due_time_and_stops(tmp_path):
    db = _db(tmp_path, {"run-old": at(2025, 3, 1)})
    clock, gen = Clock(at(2025, 3, 5, 5, 59)), StandIn()
    sch = _scheduler(db, [DAILY], clock, gen, poll_s=0.05).start()
    try:
        deadline = time.monotonic() + 5
        while len(sch.written) < 1 and time.monotonic() < deadline:  # the catch-up of 3 March
            time.sleep(0.02)
        clock.advance(minutes=1)  # 06:00
        while len(sch.written) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sch.stop(5)
    assert [w.start[:10] for w in sch.written] == ["2025-03-03", "2025-03-04"]
    assert not sch._thread.is_alive()


# --- with the real reports package ------------------------------------------------------------

def test_a_scheduled_csv_through_the_reports_package_holds_the_period_and_is_audited(tmp_path):
    from inspector.core.site.types import IncidentEvent
    from inspector.reports import read_csv
    from inspector.store import incidents as store_incidents

    db = _db(tmp_path, {"run-old": at(2025, 3, 1)})
    conn = open_db(db)
    with transaction(conn):
        for n, t in enumerate((at(2025, 3, 3, 23, 59), at(2025, 3, 4, 10), at(2025, 3, 4, 18), at(2025, 3, 5, 0, 1))):
            store_incidents.apply_event(conn, IncidentEvent(
                "new", f"k{n}", 0, "gate", n, "no_hard_hat", "no-hard-hat", "high", None, t, "f", "f", "f", 0.9, t),
                run_id="run-old")
    conn.close()
    s = ReportSchedule(id="daily-csv", at="06:00", folder="reports", format="csv", user="night-shift")
    (w,) = _scheduler(db, [s], Clock(at(2025, 3, 5, 6, 30)), rs.report_generator).run_due()
    rows = read_csv(Path(w.file).read_text(encoding="utf-8"))
    assert len(rows) == 2 and w.facts["incidents"] == 2  # only 4 March, not the minutes around it
    conn = open_db(db)
    try:
        actors = [r[0] for r in conn.execute(
            "SELECT actor FROM audit WHERE action IN ('report.generate', 'report.scheduled') ORDER BY seq")]
        assert actors == ["night-shift", "night-shift"] and verify(conn).ok
    finally:
        conn.close()
