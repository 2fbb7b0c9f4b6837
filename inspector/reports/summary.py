"""The numbers on a report's first page: counts by kind, zone, camera and day, the trend against the
previous period of the same length, open against closed, and how long closing took.

Pure functions over incident mappings (the store's rows or the report's rows: both carry
``opened``, ``kind``, ``zone``, ``camera``, ``status`` and ``resolved_at`` as ISO-8601 UTC text).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

OPEN_STATES = ("open", "acknowledged")   # still needing someone
NO_ZONE = "(no zone)"                    # PPE incidents outside any zone


@dataclass(frozen=True)
class Count:
    """One category: this period, the previous period, and the change."""

    name: str
    n: int
    previous: int

    @property
    def change(self) -> int:
        return self.n - self.previous


@dataclass(frozen=True)
class Summary:
    total: int
    previous_total: int
    by_kind: tuple[Count, ...]
    by_zone: tuple[Count, ...]
    by_camera: tuple[Count, ...]
    by_day: tuple[tuple[date, dict[str, int]], ...]   # every day of the period, kind -> count
    by_status: dict[str, int]
    open: int                  # open + acknowledged
    closed: int
    false_alarms: int
    time_to_close_median_s: float | None   # closed incidents: opened -> closed
    time_to_close_p90_s: float | None
    closed_measured: int                   # how many closing times those figures come from

    @property
    def change_pct(self) -> float | None:
        """Change of the total against the previous period in percent (None when it had none)."""
        return None if self.previous_total == 0 else 100.0 * (self.total - self.previous_total) / self.previous_total

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values (the JSON report's ``summary``)."""
        def counts(cs: Sequence[Count]) -> list[dict[str, Any]]:
            return [{"name": c.name, "n": c.n, "previous": c.previous} for c in cs]

        return {
            "total": self.total, "previous_total": self.previous_total, "change_pct": self.change_pct,
            "by_kind": counts(self.by_kind), "by_zone": counts(self.by_zone), "by_camera": counts(self.by_camera),
            "by_day": [{"day": d.isoformat(), **k} for d, k in self.by_day],
            "by_status": dict(self.by_status), "open": self.open, "closed": self.closed,
            "false_alarms": self.false_alarms, "time_to_close_median_s": self.time_to_close_median_s,
            "time_to_close_p90_s": self.time_to_close_p90_s, "closed_measured": self.closed_measured,
        }


def _t(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _counts(rows: Iterable[Mapping[str, Any]], previous: Iterable[Mapping[str, Any]], key: str) -> tuple[Count, ...]:
    def name(r: Mapping[str, Any]) -> str:
        v = r.get(key)
        return str(v) if v not in (None, "") else (NO_ZONE if key == "zone" else "(none)")

    now, before = Counter(name(r) for r in rows), Counter(name(r) for r in previous)
    # Most first; the previous period's categories stay listed (a zone that went quiet is news).
    return tuple(Count(k, now[k], before[k]) for k in sorted(set(now) | set(before), key=lambda k: (-now[k], -before[k], k)))


def close_times_s(rows: Iterable[Mapping[str, Any]]) -> list[float]:
    """Seconds from opening to closing, for incidents closed (not false alarms)."""
    out = []
    for r in rows:
        if r.get("status") == "closed" and r.get("resolved_at") and r.get("opened"):
            out.append(max(0.0, (_t(r["resolved_at"]) - _t(r["opened"])).total_seconds()))
    return out


def summarise(rows: Sequence[Mapping[str, Any]], previous: Sequence[Mapping[str, Any]], first_day: date,
              last_day: date) -> Summary:
    """The summary of ``rows`` (this period, days ``first_day`` .. ``last_day`` UTC) against ``previous``."""
    days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
    per_day: dict[date, Counter[str]] = {d: Counter() for d in days}
    for r in rows:
        d = _t(r["opened"]).date()
        if d in per_day:
            per_day[d][str(r.get("kind"))] += 1
    status = Counter(str(r.get("status")) for r in rows)
    times = close_times_s(rows)
    return Summary(
        total=len(rows), previous_total=len(previous),
        by_kind=_counts(rows, previous, "kind"), by_zone=_counts(rows, previous, "zone"),
        by_camera=_counts(rows, previous, "camera"),
        by_day=tuple((d, dict(per_day[d])) for d in days),
        by_status=dict(sorted(status.items())),
        open=sum(status[s] for s in OPEN_STATES), closed=status["closed"], false_alarms=status["false_alarm"],
        time_to_close_median_s=float(np.median(times)) if times else None,
        time_to_close_p90_s=float(np.percentile(times, 90)) if times else None,
        closed_measured=len(times),
    )


def duration_text(seconds: float | None) -> str:
    """``42 s``, ``12 min``, ``3.5 h``, ``2.1 d``; an em dash for none."""
    if seconds is None:
        return "\u2014"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


__all__ = ["Count", "NO_ZONE", "OPEN_STATES", "Summary", "close_times_s", "duration_text", "summarise"]
