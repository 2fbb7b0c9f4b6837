"""One forwarder thread per transport: outbox rows -> receiver, in order, with retries.

Guarantees:

- a row is marked delivered only after the transport says the receiver acknowledged it (HTTP
  2xx, MQTT PUBACK, file renamed into place and its folder synced);
- rows go out in ``id`` order; when a row fails, every later row of the *same stream* waits
  (order per lot/wafer or camera is kept) while other streams continue, unless the transport
  itself is down (connection refused, timeout, 5xx), then the whole transport backs off;
- back-off is exponential with jitter (capped); nothing is ever dropped: a row is retried until
  it is delivered, and a station restart resumes from the rows still pending in the database;
- delivered rows older than the retention are deleted now and then, in small transactions
  (:class:`Retention`); undelivered rows never are.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from inspector.mes import outbox
from inspector.mes.outbox import OutboxRow
from inspector.store.db import iso_utc, open_db
from inspector.util.redact import redact_text

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
    """``initial_s * multiplier**(n-1)`` capped at ``max_s``, with "equal jitter" (``jitter`` = the random
    share of each delay) so that many stations do not retry in lock-step after a shared outage."""

    initial_s: float = 0.5
    max_s: float = 60.0
    jitter: float = 0.5
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"Backoff: expected 0 < initial_s <= max_s, got {self.initial_s} and {self.max_s}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff: jitter must be in [0, 1], got {self.jitter}")
        if self.multiplier < 1:
            raise ValueError(f"Backoff: multiplier must be >= 1, got {self.multiplier}")

    def base(self, failures: int) -> float:
        """The delay before jitter after ``failures`` consecutive failures."""
        try:
            return min(self.max_s, self.initial_s * self.multiplier ** max(0, failures - 1))
        except OverflowError:  # a long outage with a large multiplier: the cap applies anyway
            return self.max_s

    def delay(self, failures: int, rng: random.Random | None = None) -> float:
        base = self.base(failures)
        r = (rng or random).random()
        return base * (1 - self.jitter) + base * self.jitter * r


@dataclass(frozen=True)
class Retention:
    """Delivered rows older than ``keep_s`` are deleted, checked every ``every_s``, ``batch`` rows per
    transaction and at most ``budget_s`` per round (a backlog is worked off over several rounds)."""

    keep_s: float = 7 * 86400.0
    every_s: float = 600.0
    batch: int = 500
    budget_s: float = 0.5

    def __post_init__(self) -> None:
        if self.keep_s <= 0 or self.every_s <= 0 or self.batch < 1 or self.budget_s <= 0:
            raise ValueError(f"Retention: expected keep_s, every_s, budget_s > 0 and batch >= 1, got {self}")


@dataclass(frozen=True)
class ForwarderSettings:
    backoff: Backoff = Backoff()
    batch: int = 200          # rows per deliver() call (and per "delivered" transaction)
    poll_s: float = 0.25      # idle wait for new rows (``notify`` wakes it earlier)
    stats_every_s: float = 1.0
    retention: Retention | None = Retention()  # None: never prune (the outbox grows)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise ValueError(f"ForwarderSettings: batch must be at least 1, got {self.batch}")


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
        # Link state for operators: "unknown" until the first attempt, "up" after an
        # acknowledgement, "down" after the receiver could not be reached (since _link_since).
        self._link = "unknown"
        self._link_since = time.time()
        self.last_delivered_t: float | None = None
        self._held = 0
        self._prune_at = 0.0  # monotonic; the first round runs soon after start
        self.pruned = 0

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
        """Depth and oldest age (refreshed by the thread about once a second), counters, last error,
        and the link: ``up`` (last attempt acknowledged), ``down`` (receiver unreachable, backing
        off), ``retrying`` (reachable, but refused messages hold their streams), ``unknown``."""
        now_m, now = time.monotonic(), time.time()
        with self._lock:
            link = "retrying" if self._link != "down" and self._held else self._link
            return {"pending": self._depth, "oldest_pending": self._oldest,
                    "oldest_age_s": outbox.age_s(self._oldest), "delivered": self.delivered,
                    "failures": self.failures, "last_error": self.last_error,
                    "last_error_at": _iso(self.last_error_t), "last_delivered_at": _iso(self.last_delivered_t),
                    "down": now_m < self._down_until, "link": link,
                    "link_since": _iso(self._link_since), "link_for_s": round(max(0.0, now - self._link_since), 1),
                    "retry_in_s": round(max(0.0, self._down_until - now_m), 1) if self._link == "down" else None,
                    "held_streams": self._held, "pruned": self.pruned}

    def _set_link(self, state: str) -> None:
        with self._lock:
            if self._link != state:
                self._link, self._link_since = state, time.time()

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
        if s.retention is not None and now >= self._prune_at:
            self._prune(conn, s.retention)
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
                self.last_delivered_t = time.time()
                self._held = len(self._stream_failures)
            self._set_link("up")
        if result.error is not None and n < len(rows):
            row = rows[n]
            msg = redact_text(str(result.error))  # stored in the outbox and shown: never a URL's password
            outbox.record_failure(conn, row.id, msg)
            self._note_error(f"{row.key}: {msg}")
            t = time.monotonic()
            if result.error.scope == "message":
                k = self._stream_failures[row.stream] = self._stream_failures.get(row.stream, 0) + 1
                self._stream_until[row.stream] = t + s.backoff.delay(k, self._rng)
                with self._lock:
                    self._held = len(self._stream_failures)
                self._set_link("up")  # the receiver answered: it is reachable
            else:
                self._down_failures += 1
                self._down_until = t + s.backoff.delay(self._down_failures, self._rng)
                self._set_link("down")

    def _prune(self, conn: Any, r: Retention) -> None:
        # Delivered rows are only a copy of what the receiver has; the decisions stay in the store.
        cutoff = datetime.now(timezone.utc) - timedelta(seconds=r.keep_s)
        try:
            n, more = outbox.prune_some(conn, cutoff, transport=self.name, batch=r.batch, budget_s=r.budget_s)
        except sqlite3.OperationalError as e:  # database busy: delivery goes on, pruning retries later
            log.warning("mes %s: pruning delivered messages failed (retrying in %g s): %s", self.name, r.every_s, e)
            n, more = 0, False
        self._prune_at = time.monotonic() + (1.0 if more else r.every_s)
        if n:
            log.info("mes %s: pruned %d delivered message(s) older than %s", self.name, n, iso_utc(cutoff))
            with self._lock:
                self.pruned += n

    def _note_error(self, msg: str) -> None:
        msg = redact_text(msg)  # reaches the log, `mes status` and the run summary
        log.warning("mes %s: %s", self.name, msg)
        with self._lock:
            self.failures += 1
            self.last_error = msg
            self.last_error_t = time.time()

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self._wake.wait(seconds):
            self._wake.clear()


def _iso(t: float | None) -> str | None:
    return None if t is None else iso_utc(datetime.fromtimestamp(t, timezone.utc))


__all__ = ["Backoff", "Delivery", "DeliveryError", "Forwarder", "ForwarderSettings", "Retention", "Transport"]
