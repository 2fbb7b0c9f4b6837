"""Scheduled incident reports: which report, how often, and where it goes.

A schedule writes one report per period without anyone clicking (the station's report scheduler,
``inspector.station.report_scheduler``): ``daily`` covers the previous calendar day and is written
at ``at`` the next day; ``weekly`` covers the seven days before ``weekday`` 00:00 and is written on
``weekday`` at ``at``; both in the schedule's ``timezone`` (what the site calls a day).
Reports go to a folder (relative to the data folder) and / or through an MES output's outbox.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from inspector.config.schema.base import ConfigModel, FieldIssues, Loc, PathText, Slug, unique_list
from inspector.config.schema.site import IncidentKind

IncidentState = Literal["open", "acknowledged", "closed", "false_alarm"]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class ReportFilters(ConfigModel):
    """Which incidents a report holds; a left-out list means all."""

    cameras: Annotated[list[Slug], unique_list("camera")] | None = Field(
        None, description="Camera ids (the sources' camera or id); null = every camera.")
    zones: Annotated[list[Slug], unique_list("zone")] | None = Field(
        None, description="Zone ids; null = every zone (and incidents outside any zone).")
    kinds: Annotated[list[IncidentKind], unique_list("kind")] | None = Field(
        None, description="Incident kinds; null = every kind.")
    states: Annotated[list[IncidentState], unique_list("state")] | None = Field(
        None, description="Incident states (open, acknowledged, closed, false_alarm); null = every state.")


class ReportSchedule(ConfigModel):
    id: Slug = Field(..., description="Schedule id: names the report files and remembers which periods were written.")
    every: Literal["daily", "weekly"] = Field(
        "daily", description="daily: the previous calendar day; weekly: the seven days before `weekday`.")
    at: str = Field("06:00", description="Time of day the report is written, 'HH:MM' (24 h) in `timezone`.")
    weekday: Weekday = Field("monday", description="Weekly reports: the day they are written (and their week ends).")
    timezone: str = Field("UTC", min_length=1, description="IANA time zone of the site ('Europe/Berlin'): what a "
                          "day is for `at` and for the period.")
    format: Literal["pdf", "csv", "json"] = Field("pdf", description="Report format.")
    filters: ReportFilters = Field(default_factory=ReportFilters, description="Which incidents the report holds.")
    folder: Optional[PathText] = Field(
        None, description="Folder the report file is written to (relative paths resolve against the data folder).")
    mes: Optional[Slug] = Field(
        None, description="Id of an MES output (`mes[].id`) the report is also sent through, as a file message "
        "in its durable outbox.")
    catch_up: bool = Field(
        True, description="After a restart, write the latest period that was due while the station was down "
        "(once; older missed periods are not back-filled).")
    user: str = Field("scheduler", min_length=1, max_length=64,
                      description="Name recorded as the report's author and in the audit.")

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        if not _TIME.match(v):
            raise ValueError(f"expected a time of day 'HH:MM' (00:00 to 23:59), got {v!r}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"expected an IANA time zone such as 'UTC' or 'Europe/Berlin', got {v!r}") from e
        return v

    @model_validator(mode="after")
    def _somewhere(self) -> "ReportSchedule":
        if self.folder is None and self.mes is None:
            raise FieldIssues([(("folder",), "a schedule needs somewhere to send its report: give `folder`, "
                                "`mes` or both")])
        return self

    @property
    def hour_minute(self) -> tuple[int, int]:
        h, m = self.at.split(":")
        return int(h), int(m)


class ReportsConfig(ConfigModel):
    schedules: list[ReportSchedule] = Field(
        default_factory=list, description="Reports written by the station on a schedule (daily / weekly).")


def report_issues(reports: ReportsConfig, *, mes_ids: set[str], cameras: set[str],
                  zones: set[str]) -> list[tuple[Loc, str]]:
    """Checks against the rest of the station config (paths relative to the config root)."""
    issues: list[tuple[Loc, str]] = []
    seen: dict[str, int] = {}
    for i, s in enumerate(reports.schedules):
        at: Loc = ("reports", "schedules", i)
        if s.id in seen:
            issues.append(((*at, "id"), f"duplicate report schedule id {s.id!r} (already used by "
                           f"reports.schedules[{seen[s.id]}])"))
        seen.setdefault(s.id, i)
        if s.mes is not None and s.mes not in mes_ids:
            issues.append(((*at, "mes"), f"unknown MES output {s.mes!r} for files; the config's file-drop and HTTP "
                           "outputs (reports are files, not MQTT events) are: "
                           + (", ".join(sorted(mes_ids)) or "none")))
        for field, known, what in (("cameras", cameras, "camera"), ("zones", zones, "zone")):
            for j, v in enumerate(getattr(s.filters, field) or []):
                if v not in known:
                    issues.append(((*at, "filters", field, j), f"unknown {what} {v!r}; the sources' {field} are: "
                                   + (", ".join(sorted(known)) or "none")))
    return issues
