"""The station pipeline: capture -> inference (ensemble + fusion) -> rules -> record, in threads.

Flow (DESIGN.md, "Modes of flow"):

- ``inspection``: bounded queues with blocking puts. A slow detector slows the source down
  (back-pressure); nothing is dropped. Every accepted frame gets exactly one ``Decision``: its
  verdict, ERROR when the model or the rules raised, NOT_INSPECTED when the pipeline had to give
  up before judging it.
- ``monitoring``: each source keeps its latest frames in the inference queue (``queue_size``
  shared out among the sources, at least one each); a new frame drops that source's OLDEST
  waiting one (the latest frame wins), counted per source, and the judge takes the sources in
  turn (:class:`~inspector.station.frame_queue.LatestPerSource`), so one camera cannot crowd out
  another. Dropped frames get no decision; only live video runs this way.

Threads: one capture worker per source, one inference worker (the rules keep state, such as
persistence, so frames are judged in order by one thread), one record worker (wafer tracking,
then every sink in order: :mod:`inspector.station.record_stage`). Each worker runs setup ->
loop -> teardown and has a stop event (:mod:`inspector.station.workers`).

The judge returns one ``Judgement`` per batch; its ``FrameResult``s go to the sinks as they are.
Once the last batch is judged, ``judge.finish()`` returns what the run's end closes (a site
judge's open incidents): its events reach every sink's ``accept_events`` after the last result.

Units a source could not read (``UnreadableFrame``: an unreadable file, an image above the size
limit) never reach the judge: they are recorded in their place in the order with the verdict and
reason the source gave.

A store that stops accepting (``fault()``, called by the store sink on the first record that
failed after the writer's bounded retry) faults the station: capture closes at once and, in
inspection flow, inference is abandoned, so nothing is judged after the failure; frames already
taken are recorded as NOT_INSPECTED (a record the store may still refuse: the store sink names
them). The state stays ``faulted`` to the end. Before that, while the store retries the failing
commit, ``hold()`` stops the capture at once (no new unit is taken behind a commit that may never
happen; at most the frame a source is returning at that moment comes in) and ``release()``
lets it go on when the retry succeeds; a hold is not a pause the operator can lift.

Stopping: ``stop()`` closes the capture, lets every accepted frame through inference and the
sinks, waits until the sinks are flushed (the store acknowledged every record), then returns.
``stop(timeout)`` that runs out abandons inference: frames still queued or inside the model are
recorded as NOT_INSPECTED; a model result that arrives later is discarded, so no frame ever gets
two decisions.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterator, Sequence

from inspector.capture.health import UnreadableFrame
from inspector.core.decision import Decision, Verdict
from inspector.core.frame import Frame
from inspector.core.ports import FrameSource
from inspector.station.frame_queue import FrameQueue, LatestPerSource, QueueClosed
from inspector.station.inspection import NotInspected, WaferSummary, WaferTracker
from inspector.station.judgement import FrameResult, Judge, Judgement
from inspector.station.metrics import Metrics
from inspector.station.record_stage import RecordStage, RunEvents
from inspector.station.sinks import ResultSink
from inspector.station.workers import POLL_S as _POLL_S
from inspector.station.workers import QueueWorker, Worker

log = logging.getLogger(__name__)

MODES = ("inspection", "monitoring")
_CAPTURE_GRACE_S = 5.0   # a source that does not return within this after close() is left behind
_RECORD_GRACE_S = 10.0   # stop(timeout): extra time the record stage gets to store what was judged
_RECORD_BATCH = 64       # results the record worker takes at a time


class CaptureWorker(Worker):
    """One source's frames into the pipeline, within the pipeline's frame reservations."""

    def __init__(self, pipeline: Pipeline, source: FrameSource, slot: int = 0) -> None:
        super().__init__(f"capture-{source.name}", pipeline._worker_failed)
        self.p = pipeline
        self.source = source
        self.slot = slot  # its own place in the monitoring queue
        self.in_put = False  # holding a frame, waiting for room: making progress, never abandoned
        self._it: Iterator[Frame] = iter(())  # the source's iterator, opened on the worker thread

    def setup(self) -> None:
        self._it = iter(self.source.frames())

    def step(self) -> bool:
        p = self.p
        if not p._wait_running(self.stop_event) or not p._reserve():
            return False
        if not p._running.is_set():  # held or paused since: take nothing now
            p._release()
            return True
        try:
            frame = next(self._it)
        except StopIteration:
            p._release()
            return False
        except BaseException:
            p._release()
            raise
        self.in_put = True
        try:
            p._accept(frame, self.slot)
        finally:
            self.in_put = False
        return True

    def teardown(self) -> None:
        try:
            self.source.close()
        finally:
            self.p._capture_finished()


class Pipeline:
    """Runs sources through a judge into sinks; see the module doc for the guarantees.

    ``frame_id_prefix`` makes stored frame ids unique per run (sources give ids that are stable
    across runs, and the store refuses a frame id it already holds). Every sink gets each result
    and each completed wafer's ``WaferSummary`` (on the record thread, in order).
    """

    def __init__(
        self,
        sources: Sequence[FrameSource],
        judge: Judge,
        *,
        config_hash: str,
        model_set_version: str,
        mode: str = "inspection",
        queue_size: int = 8,
        batch_size: int = 1,
        sinks: Sequence[ResultSink] = (),
        wafer_tracker: WaferTracker | None = None,
        metrics: Metrics | None = None,
        frame_id_prefix: str = "",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"pipeline mode must be one of {', '.join(MODES)}, got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"pipeline batch_size must be at least 1, got {batch_size}")
        if not sources:
            raise ValueError("pipeline needs at least one frame source")
        self.sources = list(sources)
        self.judge = judge
        self.config_hash = config_hash
        self.model_set_version = model_set_version
        self.mode = mode
        self.batch_size = int(batch_size)
        self.metrics = metrics or Metrics()
        self.frame_id_prefix = frame_id_prefix
        self.record_stage = RecordStage(sinks, wafer_tracker, self.metrics, on_fault=self._close_capture)
        self._in_q: FrameQueue[Frame] = (FrameQueue(queue_size, "inference queue") if mode == "inspection" else
                                         LatestPerSource(queue_size, "inference queue", len(self.sources)))
        # Results are never dropped, whatever the mode: the record queue always back-pressures.
        self._rec_q: FrameQueue[FrameResult | RunEvents] = FrameQueue(max(queue_size, 2 * self.batch_size),
                                                                      "record queue")
        self.metrics.add_gauge("inference", self._in_q.__len__)
        self.metrics.add_gauge("record", self._rec_q.__len__)
        self.metrics.add_sources(self.sources)
        self._running = threading.Event()   # cleared while paused or held
        self._paused = False                # the operator's pause
        self._held: str | None = None       # why the store holds the capture (None: it does not)
        self._capture_stop = threading.Event()
        self._done = threading.Event()      # the record stage has finished
        self._lock = threading.Lock()       # max_frames reservations, live capture count
        self._claim = threading.Lock()      # who records an in-flight batch: the worker or stop()
        self._inflight: list[Frame] | None = None
        self._aborted = False
        self._faulted = False
        self._max_frames: int | None = None
        self._reserved = 0
        self._live_captures = 0
        self._started = False
        self._stop_lock = threading.Lock()
        self._stopped: bool | None = None
        self._hurry = threading.Event()     # a stop in progress gives up waiting for inference now
        self._captures: list[CaptureWorker] = []
        self._inference: QueueWorker[Frame] | None = None
        self._recorder: QueueWorker[FrameResult | RunEvents] | None = None

    @property
    def sinks(self) -> list[ResultSink]:
        return self.record_stage.sinks

    @property
    def wafers(self) -> list[WaferSummary]:
        """Every completed wafer's summary, in order."""
        return self.record_stage.wafers

    # --- control ------------------------------------------------------------------------------
    def start(self, max_frames: int | None = None) -> Pipeline:
        """Start every worker; capture ends by itself after ``max_frames`` frames (all sources)."""
        if self._started:
            raise RuntimeError("pipeline already started; build a new one for another run")
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self._started = True
        self._max_frames = max_frames
        self._running.set()
        self._captures = [CaptureWorker(self, s, i) for i, s in enumerate(self.sources)]
        self._live_captures = len(self._captures)
        self._inference = QueueWorker("inference", self._in_q, self.batch_size, self._judge_batch,
                                      self._inference_finished, self._worker_failed)
        self._recorder = QueueWorker("record", self._rec_q, _RECORD_BATCH, self.record_stage.record_all,
                                     self._record_finished, self._worker_failed)
        self.metrics.state = "running"
        for w in (self._recorder, self._inference, *self._captures):
            w.start()
        return self

    def pause(self) -> None:
        """Stop taking new frames from the sources; frames already accepted are still judged."""
        if self._started and not self._capture_stop.is_set():
            with self._lock:
                self._paused = True
                self._running.clear()
            self.metrics.state = "paused"

    def resume(self) -> None:
        """Lift the operator's pause (a store hold, if any, still holds the capture)."""
        if self._started and not self._capture_stop.is_set():
            with self._lock:
                self._paused = False
                if self._held is None:
                    self._running.set()
            self.metrics.state = "running"

    def hold(self, reason: str) -> None:
        """Take no new frame from the sources until ``release()`` (the store is retrying a failed
        commit). Non-blocking, safe from any thread; frames already taken go on."""
        with self._lock:
            if self._held is not None or self._faulted or self._capture_stop.is_set():
                return
            self._held = reason
            self._running.clear()
        log.warning("station holds its sources: %s", reason)
        self.metrics.count("capture_holds")

    def release(self) -> None:
        """End a ``hold()``: the sources go on (unless paused, stopping or faulted)."""
        with self._lock:
            if self._held is None:
                return
            self._held = None
            if not self._paused:
                self._running.set()
        if not self._capture_stop.is_set():
            log.warning("station takes units again: the store commits")

    @property
    def held(self) -> str | None:
        """Why the capture is held now (None: it is not)."""
        return self._held

    def request_stop(self) -> None:
        """Ask the capture to end (non-blocking); ``wait`` returns once every accepted frame is
        recorded. A second request while ``stop()`` waits for inference makes it give up now
        (the rest is recorded as NOT_INSPECTED): a second Ctrl-C."""
        if self._capture_stop.is_set():
            self._hurry.set()
        self._close_capture()

    def _close_capture(self) -> None:
        self._capture_stop.set()
        self._running.set()  # a paused capture must see the stop
        if self.metrics.state in ("running", "paused"):
            self.metrics.state = "stopping"
        for s in self.sources:
            _close_quietly(s)

    def wait(self, timeout: float | None = None) -> bool:
        """True once every accepted frame went through the record stage."""
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def state(self) -> str:
        return self.metrics.state

    def stop(self, timeout: float | None = None) -> bool:
        """Stop capture, judge and record every accepted frame, flush the sinks; idempotent.

        Returns True when every accepted frame was judged; False when ``timeout`` ran out and the
        rest was recorded as NOT_INSPECTED (or, worse, a stage failed: see ``metrics``).
        """
        with self._stop_lock:
            if self._stopped is not None:
                return self._stopped
            if not self._started:
                self._stopped = True
                return True
            deadline = None if timeout is None else time.monotonic() + timeout
            if self.metrics.state != "faulted":
                self.metrics.state = "stopping"
            self._close_capture()
            complete = self._join_captures(deadline)
            if complete:
                self._in_q.close()  # normally closed already by the last capture worker
                complete = self._join(self._inference, deadline)
            if not complete:
                self._abort(f"not inspected: the station stopped before this frame was judged "
                            f"(stop timeout {timeout} s)")
            record_deadline = None if deadline is None else max(deadline, time.monotonic()) + _RECORD_GRACE_S
            if not _join(self._recorder, record_deadline):  # not hurried: what was judged gets recorded
                self.metrics.state = "faulted"
                self.metrics.error(f"record stage did not finish within {_RECORD_GRACE_S} s after the stop timeout; "
                                   f"{len(self._rec_q)} result(s) were not handed to the sinks")
                complete = False
            if not self.record_stage.flush(record_deadline):
                complete = False
            faulted = self.metrics.state == "faulted"
            if not faulted:  # a fault is what the run ended in; a stop does not wash it away
                self.metrics.state = "stopped"
            self._stopped = complete and not faulted
            return self._stopped

    def fault(self, reason: str) -> None:
        """The record of decisions failed: stop taking units now and (inspection) judge nothing more.

        Non-blocking, safe from any thread (the store writer's included): abandoning inference
        waits for threads that may wait for the writer, so it runs on a thread of its own."""
        with self._lock:
            if self._faulted:
                return
            self._faulted = True
        self.metrics.state = "faulted"
        log.error("station faulted: %s", reason)
        self.metrics.error(f"faulted: {reason}")
        self._capture_stop.set()  # no capture worker takes another frame from here
        self._running.set()
        threading.Thread(target=self._after_fault, args=(reason,), name="pipeline-fault", daemon=True).start()

    def _after_fault(self, reason: str) -> None:
        self._close_capture()  # closing a camera may take a while: never on the caller's thread
        if self.mode == "inspection" and self._started:
            self._abort(f"not inspected: the station faulted before judging this unit ({reason})")

    def _join_captures(self, deadline: float | None) -> bool:
        t_close = time.monotonic()
        for w in self._captures:
            while w.is_alive():
                w.join(_POLL_S)
                if self._hurry.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    return not any(c.is_alive() for c in self._captures)
                if not w.in_put and time.monotonic() - t_close > _CAPTURE_GRACE_S:
                    # Stuck inside the source (no frame in hand): leave it; a frame it returns
                    # later is refused and counted.
                    self.metrics.error(f"source {w.source.name!r} did not stop within {_CAPTURE_GRACE_S} s "
                                       "after close(); left behind")
                    break
        return True

    def _join(self, worker: threading.Thread | None, deadline: float | None) -> bool:
        """Join, giving up at ``deadline`` or when hurried; True when the thread has ended."""
        while worker is not None and worker.is_alive():
            if self._hurry.is_set() or (deadline is not None and time.monotonic() >= deadline):
                break
            worker.join(_POLL_S if deadline is None else min(_POLL_S, max(0.0, deadline - time.monotonic())))
        return worker is None or not worker.is_alive()

    def _abort(self, reason: str) -> None:
        """Give up on inference: queued and in-flight frames are recorded as NOT_INSPECTED."""
        with self._claim:
            if self._aborted:
                return
            self._aborted = True
            inflight, self._inflight = self._inflight, None
        if self._inference is not None:
            self._inference.stop_event.set()
        self._in_q.close()  # wakes capture workers waiting for room: they record their frame too
        rest = (inflight or []) + self._in_q.drain()
        self.metrics.count("not_inspected_at_stop", len(rest))
        self._emit_unjudged(rest, Verdict.NOT_INSPECTED, reason)
        # Capture workers holding a frame finish quickly now (their put raises); one stuck in
        # its source holds no frame.
        me = threading.current_thread()
        for w in self._captures:
            if w is not me:
                w.join(1.0 if w.in_put else 0.0)
        if inflight is None and self._inference is not None and self._inference is not me:
            # The worker was between batches (not inside the model, maybe handing results to
            # the record stage): it records anything it took after the abort itself and exits
            # on the closed queue.
            self._inference.join(_RECORD_GRACE_S)
        self._rec_q.close()

    # --- capture side -------------------------------------------------------------------------
    def _wait_running(self, stop: threading.Event) -> bool:
        while not self._running.wait(_POLL_S):
            if stop.is_set() or self._capture_stop.is_set():
                return False
        return not (stop.is_set() or self._capture_stop.is_set())

    def _reserve(self) -> bool:
        with self._lock:
            if self._max_frames is not None and self._reserved >= self._max_frames:
                return False
            self._reserved += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._reserved -= 1

    def _accept(self, frame: Frame, slot: int = 0) -> None:
        """A frame from a source enters the pipeline: from here it gets exactly one decision
        (inspection) or is judged / counted as dropped (monitoring)."""
        if self.frame_id_prefix:
            frame = dataclasses.replace(frame, frame_id=self.frame_id_prefix + frame.frame_id)
        self.metrics.accepted()
        try:
            if self.mode == "inspection":
                self.metrics.blocked(self._in_q.put(frame))
            else:
                dropped = self._in_q.put_latest(frame, slot)
                if dropped is not None:
                    self.metrics.dropped(dropped.source)
        except QueueClosed:
            # stop(timeout) gave up on inference while this frame waited for room.
            self._emit_unjudged([frame], Verdict.NOT_INSPECTED,
                                "not inspected: the station stopped before this frame was judged")

    def _capture_finished(self) -> None:
        with self._lock:
            self._live_captures -= 1
            last = self._live_captures == 0
        if last:
            self._in_q.close()  # every source ended: inference drains the queue, then stops

    # --- inference ----------------------------------------------------------------------------
    def _judge_batch(self, batch: list[Frame]) -> None:
        if any(isinstance(f, UnreadableFrame) for f in batch):
            self._judge_with_unreadable(batch)
            return
        t_pick = time.monotonic()
        for f in batch:
            self.metrics.observe("capture_wait", max(0.0, t_pick - f.t_monotonic))
        with self._claim:
            # After a fault in inspection flow nothing more is judged: its record could not be kept.
            late = self._aborted or (self._faulted and self.mode == "inspection")
            if not late:
                self._inflight = batch
        if late:  # taken from the queue just as stop() gave up: not judged, still recorded
            self._emit_unjudged(batch, Verdict.NOT_INSPECTED,
                                "not inspected: the station stopped before this frame was judged")
            return
        judgement, seconds = self._judge(batch)
        with self._claim:
            taken = self._inflight is not batch
            self._inflight = None
        if taken:  # stop() already recorded these frames as NOT_INSPECTED
            self.metrics.count("late_results_discarded", len(batch))
            return
        rules_ms = judgement.timings_ms.get("rules_ms")
        rules = None if rules_ms is None else rules_ms / 1e3
        self.metrics.inference(seconds - (rules or 0.0), len(batch))
        if rules is not None:
            self.metrics.observe("rules", rules)
        for r in judgement.results:
            self._rec_q.put(r)

    def _judge_with_unreadable(self, batch: list[Frame]) -> None:
        """Readable runs of the batch to the judge, each unreadable unit recorded in its place."""
        run: list[Frame] = []
        for f in batch:
            if isinstance(f, UnreadableFrame):
                if run:
                    self._judge_batch(run)
                    run = []
                self.metrics.count("unreadable")
                self._emit_unjudged([f], f.verdict, f.reason or "not inspected: the source could not read this unit")
            else:
                run.append(f)
        if run:
            self._judge_batch(run)

    def _judge(self, batch: list[Frame]) -> tuple[Judgement, float]:
        """The batch's judgement (ERROR for every frame when the judge raised) and its wall time."""
        t0 = time.perf_counter()
        try:
            judgement = self.judge.judge(batch)
            if len(judgement.results) != len(batch):
                raise RuntimeError(f"judge returned {len(judgement.results)} result(s) for {len(batch)} frame(s)")
        except Exception as e:  # a rule that raises: still one record per unit
            msg = f"judging failed: {type(e).__name__}: {e}"
            log.error("%s (frames %s)", msg, ", ".join(f.frame_id for f in batch))
            self.metrics.error(msg)
            judgement = Judgement.unjudged(batch, Verdict.ERROR, msg, self.model_set_version, self.config_hash)
        return judgement, time.perf_counter() - t0

    def _emit_unjudged(self, frames: Sequence[Frame], verdict: Verdict, reason: str) -> None:
        now = Frame.utc_now()
        for f in frames:
            d = Decision.unjudged(f.frame_id, verdict, reason, self.model_set_version, self.config_hash, now)
            try:
                self._rec_q.put(FrameResult(f, d))
            except QueueClosed:  # only after a stop gave up on the record stage, or after a fault
                self.metrics.count("refused")
                self.metrics.error(f"frame {f.frame_id} arrived after the pipeline stopped recording; not recorded")

    def _inference_finished(self) -> None:
        with self._claim:
            aborted = self._aborted
        if not aborted:  # after an abort, stop() closes the record queue once it has emitted
            self._finish_judge()
            self._rec_q.close()

    def _finish_judge(self) -> None:
        """The last batch is judged: the judge closes what it keeps open (a site judge's incidents)
        and its events go to the sinks behind every result. After an abort the judge may still be
        inside a model on another thread, so it is not asked (its open incidents stay open)."""
        try:
            end = self.judge.finish()
            for r in end.results:
                self._rec_q.put(r)
            if end.events:
                self._rec_q.put(RunEvents(tuple(end.events)))
        except Exception as e:  # noqa: BLE001 - every result is recorded already; the gap is reported
            msg = f"judge finish failed: {type(e).__name__}: {e}"
            log.error(msg)
            self.metrics.error(msg)

    # --- record -------------------------------------------------------------------------------
    def _record_finished(self) -> None:
        self.record_stage.finish()
        self._done.set()

    def _worker_failed(self, worker: Worker, e: BaseException) -> None:
        msg = f"{worker.name}: {type(e).__name__}: {e}"
        if isinstance(worker, CaptureWorker):
            # One failing source (camera gone, unreadable folder) does not stop the others.
            log.error("capture failed: %s", msg)
            self.metrics.error(f"capture failed: {msg}")
            self.metrics.count("capture_errors")
            return
        log.exception("pipeline worker failed: %s", msg, exc_info=e)
        self.metrics.error(f"worker failed: {msg}")
        self.metrics.state = "faulted"
        self._close_capture()
        if worker is self._inference:
            # Nothing judges any more: the rest is recorded as not inspected, never lost.
            self._abort(f"not inspected: the inference worker failed ({type(e).__name__}: {e})")
        elif worker is self._recorder:
            # Nothing records any more: unblock every stage so the station can stop and say so.
            self._rec_q.close()
            self._in_q.close()


def _join(worker: threading.Thread | None, deadline: float | None) -> bool:
    """Join until ``deadline`` (None: for as long as it takes); True when the thread has ended."""
    if worker is None:
        return True
    worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not worker.is_alive()


def _close_quietly(source: FrameSource) -> None:
    try:
        source.close()
    except Exception as e:  # noqa: BLE001 - closing is best effort; the worker closes again
        log.warning("source %r: close failed: %s", source.name, e)


__all__ = ["MODES", "CaptureWorker", "FrameQueue", "FrameResult", "Judge", "Judgement", "NotInspected", "Pipeline",
           "QueueClosed", "ResultSink"]
