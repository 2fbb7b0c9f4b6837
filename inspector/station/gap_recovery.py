"""Store the ``store_gap`` of a run that could not store it itself.

In inspection flow a full disk faults the station with its store still full: the run's own
``store_gap`` event (and often its run end) is refused like the records were, so the database is
left without a word about the units it never held. The run summary file
(``<data>/runs/<run>.json``) names them (``unrecorded``). At the next start,
:func:`recover_gaps` finds runs of this station that never ended or ended faulted and have no
``store_gap`` event, reads their summary file, and stores the gap it names, with
``recovered_from`` saying where the count came from. A frame the store does hold is never named
as refused. Runs without a summary file (killed) refused nothing: there is nothing to store.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from inspector.station.store_sink import MAX_UNRECORDED, gap_detail
from inspector.store import events as station_events
from inspector.store.writer import runs_not_ended_cleanly

log = logging.getLogger(__name__)


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("store gap recovery: run summary %s does not read (%s); its gap, if any, stays unrecorded", path, e)
        return None
    return data if isinstance(data, dict) else None


def _time(value: Any, fallback: str) -> datetime:
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        t = datetime.fromisoformat(fallback)
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def recover_gaps(conn: sqlite3.Connection, summaries: Path, station_id: str, current_run: str, *,
                 actor: str = "station") -> list[int]:
    """Store the gap of every run of this station that ended faulted or never ended, has no
    ``store_gap`` event and whose summary file counts refused units (call inside a transaction);
    returns the new events' ids."""
    gapped = {r[0] for r in conn.execute("SELECT DISTINCT run_id FROM station_events WHERE kind = 'store_gap'")}
    done: list[int] = []
    for run_id, started, *_ in runs_not_ended_cleanly(conn, station_id, current_run):
        if run_id in gapped:
            continue
        path = summaries / f"{run_id}.json"
        summary = _summary(path)
        if summary is None or summary.get("run_id") != run_id:
            continue
        unrecorded = summary.get("unrecorded") or {}
        try:
            count = int(unrecorded.get("count") or 0)
        except (TypeError, ValueError):
            count = 0
        if count <= 0:
            continue
        named = [f for f in unrecorded.get("frames") or () if isinstance(f, str)][:MAX_UNRECORDED]
        held = {r[0] for r in conn.execute(
            f"SELECT frame_id FROM decisions WHERE frame_id IN ({','.join('?' * len(named))})", named)} if named else set()
        if held:  # a summary that names recorded frames is not the station's account: keep the store as it is
            log.error("store gap recovery: %s names %d frame(s) the store holds (first %s); not recorded",
                      path, len(held), sorted(held)[0])
            continue
        detail = gap_detail(count, named[0] if named else None, named[-1] if named else None,
                            str(summary.get("fault") or ""), True, frames=named, recovered_from=str(path))
        t = _time(unrecorded.get("t_first"), started)
        t_end = _time(unrecorded.get("t_last"), started)
        done.append(station_events.record_event(conn, run_id, "store_gap", t, t_end=max(t, t_end), detail=detail,
                                                actor=actor))
        log.warning("store gap recovery: run %s ended with %d unit(s) the store refused; the gap is recorded now "
                    "from %s", run_id, count, path)
    return done


__all__ = ["recover_gaps"]
