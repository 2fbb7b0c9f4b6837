"""Queue the wafer-level MES messages (wafer result, KLARF) a crashed run never queued.

A wafer is judged when the next wafer starts or the run ends, so a station that stops abruptly
leaves its last wafer (and any wafer whose messages were still in the writer's queue) with dies
in the store but no wafer-level message. At the next start, :func:`recover_wafers` finds those
wafers in runs of this station that never ended (``runs.ended`` is NULL) and have no mark in
``mes_wafers``, rebuilds each one's die decisions from the store, judges it with the same wafer
rules a clean stop would have used (missing dies count as not inspected, so a partial wafer goes
to review), and queues its messages under the crashed run's id, *with* its mark, in one
transaction. The idempotency keys (``station/run/wafer/...``) and the mark make it safe to run
any number of times: a wafer is queued exactly once.

A run that *ended* faulted (the store refused records, then took the run end once space came
back: ``run.faulted`` in the audit, :meth:`StoreWriter.record_run_end`) is recovered the same way:
the wafer being inspected at the fault had its messages refused with its dies, so it is judged
from the dies the store holds (the rest counts as not inspected) and queued once. A run that
ended cleanly is never looked at: all its wafers were marked live.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import datetime

import numpy as np

from inspector.config.schema import StationConfig
from inspector.core.decision import Decision, Reason, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.mes import outbox
from inspector.mes.hub import MesHub
from inspector.station.inspection import WaferSummary, WaferTracker
from inspector.store.writer import runs_not_ended_cleanly

log = logging.getLogger(__name__)

_PIXEL = np.zeros((), np.uint8)  # frames are rebuilt without pixels: only their size is used


def die_records(conn: sqlite3.Connection, run_id: str, lot: str, wafer: str) -> Iterator[tuple[Frame, Decision]]:
    """The recorded dies of one wafer as (frame, decision), in the order they were stored."""
    rows = conn.execute(
        "SELECT f.id, f.station_id, f.source, f.t_utc, f.width, f.height, f.context, f.lot, d.verdict, d.reasons,"
        " d.model_set_version, d.config_hash, d.t_decided, d.error FROM frames f JOIN decisions d ON d.frame_id = f.id"
        " WHERE f.run_id = ? AND f.wafer = ? AND f.die_x IS NOT NULL ORDER BY f.rowid", (run_id, wafer)).fetchall()
    for (fid, station, source, t_utc, w, h, context, flot, verdict, reasons, msv, chash, t_decided, error) in rows:
        if (flot or "") != lot:
            continue
        det = conn.execute("SELECT x0, y0, x1, y1, score, class_id, support FROM detections"
                           " WHERE frame_id = ? AND model_index = -1 ORDER BY idx", (fid,)).fetchall()
        kept = (Detections([r[:4] for r in det], [r[4] for r in det], [r[5] for r in det],
                           support=[r[6] for r in det]) if det else Detections.empty())
        frame = Frame(fid, station, source, 0.0, datetime.fromisoformat(t_utc),
                      np.broadcast_to(_PIXEL, (int(h), int(w))), json.loads(context))
        why = tuple(Reason(r["rule_id"], Verdict(r["verdict"]), r.get("message", ""),
                           tuple(r.get("detection_indices", ()))) for r in json.loads(reasons))
        yield frame, Decision(fid, Verdict(verdict), why, kept, msv, chash, datetime.fromisoformat(t_decided), error)


def _run_config(conn: sqlite3.Connection, config_hash: str | None, current: StationConfig) -> StationConfig:
    """The crashed run's own config (its wafer rules and geometry), or the current one when that
    one is not stored or no longer reads with this schema."""
    if not config_hash:
        return current
    row = conn.execute("SELECT text FROM configs WHERE hash = ?", (config_hash,)).fetchone()
    if row is None:
        return current
    try:
        from inspector.config import load_config_text

        return load_config_text(row[0], f"config {config_hash[:12]}")
    except Exception as e:  # noqa: BLE001 - an old config must not block the recovery
        log.warning("mes recovery: config %s of the crashed run does not load (%s); using the current one",
                    config_hash[:12], e)
        return current


def recorded_dies(conn: sqlite3.Connection, run_id: str, lot: str, wafer: str) -> int:
    """Distinct die positions of one wafer with a committed decision (what the store can vouch for)."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM (SELECT DISTINCT f.die_x, f.die_y FROM frames f JOIN decisions d ON d.frame_id = f.id"
        " WHERE f.run_id = ? AND f.wafer = ? AND COALESCE(f.lot, '') = ? AND f.die_x IS NOT NULL)",
        (run_id, wafer, lot)).fetchone()[0])


def judge_recorded(conn: sqlite3.Connection, run_hub: MesHub, cfg: StationConfig, run_id: str, lot: str,
                   wafer: str) -> tuple[WaferSummary | None, tuple]:
    """One wafer judged from its recorded dies only (missing dies count as not inspected) and its
    wafer-level messages built by ``run_hub`` (a ``MesHub.for_run`` copy: its own defect collector);
    (None, ()) when no die of it is recorded."""
    tracker = WaferTracker(cfg)  # the live path's judgement, fed the same dies in the same order
    for frame, decision in die_records(conn, run_id, lot, wafer):
        if run_hub.collector is not None:
            run_hub.collector.add(frame, decision)
        tracker.add(frame, decision)
    summary = tracker.flush()
    if summary is None:
        return None, ()
    return summary, tuple(run_hub.wafer_drafts(summary))


def recover_wafers(conn: sqlite3.Connection, hub: MesHub | None, station_id: str,
                   current_run: str) -> list[tuple[str, str, str]]:
    """Queue the wafer-level messages of every unmarked wafer of a crashed run, or of a run that
    ended faulted (call inside a transaction: the messages and their marks commit together);
    returns the (run, lot, wafer) queued."""
    if hub is None or not hub.wafer_level or hub.cfg.wafer is None:
        return []
    done: list[tuple[str, str, str]] = []
    runs = {run: (config_hash, msv, ended)
            for run, _, ended, config_hash, msv in runs_not_ended_cleanly(conn, station_id, current_run)}
    for run_id, lot, wafer in outbox.unmarked_wafers(conn, list(runs)):
        config_hash, msv, ended = runs[run_id]
        cfg = _run_config(conn, config_hash, hub.cfg)
        if cfg.wafer is None:
            cfg = hub.cfg
        run_hub = hub.for_run(run_id, config_hash or "", msv or "", cfg)
        summary, drafts = judge_recorded(conn, run_hub, cfg, run_id, lot, wafer)
        if summary is None:  # no die of this wafer has a decision: nothing to judge
            continue
        outbox.enqueue(conn, drafts)
        outbox.mark_wafer(conn, run_id, lot, wafer, "recovered")
        log.warning("mes recovery: run %s %s before wafer %s/%s was sent; its wafer-level messages are "
                    "queued now (%d of its dies recorded)", run_id, "stopped" if ended is None else "faulted",
                    lot, wafer, summary.dies_seen)
        done.append((run_id, lot, wafer))
    return done


__all__ = ["die_records", "judge_recorded", "recorded_dies", "recover_wafers"]
