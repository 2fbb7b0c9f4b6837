"""The pipeline's record in the store: every result to the ``StoreWriter``, wafers as audited events.

A record counts as stored when its ``Future`` resolves (the writer's transaction COMMITTED):
that is the acknowledgement. ``acked`` / ``failed`` count them; ``pending_ids()`` names the
frames still waiting, so a stop can say exactly what was not acknowledged. ``on_ack`` (optional)
is called with the frame id of each acknowledged record, only after its commit (on the writer
thread: keep it short); the durability benchmark uses it to say what the station promised.

A record that fails (after the writer's bounded retry) opens a *store gap*: the frames the store
refused are counted and named (``unrecorded``). The first failure calls ``on_failure`` (the
station faults in inspection flow); once the store accepts a record again, the gap is stored as
a ``store_gap`` station event with its times and size (monitoring flow goes on through it). A gap
still open at the run end is written then, if the store takes it.

While the writer retries a failed commit (``StoreWriter.on_trouble``), ``on_hold`` is called
at once (the station stops taking units: it must not keep judging units the store may never
hold), ``on_release`` when a commit succeeds again; when the retries are used up ``on_failure``
is called before the refused records fail.

Station events from the sources (stalls, freezes, reconnects: ``record_event``) go through the
writer too, submitted from the events thread so a capture thread never waits for the store.

Wafer summaries are audited events (``queries.record_event``, entity ``"wafer"``) written on a
small thread of their own, after ``writer.flush()``: the event always follows the commits of
its dies in the hash chain, and the pipeline never waits for it. Their MES messages (wafer result,
KLARF) go through the writer with a mark in ``mes_wafers``; ``start_run`` queues those a crashed
run never queued (:mod:`inspector.station.wafer_recovery`). A wafer some of whose dies the store
refused is never reported over those dies: its messages are built from the dies recorded (the
missing ones count as not inspected), in the same transaction that checks them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from inspector.core.decision import Decision, Verdict
from inspector.core.frame import Frame
from inspector.mes import outbox
from inspector.mes.hub import MesHub
from inspector.core.site.types import IncidentEvent
from inspector.station.evidence import Evidence, EvidenceRecorder
from inspector.station.inspection import WaferSummary
from inspector.station.judgement import FrameResult
from inspector.station.metrics import Metrics
from inspector.store import events as station_events
from inspector.store import incidents, queries
from inspector.store.db import open_db
from inspector.store.writer import DecisionRecord, StoreWriter

log = logging.getLogger(__name__)

STORE_IMAGES = ("all", "flagged", "none")
_MAX_ERRORS = 20
MAX_UNRECORDED = 1000  # frame ids of refused records kept by name (all are counted)


def gap_detail(count: int, first: str | None, last: str | None, error: str, accepted_again: bool,
               **more: Any) -> dict[str, Any]:
    """The detail of a ``store_gap`` event: how many units the store refused, the first and last
    of them, the first error (``more``: what a recovered gap adds)."""
    return {"frames_not_recorded": count, "first_frame": first, "last_frame": last, "error": error[:500],
            "store_accepted_again": accepted_again, **more}


def wafer_payload(summary: WaferSummary, run_id: str, config_hash: str, model_set_version: str) -> dict[str, Any]:
    """The audited content of one wafer result (its sha256 is what the audit row keeps)."""
    r = summary.result
    return {
        "run_id": run_id,
        "lot": summary.lot,
        "wafer": summary.wafer,
        "verdict": r.verdict.value,
        "signature": r.signature,
        "defect_fraction": round(float(r.defect_fraction), 6),
        "dies_seen": summary.dies_seen,
        "reasons": [{"rule_id": x.rule_id, "verdict": x.verdict.value, "message": x.message} for x in r.reasons],
        "die_map": {f"{x},{y}": v for (x, y), v in sorted(r.die_map.items())},
        "signature_dies": {k: [list(d) for d in v] for k, v in sorted(r.signature_dies.items())},
        "config_hash": config_hash,
        "model_set_version": model_set_version,
    }


class StoreSink:
    """A ``ResultSink`` (:mod:`inspector.station.sinks`) that records into the decision store.

    ``store_images``: ``all``; ``flagged`` (fail, review and error: a frame someone must look at
    keeps its evidence); ``none``. ``critical``: the pipeline stops taking frames when this sink
    fails, since decisions nobody can trace should not pile up.
    """

    name = "store"
    critical = True

    def __init__(self, writer: StoreWriter, run_id: str, class_names: Sequence[str], *,
                 store_images: str = "all", metrics: Metrics | None = None, actor: str = "station",
                 on_ack: Callable[[str], None] | None = None, mes: MesHub | None = None,
                 evidence: EvidenceRecorder | None = None,
                 on_failure: Callable[[str], None] | None = None) -> None:
        if store_images not in STORE_IMAGES:
            raise ValueError(f"store_images must be one of {', '.join(STORE_IMAGES)}, got {store_images!r}")
        self.writer = writer
        self.run_id = run_id
        self.class_names = tuple(class_names)
        self.store_images = store_images
        self.metrics = metrics
        self.actor = actor
        self.on_ack = on_ack
        # Its drafts ride in each record's transaction (the outbox).
        self.mes = mes
        # Site incidents: clips and evidence images, recorded on their incident once written.
        self.evidence = evidence
        self.evidence_jobs: list[Future] = []   # evidence -> its store job (futures of futures' results)
        self._lock = threading.Lock()
        self._pending: dict[str, Future] = {}
        self.submitted = 0
        self.acked = 0
        self.failed = 0
        self.errors: list[str] = []
        self.wafer_events: list[tuple[WaferSummary, Future]] = []
        # Called once, with the error, when the first record fails (the station faults in inspection flow).
        self.on_failure = on_failure
        self._failure_told = False
        # Called (writer thread, must not block) when a commit failed and is being retried / when
        # the store commits again: the station holds its sources meanwhile in inspection flow.
        self.on_hold: Callable[[str], None] | None = None
        self.on_release: Callable[[], None] | None = None
        self.holds = 0                     # times the store's retry held the station
        writer.on_trouble = self._store_trouble
        self.unrecorded: list[str] = []   # frames whose record the store refused (first MAX_UNRECORDED)
        self.unrecorded_span: tuple[datetime, datetime] | None = None   # times of the first and last refused
        self.gaps = 0                      # store gaps opened
        self._gap: dict[str, Any] | None = None   # the open gap: first / last refused frame, count, error
        self._events = ThreadPoolExecutor(1, thread_name_prefix="store-events")
        self._events_conn: sqlite3.Connection | None = None
        self._config_hash = ""
        self._model_set_version = ""

    # --- run bookkeeping ----------------------------------------------------------------------
    def start_run(self, station_id: str, config_hash: str, config_text: str, model_set_version: str,
                  models: Sequence[tuple[str, str, str, str | None]] = (), *, timeout: float | None = 60.0,
                  summaries: Path | None = None) -> None:
        """Record the config (by hash), every model (by sha256: name, version, sha256, path) and
        the run start; returns once committed, so a store that cannot be written fails here,
        before the first frame. ``summaries``: the folder of run summary files, from which the
        gaps of earlier runs that could not store them are recorded
        (:mod:`inspector.station.gap_recovery`)."""
        self._config_hash, self._model_set_version = config_hash, model_set_version
        futures = [self.writer.record_config(config_hash, config_text)]
        futures += [self.writer.record_model(sha, name, version, path) for name, version, sha, path in models]
        futures.append(self.writer.record_run_start(self.run_id, station_id, config_hash=config_hash,
                                                    model_set_version=model_set_version))
        for f in futures:
            f.result(timeout)
        if summaries is not None:
            self._recover_gaps(summaries, station_id, timeout)
        self._recover_wafer_messages(station_id, timeout)

    def _recover_gaps(self, summaries: Path, station_id: str, timeout: float | None) -> None:
        from inspector.station.gap_recovery import recover_gaps

        run, actor = self.run_id, self.actor
        try:
            self.writer.submit_job(lambda conn: recover_gaps(conn, summaries, station_id, run, actor=actor),
                                   "store gaps of earlier runs").result(timeout)
        except Exception as e:  # noqa: BLE001 - retried at the next start; this run must still record
            self._report(f"store gaps of earlier runs not recorded (retried at the next start): "
                         f"{type(e).__name__}: {e}", "event_errors")

    def _recover_wafer_messages(self, station_id: str, timeout: float | None) -> None:
        # A run that crashed before judging its last wafer left that wafer without its MES
        # messages; queue them now (inspector.station.wafer_recovery). A failure here is reported
        # and retried at the next start; it must not keep this run from recording.
        if self.mes is None or not self.mes.wafer_level:
            return
        from inspector.station.wafer_recovery import recover_wafers

        hub = self.mes
        try:
            self.writer.submit_job(lambda conn: recover_wafers(conn, hub, station_id, self.run_id),
                                   "wafer-level MES messages of crashed runs").result(timeout)
        except Exception as e:  # noqa: BLE001
            self._mes_error(f"wafer-level messages of crashed runs not recovered (retried at the next start): "
                            f"{type(e).__name__}: {e}")

    def end_run(self, timeout: float | None = 60.0, *, fault: str | None = None) -> None:
        """Wait for the wafer and station events and the incidents' evidence, then record the run end
        (the last audit row of the run). A store gap still open is written first, if the store takes it.
        ``fault``: the run ended faulted (why); recorded with the end, so that the next start sends
        the wafers this run could not (:mod:`inspector.station.wafer_recovery`)."""
        with self._lock:
            gap, self._gap = self._gap, None
        if gap is not None:
            self._events.submit(self._write_gap, gap, False)
        self._events.submit(lambda: None).result(timeout)
        if self.evidence is not None:
            for fut in self.evidence.finish():
                self._evidence_done(fut)
            self.wait_evidence(timeout)
        detail = None if fault is None else {"reason": fault[:1000], "records_refused": self.failed,
                                             "recorded": self.acked}
        self.writer.record_run_end(self.run_id, fault=detail).result(timeout)

    # --- per frame ----------------------------------------------------------------------------
    def accept_result(self, result: FrameResult) -> Future:
        """Submit one record (blocks while the writer's queue is full: back-pressure)."""
        f, d = result.frame, result.decision
        image = needs_image(self.store_images, d.verdict)
        events = result.site.events if result.site is not None else ()
        rec = DecisionRecord(f, d, list(result.per_model) if result.per_model is not None else None,
                             self.run_id, self.class_names, image=image,
                             outbox=self._drafts(f, d) + self._incident_drafts(events), incidents=events)
        t0 = time.monotonic()
        future = self.writer.submit(rec)
        with self._lock:
            self.submitted += 1
            self._pending[f.frame_id] = future
        future.add_done_callback(lambda fut: self._acked(f, t0, fut, d))
        if self.evidence is not None:
            try:
                for done in self.evidence.observe(result):
                    self._evidence_done(done)
            except Exception as e:  # noqa: BLE001 - evidence must never cost the station its record
                self._report(f"evidence: frame {f.frame_id} not taken: {type(e).__name__}: {e}", "evidence_errors")
        return future

    # --- incidents ----------------------------------------------------------------------------
    def accept_events(self, events: Sequence[IncidentEvent]) -> Future | None:
        """Incident events tied to no frame (a run's end closes what is open): applied with their
        MES messages in one writer transaction; the evidence of every open incident is completed."""
        if not events and self.evidence is None:
            return None
        fut = None
        if events:
            drafts = self._incident_drafts(events)
            run, actor = self.run_id, self.actor
            msv, cfg_hash = self._model_set_version, self._config_hash

            def apply(conn: sqlite3.Connection) -> list[int]:
                ids = incidents.apply_events(conn, events, run_id=run, model_set_version=msv, config_hash=cfg_hash,
                                             actor=actor)
                outbox.enqueue(conn, drafts)
                return ids

            fut = self.writer.submit_job(apply, f"{len(events)} incident event(s) at run end")
            fut.add_done_callback(lambda f: f.exception() and self._report(f"store: {f.exception()}", "store_failed"))
        if self.evidence is not None:
            for done in self.evidence.finish(events):
                self._evidence_done(done)
        return fut

    def _incident_drafts(self, events: Sequence[IncidentEvent]) -> tuple:
        if self.mes is None or not events:
            return ()
        try:
            return tuple(self.mes.incident_drafts(events))
        except Exception as e:  # noqa: BLE001 - the incidents are still recorded; the gap is reported loudly
            self._mes_error(f"no outbox message for incident events {[x.key for x in events]}: "
                            f"{type(e).__name__}: {e}")
            return ()

    def _evidence_done(self, fut: Future) -> None:
        # On the encoder thread: the evidence goes through the writer like any record.
        def record(f: Future) -> None:
            try:
                ev: Evidence = f.result()
                job = self.writer.submit_job(
                    lambda conn: incidents.record_evidence(conn, ev.key, clip_path=ev.clip_path,
                                                           clip_sha256=ev.clip_sha256, images=ev.images,
                                                           actor=self.actor),
                    f"evidence of incident {ev.key}")
            except Exception as e:  # noqa: BLE001
                self._report(f"evidence not recorded: {type(e).__name__}: {e}", "evidence_errors")
                return
            job.add_done_callback(lambda j: j.exception() and self._report(
                f"evidence of incident {ev.key} not recorded: {j.exception()}", "evidence_errors"))
            with self._lock:
                self.evidence_jobs.append(job)
            if ev.error:
                self._report(f"evidence of incident {ev.key}: {ev.error}", "evidence_errors")

        with self._lock:
            self.evidence_jobs.append(fut)
        fut.add_done_callback(record)

    def wait_evidence(self, timeout: float | None = None) -> None:
        """Return once every finished incident's evidence is written and recorded (or failed)."""
        seen = 0
        while True:
            with self._lock:
                jobs = self.evidence_jobs[seen:]
            if not jobs:
                return
            for j in jobs:
                try:
                    j.result(timeout)
                except Exception:  # noqa: BLE001 - reported by its callback
                    pass
            seen += len(jobs)

    def _report(self, msg: str, counter: str) -> None:
        log.error(msg)
        if self.metrics is not None:
            self.metrics.error(msg)
            self.metrics.count(counter)

    def _drafts(self, frame: Frame, decision: Decision) -> tuple:
        if self.mes is None:
            return ()
        try:
            return tuple(self.mes.drafts(frame, decision))
        except Exception as e:  # noqa: BLE001 - the decision is still recorded; the gap is reported loudly
            msg = f"mes: no outbox message for frame {frame.frame_id}: {type(e).__name__}: {e}"
            log.error(msg)
            if self.metrics is not None:
                self.metrics.error(msg)
                self.metrics.count("mes_errors")
            return ()

    def _acked(self, frame: Frame, t_submit: float, fut: Future, decision: Decision | None = None) -> None:
        now = time.monotonic()
        err = fut.exception()
        opened = closed = None
        with self._lock:
            self._pending.pop(frame.frame_id, None)
            if err is None:
                self.acked += 1
                if self._gap is not None:
                    closed, self._gap = self._gap, None
            else:
                self.failed += 1
                self.errors.append(str(err))
                del self.errors[:-_MAX_ERRORS]
                if len(self.unrecorded) < MAX_UNRECORDED:
                    self.unrecorded.append(frame.frame_id)
                span = self.unrecorded_span
                self.unrecorded_span = (frame.t_utc, frame.t_utc) if span is None else \
                    (min(span[0], frame.t_utc), max(span[1], frame.t_utc))
                if self._gap is None:
                    self.gaps += 1
                    opened = self._gap = {"t": frame.t_utc, "first": frame.frame_id, "n": 0, "error": str(err)}
                self._gap["n"] += 1
                self._gap.update(t_end=frame.t_utc, last=frame.frame_id)
        if opened is not None:
            self._gap_opened(opened, err)
        if closed is not None:
            if self.metrics is not None:
                self.metrics.event("store_gap", None, closed["t_end"], end=True)
            self._events.submit(self._write_gap, closed, True)
        if err is None and self.mes is not None and decision is not None:
            try:
                self.mes.committed(frame, decision)
            except Exception as e:  # noqa: BLE001
                log.warning("mes: committed() failed for frame %s: %s", frame.frame_id, e)
        if err is None and self.on_ack is not None:
            try:
                self.on_ack(frame.frame_id)
            except Exception as e:  # noqa: BLE001 - a listener must not cost the record its bookkeeping
                log.warning("store: on_ack failed for frame %s: %s", frame.frame_id, e)
        if self.metrics is not None:
            if err is None:
                self.metrics.observe("ack", now - t_submit)
                self.metrics.observe("end_to_end", max(0.0, now - frame.t_monotonic))
            else:
                self.metrics.error(f"store: {err}")
                self.metrics.count("store_failed")

    def _gap_opened(self, gap: Mapping[str, Any], err: BaseException) -> None:
        # On the writer thread: the listener must not block (Pipeline.fault does not).
        msg = f"the store refused the record of frame {gap['first']} ({err})"
        log.error("store gap opened: %s", msg)
        if self.metrics is not None:
            self.metrics.event("store_gap", None, gap["t"])
        self._tell_failure(msg)

    def _tell_failure(self, msg: str) -> None:
        with self._lock:
            told, self._failure_told = self._failure_told, True
        if told or self.on_failure is None:
            return
        try:
            self.on_failure(msg)
        except Exception as e:  # noqa: BLE001 - the failure is still counted and reported
            log.error("store: on_failure failed: %s: %s", type(e).__name__, e)

    def _store_trouble(self, state: str, err: BaseException | None) -> None:
        """The writer's ``on_trouble`` (writer thread): hold, release, or give up."""
        try:
            if state == "retrying":
                if self.on_hold is not None:  # first: the sources stop now, the bookkeeping can wait
                    self.on_hold(f"the store is retrying a failed commit ({err})")
                self.holds += 1
                log.warning("store: a commit to %s failed (%s); taking no new unit while it is retried",
                            self.writer.db_path, err)
                if self.metrics is not None:
                    self.metrics.count("store_holds")
            elif state == "recovered":
                log.warning("store: %s commits again", self.writer.db_path)
                if self.on_release is not None:
                    self.on_release()
            elif state == "failed":
                self._tell_failure(f"the store {self.writer.db_path} refused a commit after its retries ({err})")
        except Exception as e:  # noqa: BLE001 - the writer goes on; the record failures still tell
            log.error("store: %s listener failed: %s: %s", state, type(e).__name__, e)

    def _write_gap(self, gap: Mapping[str, Any], recovered: bool) -> None:
        """On the events thread: the gap as one ``store_gap`` event (times of the first and last
        refused frame, how many, the first error)."""
        detail = gap_detail(gap["n"], gap["first"], gap["last"], gap["error"], recovered)
        self._submit_event("store_gap", gap["t"], None, detail, t_end=gap["t_end"])

    # --- station events -----------------------------------------------------------------------
    def record_event(self, kind: str, t: datetime, source: str | None = None, *, end: bool = False,
                     detail: Mapping[str, Any] | None = None) -> None:
        """A station event begins (or ``end``: the open one of this source and kind ends at ``t``);
        never blocks the caller (a capture thread): it is handed to the writer from the events thread."""
        try:
            if end:
                self._events.submit(self._submit_event_end, kind, t, source, dict(detail or {}))
            else:
                self._events.submit(self._submit_event, kind, t, source, dict(detail or {}))
        except RuntimeError as e:  # the sink is closed: the run is over
            log.warning("station event %s of %s at %s after the store closed; not recorded (%s)", kind, source, t, e)

    def _submit_event(self, kind: str, t: datetime, source: str | None, detail: Mapping[str, Any], *,
                      t_end: datetime | None = None) -> None:
        run, actor = self.run_id, self.actor
        self._submit_job(lambda conn: station_events.record_event(conn, run, kind, t, source=source, t_end=t_end,
                                                                  detail=detail, actor=actor),
                         f"{kind} event of {source or 'the station'} at {t.isoformat()}")

    def _submit_event_end(self, kind: str, t: datetime, source: str | None, detail: Mapping[str, Any]) -> None:
        run, actor = self.run_id, self.actor
        self._submit_job(lambda conn: station_events.end_event(conn, run, source, kind, t, detail=detail, actor=actor),
                         f"end of the {kind} event of {source or 'the station'} at {t.isoformat()}")

    def _submit_job(self, apply: Callable[[sqlite3.Connection], Any], what: str) -> None:
        try:
            fut = self.writer.submit_job(apply, what)
        except Exception as e:  # noqa: BLE001
            self._report(f"store: {what} not recorded: {type(e).__name__}: {e}", "event_errors")
            return
        fut.add_done_callback(lambda f: f.exception() and self._report(
            f"store: {what} not recorded: {f.exception()}", "event_errors"))

    def pending_ids(self) -> list[str]:
        """Frames submitted but not acknowledged yet."""
        with self._lock:
            return list(self._pending)

    def flush(self, timeout: float | None = None) -> None:
        """Return once every record submitted so far is committed (or failed)."""
        self.writer.flush(timeout)

    # --- wafers -------------------------------------------------------------------------------
    def accept_wafer(self, summary: WaferSummary) -> Future:
        """Audit one wafer result after its dies are committed; the future gives the audit seq."""
        payload = wafer_payload(summary, self.run_id, self._config_hash, self._model_set_version)
        self._queue_wafer_messages(summary)
        fut = self._events.submit(self._write_wafer, summary, payload)
        with self._lock:
            self.wafer_events.append((summary, fut))
        return fut

    def _queue_wafer_messages(self, summary: WaferSummary) -> None:
        # Through the writer queue, on the record thread: the wafer's messages follow its dies in
        # the outbox (and precede the next wafer's), like the dies in the writer's order. The wafer
        # is marked in the same transaction (even without MES outputs, so that outputs added later
        # do not resend old wafers): a start after a crash queues only unmarked wafers.
        what = f"wafer {summary.lot}/{summary.wafer} MES messages"
        try:
            drafts = tuple(self.mes.wafer_drafts(summary)) if self.mes is not None else ()
        except Exception as e:  # noqa: BLE001 - left unmarked: if the run crashes, the next start retries
            self._mes_error(f"{what} not queued: {type(e).__name__}: {e}")
            return
        run, lot, wafer = self.run_id, str(summary.lot), str(summary.wafer)
        hub, cfg_hash, msv = self.mes, self._config_hash, self._model_set_version

        def apply(conn: sqlite3.Connection) -> None:
            # Never a result over dies the store does not hold: checked in this transaction, which
            # follows every die of the wafer in the writer's order.
            from inspector.station.wafer_recovery import judge_recorded, recorded_dies

            out, how = drafts, "live"
            if hub is not None and drafts and (n := recorded_dies(conn, run, lot, wafer)) < summary.dies_seen:
                run_hub = hub.for_run(run, cfg_hash, msv)
                rebuilt, out = judge_recorded(conn, run_hub, run_hub.cfg, run, lot, wafer)
                how = "recovered"
                log.error("mes: wafer %s/%s: %d of its %d dies are recorded; its wafer-level messages are built "
                          "from those (the rest counts as not inspected)%s", lot, wafer, n, summary.dies_seen,
                          "" if rebuilt is not None else ": none is, so nothing is sent")
                if rebuilt is None:
                    return
            outbox.enqueue(conn, out)
            outbox.mark_wafer(conn, run, lot, wafer, how)

        try:
            fut = self.writer.submit_job(apply, what)
            fut.add_done_callback(lambda f: f.exception() and self._mes_error(f"{what}: {f.exception()}"))
        except Exception as e:  # noqa: BLE001
            self._mes_error(f"{what} not queued: {type(e).__name__}: {e}")

    def _mes_error(self, msg: str) -> None:
        log.error("mes: %s", msg)
        if self.metrics is not None:
            self.metrics.error(f"mes: {msg}")
            self.metrics.count("mes_errors")

    def _write_wafer(self, summary: WaferSummary, payload: Mapping[str, Any]) -> int:
        try:
            self.writer.flush()  # the dies first: the event follows them in the audit chain
            if self._events_conn is None:
                self._events_conn = open_db(self.writer.db_path)
            return queries.record_event(self._events_conn, actor=self.actor, action="wafer.judged", entity="wafer",
                                        entity_id=f"{summary.lot}/{summary.wafer}", payload=payload)
        except Exception as e:
            msg = f"wafer {summary.lot}/{summary.wafer}: result not recorded in {self.writer.db_path}: {e}"
            log.error(msg)
            if self.metrics is not None:
                self.metrics.error(f"store: {msg}")
            raise

    def close(self, timeout: float | None = None) -> None:
        """Finish the wafer events, close their connection, then the writer (waits for every commit)."""
        def _close_conn() -> None:
            if self._events_conn is not None:
                self._events_conn.close()
                self._events_conn = None

        try:
            self._events.submit(_close_conn).result(timeout)
            if self.evidence is not None:
                self.evidence.close(timeout)  # its last records reach the writer before it closes
                self.wait_evidence(timeout)
        finally:
            self._events.shutdown(wait=True)
            self.writer.close(timeout)


def store_counts(sink: StoreSink) -> dict[str, Any]:
    """Acknowledgement counts for summaries and metrics gauges."""
    return {"submitted": sink.submitted, "acked": sink.acked, "failed": sink.failed,
            "pending": len(sink.pending_ids())}


def needs_image(policy: str, verdict: Verdict) -> bool:
    """Whether ``storage.store_images`` keeps the image of a frame with this verdict."""
    return policy == "all" or (policy == "flagged" and verdict.needs_human)


__all__ = ["MAX_UNRECORDED", "STORE_IMAGES", "StoreSink", "gap_detail", "needs_image", "store_counts",
           "wafer_payload"]
