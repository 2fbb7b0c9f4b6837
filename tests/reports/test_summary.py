from datetime import date

import pytest

from inspector.reports.summary import NO_ZONE, duration_text, summarise


def row(opened, kind="no_vest", zone=None, camera="gate", status="open", resolved_at=None):
    return {"opened": opened, "kind": kind, "zone": zone, "camera": camera, "status": status, "resolved_at": resolved_at}


def test_counts_trend_and_time_to_close():
    rows = [row("2026-12-01T08:00:00+00:00", status="closed", resolved_at="2026-12-01T08:10:00+00:00"),
            row("2026-12-01T09:00:00+00:00", "no_hard_hat", "pit", status="closed",
                resolved_at="2026-12-01T10:00:00+00:00"),
            row("2026-12-03T09:00:00+00:00", "no_hard_hat", "pit", "yard", status="false_alarm",
                resolved_at="2026-12-03T09:01:00+00:00"),
            row("2026-12-03T10:00:00+00:00", status="acknowledged")]
    s = summarise(rows, [row("2026-11-28T08:00:00+00:00", "in_danger_zone", "pit")], date(2026, 12, 1), date(2026, 12, 3))
    assert (s.total, s.previous_total, s.change_pct) == (4, 1, 300.0)
    assert [(c.name, c.n, c.previous) for c in s.by_kind] == [("no_hard_hat", 2, 0), ("no_vest", 2, 0),
                                                            ("in_danger_zone", 0, 1)]
    assert {c.name: c.n for c in s.by_zone} == {"pit": 2, NO_ZONE: 2}
    assert [(d.isoformat(), sum(k.values())) for d, k in s.by_day] == [("2026-12-01", 2), ("2026-12-02", 0),
                                                                      ("2026-12-03", 2)]
    assert (s.open, s.closed, s.false_alarms) == (1, 2, 1)
    # closing times 600 s and 3600 s (false alarms are not "closed")
    assert s.time_to_close_median_s == pytest.approx(2100.0) and s.time_to_close_p90_s == pytest.approx(3300.0)
    assert s.as_dict()["by_day"][0] == {"day": "2026-12-01", "no_vest": 1, "no_hard_hat": 1}


def test_empty_period_has_no_times():
    s = summarise([], [], date(2026, 12, 1), date(2026, 12, 1))
    assert s.total == 0 and s.change_pct is None and s.time_to_close_median_s is None and len(s.by_day) == 1


@pytest.mark.parametrize("seconds, text", [(None, "\u2014"), (42, "42 s"), (720, "12 min"), (3 * 3600, "3.0 h"),
                                           (3 * 86400, "3.0 d")])
def test_duration_text(seconds, text):
    assert duration_text(seconds) == text
