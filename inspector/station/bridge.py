"""The GUI's window on the pipeline: the latest frame and the new decisions, never slowing it.

The pipeline hands every result to ``Bridge.accept_result`` on its record thread; that costs
O(1) whatever the subscribers do: overwrite a latest-value slot (no queue grows), append to a
bounded ring of decisions, notify. Subscribers either poll (``latest()``,
``decisions_since(seq)``) or register callbacks, which run on a thread of their own (one per
subscriber). A slow subscriber only falls behind: it gets the newest frame when it is ready
(frames in between are skipped, as a live view should) and the decisions still in the ring;
older ones are counted in ``missed`` (the store has them all).

No Qt here: a Qt widget subscribes with callbacks that emit signals (queued to the GUI thread).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from inspector.core.decision import Decision
from inspector.core.detections import Detections
from inspector.core.frame import Frame
from inspector.core.site.types import IncidentEvent, SiteFrame
from inspector.station.inspection import WaferSummary
from inspector.station.judgement import FrameResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveFrame:
    """The newest frame with its fused boxes and decision (what a live view draws); on a site
    camera also its tracked workers and zones (``site``)."""

    seq: int
    frame: Frame
    decision: Decision
    fused: Detections | None
    site: SiteFrame | None = None


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One decision, without the image (the ring must not hold hundreds of frames' pixels)."""

    seq: int
    frame_id: str
    source: str
    t_utc: datetime
    context: Mapping[str, Any]
    decision: Decision


FrameCallback = Callable[[LiveFrame], None]
DecisionsCallback = Callable[[Sequence[DecisionEvent]], None]


class Bridge:
    """A ``ResultSink`` (:mod:`inspector.station.sinks`) for live views; see the module doc."""

    name = "bridge"
    critical = False

    def __init__(self, ring_size: int = 256) -> None:
        if ring_size < 1:
            raise ValueError(f"bridge ring_size must be at least 1, got {ring_size}")
        self._cond = threading.Condition()
        self._latest: LiveFrame | None = None
        self._ring: deque[DecisionEvent] = deque(maxlen=int(ring_size))
        self._seq = 0
        self._closed = False
        self._subs: list[Subscription] = []

    # --- the pipeline side (record thread): O(1), never waits for a subscriber -----------------
    def accept_result(self, result: FrameResult) -> None:
        f = result.frame
        with self._cond:
            self._seq += 1
            self._latest = LiveFrame(self._seq, f, result.decision, result.fused, result.site)
            self._ring.append(DecisionEvent(self._seq, f.frame_id, f.source, f.t_utc, f.context, result.decision))
            self._cond.notify_all()

    def accept_wafer(self, summary: WaferSummary) -> None:
        pass  # the wafer map reads wafers from the store

    def accept_events(self, events: Sequence[IncidentEvent]) -> None:
        pass  # incidents closed by a run's end: the incidents view reads them from the store

    def flush(self, timeout: float | None = None) -> None:
        pass  # publishing is immediate: nothing is pending

    # --- polling ------------------------------------------------------------------------------
    @property
    def seq(self) -> int:
        """Number of results seen so far (the seq of the newest one)."""
        with self._cond:
            return self._seq

    def latest(self) -> LiveFrame | None:
        with self._cond:
            return self._latest

    def decisions_since(self, seq: int) -> tuple[list[DecisionEvent], int]:
        """Decisions newer than ``seq`` still in the ring, and how many newer ones fell out of it."""
        with self._cond:
            return self._since(seq)

    def _since(self, seq: int) -> tuple[list[DecisionEvent], int]:
        if not self._ring or self._seq <= seq:
            return [], 0
        oldest = self._ring[0].seq
        missed = max(0, oldest - seq - 1)
        start = max(0, seq + 1 - oldest)
        return [self._ring[i] for i in range(start, len(self._ring))], missed

    # --- callbacks on a thread per subscriber ---------------------------------------------------
    def subscribe(self, on_frame: FrameCallback | None = None, on_decisions: DecisionsCallback | None = None,
                  *, name: str = "subscriber") -> Subscription:
        """Call ``on_frame(latest)`` / ``on_decisions(new events)`` on a new thread, from now on."""
        if on_frame is None and on_decisions is None:
            raise ValueError("subscribe needs on_frame and/or on_decisions")
        with self._cond:
            if self._closed:
                raise RuntimeError("bridge is closed")
            sub = Subscription(self, on_frame, on_decisions, name, self._seq)
            self._subs.append(sub)
        sub.start()
        return sub

    def close(self, timeout: float = 1.0) -> None:
        """Stop every subscriber thread (each finishes the callback it is in)."""
        with self._cond:
            self._closed = True
            subs = list(self._subs)
            self._cond.notify_all()
        for s in subs:
            s.stop(timeout)


class Subscription:
    """One subscriber's thread; counts what it delivered, skipped and missed."""

    def __init__(self, bridge: Bridge, on_frame: FrameCallback | None, on_decisions: DecisionsCallback | None,
                 name: str, seq: int) -> None:
        self.bridge = bridge
        self.on_frame = on_frame
        self.on_decisions = on_decisions
        self.name = name
        self.frames_delivered = 0
        self.decisions_delivered = 0
        self.missed = 0           # decisions that left the ring before this subscriber read them
        self.errors = 0           # callbacks that raised (logged; the subscription goes on)
        self._cursor = seq
        self._frame_seq = seq
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bridge-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        with self.bridge._cond:
            self.bridge._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        b = self.bridge
        while True:
            with b._cond:
                b._cond.wait_for(lambda: b._seq > self._cursor or self._stop.is_set() or b._closed, timeout=1.0)
                if self._stop.is_set() or b._closed:
                    return
                latest = b._latest
                events, missed = b._since(self._cursor)
                self._cursor = b._seq
            self.missed += missed
            # Outside the lock: the pipeline keeps publishing while the callback runs.
            if self.on_frame is not None and latest is not None and latest.seq > self._frame_seq:
                self._frame_seq = latest.seq
                self._call(self.on_frame, latest)
                self.frames_delivered += 1
            if self.on_decisions is not None and events:
                self._call(self.on_decisions, events)
                self.decisions_delivered += len(events)

    def _call(self, fn: Callable[[Any], None], arg: Any) -> None:
        try:
            fn(arg)
        except Exception:  # a GUI bug must not kill the subscription (or touch the pipeline)
            self.errors += 1
            log.exception("bridge subscriber %r: callback failed", self.name)
