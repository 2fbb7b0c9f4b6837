"""The single writer thread: batches decision records into durable transactions.

A record's future resolves only after the transaction holding it COMMITTED (with
``synchronous=FULL``): that is the station's acknowledgement. A batch that fails is rolled back
and retried one record per transaction, so one bad record (a frame id already stored) fails alone
with a clear error and every other accepted record is still written. Before that, a batch that
fails on a transient SQLite error (disk full, I/O error, locked) is retried as a whole a bounded
number of times (``retry_delays``): only then do its records count as failed.

``on_trouble(state, error)`` (optional, called on the writer thread: keep it short, never block)
tells a listener about a failing store as it happens: ``"retrying"`` when a commit failed and is
about to be retried (the station stops taking units then, not after the whole retry window),
``"recovered"`` when a commit succeeds again after that, ``"failed"`` when the retries are used
up (the batch's records are about to fail).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from inspector.core.decision import Decision
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent
from inspector.store import audit
from inspector.store.db import StoreError, end_run, insert_config, insert_model, insert_run, open_db
from inspector.store.images import ImageStore
from inspector.store.incidents import apply_events
from inspector.util.canonical import canonical_json, iso_utc

log = logging.getLogger(__name__)

_CONTEXT_COLUMNS = ("lot", "wafer", "die_x", "die_y", "camera", "zone")
# The audit row that says a run ended faulted (StoreWriter.record_run_end(fault=...)).
RUN_FAULTED, RUN_FAULT_ENTITY = "run.faulted", "run"


def runs_not_ended_cleanly(conn: sqlite3.Connection, station_id: str, exclude_run: str) -> list[tuple]:
    """Runs of this station but ``exclude_run`` that never ended (killed) or ended faulted, as
    (id, started, ended, config_hash, model_set_version): what start-up recoveries look at."""
    return conn.execute(
        "SELECT id, started, ended, config_hash, model_set_version FROM runs WHERE station_id = ? AND id != ? AND"
        " (ended IS NULL OR id IN (SELECT entity_id FROM audit WHERE entity = ? AND action = ?))",
        (station_id, exclude_run, RUN_FAULT_ENTITY, RUN_FAULTED)).fetchall()


class RecordError(StoreError):
    """One record could not be stored; the message names its frame."""


@dataclass(frozen=True)
class DecisionRecord:
    """What the station hands to the store for one frame."""

    frame: Frame
    decision: Decision
    per_model: list[Detections] | None
    run_id: str
    class_names: Sequence[str]
    image: bool = True  # store the frame's image (the station's storage.store_images policy decides)
    # MES messages for this unit (opaque to the store): the writer's ``outbox_hook`` inserts them in
    # the decision's own transaction, so a committed decision never lacks its outbound message.
    outbox: Sequence[Any] = ()
    # Incident events this frame caused (construction site): applied in the decision's transaction
    # (inspector.store.incidents.apply_event), so an accepted incident is as durable as its decision.
    incidents: Sequence[IncidentEvent] = ()


@dataclass(frozen=True)
class Stored:
    """The acknowledgement of one committed record."""

    frame_id: str
    audit_seq: int
    image_sha256: str | None
    image_path: str | None
    image_error: str | None = None  # the image could not be written; the decision still was


# Called inside the record's transaction (after its rows) when ``DecisionRecord.outbox`` is not
# empty; raising rolls the decision back with it (inspector.mes.outbox.write_drafts).
OutboxHook = Callable[[sqlite3.Connection, DecisionRecord, Stored], None]


# --------------------------------------------------------------------------------------------
# Record -> rows (plain functions)
# --------------------------------------------------------------------------------------------


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def frame_row(frame: Frame, run_id: str, image_sha256: str | None, image_path: str | None) -> tuple:
    ctx = dict(frame.context)
    indexed = [ctx.get(k) for k in _CONTEXT_COLUMNS]
    lot, wafer, die_x, die_y, camera, zone = indexed
    return (frame.frame_id, run_id, frame.station_id, frame.source, iso_utc(frame.t_utc), image_sha256, image_path,
            frame.width, frame.height, canonical_json(ctx),
            None if lot is None else str(lot), None if wafer is None else str(wafer),
            _int_or_none(die_x), _int_or_none(die_y),
            None if camera is None else str(camera), None if zone is None else str(zone))


def detection_rows(frame_id: str, model_index: int, det: Detections, class_names: Sequence[str]) -> list[tuple]:
    n = len(det)
    if not n:
        return []
    xyxy = det.xyxy.tolist()
    cls = det.class_id.tolist()
    names = [class_names[c] if 0 <= c < len(class_names) else None for c in cls]
    return list(zip([frame_id] * n, [model_index] * n, range(n), *zip(*xyxy), det.score.tolist(), cls, names,
                    det.support.tolist()))


def decision_row(d: Decision) -> tuple:
    reasons = [{"rule_id": r.rule_id, "verdict": r.verdict.value, "message": r.message,
                "detection_indices": list(r.detection_indices)} for r in d.reasons]
    return (d.frame_id, d.verdict.value, canonical_json(reasons), d.model_set_version, d.config_hash,
            iso_utc(d.t_decided), d.error, canonical_json(d.extras))


def write_record(conn: sqlite3.Connection, rec: DecisionRecord, image_sha256: str | None = None,
                 image_path: str | None = None, *, actor: str = "station") -> int:
    """Insert one record's frame, detections, decision and audit row, then its incident events
    (inside a transaction); returns the decision's audit seq."""
    f, d = rec.frame, rec.decision
    if f.frame_id != d.frame_id:
        raise RecordError(f"frame {f.frame_id!r}: its decision is for frame {d.frame_id!r}")
    if conn.execute("SELECT 1 FROM frames WHERE id = ?", (f.frame_id,)).fetchone():
        raise RecordError(f"frame {f.frame_id!r} is already stored (duplicate frame id); this record was not written")
    if not conn.execute("SELECT 1 FROM runs WHERE id = ?", (rec.run_id,)).fetchone():
        # A run nobody announced still gets a row: losing the decision over it would be worse.
        insert_run(conn, rec.run_id, f.station_id, started=f.t_utc, actor=actor)
    conn.execute("INSERT INTO frames (id, run_id, station_id, source, t_utc, image_sha256, image_path, width, height,"
                 " context, lot, wafer, die_x, die_y, camera, zone) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                 frame_row(f, rec.run_id, image_sha256, image_path))
    rows = detection_rows(f.frame_id, -1, d.detections, rec.class_names)
    for i, det in enumerate(rec.per_model or ()):
        rows += detection_rows(f.frame_id, i, det, rec.class_names)
    if rows:
        conn.executemany("INSERT INTO detections (frame_id, model_index, idx, x0, y0, x1, y1, score, class_id,"
                         " class_name, support) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("INSERT INTO decisions (frame_id, verdict, reasons, model_set_version, config_hash, t_decided,"
                 " error, extras) VALUES (?,?,?,?,?,?,?,?)", decision_row(d))
    seq = audit.append(conn, actor=actor, action="decision.record", entity="decisions", entity_id=f.frame_id)
    if rec.incidents:
        apply_events(conn, rec.incidents, run_id=rec.run_id, model_set_version=d.model_set_version,
                     config_hash=d.config_hash, actor=actor)
    return seq


# --------------------------------------------------------------------------------------------
# The writer thread
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    apply: Callable[[sqlite3.Connection], Any]   # runs inside the batch transaction
    what: str                                    # names the record in errors
    future: Future = field(default_factory=Future)
    prepare: Callable[[], None] | None = None    # runs once, before the transaction (image files)
    marker: bool = False                         # a flush: ends the batch being collected


_STOP = object()
# SQLite result codes (prefix of ``sqlite_errorname``) worth a bounded retry of the same batch.
_TRANSIENT = (["SQLITE", "FULL"], ["SQLITE", "IOERR"], ["SQLITE", "BUSY"], ["SQLITE", "LOCKED"])


class StoreWriter:
    """Owns the only writing connection of the station; everything else submits to it.

    ``submit`` blocks when ``queue_max`` records are waiting (inspection never drops a unit; the
    pipeline slows down instead).
    """

    def __init__(self, db_path: str | Path, image_store: ImageStore | None = None, batch_max: int = 64,
                 batch_wait_s: float = 0.05, *, actor: str = "station", queue_max: int = 4096,
                 image_workers: int = 4, outbox_hook: OutboxHook | None = None,
                 retry_delays: Sequence[float] = (0.1, 0.5, 1.5), checkpoints: Any = None) -> None:
        if batch_max < 1:
            raise ValueError(f"batch_max must be at least 1, got {batch_max}")
        self.db_path = Path(db_path)
        self.image_store = image_store
        self.batch_max = int(batch_max)
        self.batch_wait_s = float(batch_wait_s)
        self.actor = actor
        self.outbox_hook = outbox_hook
        self.image_workers = max(1, int(image_workers))
        self._pool: ThreadPoolExecutor | None = None
        self._q: queue.Queue = queue.Queue(maxsize=queue_max)
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._opened = threading.Event()
        self._open_error: BaseException | None = None
        self.committed = 0   # records acknowledged
        self.failed = 0      # records refused
        self.batches = 0     # transactions committed
        self.retries = 0     # batch commits retried after a transient error (disk full, locked)
        self.retry_delays = tuple(float(d) for d in retry_delays)
        self._failing = False  # the last batch failed after its retries (writer thread only)
        self.checkpoints = checkpoints  # signed audit checkpoints after commits (inspector.store.checkpoints)
        self.on_trouble: Callable[[str, BaseException | None], None] | None = None
        self._troubled = False  # a commit failed and no commit succeeded since (writer thread only)

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> StoreWriter:
        if self._thread is not None:
            raise RuntimeError("StoreWriter already started")
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._opened.wait()
        if self._open_error is not None:  # report a bad path / newer schema to the caller, not a log
            self._closed = True
            raise self._open_error
        return self

    def __enter__(self) -> StoreWriter:
        return self.start() if self._thread is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float | None = None) -> None:
        """Stop accepting, write everything accepted so far, then stop the thread."""
        with self._lock:
            if self._closed:
                already = True
            else:
                already = False
                self._closed = True
                if self._thread is not None:
                    self._q.put(_STOP)
        if self._thread is not None and not already:
            self._thread.join(timeout)

    def flush(self, timeout: float | None = None) -> None:
        """Return once everything submitted before this call is committed (or failed)."""
        self._put(_Job(lambda conn: None, "flush", marker=True)).result(timeout)

    # --- submissions ----------------------------------------------------------------------------
    def submit(self, record: DecisionRecord) -> Future:
        """Queue one record; the future resolves to :class:`Stored` after its COMMIT."""
        job = _Job(lambda conn: None, f"frame {record.frame.frame_id!r}")
        image: dict[str, str | None] = {"sha": None, "path": None, "error": None}

        def prepare() -> None:
            if record.image and self.image_store is not None:
                try:
                    image["sha"], image["path"] = self.image_store.put(record.frame.image)
                except Exception as e:  # the verdict matters more than the picture: record it anyway
                    image["error"] = f"{type(e).__name__}: {e}"
                    log.warning("frame %s: image not stored: %s", record.frame.frame_id, image["error"])

        def apply(conn: sqlite3.Connection) -> Stored:
            seq = write_record(conn, record, image["sha"], image["path"], actor=self.actor)
            stored = Stored(record.frame.frame_id, seq, image["sha"], image["path"], image["error"])
            if record.outbox:
                if self.outbox_hook is None:  # silently dropping MES messages would break "delivered once"
                    raise RecordError(f"frame {record.frame.frame_id!r} carries MES outbox messages but this "
                                      "StoreWriter has no outbox_hook")
                self.outbox_hook(conn, record, stored)
            return stored

        job.apply, job.prepare = apply, prepare
        return self._put(job)

    def submit_job(self, apply: Callable[[sqlite3.Connection], Any], what: str) -> Future:
        """Run ``apply(conn)`` in a writer transaction, in submission order with the records
        (a wafer's MES messages follow its dies); the future gives its return value."""
        return self._put(_Job(apply, what))

    def record_run_start(self, run_id: str, station_id: str, *, started: datetime | None = None,
                         config_hash: str | None = None, model_set_version: str | None = None) -> Future:
        return self._put(_Job(lambda c: insert_run(c, run_id, station_id, started=started, config_hash=config_hash,
                                                   model_set_version=model_set_version, actor=self.actor),
                              f"run {run_id!r}"))

    def record_run_end(self, run_id: str, *, ended: datetime | None = None,
                       fault: Mapping[str, Any] | None = None) -> Future:
        """The run end; with ``fault`` (what went wrong) the run ended faulted: an audited
        ``run.faulted`` row (entity ``run``, the fault as payload) in the same transaction, which
        :mod:`inspector.station.wafer_recovery` reads at the next start."""
        def apply(c: sqlite3.Connection) -> None:
            if fault is not None:
                audit.append(c, actor=self.actor, action=RUN_FAULTED, entity=RUN_FAULT_ENTITY, entity_id=run_id,
                             payload=dict(fault))
            end_run(c, run_id, ended=ended, actor=self.actor)

        return self._put(_Job(apply, f"run {run_id!r}"))

    def record_config(self, config_hash: str, text: str) -> Future:
        return self._put(_Job(lambda c: insert_config(c, config_hash, text, actor=self.actor),
                              f"config {config_hash[:12]}"))

    def record_model(self, sha256: str, name: str, version: str, path: str | None) -> Future:
        return self._put(_Job(lambda c: insert_model(c, sha256, name, version, path, actor=self.actor),
                              f"model {name} {version}"))

    def _put(self, job: _Job) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"StoreWriter is closed; {job.what} was not accepted")
            if self._thread is None:
                raise RuntimeError(f"StoreWriter is not started; {job.what} was not accepted")
            self._q.put(job)  # blocks when full: back-pressure, never a drop
        return job.future

    # --- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            conn = open_db(self.db_path)
        except BaseException as e:
            self._open_error = e
            self._opened.set()
            return
        self._opened.set()
        if self.image_store is not None and self.image_workers > 1:
            # Encoding and fsyncing images dominates the write path; the encoders release the GIL.
            self._pool = ThreadPoolExecutor(self.image_workers, thread_name_prefix="store-images")
        try:
            stop = False
            while not stop:
                first = self._q.get()
                if first is _STOP:
                    break
                batch = [first]
                deadline = time.monotonic() + self.batch_wait_s
                while len(batch) < self.batch_max and not batch[-1].marker:
                    remaining = deadline - time.monotonic()
                    try:
                        nxt = self._q.get(timeout=remaining) if remaining > 0 else self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    batch.append(nxt)
                try:
                    self._write(conn, batch)
                except Exception as e:  # a bug here must not leave futures waiting forever
                    log.exception("store writer: batch failed")
                    _rollback(conn)
                    for job in batch:
                        if not job.future.done():
                            job.future.set_exception(RecordError(f"{job.what} could not be stored: {e}"))
                if self.checkpoints is not None:
                    self.checkpoints.after_commit(conn, len(batch))
        finally:
            if self._pool is not None:
                self._pool.shutdown()
            if self.checkpoints is not None:
                self.checkpoints.close(conn)  # the run's last head, signed
            conn.close()

    def _write(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
        # Files first, outside the transaction (an orphan file is harmless; prepare never raises).
        prepares = [job.prepare for job in batch if job.prepare is not None]
        if self._pool is not None and len(prepares) > 1:
            list(self._pool.map(lambda prepare: prepare(), prepares))
        else:
            for prepare in prepares:
                prepare()
        try:
            results = self._commit_retrying(conn, batch)
        except Exception as e:
            _rollback(conn)
            if len(batch) == 1:
                self._fail(batch[0], e)
                return
            # Find the culprit: one transaction per record, so every other record is still written.
            for job in batch:
                self._write_one(conn, job)
            return
        self.batches += 1
        for job, result in zip(batch, results):
            self._done(job, result)

    def _commit_retrying(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[Any]:
        # A full disk or a locked file may clear within seconds (a log rotated, a backup done):
        # retry the whole batch a bounded number of times before any record counts as failed.
        # Once a batch has used up its retries, the next ones fail at once until a commit succeeds:
        # a full disk must not cost every queued batch the whole wait.
        for delay in (*(() if self._failing else self.retry_delays), None):
            try:
                conn.execute("BEGIN IMMEDIATE")
                results = [job.apply(conn) for job in batch]
                conn.execute("COMMIT")
                self._committed_again()
                return results
            except sqlite3.OperationalError as e:
                transient = getattr(e, "sqlite_errorname", "").split("_")[:2] in _TRANSIENT
                if transient and delay is not None and not self._troubled:
                    self._troubled = True
                    self._tell("retrying", e)  # first thing: nothing new piles up behind the retry
                _rollback(conn)
                if delay is None or not transient:
                    if transient and not self._failing:
                        self._tell("failed", e)  # before its records fail: the station stops first
                    self._failing = self._failing or transient
                    raise
                self.retries += 1
                log.warning("store: %s; retrying in %g s", e, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _committed_again(self) -> None:
        self._failing = False
        if self._troubled:
            self._troubled = False
            self._tell("recovered", None)

    def _tell(self, state: str, error: BaseException | None) -> None:
        listener = self.on_trouble
        if listener is None:
            return
        try:
            listener(state, error)
        except Exception as e:  # noqa: BLE001 - a listener must not cost the records their commit
            log.error("store: on_trouble(%s) failed: %s: %s", state, type(e).__name__, e)

    def _write_one(self, conn: sqlite3.Connection, job: _Job) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = job.apply(conn)
            conn.execute("COMMIT")
        except Exception as e:
            _rollback(conn)
            self._fail(job, e)
            return
        self._committed_again()
        self.batches += 1
        self._done(job, result)

    def _fail(self, job: _Job, e: Exception) -> None:
        self.failed += 1
        err = e if isinstance(e, RecordError) else RecordError(
            f"{job.what} could not be stored: {type(e).__name__}: {e}")
        if err is not e:
            err.__cause__ = e
        log.error("store: %s", err)
        job.future.set_exception(err)

    def _done(self, job: _Job, result: Any) -> None:
        self.committed += isinstance(result, Stored)
        job.future.set_result(result)


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:  # the connection itself may be broken; the next BEGIN will tell
        pass
