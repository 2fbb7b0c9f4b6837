"""One forwarder thread per transport: outbox rows -> receiver, in order, with retries.

Guarantees:

- a row is marked delivered only after the transport says the receiver acknowledged it (HTTP
  2xx, MQTT PUBACK, file renamed into place and its folder synced);
- rows go out in ``id`` order; when a row fails, every later row of the *same stream* waits
  (order per lot/wafer or camera is kept) while other streams continue, unless the transport
  itself is down (connection refused, timeout, 5xx), then the whole transport backs off;
- back-off is exponential with jitter (capped); nothing is ever dropped: a row is retried until
  it is delivered, and a station restart resumes from the rows still pending in the database.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from inspector.mes import outbox
from inspector.mes.outbox import OutboxRow
from inspector.store.db import open_db

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """A message was not acknowledged. ``scope``: ``"transport"`` (the receiver is unreachable:
    back off the whole transport) or ``"message"`` (this message was refused: hold its stream)."""

    def __init__(self, message: str, scope: str = "transport") -> None:
        if scope not in ("transport", "message"):
            raise ValueError(f"DeliveryError scope must be 'transport' or 'message', got {scope!r}")
        super().__init__(message)
        self.scope = scope


@dataclass(frozen=True)
class Delivery:
    """The outcome of one ``deliver`` call: the first ``delivered`` rows were acknowledged;
    ``error`` explains why the next one was not (None when all were)."""

    delivered: int
    error: DeliveryError | None = None


class Transport(Protocol):
    name: str
    kinds: frozenset[str]

    def deliver(self, rows: Sequence[OutboxRow]) -> Delivery: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Backoff:
    """``initial_s * 2**(n-1)`` capped at ``max_s``, with "equal jitter" (half fixed, half random) so
    that many stations do not retry in lock-step after a shared outage."""

    initial_s: float = 0.5
    max_s: float = 60.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"Backoff: expected 0 < initial_s <= max_s, got {self.initial_s} and {self.max_s}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff: jitter must be in [0, 1], got {self.jitter}")

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        base = min(self.max_s, self.initial_s * 2 ** max(0, min(failures - 1, 40)))
        r = (rng or random).random()
        return base * (1 - self.jitter) + base * self.jitter * r


@dataclass(frozen=True)
class ForwarderSettings:
    backoff: Backoff = Backoff()
    batch: int = 200          # rows per deliver() call (and per "delivered" transaction)
    poll_s: float = 0.25      # idle wait for new rows (``notify`` wakes it earlier)
    stats_every_s: float = 1.0


class Forwarder:
    """Delivers one transport's outbox rows from its own thread and database connection."""

    def __init__(self, db_path: str | Path, transport: Transport, settings: ForwarderSettings | None = None) -> None:
        self.db_path = Path(db_path)
        self.transport = transport
        self.name = transport.name
        self.settings = settings or ForwarderSettings()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._down_failures = 0
        self._down_until = 0.0
        self._stream_failures: dict[str, int] = {}
        self._stream_until: dict[str, float] = {}
        self._rng = random.Random()
        self.delivered = 0
        self.failures = 0
        self.last_error: str | None = None
        self.last_error_t: float | None = None
        self._depth = 0
        self._oldest: str | None = None
        self._stats_t = 0.0

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> Forwarder:
        if self._thread is not None:
            raise RuntimeError(f"forwarder {self.name} already started")
        self._thread = threading.Thread(target=self._run, name=f"mes-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 10.0, drain_s: float = 0.0) -> None:
        """Stop after the current delivery (first, up to ``drain_s`` seconds to empty the outbox
        while the receiver is up); undelivered rows stay pending for the next start."""
        if drain_s > 0 and self._thread is not None and self._thread.is_alive() and not self.stats()["down"]:
            self.wait_empty(drain_s)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.transport.close()
        except Exception as e:  # noqa: BLE001 - closing must not hide the stop
            log.warning("mes %s: close failed: %s", self.name, e)

    def notify(self) -> None:
        """New rows were committed: look now instead of at the next poll."""
        self._wake.set()

    def stats(self) -> dict[str, Any]:
        """Depth and oldest age (refreshed by the thread about once a second), counters, last error."""
        with self._lock:
            return {"pending": self._depth, "oldest_pending": self._oldest,
                    "oldest_age_s": outbox.age_s(self._oldest), "delivered": self.delivered,
                    "failures": self.failures, "last_error": self.last_error,
                    "down": time.monotonic() < self._down_until}

    def wait_empty(self, timeout: float) -> bool:
        """Block until no row of this transport is pending (tests, benchmarks)."""
        deadline = time.monotonic() + timeout
        conn = open_db(self.db_path)
        try:
            while time.monotonic() < deadline:
                if outbox.depth(conn, self.name)[0] == 0:
                    return True
                self._wake.set()
                time.sleep(0.02)
            return False
        finally:
            conn.close()

    # --- the thread ---------------------------------------------------------------------------
    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = open_db(self.db_path)
                self._step(conn)
            except Exception as e:  # noqa: BLE001 - a database hiccup must not end delivery for good
                log.exception("mes %s: forwarder error", self.name)
                self._note_error(f"forwarder: {type(e).__name__}: {e}")
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                    conn = None
                self._stop.wait(1.0)
        if conn is not None:
            conn.close()

    def _step(self, conn: Any) -> None:
        s = self.settings
        now = time.monotonic()
        if now - self._stats_t >= s.stats_every_s:
            n, oldest = outbox.depth(conn, self.name)
            with self._lock:
                self._depth, self._oldest = n, oldest
            self._stats_t = now
        if now < self._down_until:
            self._sleep(self._down_until - now)
            return
        held = {st for st, t in self._stream_until.items() if t > now}
        rows = outbox.pending(conn, self.name, s.batch, held)
        if not rows:
            wake_at = min((t for t in self._stream_until.values() if t > now), default=now + s.poll_s)
            self._sleep(min(s.poll_s, wake_at - now))
            return
        try:
            result = self.transport.deliver(rows)
        except Exception as e:  # noqa: BLE001 - a transport bug counts as the transport being down
            result = Delivery(0, DeliveryError(f"{type(e).__name__}: {e}", "transport"))
        n = max(0, min(result.delivered, len(rows)))
        if n:
            outbox.mark_delivered(conn, [r.id for r in rows[:n]])
            self._down_failures = 0
            for r in rows[:n]:
                if r.stream in self._stream_failures:
                    self._stream_failures.pop(r.stream, None)
                    self._stream_until.pop(r.stream, None)
            with self._lock:
                self.delivered += n
                self._depth = max(0, self._depth - n)
        if result.error is not None and n < len(rows):
            row = rows[n]
            msg = str(result.error)
            outbox.record_failure(conn, row.id, msg)
            self._note_error(f"{row.key}: {msg}")
            t = time.monotonic()
            if result.error.scope == "message":
                k = self._stream_failures[row.stream] = self._stream_failures.get(row.stream, 0) + 1
                self._stream_until[row.stream] = t + s.backoff.delay(k, self._rng)
            else:
                self._down_failures += 1
                self._down_until = t + s.backoff.delay(self._down_failures, self._rng)

    def _note_error(self, msg: str) -> None:
        log.warning("mes %s: %s", self.name, msg)
        with self._lock:
            self.failures += 1
            self.last_error = msg
            self.last_error_t = time.time()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._wake.wait(seconds):
            self._wake.clear()


__all__ = ["Backoff", "Delivery", "DeliveryError", "Forwarder", "ForwarderSettings", "Transport"]
