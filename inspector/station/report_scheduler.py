"""Scheduled incident reports: a small thread of the station that writes each configured report
once per period, to a folder and / or through an MES output's outbox, without anyone clicking.

Never the same period twice: a written period is remembered in the store, as an audit row
(entity ``report_schedule``, id ``<schedule>/<start>/<end>``, in the transaction that also queues
the MES message), and the file name is fixed by schedule and period, so a crash between writing
the file and recording it rewrites the same file and nothing else.

Catch-up: only the latest period whose time has come is ever considered. When it became due
while the station was down (it was in service before, the store has an earlier run), it is written
once at start; older missed periods are not back-filled, and a brand-new station writes nothing
for the days before it existed.

The thread has its own database connection and sleeps until the next due time (or ``poll_s``);
the pipeline never waits for it. A failed report is logged and retried after ``retry_s``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from inspector.config.schema import WEEKDAYS, ReportSchedule, StationConfig
from inspector.store import audit
from inspector.store.db import open_db, transaction
from inspector.util.canonical import iso_utc

log = logging.getLogger(__name__)

ENTITY = "report_schedule"          # audit entity of a written period
ACTION = "report.scheduled"
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --------------------------------------------------------------------------------------------
# Periods (pure)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """One report's time range ``[start, end)`` (UTC) and when it is due."""

    schedule: str
    start: datetime
    end: datetime
    due: datetime

    @property
    def key(self) -> str:
        return f"{self.schedule}/{self.start:%Y-%m-%dT%H:%MZ}/{self.end:%Y-%m-%dT%H:%MZ}"  # UTC

    def file_name(self, station: str, fmt: str) -> str:
        last_day = self.end - timedelta(seconds=1)
        return f"{station}_{self.schedule}_{self.start:%Y%m%d}-{last_day:%Y%m%d}.{fmt}"


def _local_midnight(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=tz)


def _period(s: ReportSchedule, due_day: date, tz: ZoneInfo) -> Period:
    days = 1 if s.every == "daily" else 7
    h, m = s.hour_minute
    due = datetime.combine(due_day, time(h, m), tzinfo=tz)
    start = _local_midnight(due_day - timedelta(days=days), tz)
    return Period(s.id, start.astimezone(timezone.utc), _local_midnight(due_day, tz).astimezone(timezone.utc),
                  due.astimezone(timezone.utc))


def latest_due(s: ReportSchedule, now: datetime) -> Period:
    """The newest period whose due time is at or before ``now``."""
    tz = ZoneInfo(s.timezone)
    today = now.astimezone(tz).date()
    step = 1 if s.every == "daily" else 7
    day = today if s.every == "daily" else today - timedelta(days=(today.weekday() - WEEKDAYS.index(s.weekday)) % 7)
    p = _period(s, day, tz)
    return p if p.due <= now else _period(s, day - timedelta(days=step), tz)


def next_due(s: ReportSchedule, now: datetime) -> datetime:
    """The first due time after ``now``."""
    tz = ZoneInfo(s.timezone)
    p = latest_due(s, now)
    step = 1 if s.every == "daily" else 7
    return _period(s, p.due.astimezone(tz).date() + timedelta(days=step), tz).due


# --------------------------------------------------------------------------------------------
# What was written (the store)
# --------------------------------------------------------------------------------------------


def was_written(conn: Any, period: Period) -> bool:
    return conn.execute("SELECT 1 FROM audit WHERE entity = ? AND entity_id = ? LIMIT 1",
                        (ENTITY, period.key)).fetchone() is not None


def in_service_before(conn: Any, station: str, t: datetime, exclude_run: str | None = None) -> bool:
    """Whether the station had a run that started before ``t`` (it existed when a period was due)."""
    rows = conn.execute("SELECT id, started FROM runs WHERE station_id = ?", (station,)).fetchall()
    for run_id, started in rows:
        if run_id == exclude_run or not started:
            continue
        try:
            s = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        except ValueError:
            continue
        if (s if s.tzinfo else s.replace(tzinfo=timezone.utc)) < t:
            return True
    return False


# --------------------------------------------------------------------------------------------
# Generating one report
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRequest:
    """Everything a generator needs to write one scheduled report to ``out``."""

    db_path: Path
    data_dir: Path
    station: str
    schedule: ReportSchedule
    period: Period
    out: Path


@dataclass(frozen=True)
class Written:
    """One scheduled report written: the period, where it went, and its content hash."""

    schedule: str
    period_key: str
    start: str
    end: str
    file: str | None
    sha256: str
    bytes: int
    mes: str | None
    catch_up: bool
    facts: dict[str, Any] = field(default_factory=dict)


Generate = Callable[[ReportRequest], dict[str, Any]]


def report_generator(request: ReportRequest) -> dict[str, Any]:
    """Write the report through ``actions.reports.scheduled_report`` (the reports package's one
    call, audited as generated by the schedule's user: the reviewed station config is the
    authority, nobody is logged in); returns what it says (path, sha256s, incidents, pages, audit seq)."""
    from inspector.station.actions import reports as report_actions  # late: PDF and chart libraries are heavy
    from inspector.store import sessions

    s, p, f = request.schedule, request.period, request.schedule.filters
    conn = open_db(request.db_path)
    try:
        # No person is logged in: an explicit, recorded system session for this one report.
        session = sessions.open_system(conn, "system:scheduler",
                                       f"scheduled report {s.id} {iso_utc(p.start)}/{iso_utc(p.end)}", ("reports",))
        try:
            return dict(report_actions.scheduled_report(
                conn, session, user=s.user, out=request.out, fmt=s.format, data_dir=request.data_dir, since=p.start,
                until=p.end, station=request.station, cameras=f.cameras, zones=f.zones, kinds=f.kinds, states=f.states))
        finally:
            sessions.end(conn, session)
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# The scheduler
# --------------------------------------------------------------------------------------------


class ReportScheduler:
    """Writes each schedule's reports on time; ``run_due(now)`` is one pass (tests call it with a
    fake clock), ``start()`` runs passes on a daemon thread until ``stop()``."""

    def __init__(self, schedules: list[ReportSchedule], *, station: str, db_path: Path, data_dir: Path,
                 run_id: str | None = None, clock: Clock = utc_now, generate: Generate = report_generator,
                 poll_s: float = 60.0, retry_s: float = 600.0) -> None:
        self.schedules = list(schedules)
        self.station, self.db_path, self.data_dir, self.run_id = station, Path(db_path), Path(data_dir), run_id
        self.clock, self.generate = clock, generate
        self.poll_s, self.retry_s = poll_s, retry_s
        self.started_at: datetime | None = None
        self.written: list[Written] = []
        self.errors: list[str] = []
        self._retry_after: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_station(cls, cfg: StationConfig, *, db_path: Path, data_dir: Path, run_id: str | None = None,
                    **kw: Any) -> ReportScheduler | None:
        """The scheduler of a station config, or None when it schedules no report."""
        if not cfg.reports.schedules:
            return None
        return cls(list(cfg.reports.schedules), station=cfg.station.id, db_path=db_path, data_dir=data_dir,
                   run_id=run_id, **kw)

    # --- one pass ---------------------------------------------------------------------------------
    def run_due(self, now: datetime | None = None) -> list[Written]:
        """Write every report whose period is due at ``now`` and not written yet; returns them."""
        now = now or self.clock()
        if self.started_at is None:
            self.started_at = now
        out: list[Written] = []
        conn = open_db(self.db_path)
        try:
            for s in self.schedules:
                p = latest_due(s, now)
                if self._retry_after.get(p.key, now) > now or was_written(conn, p):
                    continue
                missed = p.due < self.started_at
                if missed and not (s.catch_up and in_service_before(conn, self.station, p.due, self.run_id)):
                    continue  # due before this station existed (or catch-up is off)
                try:
                    w = self._write(conn, s, p, missed)
                except Exception as e:  # noqa: BLE001 - one failed report must not end the schedule
                    msg = f"report {p.key}: {type(e).__name__}: {e}"
                    log.warning("scheduled %s (retry in %.0f s)", msg, self.retry_s)
                    self.errors.append(msg)
                    self._retry_after[p.key] = now + timedelta(seconds=self.retry_s)
                    continue
                self._retry_after.pop(p.key, None)
                out.append(w)
        finally:
            conn.close()
        self.written += out
        return out

    def _write(self, conn: Any, s: ReportSchedule, p: Period, missed: bool) -> Written:
        name = p.file_name(self.station, s.format)
        folder = self._folder(s)
        target = (folder if folder is not None else self.data_dir / "reports" / ".outgoing") / name
        target.parent.mkdir(parents=True, exist_ok=True)
        facts = self.generate(ReportRequest(self.db_path, self.data_dir, self.station, s, p, target))
        data = target.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        content = facts.get("content_sha256") or facts.get("sha256")  # the hash of the report's data
        payload = {"schedule": s.id, "station": self.station, "start": iso_utc(p.start), "end": iso_utc(p.end),
                   "format": s.format, "file": name if folder is not None else None, "sha256": sha,
                   "content_sha256": None if content is None else str(content),
                   "bytes": len(data), "mes": s.mes, "catch_up": missed, "user": s.user}
        with transaction(conn):
            if was_written(conn, p):  # another writer recorded it meanwhile: not twice
                raise RuntimeError("already recorded")
            if s.mes is not None:
                self._enqueue(conn, s, p, name, data, payload)
            audit.append(conn, actor=s.user, action=ACTION, entity=ENTITY, entity_id=p.key, payload=payload)
        if folder is None:
            target.unlink(missing_ok=True)  # only the outbox wanted it: its bytes are in the message
        log.info("scheduled report %s written%s (%s, %d bytes)", p.key, " (catch-up)" if missed else "",
                 target if folder is not None else f"MES {s.mes}", len(data))
        return Written(s.id, p.key, iso_utc(p.start), iso_utc(p.end), str(target) if folder is not None else None,
                       sha, len(data), s.mes, missed, facts)

    def _folder(self, s: ReportSchedule) -> Path | None:
        if s.folder is None:
            return None
        p = Path(s.folder).expanduser()
        return p if p.is_absolute() else self.data_dir / p

    def _enqueue(self, conn: Any, s: ReportSchedule, p: Period, name: str, data: bytes,
                 payload: dict[str, Any]) -> None:
        from inspector.mes import outbox

        body = {**payload, "kind": "report", "message_id": f"{self.station}/report/{p.key}", "file": name,
                "content_base64": base64.b64encode(data).decode("ascii")}
        outbox.enqueue(conn, [outbox.Draft(s.mes, body["message_id"], f"{self.station}/reports", "report", body,
                                           {"file": name})])

    # --- the thread -------------------------------------------------------------------------------
    def seconds_to_next(self, now: datetime) -> float:
        soonest = min((next_due(s, now) for s in self.schedules), default=now + timedelta(seconds=self.poll_s))
        return max(0.05, min(self.poll_s, (soonest - now).total_seconds()))

    def start(self) -> ReportScheduler:
        if self._thread is None:
            self.started_at = self.started_at or self.clock()
            self._thread = threading.Thread(target=self._loop, name="report-scheduler", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
            except Exception as e:  # noqa: BLE001 - e.g. the database briefly locked: try again later
                log.warning("report scheduler pass failed: %s", e)
                self.errors.append(str(e))
            self._stop.wait(self.seconds_to_next(self.clock()))

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the thread to end (a report being written finishes first) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def stats(self) -> dict[str, Any]:
        return {"written": len(self.written), "errors": self.errors[-5:],
                "last": None if not self.written else self.written[-1].period_key}
