"""config/schema/reports.py: the `reports` section (scheduled reports) and its checks against the
rest of the station config, through the loader (field path and message)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from inspector.config import ConfigError, load_config, load_config_text
from inspector.config.schema import ReportSchedule

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((REPO / "station_configs" / "construction-demo.yaml").read_text())


def _with(schedules, mes=None):
    cfg = copy.deepcopy(BASE)
    cfg["reports"] = {"schedules": schedules}
    if mes is not None:
        cfg["mes"] = mes
    return load_config_text(yaml.safe_dump(cfg))


def _issue(schedules, mes=None):
    with pytest.raises(ConfigError) as e:
        _with(schedules, mes)
    return str(e.value)


def test_the_construction_demo_schedules_a_daily_pdf_to_a_folder():
    cfg = load_config(REPO / "station_configs" / "construction-demo.yaml")
    (s,) = cfg.reports.schedules
    assert (s.every, s.format, s.folder, s.mes) == ("daily", "pdf", "reports/daily", None)


def test_defaults_and_a_full_schedule():
    cfg = _with([{"id": "weekly-gate", "every": "weekly", "weekday": "friday", "at": "17:30", "timezone": "Europe/Berlin",
                  "format": "csv", "folder": "/srv/reports", "mes": "plant",
                  "filters": {"cameras": ["gate"], "zones": ["crane-swing"], "kinds": ["in_danger_zone"],
                              "states": ["open", "acknowledged"]}}],
                mes=[{"type": "filedrop", "id": "plant", "folder": "mes-out"}])
    s = cfg.reports.schedules[0]
    assert s.hour_minute == (17, 30) and s.filters.kinds == ["in_danger_zone"]
    d = ReportSchedule(id="d", folder="r")
    assert (d.every, d.at, d.timezone, d.format, d.catch_up, d.user) == ("daily", "06:00", "UTC", "pdf", True,
                                                                         "scheduler")


@pytest.mark.parametrize("schedule, mes, where, what", [
    ({"id": "a"}, None, "reports.schedules[0].folder", "somewhere to send"),
    ({"id": "a", "folder": "r", "at": "6:00"}, None, "reports.schedules[0].at", "HH:MM"),
    ({"id": "a", "folder": "r", "at": "24:00"}, None, "reports.schedules[0].at", "HH:MM"),
    ({"id": "a", "folder": "r", "timezone": "Mars/Olympus"}, None, "reports.schedules[0].timezone", "IANA"),
    ({"id": "a", "folder": "r", "every": "hourly"}, None, "reports.schedules[0].every", "daily"),
    ({"id": "a", "folder": "r", "format": "docx"}, None, "reports.schedules[0].format", "pdf"),
    ({"id": "a", "mes": "nowhere"}, None, "reports.schedules[0].mes", "unknown MES output 'nowhere'"),
    ({"id": "a", "folder": "r", "filters": {"cameras": ["roof"]}}, None, "reports.schedules[0].filters.cameras[0]",
     "unknown camera 'roof'"),
    ({"id": "a", "folder": "r", "filters": {"zones": ["gate-ppe-area", "pit"]}}, None,
     "reports.schedules[0].filters.zones[1]", "unknown zone 'pit'"),
    ({"id": "a", "folder": "r", "filters": {"kinds": ["no_gloves"]}}, None, "reports.schedules[0].filters.kinds",
     "no_hard_hat"),
    ({"id": "a", "folder": "r", "surprise": 1}, None, "reports.schedules[0].surprise", ""),
])
def test_bad_schedules_name_the_field(schedule, mes, where, what):
    msg = _issue([schedule], mes)
    assert where in msg and what in msg


def test_duplicate_schedule_ids_are_refused():
    msg = _issue([{"id": "a", "folder": "r"}, {"id": "a", "folder": "s"}])
    assert "reports.schedules[1].id" in msg and "duplicate report schedule id 'a'" in msg
