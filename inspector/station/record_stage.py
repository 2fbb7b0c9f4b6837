"""The pipeline's record stage: wafer tracking, then every sink in order, on the record thread.

The judge's run-end events (``Judge.finish()``: incidents the end of the run closes) arrive as
one ``RunEvents`` item after the last result, through the same queue, so every sink sees them
after the results they refer to.

A sink that raises costs only its own delivery: the other sinks still get the result, and the
error is counted. When a ``critical`` sink (the store) fails, the station is faulted and stops
taking new units (``on_fault``): decisions nobody can trace must not pile up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from inspector.core.site.types import IncidentEvent
from inspector.station.inspection import WaferSummary, WaferTracker
from inspector.station.judgement import FrameResult
from inspector.station.metrics import Metrics
from inspector.station.sinks import ResultSink

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunEvents:
    """Incident events tied to no frame (from ``Judge.finish()``), queued behind the last result."""

    events: tuple[IncidentEvent, ...]


class RecordStage:
    """See the module doc. ``wafers`` lists every completed wafer's summary, in order."""

    def __init__(self, sinks: Sequence[ResultSink], wafer_tracker: WaferTracker | None, metrics: Metrics,
                 on_fault: Callable[[], None]) -> None:
        self.sinks = list(sinks)
        self.wafer_tracker = wafer_tracker
        self.metrics = metrics
        self.wafers: list[WaferSummary] = []
        self._on_fault = on_fault

    def record(self, r: FrameResult) -> None:
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
                sink.accept_result(r)
            except Exception as e:  # noqa: BLE001
                self.sink_failed(sink, e, r.frame.frame_id)
        self.metrics.observe("record", time.perf_counter() - t0)
        self.metrics.decided(r.decision.verdict.value)

    def record_events(self, events: Sequence[IncidentEvent]) -> None:
        """Run-end incident events to every sink (none: no call, like wafers on a line without any)."""
        if not events:
            return
        self.metrics.count("run_end_events", len(events))
        for sink in self.sinks:
            try:
                sink.accept_events(tuple(events))
            except Exception as e:  # noqa: BLE001
                self.sink_failed(sink, e)

    def record_all(self, items: Sequence[FrameResult | RunEvents]) -> None:
        for item in items:
            if isinstance(item, RunEvents):
                self.record_events(item.events)
            else:
                self.record(item)

    def finish(self) -> None:
        """The last results are recorded: judge the wafer still open."""
        if self.wafer_tracker is not None:
            try:
                summary = self.wafer_tracker.flush()
            except Exception as e:  # noqa: BLE001
                summary = None
                self.metrics.error(f"wafer tracking failed at the end: {type(e).__name__}: {e}")
            if summary is not None:
                self._wafer_done(summary)

    def flush(self, deadline: float | None) -> bool:
        """Flush every sink by ``deadline`` (monotonic; None: as long as it takes); False when one failed."""
        ok = True
        for sink in self.sinks:
            try:
                sink.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except Exception as e:  # noqa: BLE001
                self.sink_failed(sink, e)
                ok = False
        return ok

    def _wafer_done(self, summary: WaferSummary) -> None:
        self.wafers.append(summary)
        for sink in self.sinks:
            try:
                sink.accept_wafer(summary)
            except Exception as e:  # noqa: BLE001 - the dies are recorded; the gap is reported
                self.metrics.error(f"wafer {summary.wafer}: sink {sink.name} failed: {type(e).__name__}: {e}")

    def sink_failed(self, sink: ResultSink, e: BaseException, frame_id: str | None = None) -> None:
        where = f" (frame {frame_id})" if frame_id else ""
        msg = f"sink {sink.name}{where}: {type(e).__name__}: {e}"
        log.error(msg)
        self.metrics.error(msg)
        self.metrics.count("sink_errors")
        if sink.critical and self.metrics.state != "faulted":
            # The record of decisions is failing: stop taking new units rather than judge
            # frames nobody can trace. Frames already accepted still go to every sink.
            self.metrics.state = "faulted"
            self._on_fault()


__all__ = ["RecordStage", "RunEvents"]
