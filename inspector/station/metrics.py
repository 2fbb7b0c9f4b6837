"""Pipeline metrics: O(1) and fixed memory per frame to update, read as one plain dict.

Latencies live in fixed-size numpy ring buffers (the last ``window`` observations of each stage):
an update is one array store under a lock (about a microsecond, see tests/station/test_metrics.py),
percentiles are computed only when someone asks for a ``snapshot()``. Counters are plain ints
behind the same lock, so any thread may update and any thread may read.

Stages (seconds in, milliseconds out):

- ``capture_wait``: capture time of a frame -> the inference worker picks it up (source buffer
  and queue wait: how stale a frame is when it reaches the model);
- ``inference``: ensemble detect + fusion of one batch;
- ``rules``: the rules of one batch;
- ``record``: handing one result to the sinks (blocks when the store applies back-pressure);
- ``ack``: store submit -> its transaction committed (the acknowledgement);
- ``end_to_end``: capture -> acknowledged (or recorded, without a store).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

STAGES: tuple[str, ...] = ("capture_wait", "inference", "rules", "record", "ack", "end_to_end")
STATES: tuple[str, ...] = ("idle", "running", "paused", "stopping", "stopped", "faulted")
_VERDICTS = ("pass", "fail", "review", "error", "not_inspected")
_MAX_ERRORS = 20  # newest error messages kept for the snapshot
_RECENT_EVENTS = 8  # newest station events (begins and ends) kept for the snapshot
_LASTING_EVENTS = frozenset({"stall", "freeze", "store_gap"})  # shown as open until they end


class Ring:
    """Fixed-size float64 ring buffer: O(1) ``add``; statistics over the newest ``size`` values.

    Not locked itself: ``Metrics`` guards every ring with its one lock.
    """

    __slots__ = ("_buf", "_size", "_n")

    def __init__(self, size: int = 2048) -> None:
        if size < 1:
            raise ValueError(f"Ring size must be at least 1, got {size}")
        self._buf = np.zeros(int(size), np.float64)
        self._size = int(size)
        self._n = 0  # values ever added

    def add(self, value: float) -> None:
        self._buf[self._n % self._size] = value
        self._n += 1

    def __len__(self) -> int:
        return min(self._n, self._size)

    @property
    def total(self) -> int:
        """Values ever added (the ring keeps only the newest ``size``)."""
        return self._n

    def values(self) -> np.ndarray:
        """A copy of the kept values (order not guaranteed once the ring has wrapped)."""
        return self._buf[: len(self)].copy()


def _ms_stats(values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        return {"p50": None, "p99": None, "mean": None, "n": 0}
    p50, p99 = np.percentile(values, (50, 99)) * 1e3
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3), "mean": round(float(values.mean() * 1e3), 3),
            "n": int(len(values))}


class Metrics:
    """Thread-safe counters, latency windows, gauges and state of one pipeline run."""

    def __init__(self, window: int = 2048, fps_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.window = int(window)
        self.fps_window_s = float(fps_window_s)
        self._stages = {s: Ring(window) for s in STAGES}
        self._done_t = Ring(window)      # monotonic time each frame's decision was recorded -> fps
        self._arrive_t = Ring(window)    # monotonic time each frame was accepted -> demand
        self._infer_pf = Ring(window)    # inference seconds per frame (batch time / batch size) -> capacity
        self._counts: dict[str, int] = {"accepted": 0, "decided": 0, "refused": 0}
        self._verdicts: dict[str, int] = dict.fromkeys(_VERDICTS, 0)
        self._drops: dict[str, int] = {}
        self._blocked_s = 0.0
        self._errors: list[str] = []
        self._events: dict[str, int] = {}                         # station events begun, per kind
        self._open_events: dict[tuple[str | None, str], str] = {}  # (source, kind) -> since (UTC ISO)
        self._recent_events: deque[dict[str, Any]] = deque(maxlen=_RECENT_EVENTS)
        self._gauges: dict[str, Callable[[], Any]] = {}
        self._sources: list[Any] = []
        self._state = "idle"
        self._t_start: float | None = None
        self._t_end: float | None = None

    # --- updates (per frame: keep them O(1)) ---------------------------------------------------
    def observe(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._stages[stage].add(seconds)

    def accepted(self, t: float | None = None) -> None:
        with self._lock:
            self._counts["accepted"] += 1
            self._arrive_t.add(time.monotonic() if t is None else t)

    def decided(self, verdict: str, t: float | None = None) -> None:
        with self._lock:
            self._counts["decided"] += 1
            self._verdicts[verdict] = self._verdicts.get(verdict, 0) + 1
            self._done_t.add(time.monotonic() if t is None else t)

    def inference(self, seconds: float, n_frames: int) -> None:
        with self._lock:
            self._stages["inference"].add(seconds)
            if n_frames > 0:
                self._infer_pf.add(seconds / n_frames)

    def dropped(self, source: str, n: int = 1) -> None:
        with self._lock:
            self._drops[source] = self._drops.get(source, 0) + n

    def blocked(self, seconds: float) -> None:
        """Time a capture worker waited for room in the inference queue (back-pressure)."""
        if seconds > 0:
            with self._lock:
                self._blocked_s += seconds

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + n

    def event(self, kind: str, source: str | None, t: datetime, *, end: bool = False) -> None:
        """A station event (stall, freeze, reconnect, store gap) begins or (``end``) ends: counted
        when it begins, shown while open; rare, so the small bookkeeping is no per-frame cost."""
        when = t.isoformat(timespec="seconds")
        with self._lock:
            if end:
                self._open_events.pop((source, kind), None)
            else:
                self._events[kind] = self._events.get(kind, 0) + 1
                if kind in _LASTING_EVENTS:
                    self._open_events[(source, kind)] = when
            self._recent_events.append({"kind": kind, "source": source, "t": when, "end": end})

    def error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)
            del self._errors[:-_MAX_ERRORS]

    # --- state and wiring ---------------------------------------------------------------------
    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    @state.setter
    def state(self, value: str) -> None:
        if value not in STATES:
            raise ValueError(f"metrics state must be one of {', '.join(STATES)}, got {value!r}")
        with self._lock:
            if self._state == "faulted" and value == "stopped":
                return  # a fault stays visible after the stop that follows it
            self._state = value
            now = time.monotonic()
            if value == "running" and self._t_start is None:
                self._t_start = now
            if value in ("stopped", "faulted") and self._t_end is None and self._t_start is not None:
                self._t_end = now

    def add_gauge(self, name: str, read: Callable[[], Any]) -> None:
        """A value read at snapshot time (queue depths, store backlog); never per frame."""
        with self._lock:
            self._gauges[name] = read

    def add_sources(self, sources: Iterable[Any]) -> None:
        """Sources whose ``stats()`` (corrupt frames, reconnects, ...) join the snapshot."""
        with self._lock:
            self._sources.extend(sources)

    # --- reading ------------------------------------------------------------------------------
    def counter(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    @property
    def verdicts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._verdicts)

    @property
    def drops(self) -> dict[str, int]:
        with self._lock:
            return dict(self._drops)

    def elapsed_s(self) -> float:
        with self._lock:
            if self._t_start is None:
                return 0.0
            return (self._t_end if self._t_end is not None else time.monotonic()) - self._t_start

    def snapshot(self) -> dict[str, Any]:
        """Everything as one JSON-ready dict (safe from any thread, cheap enough for a 1 Hz GUI)."""
        now = time.monotonic()
        with self._lock:
            stages = {s: r.values() for s, r in self._stages.items()}
            done, arrive, infer_pf = self._done_t.values(), self._arrive_t.values(), self._infer_pf.values()
            counts, verdicts, drops = dict(self._counts), dict(self._verdicts), dict(self._drops)
            blocked, errors, state = self._blocked_s, list(self._errors), self._state
            gauges, sources = dict(self._gauges), list(self._sources)
            events = {"counts": dict(self._events),
                      "open": [{"kind": k, "source": src, "since": t} for (src, k), t in self._open_events.items()],
                      "recent": list(self._recent_events)}
            t_start, t_end = self._t_start, self._t_end
        # Gauges and source stats take their own locks: read them outside ours.
        elapsed = 0.0 if t_start is None else (t_end if t_end is not None else now) - t_start
        source_stats = {getattr(s, "name", f"source-{i}"): s.stats() for i, s in enumerate(sources)
                        if callable(getattr(s, "stats", None))}
        for name, st in source_stats.items():  # a reader's own buffer that fell behind drops frames too
            n = int(st.get("dropped", 0) or 0)
            if n:
                drops[name] = drops.get(name, 0) + n
        return {
            "state": state,
            "elapsed_s": round(elapsed, 3),
            "frames": counts,
            "verdicts": verdicts,
            "fps": round(_recent_fps(done, now if t_end is None else t_end, self.fps_window_s, elapsed,
                                     len(done) == self.window), 3),
            "throughput_fps": round(counts["decided"] / elapsed, 3) if elapsed > 0 else None,
            "latency_ms": {s: _ms_stats(v) for s, v in stages.items()},
            "queues": {name: read() for name, read in gauges.items()},
            "drops": drops,
            "dropped": sum(drops.values()),
            "corrupt": sum(int(st.get("corrupt", 0)) for st in source_stats.values()),
            "sources": source_stats,
            "detector": _capacity(infer_pf, arrive, blocked, elapsed),
            "errors": errors,
            "events": events,
        }


def _recent_fps(done: np.ndarray, now: float, window_s: float, elapsed: float, full: bool) -> float:
    """Decisions per second over the last ``window_s`` (or the whole run when it is shorter)."""
    if not len(done) or elapsed <= 0:
        return 0.0
    start = now - min(window_s, elapsed)
    oldest = float(done.min())
    if full and oldest > start:  # at high rates the ring holds less than the window: use what it holds
        start = oldest
    span = now - start
    return float(np.count_nonzero(done >= start)) / span if span > 0 else 0.0


def _capacity(infer_pf: np.ndarray, arrive: np.ndarray, blocked_s: float, elapsed: float) -> dict[str, Any]:
    """Detector capacity vs demand: inference time per frame against the time between frames.

    ``utilisation`` near or above 1 means the detector is the bottleneck. Under inspection
    back-pressure the source is slowed to the detector's pace, so arrivals converge on the
    capacity; ``capture_blocked_fraction`` (time the capture waited for room) then shows it.
    """
    per_frame = float(infer_pf.mean()) if len(infer_pf) else None
    inter = float(np.diff(np.sort(arrive)).mean()) if len(arrive) >= 2 else None
    return {
        "inference_ms_per_frame": None if per_frame is None else round(per_frame * 1e3, 3),
        "capacity_fps": None if not per_frame else round(1.0 / per_frame, 3),
        "interarrival_ms": None if inter is None else round(inter * 1e3, 3),
        "demand_fps": None if not inter else round(1.0 / inter, 3),
        "utilisation": None if per_frame is None or not inter else round(per_frame / inter, 3),
        "capture_blocked_s": round(blocked_s, 3),
        "capture_blocked_fraction": round(blocked_s / elapsed, 3) if elapsed > 0 else None,
    }


def verdict_counts(counts: Mapping[str, int]) -> dict[str, int]:
    """Every verdict present (zero when unseen), in a fixed order."""
    return {v: int(counts.get(v, 0)) for v in _VERDICTS}
