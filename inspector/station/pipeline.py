"""The station pipeline: capture -> inference (ensemble + fusion) -> rules -> record, in threads.

Flow (DESIGN.md, "Modes of flow"):

- ``inspection``: bounded queues with blocking puts. A slow detector slows the source down
  (back-pressure); nothing is dropped. Every accepted frame gets exactly one ``Decision``: its
  verdict, ERROR when the model or the rules raised, NOT_INSPECTED when the pipeline had to give
  up before judging it.
- ``monitoring``: when the inference queue is full, the OLDEST waiting frame is dropped (the
  latest frame wins) and the drop is counted per source. Dropped frames get no decision; only
  live video runs this way.

Threads: one capture worker per source, one inference worker (the rules keep state, such as
persistence, so frames are judged in order by one thread), one record worker (wafer tracking,
then every sink in order). Each worker runs setup -> loop -> teardown and has a stop event.

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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from inspector.core.decision import Decision, Verdict
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.ports import FrameSource
from inspector.runtime.ensemble import Ensemble, EnsembleResult
from inspector.station.inspection import WaferSummary, WaferTracker
from inspector.station.metrics import Metrics

log = logging.getLogger(__name__)

MODES = ("inspection", "monitoring")
_POLL_S = 0.1            # how often blocked workers look at their stop event
_CAPTURE_GRACE_S = 5.0   # a source that does not return within this after close() is left behind
_RECORD_GRACE_S = 10.0   # stop(timeout): extra time the record stage gets to store what was judged

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# A bounded queue that can drop its oldest item and be closed
# --------------------------------------------------------------------------------------------


class QueueClosed(Exception):
    """The queue was closed: no more puts; gets fail once it is empty."""


class FrameQueue(Generic[T]):
    """Bounded FIFO. ``put`` blocks while full (back-pressure); ``put_latest`` drops the oldest.

    ``close()`` wakes every waiter: later puts raise ``QueueClosed``, gets drain what is left
    and then raise it.
    """

    def __init__(self, maxsize: int, name: str = "queue") -> None:
        if maxsize < 1:
            raise ValueError(f"{name}: maxsize must be at least 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self.name = name
        self._items: deque[T] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.high_water = 0

    def __len__(self) -> int:
        return len(self._items)  # a deque's len is atomic; a gauge needs no lock

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> float:
        """Append, waiting while full; returns the seconds spent waiting."""
        t0 = time.monotonic()
        with self._cond:
            while len(self._items) >= self.maxsize and not self._closed:
                self._cond.wait()
            if self._closed:
                raise QueueClosed(f"{self.name} is closed")
            self._append(item)
        return time.monotonic() - t0

    def put_latest(self, item: T) -> T | None:
        """Append without waiting; when full, remove and return the oldest item (the drop)."""
        with self._cond:
            if self._closed:
                raise QueueClosed(f"{self.name} is closed")
            dropped = self._items.popleft() if len(self._items) >= self.maxsize else None
            self._append(item)
        return dropped

    def _append(self, item: T) -> None:
        self._items.append(item)
        self.high_water = max(self.high_water, len(self._items))
        self._cond.notify_all()

    def get_batch(self, max_items: int, timeout: float | None = None) -> list[T]:
        """Wait for at least one item (up to ``timeout``), then take what is there, up to
        ``max_items``. ``[]`` on timeout; ``QueueClosed`` once closed and empty."""
        with self._cond:
            if not self._items and not self._closed:
                self._cond.wait_for(lambda: self._items or self._closed, timeout)
            if not self._items:
                if self._closed:
                    raise QueueClosed(f"{self.name} is closed")
                return []
            out = [self._items.popleft() for _ in range(min(max_items, len(self._items)))]
            self._cond.notify_all()  # room for a waiting put
        return out

    def drain(self) -> list[T]:
        """Take everything now, without waiting."""
        with self._cond:
            out = list(self._items)
            self._items.clear()
            self._cond.notify_all()
        return out

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


# --------------------------------------------------------------------------------------------
# What flows to the sinks, and who judges
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One frame with its decision, plus the boxes behind it when the model ran."""

    frame: Frame
    decision: Decision
    fused: Detections | None = None                 # fused boxes before the rules
    per_model: tuple[Detections, ...] | None = None  # each ensemble member's own boxes


class ResultSink(Protocol):
    """A sink that wants the whole ``FrameResult`` (the store keeps per-model boxes, the GUI the
    fused ones). Plain ``DecisionSink``s (``accept(frame, decision)``) work as well."""

    def accept_result(self, result: FrameResult) -> None: ...


class Judge(Protocol):
    """Frames in, exactly one decision per frame out (``Inspection`` is one)."""

    def decide(self, frames: Sequence[Frame]) -> list[Decision]: ...


class TappedEnsemble:
    """Delegates to an ``Ensemble`` and keeps the last batch's results.

    ``Inspection.decide`` returns only the boxes the rules kept; the tap lets the pipeline hand
    the fused and per-model boxes to the store and the GUI without running anything twice.
    Used by one inference thread only.
    """

    def __init__(self, ensemble: Ensemble) -> None:
        self._ensemble = ensemble
        self.last_results: list[EnsembleResult] | None = None

    def detect(self, images: Sequence[Any]) -> list[EnsembleResult]:
        self.last_results = None  # a raising detect must not leave the previous batch's boxes
        self.last_results = self._ensemble.detect(images)
        return self.last_results

    def __getattr__(self, name: str) -> Any:  # version, members, last_timings, class_names ...
        if name == "_ensemble":  # not set yet (copy / pickle): no endless recursion
            raise AttributeError(name)
        return getattr(self._ensemble, name)


class NotInspected:
    """The judge of a station without a model: every frame is recorded as NOT_INSPECTED."""

    def __init__(self, reason: str, config_hash: str, model_set_version: str = "none") -> None:
        self.reason = reason
        self.config_hash = config_hash
        self.model_set_version = model_set_version

    def decide(self, frames: Sequence[Frame]) -> list[Decision]:
        now = Frame.utc_now()
        return [Decision.unjudged(f.frame_id, Verdict.NOT_INSPECTED, self.reason, self.model_set_version,
                                  self.config_hash, now) for f in frames]


# --------------------------------------------------------------------------------------------
# Workers: setup -> loop -> teardown, with a stop event
# --------------------------------------------------------------------------------------------


class Worker(threading.Thread):
    """A daemon thread (a model stuck forever must not keep the process alive) that runs
    ``setup()``, then ``step()`` until it returns False or ``stop_event`` is set, then
    ``teardown()`` whatever happened. An exception is kept in ``error`` and reported."""

    def __init__(self, name: str, on_error: Callable[[Worker, BaseException], None]) -> None:
        super().__init__(name=name, daemon=True)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._on_error = on_error

    def setup(self) -> None:
        pass

    def step(self) -> bool:
        raise NotImplementedError

    def teardown(self) -> None:
        pass

    def run(self) -> None:
        try:
            self.setup()
            while not self.stop_event.is_set() and self.step():
                pass
        except BaseException as e:  # noqa: BLE001 - reported, never swallowed
            self.error = e
            self._on_error(self, e)
        finally:
            try:
                self.teardown()
            except BaseException as e:  # noqa: BLE001
                self._on_error(self, e)


class _CaptureWorker(Worker):
    def __init__(self, pipeline: Pipeline, source: FrameSource) -> None:
        super().__init__(f"capture-{source.name}", pipeline._worker_failed)
        self.p = pipeline
        self.source = source
        self.in_put = False  # holding a frame, waiting for room: making progress, never abandoned
        self._it: Iterator[Frame] | None = None

    def setup(self) -> None:
        self._it = iter(self.source.frames())

    def step(self) -> bool:
        p = self.p
        if not p._wait_running(self.stop_event) or not p._reserve():
            return False
        try:
            frame = next(self._it)  # type: ignore[arg-type]
        except StopIteration:
            p._release()
            return False
        except BaseException:
            p._release()
            raise
        self.in_put = True
        try:
            p._accept(frame)
        finally:
            self.in_put = False
        return True

    def teardown(self) -> None:
        try:
            self.source.close()
        finally:
            self.p._capture_finished()


class _InferenceWorker(Worker):
    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__("inference", pipeline._worker_failed)
        self.p = pipeline

    def step(self) -> bool:
        try:
            batch = self.p._in_q.get_batch(self.p.batch_size, timeout=_POLL_S)
        except QueueClosed:
            return False
        if batch:
            self.p._judge_batch(batch)
        return True

    def teardown(self) -> None:
        self.p._inference_finished()


class _RecordWorker(Worker):
    def __init__(self, pipeline: Pipeline) -> None:
        super().__init__("record", pipeline._worker_failed)
        self.p = pipeline

    def step(self) -> bool:
        try:
            items = self.p._rec_q.get_batch(64, timeout=_POLL_S)
        except QueueClosed:
            return False
        for item in items:
            self.p._record(item)
        return True

    def teardown(self) -> None:
        self.p._record_finished()


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------


class Pipeline:
    """Runs sources through a judge into sinks; see the module doc for the guarantees.

    ``frame_id_prefix`` makes stored frame ids unique per run (sources give ids that are stable
    across runs, and the store refuses a frame id it already holds). ``on_wafer`` callbacks get
    each completed wafer's ``WaferSummary`` (on the record thread, in order).
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
        sinks: Sequence[Any] = (),
        tap: TappedEnsemble | None = None,
        wafer_tracker: WaferTracker | None = None,
        on_wafer: Sequence[Callable[[WaferSummary], None]] = (),
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
        self.sinks = list(sinks)
        self.tap = tap
        self.wafer_tracker = wafer_tracker
        self.on_wafer = list(on_wafer)
        self.metrics = metrics or Metrics()
        self.frame_id_prefix = frame_id_prefix
        self.wafers: list[WaferSummary] = []
        self._in_q: FrameQueue[Frame] = FrameQueue(queue_size, "inference queue")
        # Results are never dropped, whatever the mode: the record queue always back-pressures.
        self._rec_q: FrameQueue[FrameResult] = FrameQueue(max(queue_size, 2 * self.batch_size), "record queue")
        self.metrics.add_gauge("inference", self._in_q.__len__)
        self.metrics.add_gauge("record", self._rec_q.__len__)
        self.metrics.add_sources(self.sources)
        self._running = threading.Event()   # cleared while paused
        self._capture_stop = threading.Event()
        self._done = threading.Event()      # the record stage has finished
        self._lock = threading.Lock()       # max_frames reservations, live capture count
        self._claim = threading.Lock()      # who records an in-flight batch: the worker or stop()
        self._inflight: list[Frame] | None = None
        self._aborted = False
        self._max_frames: int | None = None
        self._reserved = 0
        self._live_captures = 0
        self._started = False
        self._stop_lock = threading.Lock()
        self._stopped: bool | None = None
        self._hurry = threading.Event()     # a stop in progress gives up waiting for inference now
        self._captures: list[_CaptureWorker] = []
        self._inference: _InferenceWorker | None = None
        self._recorder: _RecordWorker | None = None

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
        self._captures = [_CaptureWorker(self, s) for s in self.sources]
        self._live_captures = len(self._captures)
        self._inference = _InferenceWorker(self)
        self._recorder = _RecordWorker(self)
        self.metrics.state = "running"
        for w in (self._recorder, self._inference, *self._captures):
            w.start()
        return self

    def pause(self) -> None:
        """Stop taking new frames from the sources; frames already accepted are still judged."""
        if self._started and not self._capture_stop.is_set():
            self._running.clear()
            self.metrics.state = "paused"

    def resume(self) -> None:
        if self._started and not self._capture_stop.is_set():
            self._running.set()
            self.metrics.state = "running"

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
            for sink in self.sinks:
                flush = getattr(sink, "flush", None)
                if callable(flush):
                    try:
                        flush(None if record_deadline is None else max(0.0, record_deadline - time.monotonic()))
                    except Exception as e:  # noqa: BLE001
                        self._sink_failed(sink, e)
                        complete = False
            self.metrics.state = "stopped"
            self._stopped = complete and self.metrics.state != "faulted"
            return self._stopped

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

    def _accept(self, frame: Frame) -> None:
        """A frame from a source enters the pipeline: from here it gets exactly one decision
        (inspection) or is judged / counted as dropped (monitoring)."""
        if self.frame_id_prefix:
            frame = dataclasses.replace(frame, frame_id=self.frame_id_prefix + frame.frame_id)
        self.metrics.accepted()
        try:
            if self.mode == "inspection":
                self.metrics.blocked(self._in_q.put(frame))
            else:
                dropped = self._in_q.put_latest(frame)
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
        t_pick = time.monotonic()
        for f in batch:
            self.metrics.observe("capture_wait", max(0.0, t_pick - f.t_monotonic))
        with self._claim:
            late = self._aborted
            if not late:
                self._inflight = batch
        if late:  # taken from the queue just as stop() gave up: not judged, still recorded
            self._emit_unjudged(batch, Verdict.NOT_INSPECTED,
                                "not inspected: the station stopped before this frame was judged")
            return
        decisions, timings, results = self._decide(batch)
        with self._claim:
            taken = self._inflight is not batch
            self._inflight = None
        if taken:  # stop() already recorded these frames as NOT_INSPECTED
            self.metrics.count("late_results_discarded", len(batch))
            return
        self.metrics.inference(timings[0], len(batch))
        if timings[1] is not None:
            self.metrics.observe("rules", timings[1])
        for i, (f, d) in enumerate(zip(batch, decisions)):
            r = results[i] if results is not None else None
            self._rec_q.put(FrameResult(f, d, r.fused if r else None, tuple(r.per_model) if r else None))

    def _decide(self, batch: list[Frame]) -> tuple[list[Decision], tuple[float, float | None], list | None]:
        timings = getattr(self.judge, "last_timings", None)
        if isinstance(timings, dict):
            self.judge.last_timings = {}  # type: ignore[attr-defined]  # a failed batch keeps no old numbers
        t0 = time.perf_counter()
        try:
            decisions = self.judge.decide(batch)
            if len(decisions) != len(batch):
                raise RuntimeError(f"judge returned {len(decisions)} decision(s) for {len(batch)} frame(s)")
        except Exception as e:  # a rule that raises: still one record per unit
            msg = f"judging failed: {type(e).__name__}: {e}"
            log.error("%s (frames %s)", msg, ", ".join(f.frame_id for f in batch))
            self.metrics.error(msg)
            now = Frame.utc_now()
            decisions = [Decision.unjudged(f.frame_id, Verdict.ERROR, msg, self.model_set_version,
                                           self.config_hash, now) for f in batch]
        wall = time.perf_counter() - t0
        rules_ms = (getattr(self.judge, "last_timings", None) or {}).get("rules_ms")
        rules = None if rules_ms is None else rules_ms / 1e3
        results = self.tap.last_results if self.tap is not None else None
        if results is not None and len(results) != len(batch):
            results = None
        return decisions, (wall - (rules or 0.0), rules), results

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
            self._rec_q.close()

    # --- record -------------------------------------------------------------------------------
    def _record(self, r: FrameResult) -> None:
        t0 = time.perf_counter()
        if self.wafer_tracker is not None:
            try:
                summary = self.wafer_tracker.add(r.frame, r.decision)
            except Exception as e:  # a malformed die context must not cost the decision its record
                summary = None
                self.metrics.error(f"frame {r.frame.frame_id}: wafer tracking failed: {type(e).__name__}: {e}")
            if summary is not None:
                self._wafer_done(summary)
        for sink in self.sinks:
            try:
                if hasattr(sink, "accept_result"):
                    sink.accept_result(r)
                else:
                    sink.accept(r.frame, r.decision)
            except Exception as e:  # noqa: BLE001
                self._sink_failed(sink, e, r.frame.frame_id)
        self.metrics.observe("record", time.perf_counter() - t0)
        self.metrics.decided(r.decision.verdict.value)

    def _wafer_done(self, summary: WaferSummary) -> None:
        self.wafers.append(summary)
        for cb in self.on_wafer:
            try:
                cb(summary)
            except Exception as e:  # noqa: BLE001
                self.metrics.error(f"wafer {summary.wafer}: {getattr(cb, '__qualname__', cb)} failed: "
                                   f"{type(e).__name__}: {e}")

    def _record_finished(self) -> None:
        if self.wafer_tracker is not None:
            try:
                summary = self.wafer_tracker.flush()
            except Exception as e:  # noqa: BLE001
                summary = None
                self.metrics.error(f"wafer tracking failed at the end: {type(e).__name__}: {e}")
            if summary is not None:
                self._wafer_done(summary)
        self._done.set()

    def _sink_failed(self, sink: Any, e: BaseException, frame_id: str | None = None) -> None:
        name = getattr(sink, "name", type(sink).__name__)
        where = f" (frame {frame_id})" if frame_id else ""
        msg = f"sink {name}{where}: {type(e).__name__}: {e}"
        log.error(msg)
        self.metrics.error(msg)
        self.metrics.count("sink_errors")
        if getattr(sink, "critical", False) and self.metrics.state != "faulted":
            # The record of decisions is failing: stop taking new units rather than judge
            # frames nobody can trace. Frames already accepted still go to every sink.
            self.metrics.state = "faulted"
            self._close_capture()

    def _worker_failed(self, worker: Worker, e: BaseException) -> None:
        msg = f"{worker.name}: {type(e).__name__}: {e}"
        if isinstance(worker, _CaptureWorker):
            # One failing source (camera gone, unreadable folder) does not stop the others.
            log.error("capture failed: %s", msg)
            self.metrics.error(f"capture failed: {msg}")
            self.metrics.count("capture_errors")
            return
        log.exception("pipeline worker failed: %s", msg, exc_info=e)
        self.metrics.error(f"worker failed: {msg}")
        self.metrics.state = "faulted"
        self._close_capture()
        if isinstance(worker, _InferenceWorker):
            # Nothing judges any more: the rest is recorded as not inspected, never lost.
            self._abort(f"not inspected: the inference worker failed ({type(e).__name__}: {e})")
        elif isinstance(worker, _RecordWorker):
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
        log.warning("source %r: close failed: %s", getattr(source, "name", source), e)
